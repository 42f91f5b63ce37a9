"""The focal initialisation of a clip (docs/method.md §1.5.10, §A.3), host numpy.

Each image's focal is estimated from its pointmap by DUSt3R's Weiszfeld (IRLS) estimator; the
clip's shared initial focal is their average weighted by each image's mean canonical confidence,
unless the config or the clip provides one.
"""

from __future__ import annotations

import numpy as np

from josh_jax.prepare.anchors import CanonicalViews


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
    # Contiguous components: |u - f p| as sqrt(dx^2 + dy^2) is bit for bit np.linalg.norm(axis=-1)
    # of the 2-vectors, without its strided temporaries (~3x faster).
    ux, uy, px, py = (np.ascontiguousarray(a) for a in (u[:, 0], u[:, 1], p[:, 0], p[:, 1]))
    for _ in range(iters):
        dx, dy = ux - f * px, uy - f * py
        w = 1.0 / np.maximum(np.sqrt(dx * dx + dy * dy), 1e-8)
        f = np.mean(w * dot_pu) / np.mean(w * dot_pp)
    base = max(H, W) / (2.0 * np.tan(np.deg2rad(60.0) / 2.0))
    return float(np.clip(f, min_focal * base, max_focal * base))


def initial_focal(clip, views: CanonicalViews, config) -> tuple[float, np.ndarray]:
    """The shared initial focal of a clip and the per-image Weiszfeld focals.

    The initial focal is `config.init_focal` when > 0, else the clip's `focal_init` when present
    and `config.use_clip_focal_init` (not in `reference_compat`), else JOSH's: the per-image
    focals averaged with weights mean(cconf_i) / sum_j mean(cconf_j).

    Args:
      clip: josh_jax.clip.Clip.
      views: its canonical views.
      config: the josh config.

    Returns:
      (focal_init in pixels, float64[T] Weiszfeld focal of each image).
    """
    T, H, W = clip.pointmaps.shape[:3]
    pp = (W / 2.0, H / 2.0)
    focals = np.array([weiszfeld_focal(clip.pointmaps[i], pp) for i in range(T)])
    if config.init_focal:
        return float(config.init_focal), focals
    if clip.focal_init is not None and not config.reference_compat and config.use_clip_focal_init:
        return float(clip.focal_init), focals
    weights = views.cconf.reshape(T, -1).mean(1)
    weights = weights / weights.sum()
    return float(np.sum(weights * focals)), focals
