"""MASt3R backbone (`AsymmetricMASt3R`, head 'catmlp+dpt', output 'pts3d+desc24') in Flax NNX.

API:
  model = MASt3R(config.model, rngs=nnx.Rngs(0))     # config from experiments/configs/josh3r.py
  out = model(img1, img2)                             # img*: float32[B, H, W, 3] in [-1, 1], NHWC
  out.view1.pts3d [B, H, W, 3], .conf [B, H, W], .desc [B, H, W, 24], .desc_conf [B, H, W]
  out.view2.*                                         # view 2's pixels in view 1's frame
  out.dec1, out.dec2 [B, n, D]                        # last decoder tokens (after dec_norm)
  out.feat1, out.feat2 [B, n, E], out.pos1, out.pos2 [B, n, 2] (y, x)

H and W must be multiples of 16 and equal for both views. The encoder runs once on both views
(concatenated along the batch, as `_encode_image_pairs` does); the decoder updates both views in
parallel; heads run in float32. `symmetric(img1, img2)` runs the decoder both ways (JOSH's
`symmetric_inference`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from trainers.nn.decoder import TwoStackDecoder
from trainers.nn.heads import CatMLPDPTHead, HeadOutput, postprocess
from trainers.nn.vit import ViTEncoder


def compute_dtype(name: str) -> Any:
    """Maps a config string to the matmul dtype (None = float32 default)."""
    if name in ("float32", "fp32", None):
        return None
    if name in ("bfloat16", "bf16"):
        return jnp.bfloat16
    raise ValueError(f"unknown compute_dtype {name!r}: expected 'float32' or 'bfloat16'")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MASt3ROutput:
    """One pair through MASt3R (shapes in the module docstring)."""

    view1: HeadOutput
    view2: HeadOutput
    dec1: jax.Array
    dec2: jax.Array
    feat1: jax.Array
    feat2: jax.Array
    pos1: jax.Array
    pos2: jax.Array


class MASt3R(nnx.Module):
    """AsymmetricMASt3R: ViT encoder, two-stack cross-attention decoder, two catmlp+dpt heads."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        c = config
        dtype = compute_dtype(c.compute_dtype)
        remat = c.remat
        self.patch_size = c.patch_size
        self.encoder = ViTEncoder(c.enc_embed_dim, c.enc_depth, c.enc_num_heads,
                                  patch_size=c.patch_size, mlp_ratio=c.mlp_ratio, eps=c.enc_ln_eps,
                                  rope_base=c.rope_base, dtype=dtype, remat=remat, rngs=rngs)
        self.decoder = TwoStackDecoder(c.enc_embed_dim, c.dec_embed_dim, c.dec_depth,
                                       c.dec_num_heads, mlp_ratio=c.mlp_ratio, eps=c.enc_ln_eps,
                                       rope_base=c.rope_base, dtype=dtype, remat=remat,
                                       rngs=rngs)
        if max(c.dpt_hooks) != c.dec_depth:
            raise ValueError(f"dpt_hooks {c.dpt_hooks} must end at dec_depth {c.dec_depth}")

        def head():
            return CatMLPDPTHead(c.enc_embed_dim, c.dec_embed_dim, hooks=c.dpt_hooks,
                                 layer_dims=c.dpt_layer_dims, feature_dim=c.dpt_feature_dim,
                                 last_dim=c.dpt_last_dim, desc_dim=c.desc_dim,
                                 hidden_factor=c.local_feat_hidden_factor,
                                 patch_size=c.patch_size, conf_vmin=c.conf_vmin,
                                 desc_conf_vmin=c.desc_conf_vmin, rngs=rngs)
        self.head1 = head()
        self.head2 = head()

    def encode_pair(self, img1: jnp.ndarray, img2: jnp.ndarray, *,
                    return_intermediates: bool = False):
        """Encodes both views with one ViT call on the concatenated batch (as the reference).

        img1, img2: float[B, H, W, 3] -> (feat1 [B, n, E], pos1 [B, n, 2], feat2, pos2).
        """
        if img1.shape != img2.shape:
            raise ValueError(f"both views must have the same shape, got {img1.shape} and "
                             f"{img2.shape}")
        b = img1.shape[0]
        enc = self.encoder(jnp.concatenate([img1, img2], axis=0),
                           return_intermediates=return_intermediates)
        feat, pos = enc[0], enc[1]
        res = (feat[:b], pos[:b], feat[b:], pos[b:])
        return res + (enc[2],) if return_intermediates else res

    def heads(self, tokens1, tokens2, image_hw, *, return_intermediates: bool = False):
        """Runs head1 on view 1's token list and head2 on view 2's (float32)."""
        if not return_intermediates:
            return self.head1(tokens1, image_hw), self.head2(tokens2, image_hw)
        raw1, inter1 = self.head1.raw(tokens1, image_hw, return_intermediates=True)
        raw2, inter2 = self.head2.raw(tokens2, image_hw, return_intermediates=True)
        kw = dict(desc_dim=self.head1.desc_dim, conf_vmin=self.head1.conf_vmin,
                  desc_conf_vmin=self.head1.desc_conf_vmin)
        inter = {"head1_raw": raw1, "head2_raw": raw2,
                 **{f"head1_dpt_{k}": v for k, v in inter1.items()},
                 **{f"head2_dpt_{k}": v for k, v in inter2.items()}}
        return postprocess(raw1, **kw), postprocess(raw2, **kw), inter

    def __call__(self, img1: jnp.ndarray, img2: jnp.ndarray, *,
                 return_intermediates: bool = False):
        """Forward of one (batched) pair; returns MASt3ROutput (+ dict of intermediates)."""
        image_hw = (img1.shape[1], img1.shape[2])
        enc = self.encode_pair(img1, img2, return_intermediates=return_intermediates)
        feat1, pos1, feat2, pos2 = enc[:4]
        tokens1, tokens2 = self.decoder(feat1, pos1, feat2, pos2)
        heads = self.heads(tokens1, tokens2, image_hw, return_intermediates=return_intermediates)
        out = MASt3ROutput(view1=heads[0], view2=heads[1], dec1=tokens1[-1], dec2=tokens2[-1],
                           feat1=feat1, feat2=feat2, pos1=pos1, pos2=pos2)
        if not return_intermediates:
            return out
        inter = {"patch_tokens": enc[4]["patch_tokens"],
                 "enc_blocks_out": enc[4]["blocks_out"],
                 "dec1_layers": jnp.stack(tokens1[1:]), "dec2_layers": jnp.stack(tokens2[1:]),
                 **heads[2]}
        return out, inter

    def symmetric(self, img1: jnp.ndarray, img2: jnp.ndarray):
        """Encoder once, decoder both ways (JOSH `symmetric_inference`).

        Returns (res11, res21, res22, res12): HeadOutputs of view 1 in frame 1, view 2 in frame 1,
        view 2 in frame 2, view 1 in frame 2.
        """
        image_hw = (img1.shape[1], img1.shape[2])
        feat1, pos1, feat2, pos2 = self.encode_pair(img1, img2)
        t1, t2 = self.decoder(feat1, pos1, feat2, pos2)
        u2, u1 = self.decoder(feat2, pos2, feat1, pos1)
        res11, res21 = self.heads(t1, t2, image_hw)
        res22, res12 = self.heads(u2, u1, image_hw)
        return res11, res21, res22, res12
