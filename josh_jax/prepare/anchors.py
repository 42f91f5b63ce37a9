"""Host-side scene preprocessing of JOSH (spec sections 1.5.9, 1.5.10, appendices A.3, A.5, A.6).

Everything here is numpy / scipy, runs once per clip outside jit, and reproduces the reference
(MASt3R-SfM as used by JOSH with Pi3 pointmaps):

* `canonical_views`: block-relative depth `canon2` (z_q / z_anchor), canonical confidence
  `cconf = conf - 0.999`, scene mask `cconf > 0.1` and the absolute anchor depths (`core_depth`,
  the pointmap z at the centre (4, 4) of every 8x8 block).
* `weiszfeld_focal`: focal from a pointmap knowing its depth (DUSt3R's IRLS estimator).
* `anchor_offsets`: anchor index and depth offset of pixels.
* `max_spanning_tree`: the camera kinematic chain (root choice and BFS edge order of MASt3R-SfM).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


@dataclasses.dataclass(frozen=True)
class CanonicalViews:
    """Canonical per-image data of one clip (host numpy).

    Attributes:
        canon2: float32[T, H, W] depth relative to the centre of its 8x8 block (1 at the centres).
        cconf: float32[T, H, W] canonical confidence (conf - conf_offset).
        scene_mask: bool[T, H, W] pixels trusted as scene (`cconf > conf_thres`, not human).
        core_depth: float32[T, A] absolute anchor depths, A = (H / s) * (W / s), row-major blocks.
        core_canon2: float32[T, A] canon2 at the anchor centres (1 up to rounding).
        subsample: anchor grid step s in pixels.
    """

    canon2: np.ndarray
    cconf: np.ndarray
    scene_mask: np.ndarray
    core_depth: np.ndarray
    core_canon2: np.ndarray
    subsample: int


def canonical_views(
    pointmaps: np.ndarray,
    confidence: np.ndarray,
    human_mask: np.ndarray | None = None,
    *,
    subsample: int = 8,
    conf_offset: float = 0.999,
    conf_thres: float = 0.1,
) -> CanonicalViews:
    """Canonical views from single (Pi3-style) camera-frame pointmaps.

    With one pointmap per image the reference's confidence-weighted "avg-angle" average over pairs
    collapses to the pointmap itself: canon2_q = 1 + r tan(atan((z_q - z_c) / r)) / z_c, computed
    here in float32 like the reference (= z_q / z_c up to rounding).

    Args:
        pointmaps: float[T, H, W, 3] camera-frame points (unknown scale), H and W multiples of s.
        confidence: float[T, H, W] pointmap / MASt3R confidence (human pixels exactly 1.0 in JOSH).
        human_mask: optional bool[T, H, W]; True pixels are excluded from the scene mask.
        subsample: anchor grid step s.
        conf_offset: cconf = confidence - conf_offset (JOSH: 0.999).
        conf_thres: scene mask threshold on cconf (JOSH: 0.1).

    Returns:
        CanonicalViews.
    """
    pts = np.asarray(pointmaps, np.float32)
    T, H, W, _ = pts.shape
    s = int(subsample)
    if H % s or W % s:
        raise ValueError(
            f"canonical_views: image size (H={H}, W={W}) must be a multiple of the anchor step {s}"
        )
    H2, W2 = H // s, W // s
    c = s // 2
    z = pts[..., 2]
    xy = pts[..., :2]
    # Block view [T, H2, s, W2, s]; centre of each block at (c, c).
    zb = z.reshape(T, H2, s, W2, s)
    xyb = xy.reshape(T, H2, s, W2, s, 2)
    zc = np.maximum(zb[:, :, c : c + 1, :, c : c + 1], np.float32(1e-8))
    xyc = xyb[:, :, c : c + 1, :, c : c + 1]
    r = np.maximum(np.linalg.norm(xyb - xyc, axis=-1), np.float32(1e-8)).astype(np.float32)
    ang = np.arctan((zb - zc) / r).astype(np.float32)
    canon2 = (np.float32(1.0) + r * np.tan(ang) / zc).astype(np.float32).reshape(T, H, W)
    cconf = (np.asarray(confidence, np.float32) - np.float32(conf_offset)).astype(np.float32)
    scene_mask = cconf > conf_thres
    if human_mask is not None:
        scene_mask = scene_mask & ~np.asarray(human_mask, bool)
    core_depth = z[:, c::s, c::s].reshape(T, H2 * W2).astype(np.float32)
    core_canon2 = canon2[:, c::s, c::s].reshape(T, H2 * W2)
    return CanonicalViews(
        canon2=canon2,
        cconf=cconf,
        scene_mask=scene_mask,
        core_depth=core_depth,
        core_canon2=core_canon2,
        subsample=s,
    )


def weiszfeld_focal(
    pointmap: np.ndarray,
    pp: tuple[float, float] | None = None,
    *,
    min_focal: float = 0.5,
    max_focal: float = 3.5,
    iters: int = 10,
) -> float:
    """Focal of a camera-frame pointmap, DUSt3R `estimate_focal_knowing_depth(..., 'weiszfeld')`.

    f0 = mean<p, u> / mean|p|^2 with p = (X/Z, Y/Z) and u = pixel - pp, then 10 IRLS steps with
    weights 1 / max(|u - f p|, 1e-8); clipped to [min, max] * max(H, W) / (2 tan 30 deg).

    Args:
        pointmap: float[H, W, 3].
        pp: principal point (cx, cy); default (W/2, H/2).
        min_focal, max_focal: bounds relative to the 60-degree focal of the long side.
        iters: IRLS iterations.

    Returns:
        float focal in pixels.
    """
    pts = np.asarray(pointmap, np.float64)
    H, W = pts.shape[:2]
    cx, cy = (W / 2.0, H / 2.0) if pp is None else pp
    u = np.stack(np.meshgrid(np.arange(W) - cx, np.arange(H) - cy, indexing="xy"), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = pts[..., :2] / pts[..., 2:3]
    p = np.where(np.isfinite(p), p, 0.0)
    u = u.reshape(-1, 2)
    p = p.reshape(-1, 2)
    dot_pu = np.sum(p * u, -1)
    dot_pp = np.sum(p * p, -1)
    f = dot_pu.mean() / dot_pp.mean()
    for _ in range(iters):
        w = 1.0 / np.maximum(np.linalg.norm(u - f * p, axis=-1), 1e-8)
        f = np.mean(w * dot_pu) / np.mean(w * dot_pp)
    base = max(H, W) / (2.0 * np.tan(np.deg2rad(60.0) / 2.0))
    return float(np.clip(f, min_focal * base, max_focal * base))


def anchor_offsets(
    views: CanonicalViews, image: int, xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Anchor index and block-relative depth offset of integer pixels (spec A.5).

    Args:
        views: CanonicalViews of the clip.
        image: image index.
        xy: int[M, 2] pixels (x, y).

    Returns:
        (anchor int32[M] = (y // s) * W2 + x // s, offset float32[M] = canon2[y, x] / core[anchor]).
    """
    s = views.subsample
    W2 = views.canon2.shape[2] // s
    x = xy[:, 0].astype(np.int64)
    y = xy[:, 1].astype(np.int64)
    a = (y // s) * W2 + x // s
    off = views.canon2[image, y, x] / views.core_canon2[image, a]
    return a.astype(np.int32), off.astype(np.float32)


def _bfs_ranks(tree: scipy.sparse.csr_array, start: int) -> np.ndarray:
    order = scipy.sparse.csgraph.breadth_first_order(
        tree, start, directed=False, return_predecessors=False
    )
    ranks = np.full(tree.shape[0], -1, np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def max_spanning_tree(
    num_images: int, pairs: np.ndarray, scores: np.ndarray
) -> tuple[int, np.ndarray]:
    """Maximum spanning tree of pair scores with MASt3R-SfM's root and BFS edge order.

    scipy's minimum spanning tree of -S; the root is argmax min(r1, r2) of BFS ranks from the two
    ends of a double sweep (an approximate tree centre); edges are (parent, child) in BFS order.

    Args:
        num_images: N.
        pairs: int[E, 2] image pairs (unordered).
        scores: float[E] pair score (number of valid matches).

    Returns:
        (root, edges int32[N-1, 2]).

    Raises:
        ValueError: if the match graph is disconnected (naming the unreachable images).
    """
    S = np.zeros((num_images, num_images), np.float64)
    for (i, j), sc in zip(np.asarray(pairs), np.asarray(scores, np.float64), strict=True):
        if i != j and sc > 0:
            S[i, j] = S[j, i] = max(S[i, j], sc)
    msp = scipy.sparse.csgraph.minimum_spanning_tree(scipy.sparse.csr_array(-S))
    ranks = _bfs_ranks(msp, 0)
    if np.any(ranks < 0):
        missing = np.nonzero(ranks < 0)[0].tolist()
        raise ValueError(
            f"max_spanning_tree: the match graph is disconnected; images {missing} "
            f"share no match with image 0"
        )
    r2 = _bfs_ranks(msp, int(np.argmax(ranks)))
    r1 = _bfs_ranks(msp, int(np.argmax(r2)))
    root = int(np.argmax(np.minimum(r1, r2)))
    order, pred = scipy.sparse.csgraph.breadth_first_order(
        msp, root, directed=False, return_predecessors=True
    )
    edges = np.array([(pred[i], i) for i in order[1:]], np.int32).reshape(-1, 2)
    return root, edges
