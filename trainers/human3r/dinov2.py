"""DINOv2 ViT-L/14 (Multi-HMR backbone) and the Human3R MLP heads, as pure functions over param pytrees.

Spec `human3r_spec.md` §4.2-4.8. Parameters come from the PyTorch state dict (`from_state_dict`):
block weights are stacked on a leading depth axis and the stack runs under `lax.scan`, so compile
time does not grow with depth. Linear weights stay (out, in) as in PyTorch: y = x W^T + b.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from trainers.human3r import postprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HI = jax.lax.Precision.HIGHEST


def normalize_for_dino(img_mhmr: Float[Array, "3 R R"]) -> Float[Array, "3 R R"]:
    """((img * 0.5 + 0.5) - ImageNet mean) / std; the -1 padding becomes -mean/std (§4.1)."""
    mean = jnp.asarray(IMAGENET_MEAN, img_mhmr.dtype)[:, None, None]
    std = jnp.asarray(IMAGENET_STD, img_mhmr.dtype)[:, None, None]
    return (img_mhmr * 0.5 + 0.5 - mean) / std


def backbone_from_state_dict(sd: dict, prefix: str = "backbone.encoder.") -> dict:
    """Backbone params: patch conv, cls, pos_embed, final norm, blocks stacked on axis 0."""
    depth = 1 + max(int(k[len(prefix + "blocks."):].split(".")[0]) for k in sd if k.startswith(prefix + "blocks."))
    names = sorted({k[len(prefix + "blocks.0."):] for k in sd if k.startswith(prefix + "blocks.0.")})
    blocks = {n: np.stack([np.asarray(sd[f"{prefix}blocks.{i}.{n}"]) for i in range(depth)]) for n in names}
    top = ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias")
    return {"blocks": blocks, **{n: np.asarray(sd[prefix + n]) for n in top}}


def _linear(x, w, b):
    return jnp.einsum("...i,oi->...o", x, w, precision=_HI) + b


def _layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps) * w + b


def _block(x: Float[Array, "T C"], p: dict, num_heads: int) -> Float[Array, "T C"]:
    t, c = x.shape
    h = _layer_norm(x, p["norm1.weight"], p["norm1.bias"])
    qkv = _linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"]).reshape(t, 3, num_heads, c // num_heads)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    logits = jnp.einsum("qhd,khd->hqk", q, k, precision=_HI) * (c // num_heads) ** -0.5
    att = jnp.einsum("hqk,khd->qhd", jax.nn.softmax(logits, -1), v, precision=_HI).reshape(t, c)
    x = x + p["ls1.gamma"] * _linear(att, p["attn.proj.weight"], p["attn.proj.bias"])
    h = _layer_norm(x, p["norm2.weight"], p["norm2.bias"])
    h = jax.nn.gelu(_linear(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"]), approximate=False)
    return x + p["ls2.gamma"] * _linear(h, p["mlp.fc2.weight"], p["mlp.fc2.bias"])


def backbone_tokens(params: dict, img: Float[Array, "3 R R"], num_heads: int,
                    patch: int = 14) -> Float[Array, "G*G C"]:
    """Normalised image -> final-LN patch tokens (cls dropped), row-major over the g x g grid (§4.2)."""
    w = params["patch_embed.proj.weight"]
    tok = jax.lax.conv_general_dilated(img[None], w, (patch, patch), "VALID", precision=_HI,
                                       dimension_numbers=("NCHW", "OIHW", "NCHW"))[0]
    grid = tok.shape[-1]
    tok = tok.reshape(tok.shape[0], -1).T + params["patch_embed.proj.bias"]
    x = jnp.concatenate([params["cls_token"][0], tok], 0)
    x = x + postprocess.interpolate_pos_embed(jnp.asarray(params["pos_embed"]), grid)[0]
    x, _ = jax.lax.scan(lambda h, p: (_block(h, p, num_heads), None), x, params["blocks"])
    return _layer_norm(x, params["norm.weight"], params["norm.bias"])[1:]


def mlp(params: dict, x: Float[Array, "... I"], prefix: str, act: str = "gelu") -> Float[Array, "... O"]:
    """Linear, act, Linear with PyTorch names `{prefix}0.*` and `{prefix}2.*` (Mlp_flex / Sequential)."""
    h = _linear(x, params[prefix + "0.weight"], params[prefix + "0.bias"])
    h = jax.nn.relu(h) if act == "relu" else jax.nn.gelu(h, approximate=False)
    return _linear(h, params[prefix + "2.weight"], params[prefix + "2.bias"])
