"""Piecewise interpolation between keys (clamped at the ends): brackets, slerp, lerp, validity.

    lo, hi, alpha = brackets(t_keys, t_query)            # once per pair of time axes
    R_query = slerp_rotations(R_keys, lo, hi, alpha)     # rotation matrices, shortest arc
    x_query = lerp(x_keys, lo, hi, alpha)                # anything else

Used by `geometry.se3_interpolate` (cameras) and by `josh_jax.result` (cameras, intrinsics and
bodies at every video frame). Pure jnp, jit / vmap safe.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from body_models.rotations import matrix_to_quat, quat_slerp, quat_to_matrix


def brackets(
    t_keys: Float[Array, " K"], t_query: Float[Array, " Q"], dtype=jnp.float32
) -> tuple[Int[Array, " Q"], Int[Array, " Q"], Float[Array, " Q"]]:
    """Bracketing keys and weights for piecewise-linear interpolation (clamped at the ends).

    Args:
      t_keys: float[K] strictly increasing key times (K >= 1).
      t_query: float[Q] query times; clamped to [t_keys[0], t_keys[-1]].
      dtype: float dtype of the computation and of `alpha`.

    Returns:
      (lo int[Q], hi int[Q], alpha float[Q]) with value = (1 - alpha) key[lo] + alpha key[hi];
      alpha == 0 exactly at a key (lo = that key) and at the clamped left end, alpha == 1 at the
      clamped right end.
    """
    t_keys = jnp.asarray(t_keys, dtype)
    t_query = jnp.clip(jnp.asarray(t_query, dtype), t_keys[0], t_keys[-1])
    num_keys = t_keys.shape[0]
    if num_keys == 1:
        zeros = jnp.zeros(t_query.shape, jnp.int32)
        return zeros, zeros, jnp.zeros(t_query.shape, dtype)
    hi = jnp.clip(jnp.searchsorted(t_keys, t_query, side="right"), 1, num_keys - 1)
    lo = hi - 1
    alpha = (t_query - t_keys[lo]) / (t_keys[hi] - t_keys[lo])
    return lo, hi, alpha


def slerp_rotations(
    R_keys: Float[Array, "K ... 3 3"], lo: Array, hi: Array, alpha: Float[Array, " Q"]
) -> Float[Array, "Q ... 3 3"]:
    """Slerp between rotation matrices R_keys[lo] and R_keys[hi]; exact at alpha in {0, 1}."""
    q = matrix_to_quat(R_keys)
    extra = (1,) * (R_keys.ndim - 3)
    a = alpha.reshape(alpha.shape + extra)
    R = quat_to_matrix(quat_slerp(q[lo], q[hi], a))
    a = a[..., None, None]
    R = jnp.where(a == 0, R_keys[lo], R)
    return jnp.where(a == 1, R_keys[hi], R)


def lerp(x_keys: Float[Array, "K ..."], lo: Array, hi: Array, alpha: Float[Array, " Q"]
         ) -> Float[Array, "Q ..."]:
    """Linear interpolation between x_keys[lo] and x_keys[hi]."""
    a = alpha.reshape(alpha.shape + (1,) * (x_keys.ndim - 1))
    return (1 - a) * x_keys[lo] + a * x_keys[hi]


def interpolated_valid(valid_keys: Bool[Array, " K"], lo: Array, hi: Array, alpha: Array
                       ) -> Bool[Array, " Q"]:
    """bool[Q]: a query is valid iff the keys it depends on are (both inside a gap)."""
    both = valid_keys[lo] & valid_keys[hi]
    return jnp.where(alpha == 0, valid_keys[lo], jnp.where(alpha == 1, valid_keys[hi], both))
