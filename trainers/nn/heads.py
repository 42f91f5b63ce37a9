"""MASt3R output heads: local-feature MLP with pixel shuffle, output activations, and the
`catmlp+dpt` head (DPT for points + confidence, MLP for descriptors + descriptor confidence).

Heads run in float32 (the reference casts decoder tokens to float before the heads).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from trainers.nn.dpt import DPTHead
from trainers.nn.vit import Mlp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HeadOutput:
    """Per-view MASt3R head output (NHWC).

    Attributes:
      pts3d: float32[B, H, W, 3] pointmap (view 1's frame for both heads, DUSt3R convention).
      conf: float32[B, H, W] point confidence (>= conf_vmin).
      desc: float32[B, H, W, desc_dim] unit-norm local descriptors.
      desc_conf: float32[B, H, W] descriptor confidence (>= desc_conf_vmin).
    """

    pts3d: jax.Array
    conf: jax.Array
    desc: jax.Array
    desc_conf: jax.Array


def _safe_norm(x: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """L2 norm with a finite gradient at 0 (keepdims)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=True)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def reg_dense_depth_exp(xyz: jnp.ndarray) -> jnp.ndarray:
    """('exp', -inf, inf): xyz / max(|xyz|, 1e-8) * expm1(|xyz|). xyz: float[..., 3]."""
    d = _safe_norm(xyz)
    return xyz / jnp.maximum(d, 1e-8) * jnp.expm1(d)


def reg_dense_conf_exp(x: jnp.ndarray, vmin: float, vmax: float = float("inf")) -> jnp.ndarray:
    """('exp', vmin, vmax): vmin + exp(x) clipped at vmax - vmin."""
    return vmin + jnp.minimum(jnp.exp(x), vmax - vmin)


def postprocess(raw: jnp.ndarray, *, desc_dim: int, conf_vmin: float = 1.0,
                desc_conf_vmin: float = 0.0) -> HeadOutput:
    """raw: float[B, H, W, 4 + desc_dim + 1] (xyz, conf, desc, desc_conf logits) -> HeadOutput."""
    desc = raw[..., 4:4 + desc_dim]
    return HeadOutput(
        pts3d=reg_dense_depth_exp(raw[..., 0:3]),
        conf=reg_dense_conf_exp(raw[..., 3], conf_vmin),
        desc=desc / jnp.maximum(_safe_norm(desc), 1e-30),
        desc_conf=reg_dense_conf_exp(raw[..., 4 + desc_dim], desc_conf_vmin),
    )


def pixel_shuffle_tokens(x: jnp.ndarray, hp: int, wp: int, patch: int) -> jnp.ndarray:
    """x: float[B, hp*wp, C*p*p] -> float[B, hp*p, wp*p, C].

    output[b, p*y+i, p*x+j, c] = x[b, y*wp+x, c*p*p + i*p + j] (torch pixel_shuffle layout).
    """
    b = x.shape[0]
    c = x.shape[-1] // (patch * patch)
    x = x.reshape(b, hp, wp, c, patch, patch)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(b, hp * patch, wp * patch, c)


class CatMLPDPTHead(nnx.Module):
    """MASt3R `Cat_MLP_LocalFeatures_DPT_Pts3d` head for one view.

    `dpt` maps the token list to 4 channels (xyz, conf); `local_features` (Mlp on
    concat(enc_out, dec_last), width idim -> hidden_factor*idim -> (desc_dim+1)*p^2) is pixel
    shuffled to desc_dim descriptors + 1 confidence logit per pixel.
    """

    def __init__(self, enc_dim: int, dec_dim: int, *, hooks: Sequence[int],
                 layer_dims: Sequence[int], feature_dim: int, last_dim: int, desc_dim: int = 24,
                 hidden_factor: float = 4.0, patch_size: int = 16, conf_vmin: float = 1.0,
                 desc_conf_vmin: float = 0.0, rngs: nnx.Rngs):
        self.patch_size = patch_size
        self.desc_dim = desc_dim
        self.conf_vmin = conf_vmin
        self.desc_conf_vmin = desc_conf_vmin
        dim_tokens = [enc_dim, dec_dim, dec_dim, dec_dim]
        self.dpt = DPTHead(dim_tokens, layer_dims, feature_dim, last_dim, 4, hooks, patch_size,
                           rngs=rngs)
        idim = enc_dim + dec_dim
        self.local_features = Mlp(idim, int(hidden_factor * idim),
                                  (desc_dim + 1) * patch_size ** 2, rngs=rngs)

    def raw(self, tokens: Sequence[jnp.ndarray], image_hw: tuple[int, int], *,
            return_intermediates: bool = False):
        """Pre-activation output float32[B, H, W, 4 + desc_dim + 1] (+ DPT intermediates)."""
        h, w = image_hw
        p = self.patch_size
        dpt = self.dpt(tokens, image_hw, return_intermediates=return_intermediates)
        dpt_out, inter = dpt if return_intermediates else (dpt, None)
        cat = jnp.concatenate([tokens[0].astype(jnp.float32), tokens[-1].astype(jnp.float32)],
                              axis=-1)
        local = pixel_shuffle_tokens(self.local_features(cat), h // p, w // p, p)
        out = jnp.concatenate([dpt_out, local], axis=-1)
        return (out, inter) if return_intermediates else out

    def pts3d_chunked(self, tokens: Mapping[int, jnp.ndarray], image_hw: tuple[int, int],
                      chunk: int = 0) -> jnp.ndarray:
        """Pointmap only (DPT, no descriptors): float32[B, H, W, 3].

        tokens: hook index -> float[B, n, C_l] (only the DPT hooks are read). chunk > 0 runs
        the DPT `chunk` pairs at a time under `lax.map` (padding the last chunk), so the
        full-resolution temporaries are those of `chunk` pairs whatever B is.
        """
        hooks = self.dpt.hooks

        def run(ts):
            return reg_dense_depth_exp(self.dpt(dict(zip(hooks, ts, strict=True)), image_hw)[..., 0:3])

        ts = [tokens[k] for k in hooks]
        b = ts[0].shape[0]
        if chunk <= 0 or b <= chunk:
            return run(ts)
        n = -(-b // chunk)
        pad = n * chunk - b
        ts = [jnp.concatenate([t, jnp.repeat(t[-1:], pad, 0)]) if pad else t for t in ts]
        ts = [t.reshape((n, chunk) + t.shape[1:]) for t in ts]
        out = jax.lax.map(run, ts)
        return out.reshape((n * chunk,) + out.shape[2:])[:b]

    def __call__(self, tokens: Sequence[jnp.ndarray], image_hw: tuple[int, int]) -> HeadOutput:
        return postprocess(self.raw(tokens, image_hw), desc_dim=self.desc_dim,
                           conf_vmin=self.conf_vmin, desc_conf_vmin=self.desc_conf_vmin)
