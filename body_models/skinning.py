"""Linear blend skinning of one body: a hand-written VJP and a cache-blocked batch rule.

    v'_v = sum_j w_vj A_j [v_v; 1]        A_j: float[4, 3] = (columns of R_j, translation)

`skin(weights, A, v)` is this product for ONE body, written so that its gradient is cheap:

- The forward blends the joint transforms into per-vertex transforms `T = W A` (one GEMM; `T` is
  channel-first `[4, 3, V]` so the GEMM writes it without a transpose) and applies them
  elementwise.
- The backward is written by hand from the same pieces: the cotangent of `T` is the outer product
  `[v; 1] g^T` (`[12, V]`), `dA = dT W` is one GEMM, `dv = T_rot g` is elementwise, and `T_rot`
  (9 of the 12 rows) is recomputed rather than kept. Autodiff of the forward instead materialises `T` and its cotangent
  in several transposed layouts and reduces over the three channels with slow small reductions.
- Under `vmap` both passes run through `custom_vmap` rules that, on CPU, walk the batch in blocks
  of about 16 SMPL-sized bodies (`BLOCK_ELEMENTS`, `lax.map`), so each block's `T` and `dT` (0.66 MB
  per body for 6890 vertices) stay in cache instead of streaming a batch-sized `[B, 12, V]` through
  memory several times; on GPU/TPU the whole batch is one block. Nested `vmap` works (the outer axis is
  batched through the block loop).

Only reverse mode is defined (`jax.grad`, `jax.vjp`); forward mode (`jax.jvp`, `jacfwd`) through
`skin` raises, as for any `jax.custom_vjp`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Float

# Size of a block of the CPU batch loop, in elements of the largest per-body input (v: [V, 3]):
# 16 SMPL bodies, whose T and dT (0.66 MB per body) stay in cache. Small bodies (e.g. JOSH's subset
# of used vertices) fit a whole batch in one block and skip the loop.
BLOCK_ELEMENTS = 16 * 6890 * 3


def _blend(weights: Float[Array, "V J"], A: Float[Array, "J K 3"]) -> Float[Array, "K 3 V"]:
    """Per-vertex transforms T[k, c, v] = sum_j A[j, k, c] W[v, j] (channel-first; K = 4 or 3)."""
    return jnp.einsum("jkc,vj->kcv", A, weights)


def _skin_one(weights, A, v):
    T, x = _blend(weights, A), v.T
    return (T[0] * x[0] + T[1] * x[1] + T[2] * x[2] + T[3]).T


def _skin_vjp_one(weights, A, v, g):
    """Cotangents (weights, A, v) of `_skin_one` for the output cotangent g: float[V, 3]."""
    R, x, gT = _blend(weights, A[:, :3]), v.T, g.T  # rotation rows of T only: [3, 3, V]
    dT = jnp.concatenate([x[0] * gT, x[1] * gT, x[2] * gT, gT])  # [12, V], rows (k, c)
    d_weights = jnp.einsum("rv,jr->vj", dT, A.reshape(A.shape[0], 12))
    dA = jnp.einsum("rv,vj->rj", dT, weights).T.reshape(A.shape)
    dv = jnp.stack([R[k, 0] * gT[0] + R[k, 1] * gT[1] + R[k, 2] * gT[2] for k in range(3)], -1)
    return d_weights, dA, dv


def _map_blocks(fn, in_batched, args, size):
    """vmap of `fn` over the batched args (axis 0); on CPU one block (BLOCK_ELEMENTS) at a time."""
    whole = jax.vmap(fn, tuple(0 if b else None for b in in_batched))
    per_body = max(math.prod(x.shape[1:]) for x, b in zip(args, in_batched, strict=True) if b)
    num_blocks = -(-size // max(1, BLOCK_ELEMENTS // per_body))
    if num_blocks <= 1:
        return whole(*args)
    block = -(-size // num_blocks)  # balanced blocks; the last one is zero-padded
    pad = num_blocks * block - size

    def blocked(*args):
        def to_blocks(x):
            x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)) if pad else x
            return x.reshape(num_blocks, block, *x.shape[1:])

        blocks = {i: to_blocks(x) for i, x in enumerate(args) if in_batched[i]}
        one_block = lambda xs: whole(*[xs.get(i, x) for i, x in enumerate(args)])
        out = lax.map(one_block, blocks)
        return jax.tree.map(lambda y: y.reshape(num_blocks * block, *y.shape[2:])[:size], out)

    return lax.platform_dependent(*args, cpu=blocked, default=whole)


def _with_block_rule(fn):
    """`fn` (one body) whose vmap runs `_map_blocks`; every output is batched."""
    wrapped = custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        out = _map_blocks(fn, in_batched, args, axis_size)
        return out, jax.tree.map(lambda _: True, out)

    return wrapped


_skin_fwd_kernel = _with_block_rule(_skin_one)
_skin_bwd_kernel = _with_block_rule(_skin_vjp_one)


@jax.custom_vjp
def skin(
    weights: Float[Array, "V J"], A: Float[Array, "J 4 3"], v: Float[Array, "V 3"]
) -> Float[Array, "V 3"]:
    """Blend-skins ONE body: out[v] = sum_j weights[v, j] (A[j, :3].T @ v[v] + A[j, 3]).

    Args:
      weights: float[V, J] skinning weights.
      A: float[J, 4, 3] joint transforms: rows 0..2 are the columns of R_j, row 3 the translation.
      v: float[V, 3] rest-frame (pose-corrected) vertices.

    Returns:
      float[V, 3] skinned vertices.
    """
    return _skin_fwd_kernel(weights, A, v)


def _skin_fwd(weights, A, v):
    return _skin_fwd_kernel(weights, A, v), (weights, A, v)


def _skin_bwd(residuals, g):
    return _skin_bwd_kernel(*residuals, g)


skin.defvjp(_skin_fwd, _skin_bwd)
