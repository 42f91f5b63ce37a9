"""Cameras of CUT3R's outputs: pose encoding -> matrix (§3.8), `reset_interval` chunking with
pose chaining (§3.12), intrinsics from the pointmap (§3.13)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def pose_to_T_world_cam(camera_pose: jax.Array) -> jax.Array:
    """camera_pose float[..., 7] (t xyz, q wxyz) -> camera-to-world float[..., 4, 4]."""
    t = camera_pose[..., :3]
    w, x, y, z = (camera_pose[..., 3 + i] for i in range(4))
    k = 2.0 / (w * w + x * x + y * y + z * z)
    rot = jnp.stack([
        jnp.stack([1 - k * (y * y + z * z), k * (x * y - z * w), k * (x * z + y * w)], -1),
        jnp.stack([k * (x * y + z * w), 1 - k * (x * x + z * z), k * (y * z - x * w)], -1),
        jnp.stack([k * (x * z - y * w), k * (y * z + x * w), 1 - k * (x * x + y * y)], -1),
    ], -2)
    top = jnp.concatenate([rot, t[..., :, None]], axis=-1)
    bottom = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.0, 1.0], top.dtype),
                              top.shape[:-2] + (1, 4))
    return jnp.concatenate([top, bottom], axis=-2)


def reset_views(num_frames: int, reset_interval: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo's view list (`prepare_input`): frame i has reset = (i + 1) % K == 0, and every
    reset view is followed by a copy of itself without reset (the overlap view).

    Returns (frame index per view int32[V], reset flag per view bool[V]).
    """
    frames, resets = [], []
    for i in range(num_frames):
        reset = (i + 1) % reset_interval == 0
        frames.append(i)
        resets.append(reset)
        if reset:
            frames.append(i)
            resets.append(False)
    return np.asarray(frames, np.int32), np.asarray(resets, bool)


def chain_chunks(T_chunk_cam: np.ndarray, resets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`prepare_output`'s camera chaining: drop each view that follows a reset view, then
    T_world_cam_i = (Q_0 ... Q_{i-1}) P_i with Q_j = P_j for reset views, else I.

    Args:
      T_chunk_cam: float[V, 4, 4] chunk-local camera-to-world per view.
      resets: bool[V] reset flag per view.

    Returns (kept view indices int[K], T_world_cam float[K, 4, 4]).
    """
    resets = np.asarray(resets, bool)
    after_reset = np.concatenate([[False], resets[:-1]])
    kept = np.flatnonzero(~after_reset)
    poses = np.asarray(T_chunk_cam)[kept]
    acc = np.eye(4, dtype=poses.dtype)
    out = []
    for pose, reset in zip(poses, resets[kept], strict=True):
        out.append(acc @ pose)
        if reset:
            acc = acc @ pose
    return kept, np.stack(out) if out else poses


def chain_step(T_world_chunk: jax.Array, T_chunk_cam: jax.Array, reset: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """`chain_chunks` one view at a time (inside a jitted online loop).

    Args:
      T_world_chunk: float[4, 4] the current chunk's anchor (I for the first chunk).
      T_chunk_cam: float[4, 4] this (kept) view's chunk-local camera-to-world.
      reset: bool[] whether this view is a reset view.

    Returns (T_world_cam float[4, 4] of this view, the anchor for the next kept view).
    Overlap views (those right after a reset view) are not passed here: their outputs are
    dropped, and the next chunk continues from the returned anchor.
    """
    T_world_cam = T_world_chunk @ T_chunk_cam
    return T_world_cam, jnp.where(reset, T_world_cam, T_world_chunk)


def focal_from_pointmap(pts3d: jax.Array, iterations: int = 10) -> jax.Array:
    """Focal length (fx = fy, pixels) from a camera-frame pointmap, Weiszfeld (§3.13).

    pts3d: float[..., H, W, 3]; the principal point is (W // 2, H // 2); pixel centres are the
    integer indices. Returns float[...] clipped to [0, inf).
    """
    h, w = pts3d.shape[-3:-1]
    v, u = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - h // 2,
                        jnp.arange(w, dtype=jnp.float32) - w // 2, indexing="ij")
    pix = jnp.stack([u, v], -1).reshape(-1, 2)
    pts = pts3d.reshape(pts3d.shape[:-3] + (h * w, 3)).astype(jnp.float32)
    xy = pts[..., :2] / pts[..., 2:3]
    xy = jnp.where(jnp.isfinite(xy), xy, 0.0)
    f = jnp.mean(jnp.sum(xy * pix, -1), -1) / jnp.mean(jnp.sum(xy * xy, -1), -1)
    for _ in range(iterations):
        dist = jnp.linalg.norm(pix - f[..., None, None] * xy, axis=-1)
        wgt = 1.0 / jnp.maximum(dist, 1e-8)
        f = jnp.mean(wgt * jnp.sum(xy * pix, -1), -1) / jnp.mean(wgt * jnp.sum(xy * xy, -1), -1)
    return jnp.maximum(f, 0.0)
