r"""Batched JOSH: clips per minute for batches of 1, 4, 16, and accuracy over synthetic noise levels.

    python -m benchmarks.josh_batch                                   # CPU, default config
    python -m benchmarks.josh_batch --batches=1,4,16 --noise_levels=0.5,1,2 --seeds=2

Throughput: `optimize_many` (jit(vmap) over stacked Problems, clip axis sharded over every device
of a ("clips",) mesh) is compiled ahead of time for each batch size (`compile_s_b<K>`), then run
once, blocked (`run_s_b<K>`); clips per minute = 60 K / run_s. The batch is built from
`--num_distinct` generated clips (`--synthetic_config`, default preset: 21 keyframes) repeated to K: the
work per clip does not depend on which clip it is (fixed bucket shapes, fixed iterations).

Accuracy: for each noise level x, every noise and error setting of the generator (pointmap depth
noise, frame scale jitter, focal error, match outliers, HMR errors, contact label noise) is
multiplied by x; `--seeds` clips per level are optimized as one batch and scored with
`josh_jax.evaluate.evaluate` (reference JSON definitions on the keyframes). Mean and worst per level are
reported.

Writes `benchmarks/results/josh_batch_<device>.json` and prints the figures.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

from benchmarks.common import RESULTS_DIR, write_result
from experiments import cli
from experiments.configs import synthetic as synthetic_config_lib
from josh_jax import optimize as optimize_lib
from josh_jax import pipeline, synthetic
from josh_jax import prepare as prepare_lib
from josh_jax.evaluate import evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(cli.CONFIGS, "josh.py") + ":default", "JOSH config.",
    lock_config=False)
_SYN_CONFIG = config_flags.DEFINE_config_file(
    "synthetic_config", os.path.join(cli.CONFIGS, "synthetic.py") + ":default",
    "Synthetic generator config (its noise settings are scaled per noise level).",
    lock_config=False)
_BATCHES = flags.DEFINE_list("batches", ["1", "4", "16"], "Batch sizes for throughput.")
_NUM_DISTINCT = flags.DEFINE_integer("num_distinct", 4, "Distinct clips the batches are built of.")
_NOISE_LEVELS = flags.DEFINE_list("noise_levels", ["0.5", "1", "2"],
                                  "Noise multipliers for the accuracy sweep ('' to skip).")
_SEEDS = flags.DEFINE_integer("seeds", 2, "Clips (seeds) per noise level.")
_OUT_DIR = flags.DEFINE_string("out_dir", RESULTS_DIR, "Where the JSON goes.")

def synthetic_config(noise_level: float = 1.0):
    """--synthetic_config with every noise and error setting multiplied by `noise_level`."""
    return synthetic_config_lib.with_noise_level(_SYN_CONFIG.value, noise_level)


def main(argv):
    del argv
    config = _CONFIG.value
    device = jax.default_backend()
    n_dev = jax.device_count()
    figures: dict[str, float] = {"devices": float(n_dev)}
    mesh = optimize_lib.make_clips_mesh()

    # ---- throughput ----
    t = time.perf_counter()
    clips = [synthetic.generate_clip(synthetic_config(), s)
             for s in range(_NUM_DISTINCT.value)]
    model = pipeline.resolve_body_model(clips[0][0].body_model)
    problems = [prepare_lib.prepare(c, config, model) for c, _ in clips]
    # One program needs one bucket signature: keep the largest group of equal-shaped problems.
    groups: dict[str, list] = {}
    for p in problems:
        groups.setdefault(str([np.shape(x) for x in jax.tree.leaves(p)]), []).append(p)
    problems = max(groups.values(), key=len)
    figures["distinct_clips"] = float(len(problems))
    print(f"{len(clips)} clips generated and prepared in {time.perf_counter() - t:.1f} s: "
          f"{clips[0][0].describe()}")
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("clips"))
    optimize_clips = optimize_lib.make_batched_optimize(config, mesh)  # what optimize_many runs
    for k in (int(b) for b in _BATCHES.value):
        k_pad = -(-k // n_dev) * n_dev
        batch = prepare_lib.stack_problems([problems[i % len(problems)] for i in range(k)],
                                           pad_to=k_pad)
        batch = jax.device_put(batch, spec)
        with jax.set_mesh(mesh):
            t = time.perf_counter()
            compiled = optimize_clips.lower(batch).compile()
            compile_s = time.perf_counter() - t
            t = time.perf_counter()
            sol = jax.block_until_ready(compiled(batch))
            run_s = time.perf_counter() - t
        figures[f"compile_s_b{k}"] = compile_s
        figures[f"run_s_b{k}"] = run_s
        figures[f"clips_per_min_b{k}"] = 60.0 * k / run_s
        figures[f"nan_clips_b{k}"] = float(np.asarray(sol.diagnostics.nan)[:k].sum())
        figures[f"diverged_clips_b{k}"] = float(np.asarray(sol.diagnostics.diverged)[:k].sum())
        print(f"batch {k:3d} (padded to {k_pad}): compile {compile_s:.1f} s, run {run_s:.1f} s, "
              f"{60.0 * k / run_s:.2f} clips/min")

    # ---- accuracy over noise levels ----
    levels = [float(x) for x in _NOISE_LEVELS.value if x]
    sweep = {}
    for level in levels:
        syn = synthetic_config(level)
        items = [synthetic.generate_clip(syn, 1000 + s) for s in range(_SEEDS.value)]
        # Clips of one level in one call (one jit(vmap) program per bucket signature).
        outs = pipeline.reconstruct_many([c for c, _ in items], config, model)
        per_clip = []
        for (_clip, gt), (res, info) in zip(items, outs, strict=True):
            m = evaluate(res, gt, model)
            per_clip.append({k: m[k] for k in ("wa_mpjpe_sim3_mm", "w_mpjpe_first_frame_aligned_mm",
                                               "human_scale_err", "focal_err", "cam_ate_sim3_m")})
            per_clip[-1]["nan"] = bool(np.asarray(info["diagnostics"]["nan"]))
            per_clip[-1]["diverged"] = bool(np.asarray(info["diagnostics"]["diverged"]))
        sweep[level] = per_clip
        for key, short in (("wa_mpjpe_sim3_mm", "wa_mpjpe_mm"),
                           ("w_mpjpe_first_frame_aligned_mm", "w_mpjpe_mm"),
                           ("human_scale_err", "human_scale_err"), ("focal_err", "focal_err"),
                           ("cam_ate_sim3_m", "cam_ate_sim3_m")):
            vals = np.array([c[key] for c in per_clip])
            figures[f"noise{level:g}_{short}_mean"] = float(vals.mean())
            figures[f"noise{level:g}_{short}_max"] = float(vals.max())
        figures[f"noise{level:g}_nan_clips"] = float(sum(c["nan"] for c in per_clip))
        figures[f"noise{level:g}_diverged_clips"] = float(sum(c["diverged"] for c in per_clip))
        print(f"noise x{level:g}: " + ", ".join(
            f"{k} {figures[f'noise{level:g}_{k}_mean']:.4g}"
            for k in ("wa_mpjpe_mm", "w_mpjpe_mm", "human_scale_err", "focal_err",
                      "cam_ate_sim3_m")))

    write_result(
        "josh_batch", figures, out_dir=_OUT_DIR.value, tag=device,
        sweep_per_clip={f"{k:g}": v for k, v in sweep.items()},
        config=json.loads(config.to_json()),
        synthetic_config=json.loads(_SYN_CONFIG.value.to_json()),
    )


if __name__ == "__main__":
    cli.run(main)
