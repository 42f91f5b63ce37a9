"""Safe norms and the robust gamma loss of MASt3R / JOSH (`docs/method.md` (6.1)).

Everything here is elementwise or reduces over one axis, is jit / vmap / grad safe and has finite
gradients at zero residuals (PyTorch's norm backward returns 0 at a zero vector, `jnp.linalg.norm`
returns NaN there; `safe_norm` reproduces the PyTorch behaviour).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax import Array


def safe_norm(x: Array, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False,
              eps: float = 1e-12) -> Array:
    """Euclidean norm with a finite (zero) gradient at the zero vector.

    Returns `sqrt(sum(x**2))` where `sum(x**2) > eps**2` and exactly 0 elsewhere. The `sqrt` branch
    that is not taken is fed a dummy 1 so that reverse-mode AD never sees `0 * inf`.

    Args:
        x: float[..., D] (any shape).
        axis: axis or axes to reduce (None: all).
        keepdims: keep the reduced axes with size 1.
        eps: norms below `eps` are returned as 0 with gradient 0.

    Returns:
        float[...] the norms (reduced shape).
    """
    return _safe_sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims), eps)


def safe_norm_components(*components: Array, eps: float = 1e-12) -> Array:
    """`safe_norm` of vectors given as one array per component (e.g. x, y, z of [E, M] points).

    Elementwise, so XLA fuses it into the computation of the components (no stacked copy).

    Args:
        *components: float[...] arrays of one shape, the vector's components.
        eps: norms below `eps` are returned as 0 with gradient 0.

    Returns:
        float[...] the norms.
    """
    return _safe_sqrt(sum(c * c for c in components), eps)


def _safe_sqrt(sq: Array, eps: float) -> Array:
    """sqrt(sq) where sq > eps^2, else 0; the untaken branch is fed 1 (finite gradients)."""
    big = sq > eps * eps
    return jnp.where(big, jnp.sqrt(jnp.where(big, sq, 1.0)), 0.0)


def gamma_constant(gamma: float) -> float:
    """c_gamma = (1/gamma)^(1/(gamma-1)), chosen so that d rho/dr (0) = 1; 1/e in the gamma -> 1 limit."""
    gamma = float(gamma)
    if gamma <= 0:
        raise ValueError(f"gamma_loss: gamma must be > 0, found {gamma}")
    if abs(gamma - 1.0) < 1e-9:
        return math.exp(-1.0)
    return (1.0 / gamma) ** (1.0 / (gamma - 1.0))


def gamma_loss(r: Array, gamma: float) -> Array:
    """Robust loss rho_gamma(r) = (r + c)^gamma - c^gamma, c = (1/gamma)^(1/(gamma-1)).

    rho(0) = 0 and rho'(0) = 1 for every gamma; gamma > 1 grows slightly faster than L1 (1.1 in
    JOSH stage 1), gamma < 1 is sub-linear and robust to outliers (0.4 in stage 2). gamma = 1 is
    plain L1 (`r`). Constants: gamma = 1.1 -> c = 0.385543, c^gamma = 0.350494; gamma = 0.4 ->
    c = 0.217153, c^gamma = 0.542884.

    Args:
        r: float[...] non-negative residual norms. Negative values are clamped to 0 (gradient 0),
            so a stray sign never produces NaN.
        gamma: exponent (> 0). Normally a Python float (static under jit; gamma = 1 handled
            exactly); a traced scalar also works (e.g. vmap over gamma), but must not be 1.

    Returns:
        float[...] rho_gamma(r), same shape as `r`.
    """
    r = jnp.asarray(r)
    r = jnp.where(r >= 0, r, 0.0)  # not jnp.maximum: its gradient at the tie r = 0 is 1/2
    if isinstance(gamma, jax.core.Tracer):
        gamma = jnp.asarray(gamma, r.dtype)
        c = jnp.power(1.0 / gamma, 1.0 / (gamma - 1.0))
        return jnp.power(r + c, gamma) - jnp.power(c, gamma)
    gamma = float(gamma)
    c = gamma_constant(gamma)
    if abs(gamma - 1.0) < 1e-9:
        return r
    # c^gamma in r's dtype, through the same op, so that rho(0) is exactly 0 in float32.
    c = jnp.asarray(c, r.dtype)
    return jnp.power(r + c, gamma) - jnp.power(c, gamma)


def masked_mean(values: Array, weights: Array) -> Array:
    """sum(w * v) / sum(w), and 0 when sum(w) == 0 (fully masked); gradient-safe.

    Args:
        values: float[...] per-element values.
        weights: float[...] or bool[...] non-negative weights, broadcastable to `values`
            (0 = padding).

    Returns:
        float[] scalar.
    """
    weights = jnp.broadcast_to(jnp.asarray(weights, values.dtype), values.shape)
    # Padding may hold garbage (even NaN / inf): zero it before multiplying so it cannot leak.
    values = jnp.where(weights > 0, values, 0.0)
    total = jnp.sum(weights)
    num = jnp.sum(weights * values)
    return jnp.where(total > 0, num / jnp.where(total > 0, total, 1.0), 0.0)


def weighted_sum(terms: Mapping[str, Array], weights: Mapping[str, float] | None = None) -> Array:
    """sum_k weights.get(k, 1) * terms[k]. Raises if `weights` names a term that does not exist.

    Args:
        terms: dict name -> float[] scalar (or same-shaped arrays).
        weights: optional dict name -> float; missing names get weight 1.

    Returns:
        float[] the weighted sum (0.0 for no terms).
    """
    weights = {} if weights is None else weights
    unknown = set(weights) - set(terms)
    if unknown:
        raise ValueError(f"weighted_sum: weights for unknown terms {sorted(unknown)}; "
                         f"terms are {sorted(terms)}")
    total = jnp.zeros(())
    for k, v in terms.items():
        total = total + weights.get(k, 1.0) * v
    return total
