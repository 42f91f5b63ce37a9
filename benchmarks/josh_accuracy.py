r"""JOSH accuracy sweep: the reference clip, the public noise suite and synthetic seeds, the
current default vs variants (ablations and the `fast` preset).

    python -m benchmarks.josh_accuracy                      # default vs its ablations
    python -m benchmarks.josh_accuracy --variants=default --seeds=0,1,2 --scenes=
    python -m benchmarks.josh_accuracy --variants=default,fast --seeds=0 --scenes=sit,stairs
    python -m benchmarks.josh_accuracy --variants=default,proportional_focal_prior \
        --seeds= --scenes=default,sit,stairs,two_people --noise_levels=0.5,1,1.5,2
    # variants in parallel processes, then one summary:
    python -m benchmarks.josh_accuracy --variants= --per_clip_from=a/josh_accuracy_sweep_cpu.json,...

The public suite (`../shared/reference/suite/`, `--suite`: clips of other seeds at noise x1.0,
x1.5, x2.0 with the official code's result on each) is scored like the reference clip and
compared with the official code's metrics on the same clip: `<variant>_<clip>_<k>_ratio` is ours
over the reference's (WA-MPJPE, W-MPJPE, human scale error |1 - s|, focal error, camera ATE).

Clips: the reference clip, synthetic `default` clips of the given seeds and one clip (seed 0) of
each scene preset (`experiments/configs/synthetic.py`: stairs, sit, turn, curved, two_people), so
a variant is judged across scenes, motions and cameras, not on one clip; each synthetic clip at
every `--noise_levels` x (every noise and error setting of the generator multiplied by x,
`synthetic.with_noise_level`; clip names `<scene>_x<x>`). Each variant is a josh config
(`experiments/configs/josh.py:default`) with overrides; figures are the keyframe metrics of
`josh_jax.evaluate.evaluate` per clip, their mean and worst over the synthetic clips (all, and per
noise level: `<variant>_synthetic_x<x>_{mean,worst}_<k>`), and for every variant but `default`
its ratio to `default` on the same clip: `<variant>_vs_default_worst_ratio_<k>` (the largest over
all clips) and per noise level `..._x<x>` and suite clip `..._<clip>`.
Writes `benchmarks/results/josh_accuracy_sweep_<device>.json`.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import flags

from benchmarks.common import RESULTS_DIR, write_result
from experiments import cli
from experiments.configs import josh as josh_config
from experiments.configs import synthetic as synthetic_config
from josh_jax import pipeline, synthetic
from josh_jax.clip import load_any
from josh_jax.evaluate import evaluate

_REF = os.path.normpath(os.path.join(cli.REPO, "..", "shared", "reference",
                                     "josh_synthetic_clip.npz"))
_SUITE_DIR = os.path.join(os.path.dirname(_REF), "suite")
_SUITE = flags.DEFINE_list("suite", ["s21_n1.0", "s22_n1.5", "s23_n2.0"],
                           "Public suite clips (suite_<tag>.npz), '' for none.")
_WITH_REFERENCE = flags.DEFINE_boolean("reference", True, "Include the shared reference clip.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Synthetic seeds (default preset).")
_SCENES = flags.DEFINE_list("scenes", ["stairs", "sit", "turn", "curved", "two_people"],
                            "Synthetic presets, one clip each (seed 0).")
_NOISE_LEVELS = flags.DEFINE_list("noise_levels", ["1"],
                                  "Generator noise multipliers; every synthetic clip at each.")
_VARIANTS = flags.DEFINE_list(
    "variants", ["default", "no_reassociation", "previous_weights", "sfm_schedule"],
    "Variant names (VARIANTS).")
_OUT_DIR = flags.DEFINE_string("out_dir", RESULTS_DIR, "Where the JSON goes.")
_PER_CLIP_FROM = flags.DEFINE_list(
    "per_clip_from", [],
    "Result JSONs of earlier runs (same flags, other variants; e.g. run in parallel) whose "
    "per-clip rows join this run's before the summary.")

# Overrides on the default preset (ablations of its choices); "preset" names another preset.
VARIANTS = {
    "fast": {"preset": "fast"},
    "fast_loose": {"preset": "fast", "convergence.rel_tol": 1e-2},
    # The `fast` preset before the convergence stop: fixed 150 + 60 iterations.
    "fixed_150_60": {"stage1.iters": 150, "stage2.iters": 60},
    "default": {},
    # The contact surface read at the pixel found in prepare only.
    "no_reassociation": {"contact_surface.reassociate": False},
    # The weights of the first version (static 0.1, smooth 0.3, weak transl prior).
    "previous_weights": {"weights.static": 0.1, "weights.smooth": 0.3, "prior.transl": 0.01},
    "josh_weights": {"weights.static": 0.1, "weights.smooth": 0.1},
    "no_depth_along_ray": {"depth_along_ray": False},
    # JOSH's coupling: every human term moves every camera in both stages.
    "per_frame_coupling": {"human_global_scale_stages": ()},
    # MASt3R-SfM's own optimizer schedule (500 iterations at lr 0.2, then 500 at 0.02), under which
    # the reference collapses on its clip (reference README).
    "sfm_schedule": {"stage1.lr": 0.2, "stage2.lr": 0.02, "stage2.iters": 500},
    # Scene depths proportional to the focal (relief kept) and a weak (untuned) focal prior.
    "proportional_focal_prior": {"focal_depth_model": "proportional", "weights.focal": 1.0},
    "proportional": {"focal_depth_model": "proportional"},
}
_KEYS = {"wa_mm": "wa_mpjpe_sim3_mm", "w_mm": "w_mpjpe_first_frame_aligned_mm",
         "scale_err": "human_scale_err", "focal_err": "focal_err", "ate_cm": "cam_ate_sim3_m"}


def variant_config(name: str):
    overrides = dict(VARIANTS[name])
    cfg = josh_config.get_config(overrides.pop("preset", "default"))
    cfg.unlock()
    for k, v in overrides.items():
        node, *rest = k.split(".")
        if rest:
            cfg[node][rest[0]] = v
        else:
            cfg[k] = v
    return cfg


def suite_reference(tag: str) -> dict[str, float]:
    """The official code's metrics on suite clip `tag`, under our `_KEYS` names."""
    with open(os.path.join(_SUITE_DIR, f"josh_reference_result_suite_{tag}.json")) as f:
        m = json.load(f)["metrics"]
    return {"wa_mm": m["wa_mpjpe_sim3_mm"], "w_mm": m["w_mpjpe_first_frame_aligned_mm"],
            "scale_err": abs(1.0 - m["human_sim3_scale_pred_to_gt"]),
            "focal_err": abs(m["focal_final_rel_err"]), "ate_cm": 100.0 * m["cam_ate_sim3_m"]}


def load_clips() -> tuple[dict, dict]:
    """({name: (clip, gt)} of the flags' clips, {synthetic clip name: its noise level})."""
    clips = {"reference": load_any(_REF)} if _WITH_REFERENCE.value else {}
    for tag in _SUITE.value:
        clips[f"suite_{tag}"] = load_any(os.path.join(_SUITE_DIR, f"suite_{tag}.npz"))
    levels = {}
    for x in _NOISE_LEVELS.value:
        settings = [(f"seed{s}", "default", int(s)) for s in _SEEDS.value]
        settings += [(preset, preset, 0) for preset in _SCENES.value]
        for name, preset, seed in settings:
            cfg = synthetic_config.with_noise_level(synthetic_config.get_config(preset), float(x))
            name = name if _NOISE_LEVELS.value == ["1"] else f"{name}_x{x}"
            clips[name] = synthetic.generate_clip(cfg, seed)
            levels[name] = x
    return clips, levels


def summary_figures(per_clip: dict, levels: dict) -> dict[str, float]:
    """Mean / worst over the synthetic clips (all, and per noise level) of each variant, and each
    variant's ratios to `default` on the same clips (worst over all clips, per level, per clip
    outside the generator)."""
    figures = {}
    groups = {"": list(levels)}
    if len(set(levels.values())) > 1:
        groups.update({f"_x{x}": [c for c in levels if levels[c] == x]
                       for x in dict.fromkeys(levels.values())})
    for name, rows in per_clip.items():
        for suffix, names in groups.items():
            for k in _KEYS:
                vals = [rows[c][k] for c in names if c in rows]
                if vals:
                    figures[f"{name}_synthetic{suffix}_mean_{k}"] = float(np.mean(vals))
                    figures[f"{name}_synthetic{suffix}_worst_{k}"] = float(np.max(vals))
        if name == "default" or "default" not in per_clip:
            continue
        base = per_clip["default"]
        ratio = {c: {k: rows[c][k] / max(base[c][k], 1e-12) for k in _KEYS}
                 for c in rows if c in base}
        for k in _KEYS:
            if ratio:
                figures[f"{name}_vs_default_worst_ratio_{k}"] = max(r[k] for r in ratio.values())
            for suffix, names in groups.items():
                if suffix and any(c in ratio for c in names):
                    figures[f"{name}_vs_default_worst_ratio_{k}{suffix}"] = max(
                        ratio[c][k] for c in names if c in ratio)
            for c in ratio:
                if c not in levels:
                    figures[f"{name}_vs_default_ratio_{k}_{c}"] = ratio[c][k]
    return figures


def run_variant(name: str, clips: dict, bodies: dict, refs: dict) -> dict:
    """{clip: row} of variant `name`: the keyframe metrics, wall time (prepare + compile + run),
    iterations run and, on suite clips, the ratios to the official code's result."""
    cfg = variant_config(name)
    rows = {}
    for cname, (clip, gt) in clips.items():
        t = time.perf_counter()
        result, _ = pipeline.reconstruct(clip, cfg, bodies[str(clip.body_model)])
        m = evaluate(result, gt)
        row = {k: float(m[v]) * (100.0 if k == "ate_cm" else 1.0) for k, v in _KEYS.items()}
        row["wall_s"] = time.perf_counter() - t
        row["iters_run"] = np.asarray(result.diagnostics["iters_run"]).tolist()
        if cname in refs:
            for k, ref in refs[cname].items():
                row[f"{k}_ratio"] = row[k] / max(ref, 1e-12)
        rows[cname] = row
        print(name, cname, " ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return rows


def main(argv):
    del argv
    refs = {f"suite_{tag}": suite_reference(tag) for tag in _SUITE.value}
    per_clip, levels, merged = {}, {}, []
    for path in _PER_CLIP_FROM.value:
        with open(path) as f:
            earlier = json.load(f)
        per_clip.update({k: v for k, v in earlier["per_clip"].items()
                         if k not in _VARIANTS.value})
        levels.update(earlier.get("noise_level_of_clip", {}))
        merged.append(earlier["command"])
    if _VARIANTS.value:
        clips, own_levels = load_clips()
        levels.update(own_levels)
        bodies = {name: pipeline.resolve_body_model(name, cli.body_model_path(name))
                  for name in {str(clip.body_model) for clip, _ in clips.values()}}
        for name in _VARIANTS.value:
            per_clip[name] = run_variant(name, clips, bodies, refs)
    figures = {}
    for name, rows in per_clip.items():
        for cname, row in rows.items():
            if cname not in levels:
                for k, v in row.items():
                    if k != "iters_run":
                        figures[f"{name}_{cname}_{k}"] = v
    figures.update(summary_figures(per_clip, levels))
    write_result("josh_accuracy_sweep", figures, out_dir=_OUT_DIR.value,
                 tag=jax.default_backend(), per_clip=per_clip, noise_level_of_clip=levels,
                 merged_from=merged, suite_reference={c: r for c, r in refs.items()})


if __name__ == "__main__":
    cli.run(main)
