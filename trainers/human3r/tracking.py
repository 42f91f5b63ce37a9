"""Multi-person tracking pieces: SuperGlue's log-space Sinkhorn with padded rows/columns (spec §4.11)."""

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def log_optimal_transport(scores: Float[Array, "M N"], alpha: float, iters: int,
                          valid_m: Bool[Array, " M"], valid_n: Bool[Array, " N"]
                          ) -> Float[Array, "M+1 N+1"]:
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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrackMemory:
    """Tracking memory with static shapes (K slots).

    tokens: Float[Array, "K D"] refined human tokens of the remembered people.
    ids: Int[Array, "K"] their track ids (-1 in empty slots).
    valid: Bool[Array, "K"] slot in use.
    max_id: Int[Array, ""] the largest id given so far (-1 before the first person).
    """

    tokens: jax.Array
    ids: jax.Array
    valid: jax.Array
    max_id: jax.Array


def init_memory(slots: int, dim: int) -> TrackMemory:
    """An empty memory with `slots` entries of width `dim`."""
    return TrackMemory(tokens=jnp.zeros((slots, dim), jnp.float32), ids=jnp.full((slots,), -1, jnp.int32),
                       valid=jnp.zeros((slots,), bool), max_id=jnp.array(-1, jnp.int32))


def _mutual_matches(z_mn: Float[Array, "M N"], valid_m, valid_n, threshold: float):
    """SuperGlue's mutual argmax matching; returns (valid0 (M,), valid1 (N,), i1 (N,))."""
    mask = valid_m[:, None] & valid_n[None, :]
    p = jnp.where(mask, z_mn, -jnp.inf)
    i0 = jnp.argmax(p, axis=1)
    i1 = jnp.argmax(p, axis=0)
    mutual0 = valid_m & (i1[i0] == jnp.arange(p.shape[0]))
    mutual1 = valid_n & (i0[i1] == jnp.arange(p.shape[1]))
    ms0 = jnp.where(mutual0, jnp.exp(jnp.max(p, axis=1)), 0.0)
    valid0 = mutual0 & (ms0 > threshold)
    valid1 = mutual1 & valid0[i1]
    return valid0, valid1, i1


def track_step(memory: TrackMemory, tokens: Float[Array, "P D"], valid: Bool[Array, " P"], *,
               alpha: float = -10.0, iters: int = 20,
               match_threshold: float = 0.2) -> tuple[TrackMemory, Int[Array, " P"]]:
    """One frame of Human3R tracking (spec §4.11): ids (P,) (-1 where not valid) and the new memory.

    Matched people keep their id; the others get max_id+1, max_id+2, ... in slot order. The new
    memory is [current people ; unmatched remembered people] (the latter never dropped, so an id can
    return later); with more than K entries the oldest unmatched ones fall off the end. A frame with
    nobody leaves the memory unchanged.
    """
    has_mem = memory.valid.any()
    diff = memory.tokens[:, None, :] - tokens[None, :, :]
    scores = -jnp.sqrt(jnp.maximum(jnp.sum(diff * diff, -1), 0.0))
    z = log_optimal_transport(scores, alpha, iters, memory.valid & has_mem, valid)
    valid0, valid1, i1 = _mutual_matches(z[:-1, :-1], memory.valid, valid, match_threshold)
    valid0, valid1 = valid0 & has_mem, valid1 & has_mem
    new = valid & ~valid1
    new_ids = memory.max_id + jnp.cumsum(new.astype(jnp.int32))
    ids = jnp.where(valid1, memory.ids[i1], jnp.where(new, new_ids, -1)).astype(jnp.int32)
    max_id = jnp.maximum(memory.max_id, jnp.max(jnp.where(valid, ids, -1)))
    keep_old = memory.valid & ~valid0
    all_valid = jnp.concatenate([valid, keep_old])
    order = jnp.argsort(jnp.where(all_valid, 0, 1), stable=True)[:memory.valid.shape[0]]
    all_tokens = jnp.concatenate([tokens, memory.tokens])[order]
    all_ids = jnp.concatenate([ids, memory.ids])[order]
    slot_valid = all_valid[order]
    updated = TrackMemory(tokens=jnp.where(slot_valid[:, None], all_tokens, 0.0),
                          ids=jnp.where(slot_valid, all_ids, -1), valid=slot_valid, max_id=max_id)
    anyone = valid.any()
    memory = jax.tree.map(lambda a, b: jnp.where(anyone, a, b), updated, memory)
    return memory, ids
