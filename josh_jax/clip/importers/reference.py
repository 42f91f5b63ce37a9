"""The reference synthetic clip's layout -> a `Clip` and its `GroundTruth`.

The reference synthetic clip (`josh_synthetic_clip.npz`, documented in the reference's
`CLIP_FORMAT.md`) is the clip on which the reference PyTorch JOSH was measured;
`import_reference_clip` rebuilds exactly the inputs JOSH consumed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging

from josh_jax import convex
from josh_jax.clip.importers.common import rows_at
from josh_jax.clip.io import read_npz
from josh_jax.clip.schema import ClipFormatError, validate_arrays
from josh_jax.clip.types import FORMAT_VERSION, Clip, GroundTruth
from josh_jax.geometry import axis_angle_to_matrix_host, pointmaps_from_depth

# Keys whose presence identifies the reference synthetic layout.
REFERENCE_LAYOUT_KEYS = ("pred_depth", "pred_focal", "mast3r_conf", "corr_offsets", "hmr_rotmat")
REFERENCE_BODY_MODEL = "synthetic_smpl_neutral"


def pad_matches(
    offsets: np.ndarray, xy_i: np.ndarray, xy_j: np.ndarray, conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat match list with per-pair offsets -> padded `matches` and `match_confidence`.

    Args:
      offsets: int[E + 1]; matches of pair e are rows `offsets[e]:offsets[e+1]`.
      xy_i: int or float[N, 2] pixel (x, y) in image i.
      xy_j: int or float[N, 2] pixel (x, y) in image j.
      conf: float[N] match confidence.

    Returns:
      matches float32[E, M, 2, 2] and match_confidence float32[E, M], M = the most matches of any
      pair; padding rows hold pixel (0, 0) with confidence 0.
    """
    offsets = np.asarray(offsets, np.int64)
    counts = np.diff(offsets)
    E, N = len(counts), int(offsets[-1])
    M = int(counts.max()) if E else 0
    pair = np.repeat(np.arange(E), counts)
    slot = np.arange(N) - np.repeat(offsets[:-1], counts)
    matches = np.zeros((E, M, 2, 2), np.float32)
    match_confidence = np.zeros((E, M), np.float32)
    matches[pair, slot, 0] = xy_i[offsets[0]:offsets[-1]]
    matches[pair, slot, 1] = xy_j[offsets[0]:offsets[-1]]
    match_confidence[pair, slot] = conf[offsets[0]:offsets[-1]]
    return matches, match_confidence


def scene_mesh_from_boxes(room: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the reference scene: the room (faces inwards) and boxes (faces outwards).

    Args:
      room: float[6] `(xmin, xmax, ymin=0, ymax, zmin, zmax)`.
      boxes: float[B, 6] `(x_center, z_center, size_x, size_y, size_z, yaw)`, standing on y = 0,
        rotated by `yaw` about +y (`josh_jax.convex.yaw_matrix`).

    Returns:
      vertices float64[S, 3], faces int32[NF, 3] in the world frame (metres, y up).
    """
    room = np.asarray(room, np.float64)
    if room[2] != 0.0:
        raise ValueError(f"gt_room: expected ymin = 0 (floor at y = 0); found {room[2]}")
    grey = (0.5, 0.5, 0.5)
    solids = [convex.room(room[0], room[1], room[3], room[4], room[5], grey)]
    for x, z, sx, sy, sz, yaw in np.asarray(boxes, np.float64).reshape(-1, 6):
        solids.append(convex.ground_box(x, z, (sx, sy, sz), grey, yaw=yaw))
    vertices, faces, _ = convex.merge_meshes(solids)
    return vertices, faces


def is_reference_layout(keys) -> bool:
    """True when the keys are those of the reference synthetic clip (CLIP_FORMAT.md)."""
    return all(k in keys for k in REFERENCE_LAYOUT_KEYS)


def import_reference_arrays(
    d: Mapping[str, np.ndarray], source: Any = "<reference arrays>"
) -> tuple[Clip, GroundTruth]:
    """Builds the Clip and GroundTruth from the reference synthetic layout (see module docs).

    JOSH's inputs, exactly: pointmaps from `pred_depth` and `pred_focal` (float64, then float32);
    raw `mast3r_conf` as confidence and `human_mask = mast3r_conf == 1.0` (JOSH's canonical
    confidence is `conf - 0.999`, masked below 0.1: `prepare` derives it); the flat match list
    padded per pair; HMR and DECO rows taken at the keyframes' video frames (`img_idx`);
    `pair_scores` = the MASt3R valid-match count `corr_scores[:, 2]` that JOSH's MST uses;
    `focal_init` absent (JOSH estimates it from the pointmaps). The pointmaps' own focal
    `pred_focal` is recoverable from them exactly: `f = (u - W/2) z / x`.

    Args:
      d: key -> array mapping of the reference layout.
      source: name used in error messages.

    Returns:
      (clip, gt) validated.
    """
    for key in REFERENCE_LAYOUT_KEYS + ("img_idx", "corr_pairs", "corr_xy_i", "corr_xy_j",
                                         "corr_conf", "hmr_shape", "hmr_trans", "hmr_frame",
                                         "hmr_focal", "deco_contact", "fps"):
        if key not in d:
            raise ClipFormatError(source, key, "a key of the reference layout", "no such key")
    img_idx = np.asarray(d["img_idx"]).astype(np.int64)
    depth = np.asarray(d["pred_depth"])
    conf = np.asarray(d["mast3r_conf"], np.float32)
    T = depth.shape[0]
    if img_idx.shape != (T,):
        raise ClipFormatError(source, "img_idx", f"shape ({T},)", f"shape {img_idx.shape}")

    matches, match_confidence = pad_matches(
        d["corr_offsets"], d["corr_xy_i"], d["corr_xy_j"], np.asarray(d["corr_conf"])
    )
    pair_scores = None
    if "corr_scores" in d:
        pair_scores = np.asarray(d["corr_scores"])[:, 2].astype(np.float32)

    # HMR and DECO rows are per video frame; JOSH uses the rows of its keyframes.
    rows, found = rows_at(d["hmr_frame"], img_idx)
    if not found.all():
        missing = img_idx[~found].tolist()
        raise ClipFormatError(source, "hmr_frame", f"every keyframe of img_idx {img_idx.tolist()}",
                              f"frames {missing} missing")
    rotmat = np.asarray(d["hmr_rotmat"], np.float32)[rows]
    deco = np.asarray(d["deco_contact"])[rows]

    arrays = dict(
        format_version=FORMAT_VERSION,
        body_model=REFERENCE_BODY_MODEL,
        frame_index=img_idx.astype(np.int32),
        fps=np.float32(d["fps"]),
        pointmaps=pointmaps_from_depth(depth, float(d["pred_focal"])),
        confidence=conf,
        human_mask=conf == 1.0,
        pairs=np.asarray(d["corr_pairs"]).astype(np.int32),
        matches=matches,
        match_confidence=match_confidence,
        smpl_global_orient=rotmat[None, :, 0],
        smpl_body_pose=rotmat[None, :, 1:],
        smpl_betas=np.asarray(d["hmr_shape"], np.float32)[rows][None],
        smpl_transl=np.asarray(d["hmr_trans"], np.float32)[rows][None],
        hmr_focal=np.float32(d["hmr_focal"]),
        smpl_valid=np.ones((1, T), bool),
        contact=deco.astype(np.float32)[None],
        track_id=np.zeros((1,), np.int32),
    )
    if "rgb" in d:
        arrays["images"] = np.asarray(d["rgb"])
    if pair_scores is not None:
        arrays["pair_scores"] = pair_scores
    arrays.update(_reference_ground_truth(d, img_idx))
    clip, gt = validate_arrays(arrays, source)
    return clip, gt


def _reference_ground_truth(d: Mapping[str, np.ndarray], img_idx: np.ndarray) -> dict:
    """The reference's ground truth in our `gt_*` keys (only what the file holds)."""
    rotmats = axis_angle_to_matrix_host  # float64 on the host: ground truth keeps its precision

    gt: dict[str, np.ndarray] = {}
    if "gt_cam2w" in d:
        gt["gt_T_world_cam"] = np.asarray(d["gt_cam2w"], np.float64)
    if "gt_K" in d:
        gt["gt_focal"] = np.float64(np.asarray(d["gt_K"])[0, 0])
    if "gt_model_scale" in d:
        # pred_depth = metric depth * model_scale (* per-frame jitter): metres per unit = 1/scale.
        gt["gt_pointmap_scale"] = np.float64(1.0 / float(d["gt_model_scale"]))
    n_video = int(d["n_video_frames"]) if "n_video_frames" in d else None
    if "gt_global_orient" in d:
        n_video = len(d["gt_global_orient"])
        gt["gt_smpl_global_orient"] = rotmats(np.asarray(d["gt_global_orient"])[img_idx])[None]
    if "gt_body_pose" in d:
        aa = np.asarray(d["gt_body_pose"])[img_idx].reshape(len(img_idx), -1, 3)
        gt["gt_smpl_body_pose"] = rotmats(aa)[None]
    if "gt_transl" in d:
        gt["gt_smpl_transl"] = np.asarray(d["gt_transl"], np.float64)[img_idx][None]
    if "gt_betas" in d:
        betas = np.asarray(d["gt_betas"], np.float64)
        gt["gt_smpl_betas"] = np.broadcast_to(betas, (len(img_idx), len(betas)))[None].copy()
    if "gt_contact" in d:
        gt["gt_contact"] = np.asarray(d["gt_contact"]).astype(bool)[img_idx][None]
    if "gt_human_mask" in d:
        gt["gt_human_mask"] = np.asarray(d["gt_human_mask"]).astype(bool)
    if "gt_room" in d:
        boxes = d["gt_boxes"] if "gt_boxes" in d else np.zeros((0, 6))
        gt["gt_scene_vertices"], gt["gt_scene_faces"] = scene_mesh_from_boxes(d["gt_room"], boxes)
    if "gt_cam2w_all" in d:
        gt["gt_T_world_cam_all"] = np.asarray(d["gt_cam2w_all"], np.float64)
        n_video = len(gt["gt_T_world_cam_all"])
    if "gt_joints24_world" in d:
        gt["gt_joints_world_all"] = np.asarray(d["gt_joints24_world"], np.float64)[None]
        n_video = gt["gt_joints_world_all"].shape[1]
    if n_video is not None and ("gt_T_world_cam_all" in gt or "gt_joints_world_all" in gt):
        gt["gt_frame_index"] = np.arange(n_video, dtype=np.int32)
    return gt


def import_reference_clip(path: str | os.PathLike) -> tuple[Clip, GroundTruth]:
    """Reads the reference synthetic clip (`josh_synthetic_clip.npz` layout); see
    `import_reference_arrays`."""
    path = os.fspath(path)
    clip, gt = import_reference_arrays(read_npz(path), source=path)
    logging.info("Imported reference clip %s: %s", path, clip.describe())
    return clip, gt
