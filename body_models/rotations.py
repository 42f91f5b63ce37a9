"""SO(3) converters: axis-angle, rotation matrix, quaternion (wxyz) and 6D.

They live in `body_models` because the body model is the lowest layer that needs them;
`josh_jax.geometry` re-exports them next to SE(3) and the pinhole camera.

Conventions:
  * Quaternions are **wxyz** (real part first). roma and scipy use xyzw: convert at the edges with
    `quat_wxyz_to_xyzw` / `quat_xyzw_to_wxyz`.
  * 6D rotations are the **first two rows** of the matrix (pytorch3d / Zhou et al. 2019), decoded by
    Gram-Schmidt on the rows.

Every function broadcasts over leading axes and is jit/vmap/grad-safe: gradients are finite at the
identity (zero axis-angle), which the optimizers start from.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

_SMALL_ANGLE_SQ = 1e-8


def _safe_normalize(x: Float[Array, "... n"], eps: float = 1e-12) -> Float[Array, "... n"]:
    norm = jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))
    return x / norm


def skew(v: Float[Array, "... 3"]) -> Float[Array, "... 3 3"]:
    """Cross-product matrix: `skew(v) @ w == cross(v, w)`."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = jnp.zeros_like(x)
    return jnp.stack(
        [
            jnp.stack([zero, -z, y], axis=-1),
            jnp.stack([z, zero, -x], axis=-1),
            jnp.stack([-y, x, zero], axis=-1),
        ],
        axis=-2,
    )


def axis_angle_to_matrix(aa: Float[Array, "... 3"]) -> Float[Array, "... 3 3"]:
    """Rodrigues' formula, with Taylor expansions near zero so the gradient stays finite."""
    theta_sq = jnp.sum(aa * aa, axis=-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # Dummy value in the unused branch keeps reverse-mode AD free of NaN (jnp.where evaluates both).
    theta_sq_safe = jnp.where(small, 1.0, theta_sq)
    theta = jnp.sqrt(theta_sq_safe)
    a = jnp.where(small, 1.0 - theta_sq / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta_sq / 24.0, (1.0 - jnp.cos(theta)) / theta_sq_safe)
    K = skew(aa)
    eye = jnp.eye(3, dtype=aa.dtype)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def quat_to_matrix(q_wxyz: Float[Array, "... 4"]) -> Float[Array, "... 3 3"]:
    """Quaternion (wxyz, need not be unit: divides by |q|^2 like pytorch3d) to rotation matrix."""
    w, x, y, z = (q_wxyz[..., i] for i in range(4))
    two_s = 2.0 / jnp.maximum(jnp.sum(q_wxyz * q_wxyz, axis=-1), 1e-24)
    return jnp.stack(
        [
            jnp.stack([1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w)], -1),
            jnp.stack([two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w)], -1),
            jnp.stack([two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def matrix_to_quat(R: Float[Array, "... 3 3"]) -> Float[Array, "... 4"]:
    """Rotation matrix to unit quaternion (wxyz, w >= 0), picking the best-conditioned candidate."""
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    t = jnp.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1
    )
    candidates = jnp.stack(
        [
            jnp.stack([t[..., 0], m21 - m12, m02 - m20, m10 - m01], axis=-1),
            jnp.stack([m21 - m12, t[..., 1], m10 + m01, m02 + m20], axis=-1),
            jnp.stack([m02 - m20, m10 + m01, t[..., 2], m12 + m21], axis=-1),
            jnp.stack([m10 - m01, m20 + m02, m21 + m12, t[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    # The chosen candidate has t >= 1 (the four t sum to 4); the floor only protects the others' sqrt.
    candidates = candidates / (2.0 * jnp.sqrt(jnp.maximum(t, 0.1)))[..., None]
    best = jnp.argmax(t, axis=-1)
    q = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    return jnp.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(R: Float[Array, "... 3 3"]) -> Float[Array, "... 3"]:
    """Rotation matrix to axis-angle (angle in [0, pi]), through the quaternion."""
    q = matrix_to_quat(R)
    return quat_to_axis_angle(q)


def quat_to_axis_angle(q_wxyz: Float[Array, "... 4"]) -> Float[Array, "... 3"]:
    """Unit quaternion (wxyz) to axis-angle, finite gradient at the identity."""
    q = jnp.where(q_wxyz[..., :1] < 0, -q_wxyz, q_wxyz)
    w, v = q[..., 0], q[..., 1:]
    sin_sq = jnp.sum(v * v, axis=-1)
    small = sin_sq < _SMALL_ANGLE_SQ
    sin_half = jnp.sqrt(jnp.where(small, 1.0, sin_sq))
    angle = 2.0 * jnp.arctan2(sin_half, w)
    # Near zero: angle / sin(angle/2) -> 2 / w (first order).
    factor = jnp.where(small, 2.0 / w, angle / sin_half)
    return v * factor[..., None]


def axis_angle_to_quat(aa: Float[Array, "... 3"]) -> Float[Array, "... 4"]:
    """Axis-angle to unit quaternion (wxyz)."""
    theta_sq = jnp.sum(aa * aa, axis=-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = jnp.sqrt(jnp.where(small, 1.0, theta_sq))
    half_sinc = jnp.where(small, 0.5 - theta_sq / 48.0, jnp.sin(theta / 2) / theta)
    w = jnp.where(small, 1.0 - theta_sq / 8.0, jnp.cos(theta / 2))
    return jnp.concatenate([w[..., None], aa * half_sinc[..., None]], axis=-1)


def quat_wxyz_to_xyzw(q: Float[Array, "... 4"]) -> Float[Array, "... 4"]:
    return jnp.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def quat_xyzw_to_wxyz(q: Float[Array, "... 4"]) -> Float[Array, "... 4"]:
    return jnp.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def quat_multiply(q1: Float[Array, "... 4"], q2: Float[Array, "... 4"]) -> Float[Array, "... 4"]:
    """Hamilton product (wxyz): the rotation `q1 * q2` applies q2 first."""
    w1, x1, y1, z1 = (q1[..., i] for i in range(4))
    w2, x2, y2, z2 = (q2[..., i] for i in range(4))
    return jnp.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quat_slerp(
    q0: Float[Array, "... 4"], q1: Float[Array, "... 4"], t: Float[Array, "..."]
) -> Float[Array, "... 4"]:
    """Spherical linear interpolation of unit quaternions (wxyz) along the shortest arc."""
    t = jnp.asarray(t)[..., None]
    dot = jnp.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = jnp.where(dot < 0, -q1, q1)
    dot = jnp.abs(dot)
    near = dot > 0.9995
    omega = jnp.arccos(jnp.clip(jnp.where(near, 0.5, dot), -1.0, 1.0))
    sin_omega = jnp.sin(omega)
    w0 = jnp.where(near, 1.0 - t, jnp.sin((1.0 - t) * omega) / sin_omega)
    w1 = jnp.where(near, t, jnp.sin(t * omega) / sin_omega)
    return _safe_normalize(w0 * q0 + w1 * q1)


def rot6d_to_matrix(d6: Float[Array, "... 6"]) -> Float[Array, "... 3 3"]:
    """6D (first two rows, pytorch3d) to a rotation matrix by Gram-Schmidt on the rows."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = _safe_normalize(a1)
    b2 = _safe_normalize(a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-2)


def matrix_to_rot6d(R: Float[Array, "... 3 3"]) -> Float[Array, "... 6"]:
    """Rotation matrix to 6D: its first two rows, flattened."""
    return R[..., :2, :].reshape(*R.shape[:-2], 6)


def project_to_so3(M: Float[Array, "... 3 3"]) -> Float[Array, "... 3 3"]:
    """Nearest rotation to an arbitrary 3x3 matrix (SVD, det fixed to +1)."""
    U, _, Vt = jnp.linalg.svd(M)
    d = jnp.sign(jnp.linalg.det(U @ Vt))
    U = U.at[..., :, -1].multiply(d[..., None])
    return U @ Vt
