"""CroCo decoder: cross-attention block and the two-stack (two-view) decoder of DUSt3R/MASt3R.

DecoderBlock: x += SelfAttn(LN1(x), xpos); y_ = LN_y(y); x += CrossAttn(LN2(x), y_, y_, xpos, ypos);
x += Mlp(LN3(x)). In the two-stack decoder both views update at layer l from the layer l-1 outputs
of both views (a parallel update), and the last layer of both views goes through one final norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers.nn.layers import linear
from trainers.nn.rope2d import apply_rope2d
from trainers.nn.stack import check_remat, scan_layers, stack_modules
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
    """decoder_embed (E -> D), two stacks of `depth` DecoderBlocks, final norm on the last layer.

    Each stack is one stacked module (`blocks1`, `blocks2`: variables with a leading depth axis);
    both run together under one `lax.scan` (layer l of both views reads the layer l-1 outputs
    of both). `remat` as in `ViTEncoder`.
    """

    def __init__(self, enc_dim: int, dim: int, depth: int, num_heads: int, *,
                 mlp_ratio: float = 4.0, eps: float = 1e-6, rope_base: float | None = 100.0,
                 dtype: Any = None, remat: str = "none", rngs: nnx.Rngs):
        self.embed = linear(enc_dim, dim, dtype=dtype, rngs=rngs)
        self.depth = depth
        self.remat = check_remat(remat)

        def make():
            return DecoderBlock(dim, num_heads, mlp_ratio, eps=eps, rope_base=rope_base,
                                dtype=dtype, rngs=rngs)
        self.blocks1 = stack_modules(make, depth)
        self.blocks2 = stack_modules(make, depth)
        self.norm = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)

    def __call__(self, feat1: jnp.ndarray, pos1: jnp.ndarray, feat2: jnp.ndarray,
                 pos2: jnp.ndarray, *, keep1: Sequence[int] | None = None,
                 keep2: Sequence[int] | None = None) -> tuple[list, list]:
        """Runs both stacks.

        Args:
          feat1, feat2: float[B, n, E] encoder outputs of view 1 / view 2.
          pos1, pos2: int[B, n, 2] their token positions.
          keep1, keep2: layer indices (1..depth) whose outputs the caller reads (the last is
            always kept); None keeps every layer (training, parity). Only kept layers are
            stored: the others never leave the scan.

        Returns:
          (tokens1, tokens2): per view the head token list [feat (E), dec_1, ..., dec_depth (D)],
          the last entry after the final norm (float32); entries not kept are None.
        """
        f1 = self.embed(feat1).astype(jnp.float32)
        f2 = self.embed(feat2).astype(jnp.float32)
        if keep1 is None and keep2 is None:
            def body(blocks, carry, _):
                a, b = carry
                a, b = blocks[0](a, b, pos1, pos2), blocks[1](b, a, pos2, pos1)
                return (a, b), (a, b)

            _, (ys1, ys2) = scan_layers((self.blocks1, self.blocks2), body, (f1, f2),
                                        remat=self.remat)
            out1 = [feat1] + [ys1[i] for i in range(self.depth)]
            out2 = [feat2] + [ys2[i] for i in range(self.depth)]
        else:
            out1, out2 = self._kept_layers(f1, pos1, f2, pos2, feat1, feat2, keep1, keep2)
        out1[-1] = self.norm(out1[-1])
        out2[-1] = self.norm(out2[-1])
        return out1, out2

    def _kept_layers(self, f1, pos1, f2, pos2, feat1, feat2, keep1, keep2):
        """The scan writing only the kept layers into small buffers (one spare slot)."""
        depth = self.depth

        def slots(keep):
            kept = sorted({int(k) for k in (keep or ())} - {0} | {depth})
            table = np.full(depth, len(kept), np.int32)  # the spare slot takes the rest
            for s, layer in enumerate(kept):
                table[layer - 1] = s
            return kept, table

        kept1, table1 = slots(keep1)
        kept2, table2 = slots(keep2)
        buf1 = jnp.zeros((len(kept1) + 1,) + f1.shape, f1.dtype)
        buf2 = jnp.zeros((len(kept2) + 1,) + f2.shape, f2.dtype)

        def body(blocks, carry, slot):
            a, b, buf_a, buf_b = carry
            a, b = blocks[0](a, b, pos1, pos2), blocks[1](b, a, pos2, pos1)
            buf_a = jax.lax.dynamic_update_index_in_dim(buf_a, a, slot[0], 0)
            buf_b = jax.lax.dynamic_update_index_in_dim(buf_b, b, slot[1], 0)
            return (a, b, buf_a, buf_b), None

        xs = jnp.asarray(np.stack([table1, table2], axis=-1))
        (_, _, buf1, buf2), _ = scan_layers((self.blocks1, self.blocks2), body,
                                            (f1, f2, buf1, buf2), xs)
        out1 = [feat1] + [None] * depth
        out2 = [feat2] + [None] * depth
        for s, layer in enumerate(kept1):
            out1[layer] = buf1[s]
        for s, layer in enumerate(kept2):
            out2[layer] = buf2[s]
        return out1, out2
