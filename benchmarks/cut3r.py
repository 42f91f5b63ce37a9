"""CUT3R online inference throughput: frames/s of the jitted per-frame step (encoder, decoders,
memory, all heads, state update), compile time separately, and peak memory. Random weights
(`random_params`, drawn on the device): throughput does not depend on the values.

  # CPU, small preset -> benchmarks/results/cut3r_cpu.json
  python -m benchmarks.cut3r --preset=small --image_size=144,256 --device_label=cpu
  # GPU, released size at 512 (fp32 and bf16), one process each for a clean peak:
  python -m benchmarks.cut3r --preset=released --image_size=288,512 --frames=50 --device_label=gpu
  python -m benchmarks.cut3r --preset=released_bf16 --image_size=288,512 --frames=50 \
      --device_label=gpu

Writes `benchmarks/results/<name>_<device>.json` with name `cut3r` for the small preset and
`cut3r_<preset>` otherwise. Peak memory is the accelerator's `peak_bytes_in_use` when available,
else the process's peak resident memory (CPU: includes Python, JAX and the compiler).
"""

from __future__ import annotations

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from benchmarks.common import write_result
from experiments import compile_cache
from experiments.configs.cut3r import get_config
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.convert import random_params
from trainers.cut3r.recurrent import init_carry, step

_PRESET = flags.DEFINE_string("preset", "small", "Preset of experiments/configs/cut3r.py.")
_IMAGE = flags.DEFINE_list("image_size", ["144", "256"], "H,W (multiples of 16).")
_FRAMES = flags.DEFINE_integer("frames", 10, "Timed frames (after compile and one warm-up).")
_TTT3R = flags.DEFINE_boolean("ttt3r", False, "TTT3R gated state update.")
_DEVICE = flags.DEFINE_string("device_label", None, "Tag in the file name (default: platform).")


def peak_memory_mb() -> tuple[float, str]:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20, "device peak_bytes_in_use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host max RSS"


def main(_):
    compile_cache.enable()
    h, w = (int(v) for v in _IMAGE.value)
    cfg = Cut3rConfig.from_config(get_config(_PRESET.value).model)
    model = random_params(cfg, seed=0)
    graphdef, params = nnx.split(model)
    ttt3r = _TTT3R.value

    @jax.jit
    def frame_step(params, carry, img, reset):
        carry, frame = step(nnx.merge(graphdef, params), carry, img, reset, ttt3r=ttt3r)
        return carry, frame.pts3d_in_self_view, frame.camera_pose

    rng = np.random.default_rng(0)
    imgs = [jnp.asarray(rng.uniform(-1, 1, (1, h, w, 3)), jnp.float32) for _ in range(2)]
    carry = init_carry(model, 1)
    reset = jnp.asarray(False)
    t0 = time.perf_counter()
    compiled = frame_step.lower(params, carry, imgs[0], reset).compile()
    compile_s = time.perf_counter() - t0
    carry, pts, _ = compiled(params, carry, imgs[0], reset)  # warm-up
    jax.block_until_ready(pts)
    t0 = time.perf_counter()
    for i in range(_FRAMES.value):
        carry, pts, pose = compiled(params, carry, imgs[i % 2], reset)
    jax.block_until_ready((carry, pts, pose))
    run_s = time.perf_counter() - t0
    peak, how = peak_memory_mb()
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    name = "cut3r" if _PRESET.value == "small" else f"cut3r_{_PRESET.value}"
    write_result(name, {
        "frames_per_s": _FRAMES.value / run_s,
        "ms_per_frame": 1e3 * run_s / _FRAMES.value,
        "compile_s": compile_s,
        "peak_memory_mb": peak,
        "params_millions": n_params / 1e6,
    }, tag=_DEVICE.value, preset=_PRESET.value, image_hw=[h, w], ttt3r=ttt3r,
        compute_dtype=cfg.compute_dtype, peak_memory_source=how,
        notes="Random weights; one frame per call (batch 1), state and memory carried. CPU "
              "timings on a shared 2-core machine are noisy.")


if __name__ == "__main__":
    app.run(main)
