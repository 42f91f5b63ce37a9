"""Pixel matches from pointmaps and cameras alone (no descriptor network).

When no MASt3R checkpoint is given, the front end still needs the Clip's `matches`: it takes them
from the reconstruction network's own geometry. A seed grid of frame i's confident scene pixels is
lifted with frame i's pointmap, moved to frame j with the two estimated cameras and projected
with frame j's focal; a projection is kept when it lands inside frame j on a confident scene
pixel whose own depth agrees (`|z_j - z| <= depth_tolerance * z`: visible, not occluded).

These matches only restate the network's camera estimate (JOSH then refines cameras, focal and
scale against them, with the bodies); they carry no independent evidence as MASt3R's do.
Confidence = `sqrt(conf_i * conf_j)` (raw pointmap confidences), like MASt3R's descriptor
confidences combined by `extract_correspondences`. Host numpy (like `josh_jax.prepare`).
"""

from __future__ import annotations

import numpy as np


def seed_pixels(height: int, width: int, subsample: int) -> np.ndarray:
    """Pixel centres (u, v) of the seed grid, offset subsample // 2 (as MASt3R's): int[K, 2]."""
    vs, us = np.mgrid[subsample // 2:height:subsample, subsample // 2:width:subsample]
    return np.stack([us.reshape(-1), vs.reshape(-1)], axis=-1)


def pair_matches(
    pointmaps: np.ndarray,
    confidence: np.ndarray,
    human_mask: np.ndarray,
    T_world_cam: np.ndarray,
    focal: np.ndarray,
    i: int,
    j: int,
    *,
    subsample: int,
    min_confidence: float,
    depth_tolerance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matches of one pair (i, j).

    Args:
      pointmaps: float[T, H, W, 3] camera-frame pointmaps.
      confidence: float[T, H, W] raw confidences.
      human_mask: bool[T, H, W] people (never matched).
      T_world_cam: float[T, 4, 4] camera-to-world of each frame (the network's estimate).
      focal: float[T] focal of each frame in pixels (principal point (W/2, H/2)).
      i, j: the pair.
      subsample, min_confidence, depth_tolerance: see the module docstring.

    Returns:
      xy_i float32[N, 2] (integer seed pixels), xy_j float32[N, 2] (projected, sub-pixel),
      conf float32[N].
    """
    _, H, W, _ = pointmaps.shape
    uv = seed_pixels(H, W, subsample)
    x_i = pointmaps[i, uv[:, 1], uv[:, 0]].astype(np.float64)
    c_i = confidence[i, uv[:, 1], uv[:, 0]]
    keep = (c_i > min_confidence) & ~human_mask[i, uv[:, 1], uv[:, 0]] & (x_i[:, 2] > 0)
    keep &= np.all(np.isfinite(x_i), axis=-1)
    T_ji = np.linalg.inv(np.asarray(T_world_cam[j], np.float64)) @ np.asarray(T_world_cam[i],
                                                                               np.float64)
    x_j = x_i @ T_ji[:3, :3].T + T_ji[:3, 3]
    z = x_j[:, 2]
    safe_z = np.where(z > 1e-6, z, 1.0)
    u = focal[j] * x_j[:, 0] / safe_z + W / 2
    v = focal[j] * x_j[:, 1] / safe_z + H / 2
    keep &= (z > 1e-6) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    ur = np.clip(np.round(np.where(keep, u, 0)).astype(np.int64), 0, W - 1)
    vr = np.clip(np.round(np.where(keep, v, 0)).astype(np.int64), 0, H - 1)
    c_j = confidence[j, vr, ur]
    z_seen = pointmaps[j, vr, ur, 2]
    keep &= (c_j > min_confidence) & ~human_mask[j, vr, ur]
    keep &= np.abs(z_seen - z) <= depth_tolerance * np.abs(z)
    xy_i = uv[keep].astype(np.float32)
    xy_j = np.stack([u[keep], v[keep]], axis=-1).astype(np.float32)
    conf = np.sqrt(c_i[keep] * c_j[keep]).astype(np.float32)
    return xy_i, xy_j, conf


def pad_matches(per_pair: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair (xy_i [N_e, 2], xy_j [N_e, 2], conf [N_e]) -> the Clip's padded arrays.

    Returns:
      matches float32[E, M, 2, 2], match_confidence float32[E, M] (0 = padding), M = the largest
      N_e (at least 1).
    """
    M = max([1] + [len(c) for _, _, c in per_pair])
    matches = np.zeros((len(per_pair), M, 2, 2), np.float32)
    conf = np.zeros((len(per_pair), M), np.float32)
    for e, (a, b, c) in enumerate(per_pair):
        matches[e, :len(c), 0], matches[e, :len(c), 1], conf[e, :len(c)] = a, b, c
    return matches, conf


def geometric_matches(
    pointmaps: np.ndarray,
    confidence: np.ndarray,
    human_mask: np.ndarray,
    T_world_cam: np.ndarray,
    focal: np.ndarray,
    pairs: np.ndarray,
    *,
    subsample: int,
    min_confidence: float,
    depth_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`pair_matches` over every pair, padded.

    Args:
      pairs: int[E, 2]; the other arguments as `pair_matches`.

    Returns:
      matches float32[E, M, 2, 2], match_confidence float32[E, M].
    """
    per_pair = [pair_matches(pointmaps, confidence, human_mask, T_world_cam, focal, int(i),
                             int(j), subsample=subsample, min_confidence=min_confidence,
                             depth_tolerance=depth_tolerance) for i, j in np.asarray(pairs)]
    return pad_matches(per_pair)
