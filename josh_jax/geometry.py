"""Geometry in one place: SO(3) converters, SE(3) as 4x4 matrices, the pinhole camera.

Conventions (docs/architecture.md): OpenCV cameras (x right, y down, z forward); `T_a_b` maps
points in frame b to frame a (`T_world_cam` is camera-to-world); quaternions are wxyz; 6D
rotations are the first two rows; pixel (u, v) with integer values at pixel centres, (0, 0) the
centre of the top-left pixel.

Why plain 4x4 matrices rather than jaxlie's typed groups: every input (clips, SMPL, the reference
outputs) and output of this project is a matrix, the SO(3) code must sit below `josh_jax` in
`body_models`, and the handful of operations needed here are a few lines each.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from body_models.rotations import (  # noqa: F401  (re-exported: this module is the public API)
    axis_angle_to_matrix,
    axis_angle_to_quat,
    matrix_to_axis_angle,
    matrix_to_quat,
    matrix_to_rot6d,
    project_to_so3,
    quat_multiply,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
    quat_wxyz_to_xyzw,
    quat_xyzw_to_wxyz,
    rot6d_to_matrix,
    skew,
)
from josh_jax import interpolation


def se3(R: Float[Array, "... 3 3"], t: Float[Array, "... 3"]) -> Float[Array, "... 4 4"]:
    """Homogeneous 4x4 transform from a rotation and a translation."""
    top = jnp.concatenate([R, t[..., :, None]], axis=-1)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], R.dtype), (*R.shape[:-2], 1, 4))
    return jnp.concatenate([top, bottom], axis=-2)


def se3_inverse(T: Float[Array, "... 4 4"]) -> Float[Array, "... 4 4"]:
    """Rigid inverse [R^T | -R^T t] (assumes a rotation block, unlike a general matrix inverse)."""
    R_t = jnp.swapaxes(T[..., :3, :3], -1, -2)
    return se3(R_t, -jnp.einsum("...ij,...j->...i", R_t, T[..., :3, 3]))


def se3_apply(T: Float[Array, "... 4 4"], x: Float[Array, "... N 3"]) -> Float[Array, "... N 3"]:
    """Apply T to points: `x @ R^T + t`."""
    return jnp.einsum("...ij,...nj->...ni", T[..., :3, :3], x) + T[..., None, :3, 3]


@jax.jit  # one program: op-by-op dispatch of the slerp costs seconds of compiles on CPU
def se3_interpolate(
    T_keys: Float[Array, "K 4 4"], t_keys: Float[Array, " K"], t_query: Float[Array, " Q"]
) -> Float[Array, "Q 4 4"]:
    """Piecewise interpolation of poses: linear translation, slerp rotation (scipy semantics).

    Args:
      T_keys: float[K, 4, 4] poses at increasing times `t_keys`.
      t_keys: float[K] strictly increasing key times (K >= 1).
      t_query: float[Q] query times; clamped to [t_keys[0], t_keys[-1]].

    Returns:
      float[Q, 4, 4]; exactly T_keys[k] at t_query == t_keys[k].
    """
    lo, hi, alpha = interpolation.brackets(t_keys, t_query, T_keys.dtype)
    R = interpolation.slerp_rotations(T_keys[:, :3, :3], lo, hi, alpha)
    t = interpolation.lerp(T_keys[:, :3, 3], lo, hi, alpha)
    return se3(R, t)


def intrinsics_matrix(
    f: Float[Array, "..."], cx: Float[Array, "..."], cy: Float[Array, "..."]
) -> Float[Array, "... 3 3"]:
    """Pinhole intrinsics with fx = fy = f."""
    f, cx, cy = jnp.broadcast_arrays(*(jnp.asarray(v, jnp.result_type(float)) for v in (f, cx, cy)))
    zero, one = jnp.zeros_like(f), jnp.ones_like(f)
    return jnp.stack(
        [jnp.stack([f, zero, cx], -1), jnp.stack([zero, f, cy], -1), jnp.stack([zero, zero, one], -1)],
        axis=-2,
    )


def project(
    K: Float[Array, "3 3"], x_cam: Float[Array, "... 3"], min_depth: float = 1e-3
) -> Float[Array, "... 2"]:
    """Pinhole projection of camera-frame points to pixels; depth clamped to `min_depth`."""
    z = jnp.maximum(x_cam[..., 2:3], min_depth)
    xy = x_cam[..., :2] / z
    return xy * jnp.stack([K[0, 0], K[1, 1]]) + jnp.stack([K[0, 2], K[1, 2]])


def unproject(
    K: Float[Array, "3 3"], uv: Float[Array, "... 2"], depth: Float[Array, "..."]
) -> Float[Array, "... 3"]:
    """Pixels and depths (z, not ray length) to camera-frame points."""
    xy = (uv - jnp.stack([K[0, 2], K[1, 2]])) / jnp.stack([K[0, 0], K[1, 1]])
    return jnp.concatenate([xy * depth[..., None], depth[..., None]], axis=-1)


def pixel_grid(H: int, W: int) -> Float[Array, "H W 2"]:
    """(u, v) of every pixel centre, indexed [v, u]."""
    v, u = jnp.meshgrid(jnp.arange(H, dtype=jnp.float32), jnp.arange(W, dtype=jnp.float32), indexing="ij")
    return jnp.stack([u, v], axis=-1)


# ---------------------------------------------------------------------------------------------
# Host twins (numpy, float64) for data generation and import, where float64 matters: jnp computes
# in float32 unless x64 is enabled.


def centred_intrinsics(focal: float, height: int, width: int) -> np.ndarray:
    """Pinhole intrinsics with fx = fy = focal, principal point (W/2, H/2): float64[3, 3]."""
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def axis_angle_to_matrix_host(aa: np.ndarray) -> np.ndarray:
    """`axis_angle_to_matrix` in numpy float64 (same Rodrigues formula and small-angle branch).

    For import and data preparation on the host: eager `jnp` calls there would compile one tiny
    XLA program per operation and shape (tens of them per clip, ~0.05-0.2 s each).

    Args:
      aa: float[..., 3] axis-angle vectors.

    Returns:
      float64[..., 3, 3].
    """
    aa = np.asarray(aa, np.float64)
    theta_sq = np.sum(aa * aa, axis=-1)
    small = theta_sq < 1e-8
    theta_sq_safe = np.where(small, 1.0, theta_sq)
    theta = np.sqrt(theta_sq_safe)
    a = np.where(small, 1.0 - theta_sq / 6.0, np.sin(theta) / theta)
    b = np.where(small, 0.5 - theta_sq / 24.0, (1.0 - np.cos(theta)) / theta_sq_safe)
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1),
                  np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + a[..., None, None] * K + b[..., None, None] * (K @ K)


def pointmaps_from_depth(depth: np.ndarray, focal: float) -> np.ndarray:
    """Camera-frame pointmaps from depth maps, principal point (W/2, H/2), computed in float64.

    `X = ((u - W/2) z / f, (v - H/2) z / f, z)` at integer pixel centres (u, v), exactly as the
    reference `synthetic_clip.pred_points_from_clip`.

    Args:
      depth: float[T, H, W] camera-frame z.
      focal: focal length in pixels.

    Returns:
      float32[T, H, W, 3].
    """
    z = np.asarray(depth, np.float64)
    _, height, width = z.shape
    f = float(focal)
    u = np.arange(width, dtype=np.float64)[None, None, :]
    v = np.arange(height, dtype=np.float64)[None, :, None]
    x = (u - width / 2) * z / f
    y = (v - height / 2) * z / f
    return np.stack([x, y, z], axis=-1).astype(np.float32)
