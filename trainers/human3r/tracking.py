"""Multi-person tracking pieces: SuperGlue's log-space Sinkhorn with padded rows/columns (spec §4.11)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


def log_optimal_transport(scores: Float[Array, "M N"], alpha: float, iters: int,
                                                    valid_m: Bool[Array, "M"], valid_n: Bool[Array, "N"]) -> Float[Array, "M+1 N+1"]:
    """Z of `log_optimal_transport` for the valid m x n block; padded rows/columns hold -inf.

    The marginals use the real m and n (counts of valid entries). The dustbin row/column is the last.
    """
    big_m, big_n = scores.shape
    m = valid_m.sum().astype(scores.dtype)
    n = valid_n.sum().astype(scores.dtype)
    row_ok = jnp.concatenate([valid_m, jnp.ones((1,), bool)])
    col_ok = jnp.concatenate([valid_n, jnp.ones((1,), bool)])
    couplings = jnp.full((big_m + 1, big_n + 1), alpha, scores.dtype).at[:big_m, :big_n].set(scores)
    mask = row_ok[:, None] & col_ok[None, :]
    couplings = jnp.where(mask, couplings, -jnp.inf)
    norm = -jnp.log(m + n)
    log_mu = jnp.where(row_ok, jnp.concatenate([jnp.full((big_m,), norm), (jnp.log(n) + norm)[None]]), 0.0)
    log_nu = jnp.where(col_ok, jnp.concatenate([jnp.full((big_n,), norm), (jnp.log(m) + norm)[None]]), 0.0)

    def body(_, uv):
        u, v = uv
        u = log_mu - jax.nn.logsumexp(couplings + v[None, :], axis=1, where=mask)
        u = jnp.where(row_ok, u, 0.0)
        v = log_nu - jax.nn.logsumexp(couplings + u[:, None], axis=0, where=mask)
        v = jnp.where(col_ok, v, 0.0)
        return u, v

    u, v = jax.lax.fori_loop(0, iters, body, (jnp.zeros(big_m + 1), jnp.zeros(big_n + 1)))
    return jnp.where(mask, couplings + u[:, None] + v[None, :] - norm, -jnp.inf)
