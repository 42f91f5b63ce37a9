"""Writes `tests/data/reference_clip_small.npz`: a < 1 MB crop of the reference synthetic clip.

The shared reference clip (`../shared/reference/josh_synthetic_clip.npz`, 18 MB, documented in
`../shared/reference/CLIP_FORMAT.md`) is too big for the repository. This script keeps its layout
and every key, cut down consistently:

- the first 3 keyframes (`img_idx` 0, 5, 10) and the first 11 video frames (F = 1 + 5 * 2);
- images subsampled every 8 pixels from (0, 0): pixel (u', v') is reference pixel (8u', 8v'), so
  H x W = 36 x 64 and every focal (pred_focal, gt_K, init_K, hmr_focal, old_focal) is divided by 8
  (principal point W/2, H/2 stays consistent);
- the 3 pairs among those keyframes, at most 40 matches each, pixels divided by 8 (floor);
  `corr_scores[:, 2]` (the count JOSH's MST uses) recomputed.

Run from the repository root: `python tests/data/make_reference_fixture.py`.
"""

import os

import numpy as np

from josh_jax.io.atomic import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "..", "shared", "reference", "josh_synthetic_clip.npz")
TARGET = os.path.join(ROOT, "tests", "data", "reference_clip_small.npz")
T, F, STEP, MAX_MATCHES = 3, 11, 8, 40


def main():
    d = dict(np.load(SOURCE))
    out = {k: d[k] for k in ("stride", "fps", "window", "subsample", "seed", "smpl_model_sha256",
                             "noise_params", "noise_param_names", "gt_betas", "gt_pelvis_rest",
                             "gt_boxes", "gt_room", "gt_model_scale")}
    out["H"], out["W"] = np.int64(d["H"] // STEP), np.int64(d["W"] // STEP)
    out["T"], out["n_video_frames"] = np.int64(T), np.int64(F)
    out["img_idx"] = d["img_idx"][:T]
    for k in ("pred_depth", "mast3r_conf", "rgb", "gt_human_mask"):
        out[k] = d[k][:T, ::STEP, ::STEP]
    for k in ("pred_focal", "hmr_focal", "old_focal"):
        out[k] = np.float64(d[k] / STEP)
    for k in ("init_K", "gt_K"):
        K = d[k].copy()
        K[:2] /= STEP
        out[k] = K
    for k in ("hmr_rotmat", "hmr_shape", "hmr_trans", "hmr_frame", "deco_contact", "gt_cam2w_all",
              "gt_global_orient", "gt_body_pose", "gt_transl", "gt_joints24_world", "gt_contact"):
        out[k] = d[k][:F]
    for k in ("gt_cam2w", "gt_frame_scale"):
        out[k] = d[k][:T]

    keep = [p for p, (i, j) in enumerate(d["corr_pairs"]) if j < T]
    offsets, xy_i, xy_j, conf, scores = [0], [], [], [], []
    for p in keep:
        rows = slice(d["corr_offsets"][p], min(d["corr_offsets"][p + 1],
                                               d["corr_offsets"][p] + MAX_MATCHES))
        xy_i.append(d["corr_xy_i"][rows] // STEP)
        xy_j.append(d["corr_xy_j"][rows] // STEP)
        conf.append(d["corr_conf"][rows])
        offsets.append(offsets[-1] + len(conf[-1]))
        scores.append([d["corr_scores"][p, 0], d["corr_scores"][p, 1], float(len(conf[-1]))])
    out["corr_pairs"] = d["corr_pairs"][keep]
    out["corr_offsets"] = np.asarray(offsets, np.int64)
    out["corr_xy_i"] = np.concatenate(xy_i).astype(np.int16)
    out["corr_xy_j"] = np.concatenate(xy_j).astype(np.int16)
    out["corr_conf"] = np.concatenate(conf).astype(np.float32)
    out["corr_scores"] = np.asarray(scores, np.float64)
    assert set(out) == set(d), sorted(set(d) ^ set(out))
    with atomic_write(TARGET) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **out)
    print(f"wrote {TARGET} ({os.path.getsize(TARGET) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
