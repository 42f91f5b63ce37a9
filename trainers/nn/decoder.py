"""CroCo decoder: cross-attention block and the two-stack (two-view) decoder of DUSt3R/MASt3R.

DecoderBlock: x += SelfAttn(LN1(x), xpos); y_ = LN_y(y); x += CrossAttn(LN2(x), y_, y_, xpos, ypos);
x += Mlp(LN3(x)). In the two-stack decoder both views update at layer l from the layer l-1 outputs
of both views (a parallel update), and the last layer of both views goes through one final norm.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from trainers.nn.layers import linear
from trainers.nn.rope2d import apply_rope2d
from trainers.nn.vit import Attention, Mlp, multi_head_attention


class CrossAttention(nnx.Module):
    """Cross-attention with separate q/k/v projections and RoPE2D on q (qpos) and k (kpos)."""

    def __init__(self, dim: int, num_heads: int, *, rope_base: float | None = 100.0,
                 dtype: Any = None, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.rope_base = rope_base
        self.projq = linear(dim, dim, dtype=dtype, rngs=rngs)
        self.projk = linear(dim, dim, dtype=dtype, rngs=rngs)
        self.projv = linear(dim, dim, dtype=dtype, rngs=rngs)
        self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, query: jnp.ndarray, key: jnp.ndarray, value: jnp.ndarray,
                 qpos: jnp.ndarray, kpos: jnp.ndarray) -> jnp.ndarray:
        """query: float[B, Nq, C]; key, value: float[B, Nk, C]; qpos/kpos int[B, N*, 2]."""
        b, nq, c = query.shape
        nk = key.shape[1]
        dh = c // self.num_heads
        q = self.projq(query).reshape(b, nq, self.num_heads, dh)
        k = self.projk(key).reshape(b, nk, self.num_heads, dh)
        v = self.projv(value).reshape(b, nk, self.num_heads, dh)
        if self.rope_base is not None:
            q = apply_rope2d(q, qpos, self.rope_base)
            k = apply_rope2d(k, kpos, self.rope_base)
        return self.proj(multi_head_attention(q, k, v).reshape(b, nq, c))


class DecoderBlock(nnx.Module):
    """CroCo DecoderBlock (norm_mem=True): self-attention, cross-attention to y, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, *, eps: float = 1e-6,
                 rope_base: float | None = 100.0, dtype: Any = None, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)
        self.attn = Attention(dim, num_heads, rope_base=rope_base, dtype=dtype, rngs=rngs)
        self.cross_attn = CrossAttention(dim, num_heads, rope_base=rope_base, dtype=dtype,
                                         rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)
        self.norm3 = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)
        self.norm_y = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)

    def __call__(self, x: jnp.ndarray, y: jnp.ndarray, xpos: jnp.ndarray,
                 ypos: jnp.ndarray) -> jnp.ndarray:
        """x: float[B, Nx, C] tokens to update; y: float[B, Ny, C] other view -> float[B, Nx, C]."""
        x = x + self.attn(self.norm1(x), xpos).astype(x.dtype)
        y_ = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), y_, y_, xpos, ypos).astype(x.dtype)
        return x + self.mlp(self.norm3(x)).astype(x.dtype)


class TwoStackDecoder(nnx.Module):
    """decoder_embed (E -> D), two stacks of `depth` DecoderBlocks, final norm on the last layer."""

    def __init__(self, enc_dim: int, dim: int, depth: int, num_heads: int, *,
                 mlp_ratio: float = 4.0, eps: float = 1e-6, rope_base: float | None = 100.0,
                 dtype: Any = None, rngs: nnx.Rngs):
        self.embed = linear(enc_dim, dim, dtype=dtype, rngs=rngs)
        def make():
            return nnx.List([
                DecoderBlock(dim, num_heads, mlp_ratio, eps=eps, rope_base=rope_base,
                             dtype=dtype, rngs=rngs) for _ in range(depth)])
        self.blocks1 = make()
        self.blocks2 = make()
        self.norm = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)

    def __call__(self, feat1: jnp.ndarray, pos1: jnp.ndarray, feat2: jnp.ndarray,
                 pos2: jnp.ndarray) -> tuple[list[jnp.ndarray], list[jnp.ndarray]]:
        """Runs both stacks.

        Args:
          feat1, feat2: float[B, n, E] encoder outputs of view 1 / view 2.
          pos1, pos2: int[B, n, 2] their token positions.

        Returns:
          (tokens1, tokens2): per view the head token list [feat (E), dec_1, ..., dec_depth (D)],
          the last entry after the final norm; depth + 1 float32 arrays each.
        """
        f1 = self.embed(feat1).astype(jnp.float32)
        f2 = self.embed(feat2).astype(jnp.float32)
        out1, out2 = [feat1], [feat2]
        for blk1, blk2 in zip(self.blocks1, self.blocks2, strict=True):
            f1, f2 = blk1(f1, f2, pos1, pos2), blk2(f2, f1, pos2, pos1)
            out1.append(f1)
            out2.append(f2)
        out1[-1] = self.norm(out1[-1])
        out2[-1] = self.norm(out2[-1])
        return out1, out2
