"""DPT dense-prediction head (DUSt3R `DPTOutputAdapter_fix`), NHWC.

Tokens of the hooked layers are reshaped to the patch grid, resampled to strides 4, 8, 16, 32
(`act_postprocess`), projected to `feature_dim` (`layer_rn`), fused coarse to fine by four
RefineNet blocks (bilinear x2, align_corners=True) and decoded by a small conv head to full
resolution. refinenet4's output is cropped to the stride-16 map's size (odd token grids).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers.nn.layers import conv2d, lecun_normal_host


def upsample_taps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear x2 (align_corners=True) taps of one axis of length n, PyTorch CPU arithmetic.

    Returns (lo int32[2n], hi int32[2n], frac float32[2n]): output i = (1 - frac[i]) * x[lo[i]]
    + frac[i] * x[hi[i]].
    """
    out = 2 * n
    scale = np.float32((n - 1) / (out - 1)) if out > 1 else np.float32(0.0)
    src = scale * np.arange(out, dtype=np.float32)
    lo = np.minimum(np.floor(src).astype(np.int32), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = (src - lo.astype(np.float32)).astype(np.float32)
    return lo, hi, frac


def _lerp_axis(x: jnp.ndarray, axis: int) -> jnp.ndarray:
    """Bilinear x2 along one axis: two static gathers and a lerp (2 FLOPs per output)."""
    lo, hi, frac = upsample_taps(x.shape[axis])
    shape = [1] * x.ndim
    shape[axis] = frac.shape[0]
    w = jnp.asarray(frac.reshape(shape), x.dtype)
    x_lo = jnp.take(x, jnp.asarray(lo), axis=axis)
    x_hi = jnp.take(x, jnp.asarray(hi), axis=axis)
    return (1 - w) * x_lo + w * x_hi


def upsample2x_bilinear(x: jnp.ndarray) -> jnp.ndarray:
    """x: float[B, H, W, C] -> float[B, 2H, 2W, C], bilinear with align_corners=True.

    Separable 2-tap lerp (rows, then columns), as PyTorch's CPU kernel; no dense interpolation
    matrices.
    """
    return _lerp_axis(_lerp_axis(x, 1), 2)


def _conv(cin: int, cout: int, k: int, *, stride: int = 1, use_bias: bool = True,
          rngs: nnx.Rngs) -> nnx.Conv:
    return conv2d(cin, cout, k, stride=stride, use_bias=use_bias, rngs=rngs)


class PatchConvTranspose(nnx.Module):
    """ConvTranspose2d with kernel == stride and no padding (non-overlapping): an einsum + reshape.

    kernel: float32[in, s, s, out] (PyTorch's (in, out, s, s) transposed by (0, 2, 3, 1)).
    out[b, s*y+i, s*x+j, o] = sum_c x[b, y, x, c] * kernel[c, i, j, o] + bias[o].
    """

    def __init__(self, in_features: int, out_features: int, stride: int, *, rngs: nnx.Rngs):
        self.stride = stride
        init = lecun_normal_host((0, 1, 2))
        self.kernel = nnx.Param(init(rngs.params(), (in_features, stride, stride, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        b, h, w, _ = x.shape
        s = self.stride
        y = jnp.einsum("bhwc,cijo->bhiwjo", x, self.kernel[...])
        return y.reshape(b, h * s, w * s, -1) + self.bias[...]


class ActPostprocess(nnx.Module):
    """1x1 conv to `dim`, then resampling: 'up4' / 'up2' (ConvT), 'none', 'down2' (3x3 stride 2)."""

    def __init__(self, in_dim: int, dim: int, mode: str, *, rngs: nnx.Rngs):
        self.proj = _conv(in_dim, dim, 1, rngs=rngs)
        if mode == "up4":
            self.resample = PatchConvTranspose(dim, dim, 4, rngs=rngs)
        elif mode == "up2":
            self.resample = PatchConvTranspose(dim, dim, 2, rngs=rngs)
        elif mode == "down2":
            self.resample = _conv(dim, dim, 3, stride=2, rngs=rngs)
        elif mode == "none":
            self.resample = None
        else:
            raise ValueError(f"unknown act_postprocess mode {mode!r}")

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = self.proj(x)
        return x if self.resample is None else self.resample(x)


class ResidualConvUnit(nnx.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias (no BatchNorm)."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.conv1 = _conv(features, features, 3, rngs=rngs)
        self.conv2 = _conv(features, features, 3, rngs=rngs)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out = self.conv2(jax.nn.relu(self.conv1(jax.nn.relu(x))))
        return out + x


class FeatureFusionBlock(nnx.Module):
    """RefineNet fusion: (x + RCU1(skip)) -> RCU2 -> bilinear x2 (align_corners) -> 1x1 conv."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.res_conf_unit1 = ResidualConvUnit(features, rngs=rngs)
        self.res_conf_unit2 = ResidualConvUnit(features, rngs=rngs)
        self.out_conv = _conv(features, features, 1, rngs=rngs)

    def __call__(self, x: jnp.ndarray, skip: jnp.ndarray | None = None) -> jnp.ndarray:
        if skip is not None:
            x = x + self.res_conf_unit1(skip)
        x = self.res_conf_unit2(x)
        return self.out_conv(upsample2x_bilinear(x))


class DPTHead(nnx.Module):
    """DPT adapter + head producing `num_channels` maps at full resolution.

    Args:
      dim_tokens: widths of the 4 hooked token lists (e.g. [E, D, D, D]).
      layer_dims: act_postprocess widths (full size [96, 192, 384, 768]).
      feature_dim: fusion width (256); last_dim: head width (128); num_channels: outputs (4).
      hooks: indices into the token list [enc, dec_1, ..., dec_L] (e.g. [0, 6, 9, 12]).
    """

    def __init__(self, dim_tokens: Sequence[int], layer_dims: Sequence[int], feature_dim: int,
                 last_dim: int, num_channels: int, hooks: Sequence[int], patch_size: int = 16,
                 *, rngs: nnx.Rngs):
        if len(dim_tokens) != 4 or len(layer_dims) != 4 or len(hooks) != 4:
            raise ValueError("DPTHead needs 4 hooks, 4 token widths and 4 layer dims")
        self.hooks = tuple(int(h) for h in hooks)
        self.patch_size = patch_size
        modes = ("up4", "up2", "none", "down2")
        self.act_postprocess = nnx.List([
            ActPostprocess(dim_tokens[i], layer_dims[i], modes[i], rngs=rngs) for i in range(4)])
        self.layer_rn = nnx.List([
            _conv(layer_dims[i], feature_dim, 3, use_bias=False, rngs=rngs) for i in range(4)])
        self.refinenet = nnx.List([FeatureFusionBlock(feature_dim, rngs=rngs) for _ in range(4)])
        self.head_conv1 = _conv(feature_dim, feature_dim // 2, 3, rngs=rngs)
        self.head_conv2 = _conv(feature_dim // 2, last_dim, 3, rngs=rngs)
        self.head_out = _conv(last_dim, num_channels, 1, rngs=rngs)

    def __call__(self, tokens: Sequence[jnp.ndarray], image_hw: tuple[int, int], *,
                 return_intermediates: bool = False):
        """tokens: the token list, float[B, n, C_l] each; image_hw static (H, W).

        Returns float32[B, H, W, num_channels] (and a dict of NHWC intermediates if asked).
        """
        h, w = image_hw
        hp, wp = h // self.patch_size, w // self.patch_size
        layers = [tokens[k] for k in self.hooks]
        layers = [t.reshape(t.shape[0], hp, wp, t.shape[-1]).astype(jnp.float32) for t in layers]
        acts = [m(t) for m, t in zip(self.act_postprocess, layers, strict=True)]
        rns = [m(t) for m, t in zip(self.layer_rn, acts, strict=True)]
        ref4 = self.refinenet[3](rns[3])
        path4 = ref4[:, :rns[2].shape[1], :rns[2].shape[2]]
        path3 = self.refinenet[2](path4, rns[2])
        path2 = self.refinenet[1](path3, rns[1])
        path1 = self.refinenet[0](path2, rns[0])
        x = upsample2x_bilinear(self.head_conv1(path1))
        out = self.head_out(jax.nn.relu(self.head_conv2(x)))
        if not return_intermediates:
            return out
        inter = {f"act{i}": a for i, a in enumerate(acts)}
        inter.update({f"rn{i}": r for i, r in enumerate(rns)})
        inter.update(refinenet4=ref4, refinenet3=path3, refinenet2=path2, refinenet1=path1)
        return out, inter
