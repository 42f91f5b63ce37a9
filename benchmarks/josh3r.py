"""JOSH3R throughput: train steps/s and inference pairs/s (fp32 / bf16), peak memory, and the
learning curve of a short tiny training run.

  # CPU (tiny), one JSON per preset and mode in benchmarks/results/:
  python -m benchmarks.josh3r --presets=tiny,tiny_bf16 --modes=train,infer --device_label=cpu
  # GPU (full size):
  python -m benchmarks.josh3r --presets=full,full_bf16 --modes=infer,train --device_label=h100 \
      --image_size=288,512 --infer_batch=16 --train_batch=4
  # XLA memory plan of full-size inference, abstract build (CPU is enough):
  python -m benchmarks.josh3r --presets=full --modes=infer_plan --infer_batch=16 --head_chunk=4 \
      --device_label=cpu
  # learning curve (synthetic ground-truth pairs, tiny model) -> josh3r_tiny_curve.png:
  python -m benchmarks.josh3r --modes=curve --curve_steps=200 --device_label=cpu

Each (preset, mode) writes `benchmarks/results/josh3r_<preset>_<mode>_<device>.json`:
`{"name", "device", "date", "command", "figures": {...}, "notes"}`; compile time and run time are
separate figures. Inputs are random images and random but well-formed labels (throughput does not
depend on the values). Peak memory is the accelerator's `peak_bytes_in_use` when available, else
the process's peak resident memory (CPU). Run each mode in its own process for a clean peak.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time

from absl import app, flags

from benchmarks.common import write_result
from josh_jax.io.atomic import atomic_write

_PRESETS = flags.DEFINE_list("presets", ["tiny"], "Model presets of experiments/configs/josh3r.py.")
_MODES = flags.DEFINE_list("modes", ["train", "infer"], "train, infer, infer_plan, curve.")
_DEVICE = flags.DEFINE_string("device_label", "cpu", "Label used in the result file names.")
_IMAGE = flags.DEFINE_list("image_size", [], "H,W (default: the preset's image_size).")
_TRAIN_BATCH = flags.DEFINE_integer("train_batch", 8, "Global train batch (pairs).")
_INFER_BATCH = flags.DEFINE_integer("infer_batch", 8, "Pairs per inference call.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 5, "Timed train steps (after compile).")
_INFER_CALLS = flags.DEFINE_integer("infer_calls", 10, "Timed inference calls.")
_HEAD_CHUNK = flags.DEFINE_integer("head_chunk", 4, "Pairs per DPT-head chunk in inference.")
_CURVE_STEPS = flags.DEFINE_integer("curve_steps", 120, "Steps of the learning-curve run.")
_OUT = flags.DEFINE_string("out", os.path.join(os.path.dirname(__file__), "results"), "Folder.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def peak_memory_mb() -> tuple[float, str]:
    import jax  # noqa: PLC0415

    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20, "device peak_bytes_in_use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host max RSS"


def write(name: str, figures: dict, notes: str = "") -> None:
    import jax  # noqa: PLC0415

    if jax.devices()[0].platform == "cpu":
        notes += (" CPU only: no GPU was lent to the session that produced this file, so the "
                  "full-size GPU figures (bf16 inference goal >= 30 pairs/s within 8 GB on an "
                  "H100) are not measured here.")
    write_result(name, figures, out_dir=_OUT.value, tag=_DEVICE.value, notes=notes)


def random_batch(rng, batch: int, hw: tuple[int, int]) -> dict:
    import numpy as np  # noqa: PLC0415

    h, w = hw
    eye6 = np.array([1, 0, 0, 0, 1, 0], np.float32)
    return {
        "imgs": rng.uniform(-1, 1, (batch, 2, h, w, 3)).astype(np.float32),
        "img_shapes": np.tile(np.array([h, w], np.int32), (batch, 2, 1)),
        "bbox": np.tile(np.array([w * 0.3, h * 0.2, w * 0.7, h * 0.9], np.float32), (batch, 2, 1)),
        "trans": rng.normal(0, 0.1, (batch, 3)).astype(np.float32),
        "rot": np.tile(eye6, (batch, 1)),
        "trans1": (rng.normal(0, 0.2, (batch, 3)) + [0, 0, 4]).astype(np.float32),
        "trans2": (rng.normal(0, 0.2, (batch, 3)) + [0, 0, 4]).astype(np.float32),
        "rot1": np.tile(eye6, (batch, 1)),
        "rot2": np.tile(eye6, (batch, 1)),
        "pose": rng.normal(0, 0.1, (batch, 2, 23, 3)).astype(np.float32),
        "beta": rng.normal(0, 0.5, (batch, 10)).astype(np.float32),
        "depth": (rng.uniform(2, 6, (batch, 2, h, w, 3))).astype(np.float32),
        "depth_mask": np.ones((batch, 2), bool),
    }


def bench_train(preset: str, hw) -> None:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    import body_models  # noqa: PLC0415
    from experiments.configs import josh3r as josh3r_config  # noqa: PLC0415
    from trainers import josh3r, train  # noqa: PLC0415

    cfg = josh3r_config.get_config(preset)
    body = body_models.load_model()
    model = josh3r.JOSH3R(cfg.model, rngs=nnx.Rngs(0))
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    tx, schedule = train.make_optimizer(learning_rate=1e-4, total_steps=1000, warmup_steps=10)
    fns = train.make_step_fns(model, tx, schedule, body)
    mesh = train.make_mesh()
    state = train.replicate(mesh, train.init_train_state(model, tx, 0))
    del model
    step = train.make_jit_step(fns, mesh)
    batch = train.shard_batch(mesh, random_batch(np.random.default_rng(0), _TRAIN_BATCH.value, hw))
    t0 = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(_TRAIN_STEPS.value):
        t0 = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m)  # per step: CPU collectives hazard, and honest timing
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    mem, how = peak_memory_mb()
    write(f"josh3r_{preset}_train", {
        "compile_plus_first_step_s": compile_s, "step_time_median_s": med,
        "train_steps_per_s": 1.0 / med, "train_pairs_per_s": _TRAIN_BATCH.value / med,
        "global_batch_pairs": _TRAIN_BATCH.value, "image_h": hw[0], "image_w": hw[1],
        "num_params_millions": n_params / 1e6, "peak_memory_mb": mem,
        "final_loss": float(m["loss"]),
    }, notes=f"AdamW step incl. loss (SMPL joints), jit over a ('data',) mesh of "
             f"{jax.device_count()} device(s); random inputs; peak memory = {how}.")


def random_josh3r(model_config, seed: int = 0):
    """A JOSH3R with random weights drawn on the device: abstract build, then one normal draw
    per parameter (std 0.02; BatchNorm variances 1). Throughput does not depend on the values;
    the eager build's host-side init of the full model takes ~1 minute."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    from trainers import josh3r, pretrained  # noqa: PLC0415

    model = pretrained.abstract_model(josh3r.JOSH3R, model_config, seed)
    variables = [(path, v) for path, v in nnx.iter_graph(model)
                 if isinstance(v, (nnx.Param, nnx.BatchStat))]
    specs = [(str(path[-1]), v.get_value().shape, v.get_value().dtype) for path, v in variables]

    @jax.jit
    def draw(key):  # one program for every draw (eager draws compile one program per shape)
        out = []
        for i, (name, shape, dtype) in enumerate(specs):
            if name == "var":
                out.append(jnp.ones(shape, dtype))
            elif name == "mean":
                out.append(jnp.zeros(shape, dtype))
            else:
                out.append(0.02 * jax.random.normal(jax.random.fold_in(key, i), shape, dtype))
        return out

    for (_, var), value in zip(variables, draw(jax.random.key(seed)), strict=True):
        var.set_value(value)
    return pretrained.concretise(model, josh3r.JOSH3R, model_config, seed)


def bench_infer(preset: str, hw) -> None:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from experiments.configs import josh3r as josh3r_config  # noqa: PLC0415
    from trainers import infer  # noqa: PLC0415

    cfg = josh3r_config.get_config(preset)
    t0 = time.perf_counter()
    model = random_josh3r(cfg.model)
    build_s = time.perf_counter() - t0
    forward = infer.make_forward(model, head_chunk=_HEAD_CHUNK.value)
    del model
    bs = _INFER_BATCH.value
    b = random_batch(np.random.default_rng(0), bs, hw)
    frames = b["imgs"][:, 0]
    # A chain of bs pairs over bs frames (k, k+1 mod bs): per pair one frame is encoded and
    # one pair stage runs, as in a long clip where every frame is encoded once.
    idx1, idx2 = np.arange(bs), (np.arange(bs) + 1) % bs
    shapes, bbox = jax.device_put(b["img_shapes"]), jax.device_put(b["bbox"])

    def call():
        cache = forward.encode_frames(frames, bs)
        return forward.pairs(cache, idx1, idx2, shapes, bbox)

    t0 = time.perf_counter()
    jax.block_until_ready(call())
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(_INFER_CALLS.value):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    mem, how = peak_memory_mb()
    write(f"josh3r_{preset}_infer", {
        "build_s": build_s, "compile_plus_first_call_s": compile_s,
        "call_time_median_s": med, "infer_pairs_per_s": bs / med, "pairs_per_call": bs,
        "image_h": hw[0], "image_w": hw[1], "peak_memory_mb": mem,
    }, notes=f"eval-mode JOSH3R inference path (trainers.infer.Forward): {bs} frames encoded "
             f"once + {bs} chained pairs (decoder, head-1 DPT with head_chunk="
             f"{_HEAD_CHUNK.value}, human branch; no X21/second head); host image input; "
             f"peak memory = {how}; chaining/Result assembly (host) not included.")


def bench_infer_plan(preset: str, hw) -> None:
    """XLA memory plan of the inference programs, built abstractly (nothing allocated or run)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    from experiments.configs import josh3r as josh3r_config  # noqa: PLC0415
    from trainers import josh3r, pretrained  # noqa: PLC0415

    cfg = josh3r_config.get_config(preset)
    bs, chunk = _INFER_BATCH.value, _HEAD_CHUNK.value
    t0 = time.perf_counter()
    model = pretrained.abstract_model(josh3r.JOSH3R, cfg.model)  # shapes only, nothing drawn
    model.eval()
    build_s = time.perf_counter() - t0
    graphdef, state = nnx.split(model)
    sds = lambda shape, dt=jnp.float32: jax.ShapeDtypeStruct(shape, dt)
    state = jax.tree.map(lambda x: sds(x.shape, x.dtype), state)
    h, w = hw
    p = cfg.model.patch_size
    n = (h // p) * (w // p)

    def encode(state, imgs):
        return nnx.merge(graphdef, state).encode(imgs)

    def pairs(state, f1, p1, f2, p2, shapes, bbox):
        return nnx.merge(graphdef, state).predict_from_features(
            f1, p1, f2, p2, shapes, bbox, hw, head_chunk=chunk)

    feat, pos = sds((bs, n, cfg.model.enc_embed_dim)), sds((bs, n, 2), jnp.int32)
    programs = {
        "encode": (encode, (state, sds((bs, h, w, 3)))),
        "pairs": (pairs, (state, feat, pos, feat, pos, sds((bs, 2, 2), jnp.int32),
                          sds((bs, 2, 4)))),
    }
    figures = {"build_abstract_s": build_s, "pairs_per_call": bs, "head_chunk": chunk,
               "image_h": h, "image_w": w}
    for name, (fn, args) in programs.items():
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(*args)
        figures[f"{name}_lower_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compiled = lowered.compile()
        figures[f"{name}_compile_s"] = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        figures[f"{name}_temp_gib"] = mem.temp_size_in_bytes / 2**30
        figures[f"{name}_argument_gib"] = mem.argument_size_in_bytes / 2**30
        figures[f"{name}_output_gib"] = mem.output_size_in_bytes / 2**30
    figures["max_temp_gib"] = max(figures["encode_temp_gib"], figures["pairs_temp_gib"])
    write(f"josh3r_{preset}_infer_plan", figures,
          notes=f"abstract model (pretrained.abstract_model: shapes only), jit(...).lower(shapes).compile() of the two "
                f"inference programs at {bs} frames / {bs} pairs; XLA memory_analysis() of the "
                f"backend that compiled them (CPU plans differ from GPU ones); nothing run.")


def learning_curve(steps: int) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from experiments.configs import josh3r_train  # noqa: PLC0415
    from trainers import train  # noqa: PLC0415

    cfg = josh3r_train.get_config("tiny")
    cfg.unlock()
    cfg.training.num_steps = steps
    cfg.training.checkpoint_every = max(steps, 1)
    cfg.training.log_every = 10
    cfg.training.batch_size = _TRAIN_BATCH.value
    cfg.lock()
    workdir = tempfile.mkdtemp(prefix="josh3r_curve_")
    t0 = time.perf_counter()
    train.run(cfg, workdir)
    wall = time.perf_counter() - t0
    recs = train.read_metrics(workdir)
    step = np.array([r["step"] for r in recs])
    loss = np.array([r["loss"] for r in recs])
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(step, loss, lw=1, label="total")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("loss")
    ax[0].set_title(f"JOSH3R tiny, synthetic GT pairs, batch {cfg.training.batch_size}")
    for k in ("loss_rel_tran", "loss_rel_rot", "loss_trans1", "loss_contact_scale",
              "loss_contact_static", "loss_depth"):
        ax[1].plot(step, [r[k] for r in recs], lw=1, label=k[5:])
    ax[1].set_yscale("log")
    ax[1].set_xlabel("step")
    ax[1].legend(fontsize=7)
    ax[1].set_title("terms")
    fig.tight_layout()
    os.makedirs(_OUT.value, exist_ok=True)
    png = os.path.join(_OUT.value, "josh3r_tiny_curve.png")
    with atomic_write(png) as tmp:
        fig.savefig(tmp, dpi=110)
    k = max(1, len(loss) // 10)
    write("josh3r_tiny_curve", {
        "steps": int(step[-1]), "loss_first10pct_mean": float(loss[:k].mean()),
        "loss_last10pct_mean": float(loss[-k:].mean()),
        "loss_ratio_last_over_first": float(loss[-k:].mean() / loss[:k].mean()),
        "wall_s_including_data_and_compile": wall,
    }, notes=f"train.run on config josh3r_train.py:tiny (synthetic_gt labels, "
             f"{cfg.data.num_clips} clips); curve in {png}")


def main(argv):
    del argv
    import numpy as np  # noqa: PLC0415

    from experiments.configs import josh3r as josh3r_config  # noqa: PLC0415

    for mode in _MODES.value:
        if mode == "curve":
            learning_curve(_CURVE_STEPS.value)
            continue
        for preset in _PRESETS.value:
            hw = tuple(int(x) for x in _IMAGE.value) or tuple(
                josh3r_config.get_config(preset).image_size)
            {"train": bench_train, "infer": bench_infer,
             "infer_plan": bench_infer_plan}[mode](preset, hw)
    del np


if __name__ == "__main__":
    app.run(main)
