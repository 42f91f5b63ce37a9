"""Contact estimation without DECO (`josh_jax.video.contacts`) against the synthetic ground truth.

Per scene type (stairs, sitting, turning, two people) and seed it generates a synthetic clip,
estimates the contacts from the world-frame body vertices at the keyframes (true vertices plus a
per-frame body-estimate error: a rigid jitter of `--body_jitter_m`) and the scene points of the
human-masked depth of all keyframes (plus `--scene_noise_m` noise; `--scene_points` points; with
`--scene_window=n` frame t reads only the points of keyframes t-n..t+n, as the front end), and
reports precision and recall at p > 0.5 against `gt_contact`, next to the DECO-like labels the
synthetic front end writes (`clip.contact`: the generator's noise model of DECO, drawn from the
truth). The thresholds are `experiments/configs/frontend.py` `contacts` (override with
`--frontend_config.contacts.gap_scale_m=...`); they were chosen on seeds 0-1, so the figures are
given for all seeds, for the tuning seeds and for the held-out seeds (`--held_out`).

`--josh`: JOSH (`experiments/configs/josh.py:default`) on the accuracy sweep's 8 synthetic clips
(`benchmarks/josh_accuracy.py`: default preset seeds 0-2, one clip of stairs, sit, turn, curved,
two people) with the DECO-like labels and with the estimated ones (same estimator inputs as
above), and the ratios estimated / DECO-like of WA-MPJPE, W-MPJPE, human scale error, focal error
and camera ATE (the ATE ratio is left out where the DECO-like ATE is under 1 mm: static cameras).

    python -m benchmarks.contact_estimation --seeds=0,1,2 --held_out=2
    python -m benchmarks.contact_estimation --seeds=0,1,2 --held_out=2 --josh
"""

from __future__ import annotations

import dataclasses
import time
import zlib

import numpy as np
from absl import flags
from ml_collections import config_flags

from benchmarks.common import RESULTS_DIR, write_result
from experiments import cli
from experiments.configs import josh as josh_configs
from experiments.configs import synthetic as synthetic_configs
from josh_jax import geometry, pipeline, synthetic
from josh_jax.evaluate import evaluate
from josh_jax.video import contacts

_SCENES = flags.DEFINE_list("scenes", ["stairs", "sit", "turn", "two_people"], "Synthetic presets.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Clip seeds per scene type.")
_HELD_OUT = flags.DEFINE_list("held_out", ["2"], "Seeds not used to choose the thresholds.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 12, "Keyframes per clip.")
_SIZE = flags.DEFINE_list("size", ["96", "160"], "Rendered height, width.")
_JITTER = flags.DEFINE_float("body_jitter_m", 0.02, "Per-frame rigid jitter of the bodies.")
_SCENE_NOISE = flags.DEFINE_float("scene_noise_m", 0.01, "Noise of the scene points.")
_SCENE_POINTS = flags.DEFINE_integer("scene_points", 20000, "Scene points kept (random subset).")
_SCENE_WINDOW = flags.DEFINE_integer(
    "scene_window", -1, "-1: every frame reads the whole static cloud; n >= 0: the points of "
    "keyframes t-n..t+n only, as the front end (its `contacts.neighbours`).")
_JOSH = flags.DEFINE_boolean("josh", False, "Also run JOSH with estimated vs DECO-like labels.")
_JOSH_SEEDS = flags.DEFINE_list("josh_seeds", ["0", "1", "2"], "Default-preset sweep seeds.")
_JOSH_SCENES = flags.DEFINE_list("josh_scenes", ["stairs", "sit", "turn", "curved", "two_people"],
                                 "Sweep presets (seed 0 each).")
_OUT_DIR = flags.DEFINE_string("out_dir", RESULTS_DIR, "Where the JSON goes.")
_NAME = flags.DEFINE_string("name", "contact_estimation", "Result name.")
_FRONTEND = config_flags.DEFINE_config_file(
    "frontend_config", "experiments/configs/frontend.py", "Front-end config (its `contacts`).")

_KEYS = {"wa_mm": "wa_mpjpe_sim3_mm", "w_mm": "w_mpjpe_first_frame_aligned_mm",
         "scale_err": "human_scale_err", "focal_err": "focal_err", "ate_cm": "cam_ate_sim3_m"}
_MIN_ATE_CM = 0.1  # below this DECO-like ATE (1 mm: static cameras) no ATE ratio


def _precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = float(np.sum(pred & truth))
    return tp / max(float(pred.sum()), 1.0), tp / max(float(truth.sum()), 1.0)


def _rng(preset: str, seed: int) -> np.random.Generator:
    """One stream per clip: a clip's figures do not depend on which others ran."""
    return np.random.default_rng([seed, zlib.crc32(preset.encode())])


def estimated_contacts(clip, gt, extras, rng, settings, regions) -> np.ndarray:
    """float32[P, T, V] estimated labels of a synthetic clip (see the module docstring)."""
    del gt
    key = extras["key_index"]
    times = key / float(clip.fps)
    focal = float(extras["K"][0, 0])
    pts_cam = geometry.pointmaps_from_depth(extras["depth"], focal).astype(np.float64)
    T = np.asarray(extras["T_world_cam"], np.float64)
    pts_world = np.einsum("tij,thwj->thwi", T[:, :3, :3], pts_cam) + T[:, None, None, :3, 3]
    keep = (extras["person_map"] < 0) & np.isfinite(extras["depth"])
    frame_of = np.broadcast_to(np.arange(len(key))[:, None, None], keep.shape)[keep]
    cloud = pts_world[keep]
    cloud = cloud + rng.normal(scale=_SCENE_NOISE.value, size=cloud.shape)
    pick = rng.permutation(len(cloud))[:_SCENE_POINTS.value]
    cloud, frame_of = cloud[pick], frame_of[pick]
    n = _SCENE_WINDOW.value
    # The scene under a foot is hidden in its own frame: by default every frame reads the whole
    # static cloud; with a window, the points of the neighbouring keyframes (as the front end).
    scene = [cloud if n < 0 else cloud[np.abs(frame_of - t) <= n] for t in range(len(key))]
    out = np.zeros(clip.contact.shape, np.float32)
    for p, verts in enumerate(extras["verts_world"]):
        v = verts[key] + rng.normal(scale=_JITTER.value, size=(len(key), 1, 3))
        v = np.where(clip.smpl_valid[p][:, None, None], v, np.nan)
        out[p] = contacts.estimate_contacts(v, times, scene, regions, settings)
    return out


def _generate(preset: str, seed: int, small: bool):
    c = synthetic_configs.get_config(preset)
    if small:
        c.num_frames, c.height, c.width = _NUM_FRAMES.value, int(_SIZE.value[0]), int(_SIZE.value[1])
    clip, gt, extras = synthetic.generate_clip(c, seed, return_extras=True)
    extras = dict(extras, T_world_cam=gt.gt_T_world_cam)
    return clip, gt, extras


def _one_clip(preset: str, seed: int, settings, regions) -> dict:
    clip, gt, extras = _generate(preset, seed, small=True)
    t = time.perf_counter()
    prob = estimated_contacts(clip, gt, extras, _rng(preset, seed), settings, regions)
    seconds = time.perf_counter() - t
    ok = clip.smpl_valid
    return dict(est=prob[ok] > 0.5, truth=gt.gt_contact[ok], deco=clip.contact[ok] > 0.5,
                seconds=seconds)


def _scores(runs: list[dict]) -> dict[str, float]:
    cat = {k: np.concatenate([r[k].ravel() for r in runs]) for k in ("est", "truth", "deco")}
    pe, re = _precision_recall(cat["est"], cat["truth"])
    pd, rd = _precision_recall(cat["deco"], cat["truth"])
    return dict(estimated_precision=pe, estimated_recall=re, deco_like_precision=pd,
                deco_like_recall=rd, true_contacts=int(cat["truth"].sum()),
                estimated=int(cat["est"].sum()), deco_like=int(cat["deco"].sum()))


def precision_recall(settings, regions) -> tuple[dict, dict, list[float]]:
    seeds = [int(s) for s in _SEEDS.value]
    held = {int(s) for s in _HELD_OUT.value}
    figures, per_scene, seconds = {}, {}, []
    groups = {"all": seeds, "tuning": [s for s in seeds if s not in held],
              "held_out": [s for s in seeds if s in held]}
    for preset in _SCENES.value:
        runs = {s: _one_clip(preset, s, settings, regions) for s in seeds}
        seconds += [r["seconds"] for r in runs.values()]
        per_scene[preset] = {}
        for group, ss in groups.items():
            if not ss:
                continue
            sc = _scores([runs[s] for s in ss])
            per_scene[preset][group] = sc
            prefix = preset if group == "all" else f"{preset}_{group}"
            for k in ("estimated_precision", "estimated_recall", "deco_like_precision",
                      "deco_like_recall"):
                figures[f"{prefix}_{k}"] = sc[k]
            print(preset, group, ss, " ".join(f"{k} {v:.3f}" for k, v in sc.items()), flush=True)
    return figures, per_scene, seconds


def josh_comparison(settings, regions, body_model) -> tuple[dict, dict]:
    """JOSH with DECO-like vs estimated labels on the sweep clips: per-clip metrics and ratios."""
    cfg = josh_configs.get_config("default")
    clips = [("default", int(s)) for s in _JOSH_SEEDS.value]
    clips += [(p, 0) for p in _JOSH_SCENES.value]
    rows, figures = {}, {}
    for preset, seed in clips:
        name = f"seed{seed}" if preset == "default" else preset
        clip, gt, extras = _generate(preset, seed, small=False)
        est = estimated_contacts(clip, gt, extras, _rng(preset, seed), settings, regions)
        ok = clip.smpl_valid
        pe, re = _precision_recall(est[ok] > 0.5, gt.gt_contact[ok])
        row = dict(estimated_precision=pe, estimated_recall=re)
        for label, c in (("deco_like", clip), ("estimated", dataclasses.replace(clip, contact=est))):
            t = time.perf_counter()
            result, _ = pipeline.reconstruct(c, cfg, body_model)
            m = evaluate(result, gt)
            for k, v in _KEYS.items():
                row[f"{label}_{k}"] = float(m[v]) * (100.0 if k == "ate_cm" else 1.0)
            row[f"{label}_wall_s"] = time.perf_counter() - t
        for k in _KEYS:
            den = row[f"deco_like_{k}"]
            if k == "ate_cm" and den < _MIN_ATE_CM:
                continue  # static camera: both ATEs ~0, a ratio of noise
            row[f"{k}_ratio"] = row[f"estimated_{k}"] / max(den, 1e-12)
        rows[name] = row
        print("josh", name, " ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    for k in _KEYS:
        ratios = {n: r[f"{k}_ratio"] for n, r in rows.items() if f"{k}_ratio" in r}
        figures[f"josh_{k}_ratio_mean"] = float(np.mean(list(ratios.values())))
        worst = max(ratios, key=ratios.get)
        figures[f"josh_{k}_ratio_worst"] = ratios[worst]
        rows.setdefault("_worst_clip", {})[k] = worst
        for label in ("deco_like", "estimated"):
            figures[f"josh_{label}_mean_{k}"] = float(np.mean(
                [r[f"{label}_{k}"] for n, r in rows.items() if not n.startswith("_")]))
    return figures, rows


def main(argv):
    del argv
    fc = _FRONTEND.value
    settings = contacts.ContactSettings.from_config(fc.contacts)
    body_model = pipeline.resolve_body_model("mannequin", cli.body_model_path("mannequin"))
    regions = contacts.region_vertices(body_model.lbs_weights, fc.contacts.regions,
                                       settings.anchor_vertices)
    figures, per_scene, seconds = precision_recall(settings, regions)
    figures["estimate_s_per_clip_mean"] = float(np.mean(seconds))
    extra = {}
    if _JOSH.value:
        josh_figures, extra["josh_per_clip"] = josh_comparison(settings, regions, body_model)
        figures.update(josh_figures)
    write_result(_NAME.value, figures, out_dir=_OUT_DIR.value, per_scene=per_scene,
                 settings=dict(seeds=_SEEDS.value, held_out=_HELD_OUT.value,
                               tuned_on="seeds not in held_out",
                               num_frames=_NUM_FRAMES.value, size=_SIZE.value,
                               contacts=fc.contacts.to_dict(), body_jitter_m=_JITTER.value,
                               scene_noise_m=_SCENE_NOISE.value,
                               scene_points=_SCENE_POINTS.value,
                               scene_window=_SCENE_WINDOW.value, josh=_JOSH.value,
                               josh_clips=(_JOSH_SEEDS.value, _JOSH_SCENES.value)), **extra)


if __name__ == "__main__":
    cli.run(main)
