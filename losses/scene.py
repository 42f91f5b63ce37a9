"""Pairwise scene terms of the JOSH / MASt3R-SfM optimiser (`docs/method.md` (5.2), (7.1), (7.2)).

Matches of a whole clip are given as one flat, padded list: entry k pairs a 3D point (or pixel) of
one image with the 3D point of its match in another image. Normalisation is global over the list
(as in MASt3R-SfM's `loss_3d` / `loss_2d`, which concatenate all pairs and divide by the summed
confidence), never per pair.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from losses.robust import gamma_loss, masked_mean, safe_norm


def match_3d_loss(xyz_i: Array, xyz_j: Array, conf: Array, gamma: float = 1.1) -> Array:
    """Confidence-weighted robust distance between matched 3D points (stage-1 `loss_3d`).

        L_3d = sum_k c_k rho_gamma(|xyz_i[k] - xyz_j[k]|) / sum_k c_k      (0 if sum_k c_k = 0)

    Args:
        xyz_i: float[M, 3] world points of the first image of each match.
        xyz_j: float[M, 3] world points of the matching pixel in the other image.
        conf: float[M] match confidences (0 = padding).
        gamma: robust exponent (JOSH stage 1: 1.1).

    Returns:
        float[] scalar loss.
    """
    r = safe_norm(xyz_i - xyz_j, axis=-1)
    return masked_mean(gamma_loss(r, gamma), conf)


def project_points(K: Array, T_cam_world: Array, xyz_world: Array, min_depth: float = 1e-3,
                   clip: tuple[float, float] | None = (-1000.0, 2000.0)) -> Array:
    """Pinhole projection as in DUSt3R's `reproj2d` (depth clamped, pixels clipped).

        y = K (R x + t);   uv = clip(y_xy / max(y_z, min_depth), clip[0], clip[1])

    The clamp keeps points behind the camera finite (their gradient w.r.t. depth is 0), the clip
    bounds the residual of wild points. With K's last row (0, 0, 1), y_z is the camera depth.

    Args:
        K: float[3, 3] intrinsics.
        T_cam_world: float[4, 4] or float[3, 4] world-to-camera transform.
        xyz_world: float[M, 3] world points.
        min_depth: smallest depth used in the division.
        clip: (low, high) bounds applied per pixel coordinate, or None for no clipping.

    Returns:
        float[M, 2] pixels (u, v).
    """
    P = K @ T_cam_world[:3, :]
    y = xyz_world @ P[:, :3].T + P[:, 3]
    uv = y[..., :2] / jnp.maximum(y[..., 2:3], min_depth)
    if clip is not None:
        uv = jnp.clip(uv, clip[0], clip[1])
    return uv


def reprojection_loss(uv_obs: Array, uv_pred: Array, conf: Array, gamma: float = 0.4) -> Array:
    """Confidence-weighted robust pixel error (stage-2 `loss_2d`).

        L_2d = sum_k c_k rho_gamma(|uv_obs[k] - uv_pred[k]|) / sum_k c_k      (0 if sum_k c_k = 0)

    Args:
        uv_obs: float[M, 2] observed match pixels in image i.
        uv_pred: float[M, 2] the partner's 3D point reprojected into image i (`project_points`).
        conf: float[M] match confidences (0 = padding).
        gamma: robust exponent (JOSH stage 2: 0.4).

    Returns:
        float[] scalar loss.
    """
    r = safe_norm(uv_obs - uv_pred, axis=-1)
    return masked_mean(gamma_loss(r, gamma), conf)
