"""CUT3R transformer layers: attention with RoPE2D (optionally float16-rounded q/k), croco
encoder `Block`, dust3r `DecoderBlock` (which also reports the mean pre-softmax cross-attention
logit per query, TTT3R's gate), `ConditionModulationBlock`, and stacked (scanned) layer stacks.

Tokens are float[B, N, C]; positions int[B, N, 2] as (y, x). A stack of n identical blocks is one
module whose parameters carry a leading layer axis (`stack_modules`) and is applied with
`jax.lax.scan` (`scan_stack`): the compiled program holds one block, whatever the depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from trainers.nn.layers import linear
from trainers.nn.rope2d import apply_rope2d
from trainers.nn.vit import Mlp


def stack_modules(make: Callable[[], nnx.Module], n: int) -> nnx.Module:
    """n modules from `make()` merged into one whose every variable has a leading axis of n.

    Under tracing (`nnx.eval_shape`: the abstract build before loading a checkpoint) one module
    is made and broadcast: the values are placeholders and the trace stays small (each extra
    random draw makes NNX's key bookkeeping slower, quadratically in the trace size).
    """
    first = make()
    graphdef, state = nnx.split(first)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(state)):
        return nnx.merge(graphdef, jax.tree.map(
            lambda x: jnp.broadcast_to(x, (n,) + x.shape), state))
    states = [state] + [nnx.state(make()) for _ in range(n - 1)]
    return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *states))


def scan_stack(stacks: tuple[nnx.Module, ...], body: Callable, carry: Any):
    """lax.scan of `body(blocks, carry) -> (carry, y)` over the layers of equally deep stacks.

    Returns (final carry, ys stacked on a leading layer axis).
    """
    splits = [nnx.split(s) for s in stacks]
    graphdefs = [g for g, _ in splits]
    states = tuple(s for _, s in splits)

    def step(c, layer_states):
        blocks = [nnx.merge(g, s) for g, s in zip(graphdefs, layer_states, strict=True)]
        return body(blocks, c)

    return jax.lax.scan(step, carry, states)


def rope_f16(t: jax.Array, pos: jax.Array, base: float) -> jax.Array:
    """RoPE2D as croco's CUDA kernel runs it on float16 q/k: round to f16, rotate in f32, round."""
    t16 = t.astype(jnp.float16).astype(jnp.float32)
    return apply_rope2d(t16, pos, base).astype(jnp.float16).astype(t.dtype)


def _rope(t, pos, base, fp16):
    if base is None:
        return t
    return rope_f16(t, pos, base) if fp16 else apply_rope2d(t, pos, base)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None) -> jax.Array:
    """softmax(q k^T / sqrt(Dh)) v per head. q: [B, Nq, H, Dh]; k, v: [B, Nk, H, Dh];
    key_mask: bool[B, Nk] (False keys get no weight) or None. Returns [B, Nq, H, Dh]."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    return jax.nn.dot_product_attention(q, k, v, mask=mask)


def mean_logit(q: jax.Array, k: jax.Array, key_mask: jax.Array | None) -> jax.Array:
    """Mean over heads and (valid) keys of the pre-softmax logits q.k/sqrt(Dh): float32[B, Nq].

    Exact by linearity: the mean over keys of q.k_j is q.(mean_j k_j).
    """
    k = k.astype(jnp.float32)
    if key_mask is None:
        k_mean = jnp.mean(k, axis=1)
    else:
        w = key_mask.astype(jnp.float32)[:, :, None, None]
        k_mean = jnp.sum(k * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)
    logits = jnp.einsum("bqhd,bhd->bqh", q.astype(jnp.float32), k_mean,
                        precision=jax.lax.Precision.HIGHEST)
    return jnp.mean(logits, axis=-1) * q.shape[-1] ** -0.5


class SelfAttention(nnx.Module):
    """Fused-qkv self-attention (croco `Attention`), RoPE2D on q and k unless rope_base is None."""

    def __init__(self, dim: int, num_heads: int, *, rope_base: float | None, fp16_rope: bool,
                 dtype: Any, rngs: nnx.Rngs):
        self.num_heads = num_heads
        self.rope_base = rope_base
        self.fp16_rope = fp16_rope
        self.qkv = linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
        self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, pos: jax.Array, key_mask: jax.Array | None = None):
        """x: float[B, N, C]; pos: int[B, N, 2]; key_mask: bool[B, N] or None -> [B, N, C]."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q = _rope(q, pos, self.rope_base, self.fp16_rope)
        k = _rope(k, pos, self.rope_base, self.fp16_rope)
        return self.proj(attend(q, k, v, key_mask).reshape(b, n, c))


class CrossAttention(nnx.Module):
    """dust3r `CrossAttention`: separate q/k/v projections, RoPE2D (float32)."""

    def __init__(self, dim: int, num_heads: int, *, rope_base: float | None, dtype: Any,
                 rngs: nnx.Rngs):
        self.num_heads = num_heads
        self.rope_base = rope_base
        self.projq = linear(dim, dim, dtype=dtype, rngs=rngs)
        self.projk = linear(dim, dim, dtype=dtype, rngs=rngs)
        self.projv = linear(dim, dim, dtype=dtype, rngs=rngs)
        self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, y: jax.Array, xpos: jax.Array, ypos: jax.Array,
                 key_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """x: float[B, Nx, C] queries; y: float[B, Ny, C] keys/values (already normed).

        Returns (out float[B, Nx, C], mean pre-softmax logit per query float32[B, Nx]).
        """
        b, nx, c = x.shape
        ny = y.shape[1]
        dh = c // self.num_heads
        q = _rope(self.projq(x).reshape(b, nx, self.num_heads, dh), xpos, self.rope_base, False)
        k = _rope(self.projk(y).reshape(b, ny, self.num_heads, dh), ypos, self.rope_base, False)
        v = self.projv(y).reshape(b, ny, self.num_heads, dh)
        out = self.proj(attend(q, k, v, key_mask).reshape(b, nx, c))
        return out, mean_logit(q, k, key_mask)


def _ln(dim: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)


class Block(nnx.Module):
    """croco `Block`: x += Attn(LN1(x), pos); x += Mlp(LN2(x)). Residual stream float32."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float, eps: float,
                 rope_base: float | None, fp16_rope: bool, dtype: Any, rngs: nnx.Rngs):
        self.norm1 = _ln(dim, eps, rngs)
        self.attn = SelfAttention(dim, num_heads, rope_base=rope_base, fp16_rope=fp16_rope,
                                  dtype=dtype, rngs=rngs)
        self.norm2 = _ln(dim, eps, rngs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, pos: jax.Array) -> jax.Array:
        x = x + self.attn(self.norm1(x), pos).astype(x.dtype)
        return x + self.mlp(self.norm2(x)).astype(x.dtype)


class DecoderBlock(nnx.Module):
    """dust3r `DecoderBlock` (norm_mem): self-attn, cross-attn to LN_y(y), MLP."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float, eps: float,
                 rope_base: float | None, dtype: Any, rngs: nnx.Rngs):
        self.norm1 = _ln(dim, eps, rngs)
        self.attn = SelfAttention(dim, num_heads, rope_base=rope_base, fp16_rope=False,
                                  dtype=dtype, rngs=rngs)
        self.cross_attn = CrossAttention(dim, num_heads, rope_base=rope_base, dtype=dtype,
                                         rngs=rngs)
        self.norm2 = _ln(dim, eps, rngs)
        self.norm3 = _ln(dim, eps, rngs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)
        self.norm_y = _ln(dim, eps, rngs)

    def __call__(self, x: jax.Array, y: jax.Array, xpos: jax.Array, ypos: jax.Array, *,
                 x_mask: jax.Array | None = None,
                 y_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """x: float[B, Nx, C] stream to update; y: float[B, Ny, C] the other stream.

        x_mask / y_mask: bool[B, Nx] / bool[B, Ny] valid tokens (None = all): invalid x tokens are
        no keys of the self-attention, invalid y tokens no keys of the cross-attention.
        Returns (x', mean cross-attention logit per x token float32[B, Nx]).
        """
        x = x + self.attn(self.norm1(x), xpos, x_mask).astype(x.dtype)
        y_ = self.norm_y(y)
        cross, logit = self.cross_attn(self.norm2(x), y_, xpos, ypos, y_mask)
        x = x + cross.astype(x.dtype)
        return x + self.mlp(self.norm3(x)).astype(x.dtype), logit


class ModLN(nnx.Module):
    """LN(x) * (1 + scale) + shift with [shift, scale] = Linear(SiLU(mod)) (`norm` / `mlp.1`)."""

    def __init__(self, dim: int, *, eps: float, dtype: Any, rngs: nnx.Rngs):
        self.norm = _ln(dim, eps, rngs)
        self.mlp = linear(dim, 2 * dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mod: jax.Array) -> jax.Array:
        """x: float[B, N, C]; mod: float[B, C] -> float[B, N, C]."""
        shift, scale = jnp.split(self.mlp(jax.nn.silu(mod)).astype(jnp.float32), 2, axis=-1)
        return self.norm(x) * (1.0 + scale[:, None]) + shift[:, None]


class ConditionModulationBlock(nnx.Module):
    """x += Attn(ModLN1(x, mod), pos); x += Mlp(ModLN2(x, mod)) (RoPE float32)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float, eps: float,
                 rope_base: float, dtype: Any, rngs: nnx.Rngs):
        self.norm1 = ModLN(dim, eps=eps, dtype=dtype, rngs=rngs)
        self.attn = SelfAttention(dim, num_heads, rope_base=rope_base, fp16_rope=False,
                                  dtype=dtype, rngs=rngs)
        self.norm2 = ModLN(dim, eps=eps, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mod: jax.Array, pos: jax.Array) -> jax.Array:
        x = x + self.attn(self.norm1(x, mod), pos).astype(x.dtype)
        return x + self.mlp(self.norm2(x, mod)).astype(x.dtype)
