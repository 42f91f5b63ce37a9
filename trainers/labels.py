"""JOSH3R pseudo-labels: one human track over one clip, the pairs the model is trained on, and
their labels (spec 3.3).

1. A `FrameSequence` holds one human track over the frames of one clip, everything in world
   frame plus metric camera-frame pointmaps: `frames_from_result` builds it from a JOSH `Result`
   (the pseudo-label path of the paper), `frames_from_synthetic` from a synthetic clip's ground
   truth (a stand-in teacher, used by the tests' tiny fixed dataset and documented as such).
2. `sample_pairs` picks frame pairs as the reference inference does (spec 3.4: from each head,
   the first frame at least `min_gap` video frames later), optionally every pair with
   `min_gap <= gap <= max_gap`; inference chains its pairs with the same rule.
3. `pair_labels` computes the labels of one pair (`trainers.dataset` stacks them).

Label semantics (SMPL-parameter semantics, smplx: `v = R (v_rest - J0) + J0 + transl`):
  * `trans{v}`, `rot{v}`: the body's `transl` and root rotation (6D rows) in camera v;
  * `trans`, `rot`: body 2 expressed in the frame where body 1 has identity root and zero
    `transl` (what `loss_contact_static` poses): `R = R1^T R2`,
    `trans = R1^T (c2 - c1) - J0 + R J0` with `c_k = t_k + J0 - R_k J0` (world `transl` t_k);
  * `pose`: body pose of both frames as axis-angle; `beta`: the track's shape;
  * `depth`: metric pointmaps of both views, view 1 in camera 1 and view 2 in camera 2 by
    default (`view2_depth_frame`; see `trainers/pair_loss.py`), `depth_mask` whether available.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import body_models
from body_models import rotations


@dataclasses.dataclass(frozen=True)
class FrameSequence:
    """One human track over T frames of one clip, host numpy arrays.

    Attributes:
      frame_index: int32[T] video frame numbers.
      images: uint8[T, H, W, 3] RGB.
      K: float32[3, 3] intrinsics (pixels of the images).
      T_world_cam: float32[T, 4, 4] camera-to-world.
      points_cam: float32[T, H, W, 3] metric pointmap of each frame in its own camera.
      points_valid: bool[T] whether `points_cam` is a usable label for that frame.
      global_orient_world: float32[T, 3, 3] SMPL root rotation in world.
      body_pose: float32[T, J-1, 3, 3] SMPL body joint rotations.
      betas: float32[B] shape of the track.
      transl_world: float32[T, 3] SMPL `transl` in world.
      valid: bool[T] the track is visible / reconstructed at that frame.
      bbox: float32[T, 4] xyxy box of the body in image pixels (projected mesh).
      source: where it came from (e.g. "synthetic_gt:<file>", "josh_result:<file>").
    """

    frame_index: np.ndarray
    images: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray
    points_cam: np.ndarray
    points_valid: np.ndarray
    global_orient_world: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    transl_world: np.ndarray
    valid: np.ndarray
    bbox: np.ndarray
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])


def _pixel_rays(K: np.ndarray, H: int, W: int) -> np.ndarray:
    """float32[H, W, 3] rays (x, y, 1) of the pixel centres (project convention)."""
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], -1)


def camera_smpl_params(
    body: body_models.BodyModel,
    T_world_cam: np.ndarray,
    global_orient_world: np.ndarray,
    betas: np.ndarray,
    transl_world: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """World SMPL root parameters to camera frame (pelvis-offset conjugation).

    Args:
      T_world_cam: float[T, 4, 4]; global_orient_world: float[T, 3, 3]; betas: float[B];
      transl_world: float[T, 3].

    Returns:
      (R_cam float32[T, 3, 3], transl_cam float32[T, 3]) with
      `R_cam = R_cw R_w`, `transl_cam = R_cw (t_w + J0) + t_cw - J0`.
    """
    J0 = np.asarray(body_models.rest_joints(body, jnp.asarray(betas, jnp.float32))[0], np.float64)
    T_cam_world = np.linalg.inv(np.asarray(T_world_cam, np.float64))
    R_cw, t_cw = T_cam_world[:, :3, :3], T_cam_world[:, :3, 3]
    R_cam = R_cw @ np.asarray(global_orient_world, np.float64)
    t_cam = np.einsum("tij,tj->ti", R_cw, np.asarray(transl_world, np.float64) + J0) + t_cw - J0
    return R_cam.astype(np.float32), t_cam.astype(np.float32)


def body_bboxes(
    body: body_models.BodyModel,
    K: np.ndarray,
    R_cam: np.ndarray,
    body_pose: np.ndarray,
    betas: np.ndarray,
    transl_cam: np.ndarray,
) -> np.ndarray:
    """float32[T, 4] xyxy pixel box of the projected body mesh in each frame."""
    boxes = _body_bboxes(body, jnp.asarray(K, jnp.float32), jnp.asarray(R_cam),
                         jnp.asarray(body_pose), jnp.asarray(betas, jnp.float32),
                         jnp.asarray(transl_cam))
    return np.asarray(boxes, np.float32)


@jax.jit  # module level: one compiled program per shapes, the body model an argument
def _body_bboxes(body, K, R_cam, body_pose, betas, transl_cam):
    def box(verts):
        z = jnp.maximum(verts[:, 2], 1e-3)
        u = K[0, 0] * verts[:, 0] / z + K[0, 2]
        v = K[1, 1] * verts[:, 1] / z + K[1, 2]
        return jnp.stack([u.min(), v.min(), u.max(), v.max()])

    return jax.vmap(box)(body_models.pose_bodies(body, betas, R_cam, body_pose, transl_cam).vertices)


def frames_from_synthetic(clip: Any, gt: Any, body: body_models.BodyModel, *, track: int = 0,
                          source: str = "synthetic_gt") -> FrameSequence:
    """Labels from a synthetic clip's *ground truth* (a perfect stand-in for JOSH's output).

    Uses `gt_T_world_cam`, `gt_focal`, `gt_smpl_*` (world) and `gt_depth` (metric z); images from
    the clip. This is the documented fixed dataset of the tests, not pseudo-labels.
    """
    missing = [k for k in ("gt_T_world_cam", "gt_focal", "gt_smpl_global_orient",
                           "gt_smpl_body_pose", "gt_smpl_betas", "gt_smpl_transl", "gt_depth")
               if getattr(gt, k, None) is None]
    if gt is None or missing:
        raise ValueError(f"frames_from_synthetic({source}): ground truth keys {missing or 'all'} "
                         "are missing; expected a synthetic clip with gt_depth")
    if clip.images is None:
        raise ValueError(f"frames_from_synthetic({source}): key 'images' expected uint8[T,H,W,3], "
                         "found None (generate the clip with RGB frames)")
    H, W = clip.image_size
    f = float(gt.gt_focal)
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], np.float32)
    depth = np.asarray(gt.gt_depth, np.float32)
    points = (_pixel_rays(K, H, W)[None] * depth[..., None]).astype(np.float32)
    betas = np.asarray(gt.gt_smpl_betas, np.float32)
    betas = betas[track, 0] if betas.ndim == 3 else betas[track]
    R_w = np.asarray(gt.gt_smpl_global_orient[track], np.float32)
    pose = np.asarray(gt.gt_smpl_body_pose[track], np.float32)
    t_w = np.asarray(gt.gt_smpl_transl[track], np.float32)
    T_wc = np.asarray(gt.gt_T_world_cam, np.float32)
    R_c, t_c = camera_smpl_params(body, T_wc, R_w, betas, t_w)
    return FrameSequence(
        frame_index=np.asarray(clip.frame_index, np.int32),
        images=np.asarray(clip.images, np.uint8),
        K=K,
        T_world_cam=T_wc,
        points_cam=points,
        points_valid=np.isfinite(depth).all(axis=(1, 2)) & (depth > 0).all(axis=(1, 2)),
        global_orient_world=R_w,
        body_pose=pose,
        betas=betas,
        transl_world=t_w,
        valid=np.asarray(clip.smpl_valid[track], bool),
        bbox=body_bboxes(body, K, R_c, pose, betas, t_c),
        source=source,
    )


def frames_from_result(result: Any, clip: Any, body: body_models.BodyModel, *, track: int = 0,
                       source: str = "josh_result") -> FrameSequence:
    """Pseudo-labels from a JOSH `Result` (josh_jax.result) on `clip` (the paper's training data).

    Keyframes only: cameras, intrinsics and world SMPL parameters at `result.keyframe_positions`;
    the metric pointmap of each keyframe is the result's dense scene points moved back into that
    camera and resized (nearest) to the image size when `scene_stride > 1`. A frame's pointmap
    is a depth label only if at least half of its pixels are in the result's `scene_mask` (people
    and low-confidence pixels keep their stored depth, which is smooth there).
    """
    if clip.images is None:
        raise ValueError(f"frames_from_result({source}): key 'images' expected uint8[T,H,W,3], "
                         "found None")
    kp = np.asarray(result.keyframe_positions)
    H, W = clip.image_size
    T_wc = np.asarray(result.T_world_cam, np.float32)[kp]
    K = np.asarray(result.K, np.float32)[kp[0]]
    Hr, Wr = result.image_size
    if (Hr, Wr) != (H, W):
        sx, sy = W / Wr, H / Hr
        K = K.copy()
        K[0] *= sx
        K[1] *= sy
    pts_w = np.asarray(result.scene_points_world, np.float32)
    T_cw = np.linalg.inv(T_wc.astype(np.float64))
    pts_c = np.einsum("tij,thwj->thwi", T_cw[:, :3, :3], pts_w) + T_cw[:, None, None, :3, 3]
    ys = np.minimum((np.arange(H) * pts_c.shape[1]) // H, pts_c.shape[1] - 1)
    xs = np.minimum((np.arange(W) * pts_c.shape[2]) // W, pts_c.shape[2] - 1)
    points = pts_c[:, ys][:, :, xs].astype(np.float32)
    kept = np.asarray(result.scene_mask, bool).mean(axis=(1, 2))
    R_w = np.asarray(result.smpl_global_orient[track], np.float32)[kp]
    pose = np.asarray(result.smpl_body_pose[track], np.float32)[kp]
    betas = np.asarray(result.smpl_betas[track], np.float32)[kp].mean(0)
    t_w = np.asarray(result.smpl_transl[track], np.float32)[kp]
    R_c, t_c = camera_smpl_params(body, T_wc, R_w, betas, t_w)
    return FrameSequence(
        frame_index=np.asarray(result.keyframe_index, np.int32),
        images=np.asarray(clip.images, np.uint8),
        K=K,
        T_world_cam=T_wc,
        points_cam=points,
        points_valid=(kept >= 0.5) & np.isfinite(points).all(axis=(1, 2, 3)),
        global_orient_world=R_w,
        body_pose=pose,
        betas=betas,
        transl_world=t_w,
        valid=np.asarray(result.smpl_valid[track], bool)[kp],
        bbox=body_bboxes(body, K, R_c, pose, betas, t_c),
        source=source,
    )


# ---------------------------------------------------------------------------------------------
# Pairs and labels
# ---------------------------------------------------------------------------------------------


def sample_pairs(frame_index: Sequence[int], *, min_gap: int = 3, max_gap: int | None = None,
                 valid: Sequence[bool] | None = None) -> np.ndarray:
    """Frame pairs (row indices) as the reference inference chains them (spec 3.4).

    With `max_gap=None`: head = 0; tail = the first index after head whose video frame is at
    least `min_gap` later (or the last index); repeat from tail. With `max_gap`: every (i, j),
    i < j, with `min_gap <= frame[j] - frame[i] <= max_gap` (more training pairs).
    Frames with `valid` False are skipped.

    Returns:
      int32[E, 2].
    """
    frame_index = np.asarray(frame_index)
    rows = np.arange(len(frame_index))
    if valid is not None:
        rows = rows[np.asarray(valid, bool)]
    frames = frame_index[rows]
    pairs = []
    if max_gap is None:
        head = 0
        while head < len(rows) - 1:
            later = np.nonzero(frames[head + 1:] - frames[head] >= min_gap)[0]
            tail = head + 1 + int(later[0]) if later.size else len(rows) - 1
            pairs.append((rows[head], rows[tail]))
            head = tail
    else:
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                gap = frames[b] - frames[a]
                if min_gap <= gap <= max_gap:
                    pairs.append((rows[a], rows[b]))
    return np.asarray(pairs, np.int32).reshape(-1, 2)


def relative_smpl_transform(
    R1: np.ndarray, t1: np.ndarray, R2: np.ndarray, t2: np.ndarray, J0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Body 2's SMPL root parameters in the frame where body 1 has identity root, zero transl.

    Works in any common frame (world). Returns (R_rel [3, 3], transl_rel [3]) in float64.
    """
    R1, t1, R2, t2, J0 = (np.asarray(a, np.float64) for a in (R1, t1, R2, t2, J0))
    c1 = t1 + J0 - R1 @ J0
    c2 = t2 + J0 - R2 @ J0
    R_rel = R1.T @ R2
    return R_rel, R1.T @ (c2 - c1) - J0 + R_rel @ J0


def pair_labels(seq: FrameSequence, i: int, j: int, J0: np.ndarray, *,
                view2_depth_frame: str = "cam2") -> dict[str, np.ndarray]:
    """Labels of spec 3.3 for the pair of rows (i, j) of `seq` (unbatched, float32)."""
    T_cw = np.linalg.inv(seq.T_world_cam.astype(np.float64))
    Rc = [T_cw[k, :3, :3] @ seq.global_orient_world[k] for k in (i, j)]
    tc = [T_cw[k, :3, :3] @ (seq.transl_world[k] + J0) + T_cw[k, :3, 3] - J0 for k in (i, j)]
    R_rel, t_rel = relative_smpl_transform(
        seq.global_orient_world[i], seq.transl_world[i], seq.global_orient_world[j],
        seq.transl_world[j], J0)
    pts2 = seq.points_cam[j]
    if view2_depth_frame == "cam1":
        T_12 = T_cw[i] @ seq.T_world_cam[j].astype(np.float64)
        pts2 = pts2 @ T_12[:3, :3].T + T_12[:3, 3]
    elif view2_depth_frame != "cam2":
        raise ValueError(
            f"view2_depth_frame: expected 'cam1' or 'cam2', found {view2_depth_frame!r}")
    rot6d = lambda R: np.asarray(rotations.matrix_to_rot6d(jnp.asarray(R, jnp.float32)))
    aa = lambda R: np.asarray(rotations.matrix_to_axis_angle(jnp.asarray(R, jnp.float32)))
    return {
        "trans": t_rel.astype(np.float32),
        "rot": rot6d(R_rel),
        "trans1": tc[0].astype(np.float32),
        "trans2": tc[1].astype(np.float32),
        "rot1": rot6d(Rc[0]),
        "rot2": rot6d(Rc[1]),
        "pose": np.stack([aa(seq.body_pose[i]), aa(seq.body_pose[j])]).astype(np.float32),
        "beta": np.asarray(seq.betas, np.float32),
        "depth_points": np.stack([seq.points_cam[i], pts2]).astype(np.float32),
        "depth_mask": np.array([seq.points_valid[i], seq.points_valid[j]]),
    }
