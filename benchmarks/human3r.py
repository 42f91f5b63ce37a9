"""Human3R online inference throughput: frames/s of the jitted per-view step (DINOv2 at the
Multi-HMR resolution, head detection, CUT3R with human prompts, the SMPL-X head, tracking and the
SMPL-X -> body conversion), compile time separately, and peak memory. Random weights
(`trainers.human3r.convert.random_params`): throughput does not depend on the values, but the
number of detections does not matter either (static `max_people` slots).

  # CPU, small preset -> benchmarks/results/human3r_cpu.json
  python -m benchmarks.human3r --preset=small --image_size=144,256 --device_label=cpu
  # GPU, released sizes at 512 (288 x 512 input, DINOv2 at 896), fp32 and bf16, one process each:
  python -m benchmarks.human3r --preset=released --image_size=288,512 --frames=50 --device_label=gpu
  python -m benchmarks.human3r --preset=released_bf16 --image_size=288,512 --frames=50 \
      --device_label=gpu

Writes `benchmarks/results/<name>_<device>.json`, name `human3r` for the small preset and
`human3r_<preset>` otherwise. Peak memory is the accelerator's `peak_bytes_in_use` when available,
else the process's peak resident memory (CPU: includes Python, JAX and the compiler).
"""

from __future__ import annotations

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import body_models
from benchmarks.common import write_result
from experiments import compile_cache
from experiments.configs.human3r import get_config
from trainers.human3r import convert, infer

_PRESET = flags.DEFINE_string("preset", "small", "Preset of experiments/configs/human3r.py.")
_IMAGE = flags.DEFINE_list("image_size", ["144", "256"], "H,W of the network input (x16).")
_FRAMES = flags.DEFINE_integer("frames", 10, "Timed frames (after compile and one warm-up).")
_TTT3R = flags.DEFINE_boolean("ttt3r", True, "TTT3R gated state update (the evaluation's).")
_DEVICE = flags.DEFINE_string("device_label", None, "Tag in the file name (default: platform).")


def peak_memory_mb() -> tuple[float, str]:
    """(peak MiB, source): the device's peak_bytes_in_use, else the host's max RSS."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20, "device peak_bytes_in_use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host max RSS"


def main(_):
    compile_cache.enable()
    h, w = (int(v) for v in _IMAGE.value)
    config = get_config(_PRESET.value)
    with config.unlocked():
        config.ttt3r = _TTT3R.value
    sizes = convert.Human3rSizes.from_config(config)
    t0 = time.perf_counter()
    params = convert.random_params(sizes, seed=0)
    init_s = time.perf_counter() - t0
    cfg = infer.InferConfig.from_config(config)
    step = infer.FrameStep(params, body_models.load_model(None), cfg)
    rng = np.random.default_rng(0)
    imgs = [jnp.asarray(rng.uniform(-1, 1, (h, w, 3)), jnp.float32) for _ in range(2)]
    carry = step.init_carry()
    t0 = time.perf_counter()
    carry, out = step(carry, imgs[0], False)  # compile + first frame
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    carry, out = step(carry, imgs[1], False)  # warm-up
    jax.block_until_ready(out)
    t0 = time.perf_counter()
    for i in range(_FRAMES.value):
        carry, out = step(carry, imgs[i % 2], False)
    jax.block_until_ready((carry, out))
    run_s = time.perf_counter() - t0
    peak, how = peak_memory_mb()
    counts = convert.abstract_parameter_count(sizes)
    name = "human3r" if _PRESET.value == "small" else f"human3r_{_PRESET.value}"
    write_result(
        name,
        {
            "frames_per_s": _FRAMES.value / run_s,
            "ms_per_frame": 1e3 * run_s / _FRAMES.value,
            "compile_and_first_frame_s": compile_s,
            "random_init_s": init_s,
            "peak_memory_mb": peak,
            "params_millions": sum(counts.values()) / 1e6,
        },
        tag=_DEVICE.value,
        preset=_PRESET.value,
        image_hw=[h, w],
        ttt3r=cfg.ttt3r,
        mhmr_img_res=cfg.mhmr_img_res,
        max_people=cfg.max_people,
        traces=step.traces,
        compute_dtype=sizes.cut3r.compute_dtype,
        peak_memory_source=how,
        notes="Random weights; one view per call (batch 1): detection, CUT3R with prompts, "
        "SMPL-X head, tracking and the body conversion in one jitted step; frame decoding "
        "and the host-side collection are not timed. CPU timings on a shared 2-core "
        "machine (~7 agents) are noisy.",
    )


if __name__ == "__main__":
    app.run(main)
