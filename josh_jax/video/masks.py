"""Human masks rendered from body meshes (the synthetic world's z-buffer), then dilated.

JOSH reads SAM3 masks (spec §1.2); a JAX front end has bodies from Human3R instead, so the masks
are the bodies' silhouettes. They are dilated because the estimated bodies are not pixel-exact and
the masks only have to keep human pixels out of the static scene (matches, pointmaps).
"""

import numpy as np

from josh_jax import geometry, raster


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Binary dilation by a square of side `2 radius + 1` (separable max filter).

    Args:
      mask: bool[..., H, W].
      radius_px: >= 0.

    Returns:
      bool[..., H, W].
    """
    out = mask.astype(bool)
    for axis in (-1, -2):
        grown = out.copy()
        n = out.shape[axis]
        for shift in range(1, radius_px + 1):
            if shift >= n:
                break
            lo = [slice(None)] * out.ndim
            hi = [slice(None)] * out.ndim
            lo[axis], hi[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def human_masks(
    verts_world: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    height: int,
    width: int,
    radius_px: int,
) -> np.ndarray:
    """Per-frame union of the people's silhouettes, dilated.

    Args:
      verts_world: float[P, T, V, 3] body vertices (NaN rows: the person is absent that frame).
      faces: int[F, 3] body triangles.
      K: float[3, 3] intrinsics.
      T_world_cam: float[T, 4, 4] camera-to-world poses.
      height, width: image size.
      radius_px: dilation radius in pixels.

    Returns:
      bool[T, H, W], True on human pixels.
    """
    T_cam_world = np.asarray(geometry.se3_inverse(np.asarray(T_world_cam, np.float64)))
    P, T = verts_world.shape[:2]
    out = np.zeros((T, height, width), bool)
    for t in range(T):
        for p in range(P):
            v = np.asarray(verts_world[p, t], np.float64)
            if not np.all(np.isfinite(v)):
                continue
            v_cam = v @ T_cam_world[t, :3, :3].T + T_cam_world[t, :3, 3]
            depth, _ = raster.rasterize(v_cam, faces, K, height, width)
            out[t] |= np.isfinite(depth)
    return dilate(out, radius_px)
