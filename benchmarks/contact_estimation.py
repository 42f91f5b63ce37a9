"""Contact estimation without DECO (`josh_jax.video.contacts`) against the synthetic ground truth.

Per scene type (stairs, sitting, turning, two people) it generates synthetic clips, estimates the
contacts from the world-frame body vertices at the keyframes (true vertices plus a per-frame
body-estimate error: a rigid jitter of `--body_jitter_m`) and the scene points of the human-masked
depth of all keyframes (plus `--scene_noise_m` noise; 20k points), and reports precision and recall at p > 0.5 against
`gt_contact`, next to the DECO-like labels the synthetic front end writes (`clip.contact`).
Candidate vertices: all (sitting contacts come from the buttocks). JOSH's accuracy with the
estimated labels is not measured here yet (see docs/video.md).

    python -m benchmarks.contact_estimation --seeds=1 --num_frames=12
"""

import numpy as np
from absl import flags

from benchmarks.common import RESULTS_DIR, write_result
from experiments import cli
from experiments.configs import synthetic as synthetic_configs
from josh_jax import geometry, synthetic
from josh_jax.video import contacts

_SCENES = flags.DEFINE_list("scenes", ["stairs", "sit", "turn", "two_people"], "Synthetic presets.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Clips per scene type.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 12, "Keyframes per clip.")
_SIZE = flags.DEFINE_list("size", ["96", "160"], "Rendered height, width.")
_SPEED = flags.DEFINE_float("speed_scale_mps", 0.5, "Soft speed threshold.")
_DIST = flags.DEFINE_float("distance_scale_m", 0.1, "Soft distance threshold.")
_JITTER = flags.DEFINE_float("body_jitter_m", 0.02, "Per-frame rigid jitter of the bodies.")
_SCENE_NOISE = flags.DEFINE_float("scene_noise_m", 0.01, "Noise of the scene points.")
_OUT_DIR = flags.DEFINE_string("out_dir", RESULTS_DIR, "Where the JSON goes.")


def _precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = float(np.sum(pred & truth))
    return tp / max(float(pred.sum()), 1.0), tp / max(float(truth.sum()), 1.0)


def _one_clip(preset: str, seed: int, rng) -> dict:
    c = synthetic_configs.get_config(preset)
    c.num_frames, c.height, c.width = _NUM_FRAMES.value, int(_SIZE.value[0]), int(_SIZE.value[1])
    clip, gt, extras = synthetic.generate_clip(c, seed, return_extras=True)
    key = extras["key_index"]
    times = key / float(clip.fps)
    focal = float(extras["K"][0, 0])
    pts_cam = geometry.pointmaps_from_depth(extras["depth"], focal).astype(np.float64)
    T = gt.gt_T_world_cam
    pts_world = np.einsum("tij,thwj->thwi", T[:, :3, :3], pts_cam) + T[:, None, None, :3, 3]
    scene = []
    for t in range(len(key)):
        keep = (extras["person_map"][t] < 0) & np.isfinite(extras["depth"][t])
        p = pts_world[t][keep]
        scene.append(p + rng.normal(scale=_SCENE_NOISE.value, size=p.shape))
    # The scene under a foot is hidden in its own frame: every frame reads the whole static cloud.
    cloud = np.concatenate(scene)
    cloud = cloud[rng.permutation(len(cloud))[:20000]]
    scene = [cloud] * len(key)
    est, truth, deco = [], [], []
    for p, verts in enumerate(extras["verts_world"]):
        v = verts[key] + rng.normal(scale=_JITTER.value, size=(len(key), 1, 3))
        v = np.where(clip.smpl_valid[p][:, None, None], v, np.nan)
        prob = contacts.estimate_contacts(v, times, scene, np.ones(v.shape[1], bool),
                                          _SPEED.value, _DIST.value, block=512)
        ok = clip.smpl_valid[p]
        est.append(prob[ok] > 0.5)
        truth.append(gt.gt_contact[p][ok])
        deco.append(clip.contact[p][ok] > 0.5)
    return dict(est=np.concatenate(est), truth=np.concatenate(truth), deco=np.concatenate(deco))


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    figures, per_scene = {}, {}
    for preset in _SCENES.value:
        runs = [_one_clip(preset, s, rng) for s in range(_SEEDS.value)]
        est = np.concatenate([r["est"].ravel() for r in runs])
        truth = np.concatenate([r["truth"].ravel() for r in runs])
        deco = np.concatenate([r["deco"].ravel() for r in runs])
        pe, re = _precision_recall(est, truth)
        pd, rd = _precision_recall(deco, truth)
        figures.update({f"{preset}_estimated_precision": pe, f"{preset}_estimated_recall": re,
                        f"{preset}_deco_like_precision": pd, f"{preset}_deco_like_recall": rd})
        per_scene[preset] = dict(true_contacts=int(truth.sum()), estimated=int(est.sum()),
                                 deco_like=int(deco.sum()))
    write_result("contact_estimation", figures, out_dir=_OUT_DIR.value, per_scene=per_scene,
                 settings=dict(seeds=_SEEDS.value, num_frames=_NUM_FRAMES.value,
                               size=_SIZE.value, speed_scale_mps=_SPEED.value,
                               distance_scale_m=_DIST.value, body_jitter_m=_JITTER.value,
                               scene_noise_m=_SCENE_NOISE.value, candidates="all vertices"))


if __name__ == "__main__":
    cli.run(main)
