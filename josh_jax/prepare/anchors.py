"""Canonical views and anchors of a clip (docs/method.md §1.5.9, §A.5), host numpy.

With one camera-frame pointmap per image (Pi3-style), the reference's canonical view reduces to
block-relative depths: every 8x8 block is represented by its centre pixel (its *anchor*), whose
absolute depth is `core_depth`, and every pixel by its depth relative to that centre (`canon2`).
The optimiser moves anchor depths only; a pixel's depth is its anchor's times its offset.

* `canonical_views`: `canon2` (z_q / z_anchor), canonical confidence `cconf = conf - 0.999`, the
  scene mask `cconf > 0.1` (minus people) and the anchor depths.
* `anchor_offsets`: anchor index and depth offset of pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np


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
    subsample: int,
    conf_offset: float,
    conf_thres: float,
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


def anchor_offsets(
    views: CanonicalViews, image: int, xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Anchor index and block-relative depth offset of integer pixels (docs/method.md §A.5).

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
