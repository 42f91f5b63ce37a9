"""Refinement across chunk seams on Results: the tracks it corrects, the solve, the corrections.

Chunks already mapped into one world (`stitch.align_transforms`, `stitch.transform_result`) still
disagree on the frames they share. `refine_seams` reads every chunk's tracks (camera centres and
orientations, pelvis joints and body orientations: `seam_tracks`), solves smooth per-frame
corrections that make consecutive chunks agree (`seams.solve_corrections`, one jitted program) and
moves each chunk by its corrections (`apply_corrections`). Host side, numpy, except the solve.

Frame ranges are half-open video frame ranges [a, b) of the chunks (`chunks.video_frame_ranges`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from josh_jax import geometry
from josh_jax.result import Result
from josh_jax.video import seams

Ranges = list[tuple[int, int]]


def _log_host(R: np.ndarray) -> np.ndarray:
    """float64[..., 3] axis-angle of rotations float[..., 3, 3] with angles below pi."""
    R = np.asarray(R, np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    vee = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                    R[..., 1, 0] - R[..., 0, 1]], -1)
    small = theta < 1e-6
    factor = np.where(small, 0.5, theta / (2.0 * np.sin(np.where(small, 1.0, theta))))
    return factor[..., None] * vee


def seam_tracks(results: list[Result], frame_ranges: Ranges
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tracks the seam refinement corrects, per chunk at every video frame.

    Tracks k: 0 camera centre, 1 camera orientation, 2 + p pelvis joint of person p, 2 + P + p body
    orientation (`global_orient`) of person p. Orientations are tangent vectors
    `log(R_c R_ref^T)` against the orientation of the first chunk that has one at that frame.

    Returns:
      x float64[C, F, 2 + 2P, 3], presence float64[C, F, 2 + 2P] (the camera everywhere a chunk
      covers, a person where valid), cover float64[C, F].
    """
    first, last = frame_ranges[0][0], max(b for _, b in frame_ranges)
    C, F, P = len(results), last - first, results[0].num_tracks
    K = 2 + 2 * P
    x = np.zeros((C, F, K, 3))
    presence = np.zeros((C, F, K))
    cover = np.zeros((C, F))
    R_cam = np.tile(np.eye(3), (C, F, 1, 1))
    R_body = np.tile(np.eye(3), (C, F, P, 1, 1))
    for c, (res, (a, b)) in enumerate(zip(results, frame_ranges, strict=True)):
        rows = slice(a - first, b - first)
        T = np.asarray(res.T_world_cam, np.float64)
        valid = np.asarray(res.smpl_valid, bool).T  # F P
        cover[c, rows] = 1.0
        x[c, rows, 0] = T[:, :3, 3]
        presence[c, rows, :2] = 1.0
        R_cam[c, rows] = T[:, :3, :3]
        x[c, rows, 2:2 + P] = np.moveaxis(np.asarray(res.joints_world, np.float64)[:, :, 0], 0, 1)
        presence[c, rows, 2:2 + P] = valid
        presence[c, rows, 2 + P:] = valid
        R_body[c, rows] = np.moveaxis(np.asarray(res.smpl_global_orient, np.float64), 0, 1)

    def reference(R, seen):  # R [C, F, ..., 3, 3], seen [C, F, ...]: first chunk that sees it
        idx = np.argmax(seen > 0, axis=0)
        return np.take_along_axis(R, idx[None, ..., None, None], axis=0)[0]

    x[:, :, 1] = _log_host(R_cam @ np.swapaxes(reference(R_cam, presence[:, :, 1]), -1, -2))
    ref_body = reference(R_body, presence[:, :, 2 + P:])
    x[:, :, 2 + P:] = _log_host(R_body @ np.swapaxes(ref_body, -1, -2)[None])
    x = np.where(presence[..., None] > 0, x, 0.0)  # (not x * 0: a missing body may be NaN)
    return x, presence, cover


def apply_corrections(result: Result, delta: np.ndarray) -> Result:
    """A chunk Result moved by its seam corrections.

    Args:
      result: the chunk's Result (already in the video's world), covering video frames
        [a, a + n).
      delta: float[n, 2 + 2P, 3] its corrections on its frames (`seam_tracks` order): camera
        centres shifted, camera orientations `exp(w) R` about their centres (each keyframe's scene
        points move rigidly with its camera); bodies shifted and rotated about their pelvis joint
        (`global_orient <- exp(w) global_orient`, `transl` shifted).

    Returns:
      the corrected Result.
    """
    delta = np.asarray(delta, np.float64)
    P = result.num_tracks
    f32 = np.float32
    T = np.asarray(result.T_world_cam, np.float64).copy()
    dR_cam = geometry.axis_angle_to_matrix_host(delta[:, 1])  # n 3 3
    centre = T[:, :3, 3]
    T[:, :3, :3] = dR_cam @ T[:, :3, :3]
    T[:, :3, 3] = centre + delta[:, 0]
    rows = np.asarray(result.keyframe_index) - int(np.asarray(result.frame_index)[0])
    pts = np.asarray(result.scene_points_world, np.float64)
    c_k = centre[rows][:, None, None, :]
    pts = (np.einsum("kij,khwj->khwi", dR_cam[rows], pts - c_k) + c_k
           + delta[rows, 0][:, None, None, :])
    valid = np.asarray(result.smpl_valid, bool)  # P n
    d_pelvis = np.moveaxis(delta[:, 2:2 + P], 1, 0) * valid[..., None]  # P n 3
    dR_body = geometry.axis_angle_to_matrix_host(
        np.moveaxis(delta[:, 2 + P:], 1, 0) * valid[..., None])  # P n 3 3
    joints = np.asarray(result.joints_world, np.float64)
    pelvis = joints[:, :, :1]

    def body(v):
        return (np.einsum("pnij,pnvj->pnvi", dR_body, np.asarray(v, np.float64) - pelvis) + pelvis
                + d_pelvis[:, :, None]) * valid[..., None, None]

    return dataclasses.replace(
        result,
        T_world_cam=T.astype(f32),
        scene_points_world=pts.astype(f32),
        smpl_global_orient=(dR_body @ np.asarray(result.smpl_global_orient, np.float64)).astype(f32),
        smpl_transl=((np.asarray(result.smpl_transl, np.float64) + d_pelvis)
                     * valid[..., None]).astype(f32),
        joints_world=body(joints).astype(f32),
        vertices_world=body(result.vertices_world).astype(f32),
    )


def refine_seams(results: list[Result], frame_ranges: Ranges, *, overlap_weight: float,
                 smooth_weight: float, prior_weight: float, iters: int
                 ) -> tuple[list[Result], np.ndarray]:
    """The short joint refinement across seams (`video/seams.py`) of chunks already mapped into one
    world: smooth per-frame corrections of camera centres and orientations, body positions and
    orientations, so that consecutive chunks agree on the frames they share.

    Returns:
      (corrected chunk Results, corrections float64[C, F, 2 + 2P, 3] in `seam_tracks` order).
    """
    first = frame_ranges[0][0]
    x, presence, cover = seam_tracks(results, frame_ranges)
    f32 = jnp.float32
    delta = np.asarray(seams.solve_corrections(
        jnp.asarray(x, f32), jnp.asarray(presence, f32), jnp.asarray(cover, f32),
        jnp.asarray(overlap_weight, f32), jnp.asarray(smooth_weight, f32),
        jnp.asarray(prior_weight, f32), int(iters)), np.float64)
    out = [apply_corrections(res, delta[c, a - first:b - first])
           for c, (res, (a, b)) in enumerate(zip(results, frame_ranges, strict=True))]
    return out, delta
