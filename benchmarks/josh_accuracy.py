r"""JOSH accuracy sweep: the reference clip + synthetic seeds, the current default vs variants.

    python -m benchmarks.josh_accuracy                      # default vs its ablations
    python -m benchmarks.josh_accuracy --variants=default --seeds=0,1,2 --scenes=

Clips: the reference clip, synthetic `default` clips of the given seeds and one clip of each
scene preset (`experiments/configs/synthetic.py`: stairs, sit, turn, curved, two_people), so a
variant is judged across scenes, motions and cameras, not on one clip. Each variant is a josh
config (`experiments/configs/josh.py:default`) with overrides; figures are the keyframe metrics
of `josh_jax.pipeline.evaluate` per clip and their mean over the synthetic clips.
Writes `benchmarks/results/josh_accuracy_sweep_<device>.json`.
"""

from __future__ import annotations

import datetime
import os
import sys
import time

import jax
import numpy as np
from absl import app, flags

from experiments.configs import josh as josh_config
from experiments.configs import synthetic as synthetic_config
from josh_jax import export, importers, pipeline, synthetic

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REF = os.path.normpath(os.path.join(_REPO, "..", "shared", "reference", "josh_synthetic_clip.npz"))
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Synthetic seeds (default preset).")
_SCENES = flags.DEFINE_list("scenes", ["stairs", "sit", "turn", "curved", "two_people"],
                            "Synthetic presets, one clip each (seed 0).")
_VARIANTS = flags.DEFINE_list(
    "variants", ["default", "no_reassociation", "previous_weights", "sfm_schedule"],
    "Variant names (VARIANTS).")
_OUT = flags.DEFINE_string("out", "", "Output JSON ('' -> benchmarks/results/...).")

# Overrides on the default preset (ablations of its choices).
VARIANTS = {
    "default": {},
    # The contact surface read at the pixel found in prepare only.
    "no_reassociation": {"contact_surface.reassociate": False},
    # The weights of the first version (static 0.1, smooth 0.3, weak transl prior).
    "previous_weights": {"weights.static": 0.1, "weights.smooth": 0.3, "prior.transl": 0.01},
    "josh_weights": {"weights.static": 0.1, "weights.smooth": 0.1},
    "no_depth_along_ray": {"depth_along_ray": False},
    # MASt3R-SfM's own optimizer schedule (500 iterations at lr 0.2, then 500 at 0.02), under which
    # the reference collapses on its clip (the reference's own `optdefaults` run).
    "sfm_schedule": {"stage1.lr": 0.2, "stage2.lr": 0.02, "stage2.iters": 500},
}
_KEYS = {"wa_mm": "wa_mpjpe_sim3_mm", "w_mm": "w_mpjpe_first_frame_aligned_mm",
         "scale_err": "human_scale_err", "focal_err": "focal_err", "ate_cm": "cam_ate_sim3_m"}


def variant_config(name: str):
    cfg = josh_config.get_config("default")
    cfg.unlock()
    for k, v in VARIANTS[name].items():
        node, *rest = k.split(".")
        if rest:
            cfg[node][rest[0]] = v
        else:
            cfg[k] = v
    return cfg


def main(argv):
    del argv
    clips = {"reference": importers.load_any(_REF)}
    for s in _SEEDS.value:
        clips[f"seed{s}"] = synthetic.generate_clip(synthetic_config.get_config("default"), int(s))
    for preset in _SCENES.value:
        clips[preset] = synthetic.generate_clip(synthetic_config.get_config(preset), 0)
    figures, per_clip = {}, {}
    for name in _VARIANTS.value:
        cfg = variant_config(name)
        rows = {}
        for cname, (clip, gt) in clips.items():
            t = time.perf_counter()
            result, _ = pipeline.reconstruct(clip, cfg)
            m = pipeline.evaluate(result, gt)
            row = {k: float(m[v]) * (100.0 if k == "ate_cm" else 1.0) for k, v in _KEYS.items()}
            row["wall_s"] = time.perf_counter() - t
            rows[cname] = row
            print(name, cname, " ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
        per_clip[name] = rows
        for k in _KEYS:
            figures[f"{name}_reference_{k}"] = rows["reference"][k]
            synth = [rows[c][k] for c in rows if c != "reference"]
            if synth:
                figures[f"{name}_synthetic_mean_{k}"] = float(np.mean(synth))
    device = jax.default_backend()
    out = _OUT.value or os.path.join(_REPO, "benchmarks", "results",
                                     f"josh_accuracy_sweep_{device}.json")
    record = {"name": "josh_accuracy_sweep", "device": device,
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "command": "python -m benchmarks.josh_accuracy " + " ".join(sys.argv[1:]),
              "figures": figures, "per_clip": per_clip}
    export.write_json(out, record)
    for k, v in figures.items():
        print(f"{k}  {v:.5g}")
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
