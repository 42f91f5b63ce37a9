"""ViT building blocks (CroCo/DUSt3R flavour): patch embedding, RoPE attention, MLP, encoder block.

Layout: tokens are float[B, N, C] with token t = y * wp + x (row-major over the patch grid);
positions are int32[B, N, 2] holding (y, x). Matmul compute dtype is configurable (`dtype`,
e.g. bfloat16) while parameters stay float32; softmax and LayerNorm run in float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers.nn.layers import conv2d, linear
from trainers.nn.rope2d import apply_rope2d
from trainers.nn.stack import check_remat, scan_layers, stack_modules


def patch_positions(hp: int, wp: int) -> np.ndarray:
    """Token positions of an hp x wp grid: int32[hp * wp, 2] as (y, x), row-major."""
    ys, xs = np.meshgrid(np.arange(hp), np.arange(wp), indexing="ij")
    return np.stack([ys.reshape(-1), xs.reshape(-1)], axis=-1).astype(np.int32)


def multi_head_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """Scaled dot-product attention.

    Float32 inputs take the einsum path (logits and softmax in float32: the parity path).
    Lower-precision inputs (bfloat16) go through `jax.nn.dot_product_attention`, which lets XLA
    pick a fused kernel (cuDNN flash attention on GPU) and never materialises float32 logits.

    Args:
      q: float[B, Nq, H, Dh]; k, v: float[B, Nk, H, Dh].

    Returns:
      float[B, Nq, H, Dh] (dtype of v).
    """
    if q.dtype != jnp.float32 and q.dtype == k.dtype == v.dtype:
        return jax.nn.dot_product_attention(q, k, v)
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


class PatchEmbed(nnx.Module):
    """Conv2d(3 -> E, kernel = stride = patch) then flatten (DUSt3R `PatchEmbedDust3R`, no norm)."""

    def __init__(self, embed_dim: int, patch_size: int = 16, in_chans: int = 3, *,
                 dtype: Any = None, rngs: nnx.Rngs):
        self.patch_size = patch_size
        self.proj = conv2d(in_chans, embed_dim, patch_size, stride=patch_size, padding=0,
                           dtype=dtype, rngs=rngs)

    def __call__(self, img: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """img: float[B, H, W, C] (H, W multiples of p) -> (tokens [B, n, E], pos [B, n, 2])."""
        b, h, w, _ = img.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {(h, w)} is not a multiple of the patch size {p}")
        x = self.proj(img)  # [B, hp, wp, E]
        hp, wp = x.shape[1], x.shape[2]
        tokens = x.reshape(b, hp * wp, x.shape[-1])
        pos = jnp.broadcast_to(jnp.asarray(patch_positions(hp, wp)), (b, hp * wp, 2))
        return tokens, pos


class Mlp(nnx.Module):
    """fc1 -> exact GELU -> fc2 (timm/CroCo `Mlp`, dropout 0)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 *, dtype: Any = None, rngs: nnx.Rngs):
        out_features = out_features or in_features
        self.fc1 = linear(in_features, hidden_features, dtype=dtype, rngs=rngs)
        self.fc2 = linear(hidden_features, out_features, dtype=dtype, rngs=rngs)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class Attention(nnx.Module):
    """Self-attention with a fused qkv projection and RoPE2D on q and k.

    The qkv output channel index is which * C + head * Dh + d (which = q, k, v), as in CroCo.
    """

    def __init__(self, dim: int, num_heads: int, *, rope_base: float | None = 100.0,
                 dtype: Any = None, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.rope_base = rope_base
        self.qkv = linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
        self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jnp.ndarray, pos: jnp.ndarray) -> jnp.ndarray:
        """x: float[B, N, C], pos: int[B, N, 2] -> float[B, N, C]."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.rope_base is not None:
            q = apply_rope2d(q, pos, self.rope_base)
            k = apply_rope2d(k, pos, self.rope_base)
        out = multi_head_attention(q, k, v).reshape(b, n, c)
        return self.proj(out)


class EncoderBlock(nnx.Module):
    """Pre-norm transformer block: x += Attn(LN1(x)); x += Mlp(LN2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, *, eps: float = 1e-6,
                 rope_base: float | None = 100.0, dtype: Any = None, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)
        self.attn = Attention(dim, num_heads, rope_base=rope_base, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=eps, rngs=rngs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)

    def __call__(self, x: jnp.ndarray, pos: jnp.ndarray) -> jnp.ndarray:
        x = x + self.attn(self.norm1(x), pos).astype(x.dtype)
        return x + self.mlp(self.norm2(x)).astype(x.dtype)


class ViTEncoder(nnx.Module):
    """Patch embedding + `depth` encoder blocks + final LayerNorm (CroCo `_encode_image`).

    The blocks are one stacked module (`blocks`, variables with a leading depth axis) run
    under `lax.scan`; `remat` ('none', 'full', 'dots', 'dots_no_batch') rematerialises the
    scanned block in the backward pass.
    """

    def __init__(self, embed_dim: int, depth: int, num_heads: int, *, patch_size: int = 16,
                 mlp_ratio: float = 4.0, eps: float = 1e-6, rope_base: float | None = 100.0,
                 dtype: Any = None, remat: str = "none", rngs: nnx.Rngs):
        self.patch_embed = PatchEmbed(embed_dim, patch_size, dtype=dtype, rngs=rngs)
        self.remat = check_remat(remat)
        self.blocks = stack_modules(
            lambda: EncoderBlock(embed_dim, num_heads, mlp_ratio, eps=eps, rope_base=rope_base,
                                 dtype=dtype, rngs=rngs), depth)
        self.norm = nnx.LayerNorm(embed_dim, epsilon=eps, rngs=rngs)

    def __call__(self, img: jnp.ndarray, *, return_intermediates: bool = False):
        """img: float[B, H, W, 3] in [-1, 1] -> (feat [B, n, E], pos [B, n, 2][, intermediates]).

        Intermediates: `patch_tokens` [B, n, E], `blocks_out` [depth, B, n, E].
        """
        x, pos = self.patch_embed(img)
        x = x.astype(jnp.float32)
        patch_tokens = x

        def body(blocks, x, _):
            x = blocks[0](x, pos)
            return x, (x if return_intermediates else None)

        x, blocks_out = scan_layers((self.blocks,), body, x, remat=self.remat)
        feat = self.norm(x)
        if return_intermediates:
            return feat, pos, {"patch_tokens": patch_tokens, "blocks_out": blocks_out}
        return feat, pos
