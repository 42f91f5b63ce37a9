"""JOSH3R train step: build, trace + lower, compile and step time, measured separately.

  # tiny model on CPU: eager build, lower, compile, first step, median step time
  python -m benchmarks.josh3r_train --presets=tiny --device_label=cpu
  # full size on CPU, abstract only (no weights drawn, nothing run): build + lower + compile
  python -m benchmarks.josh3r_train --presets=full --abstract --batch=8 --image_size=288,512 \
      --device_label=cpu
  # GPU (one H100/H200): the full bf16 step, compiled and run (remat of the scanned blocks)
  python -m benchmarks.josh3r_train --presets=full_bf16 --batch=8 --image_size=288,512 \
      --device_label=h200 --steps=10 --remat=dots_no_batch

Each preset writes `benchmarks/results/josh3r_train_<preset>[_abstract]_<device>.json` with
`build_s` (model construction: eager, or `nnx.eval_shape` with `--abstract`), `lower_s` (trace +
lower of the jitted step), `compile_s` (XLA compile), `lower_cpu_s` / `compile_cpu_s` (the
process's CPU time over the same spans: comparable across load levels), and, when not abstract, `first_step_s`,
`step_time_median_s`, `train_pairs_per_s`; the compiled step's `memory_analysis()`
(`temp_mib`, `argument_mib`, `output_mib`) and the device's `peak_bytes_in_use` where
available. The optimizer is the training one (`trainers.train_state.make_optimizer`: AdamW,
kernel-only decay, backbone at 0.1x), inputs are random but well-formed. Run one preset per
process for a clean peak-memory figure.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import body_models  # noqa: E402
from benchmarks.common import write_result  # noqa: E402
from experiments.configs import josh3r_train  # noqa: E402
from trainers import josh3r, parallel, train_state, train_step  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["tiny"], "Presets of experiments/configs/josh3r_train.py.")
_ABSTRACT = flags.DEFINE_bool("abstract", False, "Abstract build; lower and compile only.")
_BATCH = flags.DEFINE_integer("batch", 8, "Global batch (pairs).")
_IMAGE = flags.DEFINE_list("image_size", [], "H,W (default: the preset's image_size).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps after the first.")
_DEVICE = flags.DEFINE_string("device_label", "cpu", "Label used in the result file name.")
_REMAT = flags.DEFINE_string("remat", "", "Override config.model.remat (none, full, dots, "
                             "dots_no_batch); '' keeps the preset's.")
_OUT = flags.DEFINE_string("out", os.path.join(ROOT, "benchmarks", "results"), "Folder.")

MIB = 2.0**20


def random_batch(rng: np.random.Generator, batch: int, hw: tuple[int, int]) -> dict:
    """Random, well-formed inputs and labels for `batch` pairs at `hw` (as benchmarks/josh3r.py;
    not imported from there: its absl flags share names with these)."""
    h, w = hw
    eye6 = np.array([1, 0, 0, 0, 1, 0], np.float32)
    normal = lambda s, *shape: rng.normal(0, s, shape).astype(np.float32)
    return {
        "imgs": rng.uniform(-1, 1, (batch, 2, h, w, 3)).astype(np.float32),
        "img_shapes": np.tile(np.array([h, w], np.int32), (batch, 2, 1)),
        "bbox": np.tile(np.array([w * 0.3, h * 0.2, w * 0.7, h * 0.9], np.float32), (batch, 2, 1)),
        "trans": normal(0.1, batch, 3), "rot": np.tile(eye6, (batch, 1)),
        "trans1": normal(0.2, batch, 3) + np.float32([0, 0, 4]),
        "trans2": normal(0.2, batch, 3) + np.float32([0, 0, 4]),
        "rot1": np.tile(eye6, (batch, 1)), "rot2": np.tile(eye6, (batch, 1)),
        "pose": normal(0.1, batch, 2, 23, 3), "beta": normal(0.5, batch, 10),
        "depth": rng.uniform(2, 6, (batch, 2, h, w, 3)).astype(np.float32),
        "depth_mask": np.ones((batch, 2), bool),
    }


def abstract_state(model: nnx.Module, tx) -> train_state.TrainState:
    """`TrainState` of shapes only (`jax.ShapeDtypeStruct` leaves), from a possibly abstract
    model."""
    _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    sds = lambda t: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), t)
    return train_state.TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32), params=sds(params),
        batch_stats=sds(batch_stats), opt_state=jax.eval_shape(tx.init, sds(params)),
        rng=jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))))


def bench(preset: str) -> None:
    config = josh3r_train.get_config(preset)
    if _REMAT.value:
        config.unlock()
        config.model.remat = _REMAT.value
        config.lock()
    hw = tuple(int(v) for v in _IMAGE.value) if _IMAGE.value else tuple(config.image_size)
    body = body_models.load_model()
    tx, schedule = train_state.make_optimizer(
        learning_rate=1e-4, total_steps=1000, warmup_steps=10, backbone_lr_factor=0.1)
    t0 = time.perf_counter()
    if _ABSTRACT.value:
        model = nnx.eval_shape(lambda: josh3r.JOSH3R(config.model, rngs=nnx.Rngs(0)))
    else:
        model = josh3r.JOSH3R(config.model, rngs=nnx.Rngs(0))
    build_s = time.perf_counter() - t0
    fns = train_step.make_step_fns(model, tx, schedule, body, use_dropout=True)
    state_shapes = abstract_state(model, tx)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state_shapes.params))
    n_leaves = len(jax.tree.leaves(state_shapes.params))
    mesh = parallel.make_mesh()
    step = parallel.make_jit_step(fns, mesh)
    batch_host = random_batch(np.random.default_rng(0), _BATCH.value, hw)
    batch_shapes = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch_host.items()}
    t0, c0 = time.perf_counter(), time.process_time()
    lowered = step.lower(state_shapes, batch_shapes)
    lower_s, lower_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    figures = {"build_s": build_s, "lower_s": lower_s, "compile_s": compile_s,
               # CPU time of this process (all threads): less sensitive to a loaded machine.
               "lower_cpu_s": lower_cpu_s, "compile_cpu_s": compile_cpu_s,
               "num_params_millions": n_params / 1e6, "param_leaves": n_leaves,
               "global_batch_pairs": _BATCH.value, "image_h": hw[0], "image_w": hw[1]}
    memory = compiled.memory_analysis()
    if memory is not None:
        figures.update(temp_mib=memory.temp_size_in_bytes / MIB,
                       argument_mib=memory.argument_size_in_bytes / MIB,
                       output_mib=memory.output_size_in_bytes / MIB)
    if not _ABSTRACT.value:
        state = parallel.replicate(mesh, train_state.init_train_state(model, tx, 0))
        batch = parallel.shard_batch(mesh, batch_host)
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        figures["first_step_s"] = time.perf_counter() - t0
        times = []
        for _ in range(_STEPS.value):
            t0 = time.perf_counter()
            state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)  # honest per-step timing
            times.append(time.perf_counter() - t0)
        median = float(np.median(times))
        figures.update(step_time_median_s=median, train_pairs_per_s=_BATCH.value / median,
                       final_loss=float(metrics["loss"]))
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        figures["peak_device_mib"] = stats["peak_bytes_in_use"] / MIB
    notes = (f"jit over a ('data',) mesh of {jax.device_count()} device(s); model preset "
             f"{preset} ({config.model.compute_dtype}, remat {config.model.remat}); "
             + ("abstract build (nnx.eval_shape), lowered and compiled from shapes, not run. "
                if _ABSTRACT.value else "eager build, random inputs. ")
             + ("CPU timings on a shared machine are noisy." if jax.default_backend() == "cpu"
                else ""))
    name = f"josh3r_train_{preset}" + ("_abstract" if _ABSTRACT.value else "") + (
        f"_remat_{_REMAT.value}" if _REMAT.value else "")
    write_result(name, figures, out_dir=_OUT.value, tag=_DEVICE.value, notes=notes)


def main(argv):
    del argv
    for preset in _PRESETS.value:
        bench(preset)


if __name__ == "__main__":
    app.run(main)
