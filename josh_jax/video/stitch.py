"""Stitching chunk Results into one Result for the whole video (host side, numpy).

Each chunk's Result lives in its own world (its first keyframe camera, metric through the bodies).
`align_transforms` solves one Sim(3) per chunk into chunk 0's world from every frame the chunks
share (camera centres and orientations, body joints, shared keyframes' scene points, weighted;
a chunk's scale kept only when far from 1: `sim3.align_chunks`); `seam_refine.refine_seams` then
bends the mapped chunks by smooth per-frame corrections until they agree on their shared frames
(`video/seams.py`); `concat_transforms` is JOSH's plain
concatenation (spec §1.7: each chunk glued rigidly to the previous one at its first frame), the
baseline. `assemble` merges the mapped chunks at every video frame:

* "blend": over an overlap, positions (camera centres, body `transl`, joints, vertices) are
  cross-faded linearly (`sim3.blend_weights`); rotations, intrinsics, shapes and each keyframe's
  scene points are taken from the chunk with the larger weight (the earlier one on a tie);
* "later_wins": every frame from the last chunk that covers it past its first frame (JOSH).

Frame ranges are half-open video frame ranges [a, b) of the chunks (`chunks.video_frame_ranges`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from josh_jax.errors import InputError
from josh_jax.result import Result
from josh_jax.video import sim3

Ranges = list[tuple[int, int]]

# One program per (chunks, frames, points) shape instead of op-by-op dispatch.
_align_chunks = jax.jit(sim3.align_chunks, static_argnames="with_scale")


def _rows(frame_ranges: Ranges) -> tuple[int, int]:
    return frame_ranges[0][0], max(b for _, b in frame_ranges)


def chunk_points(results: list[Result], frame_ranges: Ranges, camera_weight: float,
                 joint_weight: float, scene_weight: float = 0.0, scene_stride: int = 4
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre, body joints and (with `scene_weight` > 0) scene points of every chunk at
    every video frame of the video.

    Scene points: each keyframe's world points (`scene_points_world`) on a grid of every
    `scene_stride`-th pixel. Chunks that share a keyframe share its pixels, so the same pixel is
    one correspondence: the static scene ties the chunks together over the whole field of view.

    Returns:
      x float64[C, F, 1 + P J + S, 3] (zeros where a chunk does not cover the frame; scene points
      only at keyframes), weights float64[C, F, 1 + P J + S]: `camera_weight` on the camera
      centre, `joint_weight` on each joint of a valid body, `scene_weight` on each scene point in
      the scene mask, 0 elsewhere. F counts from the first chunk's first frame.
    """
    first, last = _rows(frame_ranges)
    C, F = len(results), last - first
    P, J = results[0].joints_world.shape[0], results[0].joints_world.shape[2]
    grid = (slice(None), slice(None, None, scene_stride), slice(None, None, scene_stride))
    S = results[0].scene_mask[grid].reshape(results[0].scene_mask.shape[0], -1).shape[1]
    S = S if scene_weight > 0 else 0
    x = np.zeros((C, F, 1 + P * J + S, 3))
    w = np.zeros((C, F, 1 + P * J + S))
    for c, (res, (a, b)) in enumerate(zip(results, frame_ranges, strict=True)):
        rows = slice(a - first, b - first)
        x[c, rows, 0] = np.asarray(res.T_world_cam, np.float64)[:, :3, 3]
        w[c, rows, 0] = camera_weight
        joints = np.asarray(res.joints_world, np.float64)  # P F J 3
        x[c, rows, 1:1 + P * J] = np.moveaxis(joints, 0, 1).reshape(b - a, P * J, 3)
        valid = np.asarray(res.smpl_valid, bool).T  # F P
        w[c, rows, 1:1 + P * J] = np.repeat(valid, J, axis=1) * joint_weight
        if S:
            keys = np.asarray(res.keyframe_index) - first
            n = len(keys)
            x[c, keys, 1 + P * J:] = np.asarray(res.scene_points_world, np.float64)[grid].reshape(
                n, S, 3)
            w[c, keys, 1 + P * J:] = np.asarray(res.scene_mask, bool)[grid].reshape(
                n, S) * scene_weight
    return x, w


def chunk_rotations(results: list[Result], frame_ranges: Ranges, rotation_weight: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Camera orientations of every chunk at every video frame.

    Returns:
      R float64[C, F, 3, 3] (identity where a chunk does not cover the frame), weights
      float64[C, F]: `rotation_weight` where it does, 0 elsewhere.
    """
    first, last = _rows(frame_ranges)
    C, F = len(results), last - first
    R = np.tile(np.eye(3), (C, F, 1, 1))
    w = np.zeros((C, F))
    for c, (res, (a, b)) in enumerate(zip(results, frame_ranges, strict=True)):
        R[c, a - first:b - first] = np.asarray(res.T_world_cam, np.float64)[:, :3, :3]
        w[c, a - first:b - first] = rotation_weight
    return R, w


def align_transforms(results: list[Result], frame_ranges: Ranges, *, camera_weight: float,
                     joint_weight: float, with_scale: bool, rotation_weight: float = 0.0,
                     scale_prior: float = 0.0, scale_gate: float = 0.0,
                     scene_weight: float = 0.0, scene_stride: int = 4) -> list[sim3.Sim3]:
    """One Sim(3) `T_world_chunk` per chunk into chunk 0's world, from all shared frames: camera
    centres, body joints and shared keyframes' scene points (`chunk_points`), and with
    `rotation_weight` > 0 the camera orientations (`sim3.fit_sim3`); `scale_prior` pulls each
    scale to 1; with `scale_gate` > 0 a chunk stays rigid unless its solved scale is more than
    `scale_gate` off 1 (`sim3.align_chunks`)."""
    x, w = chunk_points(results, frame_ranges, camera_weight, joint_weight, scene_weight,
                        scene_stride)
    f32 = jnp.float32
    rot = {}
    if rotation_weight > 0:
        R, rw = chunk_rotations(results, frame_ranges, rotation_weight)
        rot = dict(R_chunks=jnp.asarray(R, f32), rotation_valid=jnp.asarray(rw, f32))
    transforms = _align_chunks(jnp.asarray(x, f32), jnp.asarray(w, f32), with_scale,
                               scale_prior=jnp.asarray(scale_prior, f32),
                               scale_gate=jnp.asarray(scale_gate, f32), **rot)
    return [jax_tree_to_numpy(S) for S in transforms]


def jax_tree_to_numpy(S: sim3.Sim3) -> sim3.Sim3:
    return sim3.Sim3(np.asarray(S.scale, np.float64), np.asarray(S.R, np.float64),
                     np.asarray(S.t, np.float64))


def concat_transforms(results: list[Result], frame_ranges: Ranges) -> list[sim3.Sim3]:
    """JOSH's plain concatenation: chunk k's camera at its first frame is set equal to the camera
    already assembled there (rigid, no scale), chained from chunk 0."""
    transforms = [jax_tree_to_numpy(sim3.identity())]
    for k in range(1, len(results)):
        a = frame_ranges[k][0]
        prev_start = frame_ranges[k - 1][0]
        T_prev = np.asarray(results[k - 1].T_world_cam, np.float64)[a - prev_start]
        S_prev = transforms[-1]
        T_world_glue = T_prev.copy()
        T_world_glue[:3, :3] = S_prev.R @ T_prev[:3, :3]
        T_world_glue[:3, 3] = S_prev.scale * S_prev.R @ T_prev[:3, 3] + S_prev.t
        T_chunk_glue = np.asarray(results[k].T_world_cam, np.float64)[0]
        T_world_chunk = T_world_glue @ np.linalg.inv(T_chunk_glue)
        transforms.append(sim3.Sim3(np.ones(()), T_world_chunk[:3, :3], T_world_chunk[:3, 3]))
    return transforms


def transform_result(result: Result, S: sim3.Sim3) -> Result:
    """The Result mapped by `S` (cameras, scene points, bodies; body parameters stay valid:
    `global_orient <- R global_orient`, `transl` moves with the pelvis joint)."""
    s, R, t = (np.asarray(v, np.float64) for v in (S.scale, S.R, S.t))

    def pts(x):
        return s * np.einsum("ij,...j->...i", R, np.asarray(x, np.float64)) + t

    valid = np.asarray(result.smpl_valid, bool)
    joints = np.asarray(result.joints_world, np.float64)
    joints_new = pts(joints) * valid[..., None, None]
    pelvis_offset = joints[:, :, 0] - np.asarray(result.smpl_transl, np.float64)  # J0(betas)
    transl_new = (joints_new[:, :, 0] - pelvis_offset) * valid[..., None]
    T = np.asarray(result.T_world_cam, np.float64).copy()
    T[:, :3, :3] = R @ T[:, :3, :3]
    T[:, :3, 3] = pts(T[:, :3, 3])
    f32 = np.float32
    return dataclasses.replace(
        result,
        T_world_cam=T.astype(f32),
        scene_points_world=pts(result.scene_points_world).astype(f32),
        smpl_global_orient=(R @ np.asarray(result.smpl_global_orient, np.float64)
                            * valid[..., None, None]).astype(f32),
        smpl_transl=transl_new.astype(f32),
        joints_world=joints_new.astype(f32),
        vertices_world=(pts(result.vertices_world) * valid[..., None, None]).astype(f32),
    )


def frame_weights(frame_ranges: Ranges, mode: str) -> np.ndarray:
    """float64[C, F] weight of each chunk at each video frame (columns sum to 1)."""
    first, last = _rows(frame_ranges)
    F = last - first
    if mode == "blend":
        local = [(a - first, b - first) for a, b in frame_ranges]
        return np.asarray(sim3.blend_weights(local, F), np.float64)
    if mode == "later_wins":
        w = np.zeros((len(frame_ranges), F))
        for c, (a, b) in enumerate(frame_ranges):
            start = a - first + (1 if c else 0)
            w[:, start:b - first] = 0.0
            w[c, start:b - first] = 1.0
        return w
    raise InputError("stitch", "mode", "'blend' or 'later_wins'", repr(mode))


def seam_disagreement(results: list[Result], frame_ranges: Ranges) -> dict[str, np.ndarray]:
    """Distance between consecutive (mapped) chunks on the frames they share: what the trajectory
    would jump by if it switched from one chunk to the next there.

    Returns:
      {"camera_m": float64[S], "pelvis_m": float64[S]} per seam (mean over the shared frames;
      the pelvis over the people valid in both chunks; NaN when none).
    """
    cam, pelvis = [], []
    for k in range(len(results) - 1):
        (a0, _), (a1, b1) = frame_ranges[k], frame_ranges[k + 1]
        b0 = frame_ranges[k][1]
        lo, hi = a1, min(b0, b1)
        r0 = slice(lo - a0, hi - a0)
        r1 = slice(lo - a1, hi - a1)
        c0 = np.asarray(results[k].T_world_cam, np.float64)[r0, :3, 3]
        c1 = np.asarray(results[k + 1].T_world_cam, np.float64)[r1, :3, 3]
        cam.append(float(np.mean(np.linalg.norm(c0 - c1, axis=-1))))
        p0 = np.asarray(results[k].joints_world, np.float64)[:, r0, 0]
        p1 = np.asarray(results[k + 1].joints_world, np.float64)[:, r1, 0]
        both = (np.asarray(results[k].smpl_valid, bool)[:, r0]
                & np.asarray(results[k + 1].smpl_valid, bool)[:, r1])
        d = np.linalg.norm(p0 - p1, axis=-1)
        pelvis.append(float(np.sum(d * both) / np.sum(both)) if both.any() else float("nan"))
    return {"camera_m": np.asarray(cam), "pelvis_m": np.asarray(pelvis)}


def _merge(results: list[Result], frame_ranges: Ranges, name: str, axis: int,
           weights: np.ndarray | None, owner: np.ndarray | None) -> np.ndarray:
    """One per-frame Result array merged over the chunks, one chunk at a time (memory: one
    output array, not one per chunk).

    Args:
      name: the Result field; `axis`: its frame axis (0, or 1 for per-person arrays).
      weights: float[C, F] or float[C, P, F] (per person): a weighted sum; or None and
      owner: int[F] or int[P, F]: the value of chunk owner at each frame.

    Returns:
      float64 array of the field's shape with the frame axis over the video's F frames.
    """
    first, last = _rows(frame_ranges)
    ref = np.asarray(getattr(results[0], name))
    shape = list(ref.shape)
    shape[axis] = last - first
    out = np.zeros(shape)
    for c, (res, (a, b)) in enumerate(zip(results, frame_ranges, strict=True)):
        index = (slice(None),) * axis + (slice(a - first, b - first),)
        x = np.asarray(getattr(res, name), np.float64)
        if weights is not None:
            w = weights[c][..., a - first:b - first]
            out[index] += x * w.reshape(w.shape + (1,) * (x.ndim - w.ndim))
        else:
            mine = owner[..., a - first:b - first] == c
            mine = mine.reshape(mine.shape + (1,) * (x.ndim - mine.ndim))
            out[index] = np.where(mine, x, out[index])
    return out


def _bodies(results: list[Result], frame_ranges: Ranges, weights: np.ndarray) -> dict:
    """Per-person body arrays [P, F, ...]: positions blended over the chunks valid at a frame,
    the rest from the valid chunk with the largest weight."""
    first, last = _rows(frame_ranges)
    P = results[0].num_tracks
    valid = np.zeros((len(results), P, last - first), bool)
    for c, (res, (a, b)) in enumerate(zip(results, frame_ranges, strict=True)):
        valid[c, :, a - first:b - first] = np.asarray(res.smpl_valid, bool)
    w = weights[:, None, :] * valid  # C P F
    total = w.sum(axis=0)
    owner = np.argmax(w, axis=0)  # P F
    wn = w / np.maximum(total, 1e-12)
    out = {"smpl_valid": total > 0}
    for name in ("smpl_transl", "joints_world", "vertices_world"):
        out[name] = _merge(results, frame_ranges, name, 1, wn, None)
    for name in ("smpl_global_orient", "smpl_body_pose", "smpl_betas"):
        out[name] = _merge(results, frame_ranges, name, 1, None, owner)
    return out


def assemble(results: list[Result], frame_ranges: Ranges, mode: str,
             diagnostics: dict | None = None) -> Result:
    """One Result at every video frame from chunk Results already mapped to one world.

    Args:
      results: C chunk Results (`transform_result` applied), chunk k covering frame_ranges[k].
      frame_ranges: half-open video frame ranges, increasing, overlapping, covering the video.
      mode: "blend" or "later_wins" (module docstring).
      diagnostics: the merged Result's diagnostics (default: every chunk's, stacked on a leading
        chunk axis).

    Returns:
      The Result of the whole video (world = chunk 0's world).
    """
    first, last = _rows(frame_ranges)
    weights = frame_weights(frame_ranges, mode)
    owner = np.argmax(weights, axis=0)
    T = _merge(results, frame_ranges, "T_world_cam", 0, None, owner)
    T[:, :3, 3] = _merge(results, frame_ranges, "T_world_cam", 0, weights, None)[:, :3, 3]
    K = _merge(results, frame_ranges, "K", 0, None, owner)
    bodies = _bodies(results, frame_ranges, weights)
    # Keyframes: each from the chunk owning its frame.
    keys, key_src = [], []
    for c, res in enumerate(results):
        for row, f in enumerate(np.asarray(res.keyframe_index)):
            if owner[int(f) - first] == c:
                keys.append(int(f))
                key_src.append((c, row))
    order = np.argsort(keys)
    keys = np.asarray(keys, np.int32)[order]
    key_src = [key_src[i] for i in order]

    def key_stack(name):
        return np.stack([np.asarray(getattr(results[c], name))[row] for c, row in key_src])

    if diagnostics is None:
        diagnostics = {k: np.stack([np.asarray(r.diagnostics[k]) for r in results])
                       for k in results[0].diagnostics}
    f32 = np.float32
    valid = bodies["smpl_valid"]
    return dataclasses.replace(
        results[0],
        frame_index=np.arange(first, last, dtype=np.int32),
        keyframe_index=keys,
        T_world_cam=T.astype(f32),
        K=K.astype(f32),
        scene_points_world=key_stack("scene_points_world"),
        scene_colors=key_stack("scene_colors"),
        scene_conf=key_stack("scene_conf"),
        scene_mask=key_stack("scene_mask"),
        smpl_global_orient=bodies["smpl_global_orient"].astype(f32),
        smpl_body_pose=bodies["smpl_body_pose"].astype(f32),
        smpl_betas=bodies["smpl_betas"].astype(f32),
        smpl_transl=(bodies["smpl_transl"] * valid[..., None]).astype(f32),
        smpl_valid=valid,
        joints_world=bodies["joints_world"].astype(f32),
        vertices_world=bodies["vertices_world"].astype(f32),
        diagnostics=diagnostics,
    )


def border_steps(result: Result, frame_ranges: Ranges, half_window: int = 3
                 ) -> dict[str, np.ndarray]:
    """How much the stitched trajectory steps at the chunk borders beyond its normal motion.

    At every frame f of an overlap (and the frame after it), the step `x(f+1) - x(f)` is compared
    with the mean step of the `half_window` frames on either side; the largest difference over the
    seam is its border step. A hard switch between chunks that disagree by d steps by about d;
    a cross-fade over n frames by about d / n.

    Returns:
      {"camera_m": float64[S], "pelvis_m": float64[S]} per seam (pelvis: the worst person valid
      around the seam; NaN when none).
    """
    first = frame_ranges[0][0]
    cam = np.asarray(result.T_world_cam, np.float64)[:, :3, 3]
    pelvis = np.asarray(result.joints_world, np.float64)[:, :, 0]
    valid = np.asarray(result.smpl_valid, bool)
    out = {"camera_m": [], "pelvis_m": []}
    for k in range(len(frame_ranges) - 1):
        lo, hi = frame_ranges[k + 1][0] - first, frame_ranges[k][1] - first + 1
        cam_k, pel_k = 0.0, float("nan")
        for f in range(max(lo, half_window), min(hi, cam.shape[0] - half_window - 1)):
            around = [g for g in range(f - half_window, f + half_window + 1) if g != f]
            cam_k = max(cam_k, excess(cam, f, around))
            for p in range(pelvis.shape[0]):
                if valid[p, f - half_window:f + half_window + 2].all():
                    e = excess(pelvis[p], f, around)
                    pel_k = e if np.isnan(pel_k) else max(pel_k, e)
        out["camera_m"].append(cam_k)
        out["pelvis_m"].append(pel_k)
    return {k: np.asarray(v) for k, v in out.items()}


def excess(x: np.ndarray, f: int, around: list[int]) -> float:
    """|x(f+1) - x(f) - mean_g (x(g+1) - x(g))| over the frames g `around` f (`border_steps`)."""
    step = x[f + 1] - x[f]
    normal = np.mean([x[g + 1] - x[g] for g in around], axis=0)
    return float(np.linalg.norm(step - normal))
