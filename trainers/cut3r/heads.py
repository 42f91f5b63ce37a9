"""CUT3R's `downstream_head` (spec §3.8-3.9): pose head, pose-modulated tokens, three DPT heads,
and the output activations. Runs in float32."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.layers import ConditionModulationBlock, scan_stack, stack_modules
from trainers.nn.dpt import DPTHead
from trainers.nn.heads import reg_dense_depth_exp
from trainers.nn.vit import Mlp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Cut3rFrame:
    """The per-frame outputs of CUT3R (NHWC; `forward_recurrent`'s `ress` entries).

    Attributes:
      pts3d_in_self_view: float32[B, H, W, 3] pointmap in the frame's camera coordinates.
      conf_self: float32[B, H, W] its confidence (>= 1).
      pts3d_in_other_view: float32[B, H, W, 3] pointmap in the chunk's world frame (dpt_cross).
      conf: float32[B, H, W] its confidence.
      rgb: float32[B, H, W, 3] predicted colour in [-1, 1].
      camera_pose: float32[B, 7] camera-to-world (t xyz, q wxyz with w >= 0), chunk-local.
    """

    pts3d_in_self_view: jax.Array
    conf_self: jax.Array
    pts3d_in_other_view: jax.Array
    conf: jax.Array
    rgb: jax.Array
    camera_pose: jax.Array


def pose_from_raw(raw: jax.Array) -> jax.Array:
    """PoseDecoder postprocess (§3.8): raw float[..., 7] -> (t * expm1(|t|)/|t|, q/|q|, w >= 0)."""
    t, q = raw[..., :3], raw[..., 3:7]
    d = jnp.sqrt(jnp.sum(t * t, axis=-1, keepdims=True))
    t = t * jnp.expm1(d) / jnp.maximum(d, 1e-8)
    q = q / jnp.maximum(jnp.sqrt(jnp.sum(q * q, axis=-1, keepdims=True)), 1e-12)
    q = jnp.where(q[..., :1] < 0, -q, q)
    return jnp.concatenate([t, q], axis=-1)


def rgb_from_raw(raw: jax.Array) -> jax.Array:
    """(sigmoid(raw) * (1 - 2e-6) + 1e-6 - 0.5) * 2."""
    return (jax.nn.sigmoid(raw) * (1 - 2e-6) + 1e-6 - 0.5) * 2


class PoseHead(nnx.Module):
    """`PoseDecoder`: Mlp D -> 4D -> 7 (attribute `mlp` like the state dict)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.mlp = Mlp(dim, 4 * dim, 7, rngs=rngs)

    def __call__(self, tok: jax.Array) -> jax.Array:
        return self.mlp(tok)


class Cut3rHeads(nnx.Module):
    """`downstream_head`: pose_head, final_transform (2 modulation blocks), dpt_self/cross/rgb."""

    def __init__(self, cfg: Cut3rConfig, *, rngs: nnx.Rngs):
        e, d = cfg.enc_embed_dim, cfg.dec_embed_dim
        self.conf_vmin = cfg.conf_vmin
        self.patch_size = cfg.patch_size
        self.pose_head = PoseHead(d, rngs=rngs)
        self.final_transform = stack_modules(
            lambda: ConditionModulationBlock(d, cfg.dec_num_heads, mlp_ratio=cfg.mlp_ratio,
                                             eps=cfg.ln_eps, rope_base=cfg.rope_base,
                                             dtype=cfg.dtype, rngs=rngs), 2)

        def dpt(channels):
            return DPTHead([e, d, d, d], cfg.dpt_layer_dims, cfg.dpt_feature_dim,
                           cfg.dpt_last_dim, channels, (0, 1, 2, 3), cfg.patch_size, rngs=rngs)

        self.dpt_self = dpt(4)
        self.dpt_cross = dpt(4)
        self.dpt_rgb = dpt(3)
        self.hooks = cfg.dpt_hooks

    def __call__(self, feat: jax.Array, pos: jax.Array, img_layers: jax.Array,
                 image_hw: tuple[int, int], *, return_intermediates: bool = False):
        """Heads of one frame.

        Args:
          feat: float[B, N, E] encoder output (hook 0); pos: int[B, N, 2].
          img_layers: float[L, B, 1 + N + n, D] decoder image-side layers (extra tokens after N
            are ignored).
          image_hw: static (H, W).

        Returns Cut3rFrame (and a dict of intermediates, NHWC, if asked).
        """
        n = feat.shape[1]
        _, h1, h2, h3 = self.hooks
        mid1 = img_layers[h1 - 1][:, 1:1 + n]
        mid2 = img_layers[h2 - 1][:, 1:1 + n]
        last = img_layers[h3 - 1]
        pose_tok = last[:, 0].astype(jnp.float32)
        token = last[:, 1:1 + n].astype(jnp.float32)
        pose_raw = self.pose_head(pose_tok).astype(jnp.float32)

        def body(blocks, x):
            x = blocks[0](x, pose_tok, pos)
            return x, x

        token_cross, ft_out = scan_stack((self.final_transform,), body, token)
        feat = feat.astype(jnp.float32)
        hooks_self = [feat, mid1, mid2, token]
        hooks_cross = [feat, mid1, mid2, token_cross]
        raw_self, inter = self.dpt_self(hooks_self, image_hw, return_intermediates=True)
        raw_cross = self.dpt_cross(hooks_cross, image_hw)
        raw_rgb = self.dpt_rgb(hooks_self, image_hw)
        frame = Cut3rFrame(
            pts3d_in_self_view=reg_dense_depth_exp(raw_self[..., :3]),
            conf_self=self.conf_vmin + jnp.exp(raw_self[..., 3]),
            pts3d_in_other_view=reg_dense_depth_exp(raw_cross[..., :3]),
            conf=self.conf_vmin + jnp.exp(raw_cross[..., 3]),
            rgb=rgb_from_raw(raw_rgb),
            camera_pose=pose_from_raw(pose_raw))
        if not return_intermediates:
            return frame
        inter = {f"dpt_self_{k}": v for k, v in inter.items()}
        inter.update(pose_token_out=pose_tok, pose_raw=pose_raw, final_transform0_out=ft_out[0],
                     final_transform1_out=ft_out[1], dpt_self_raw=raw_self,
                     dpt_cross_raw=raw_cross, dpt_rgb_raw=raw_rgb)
        return frame, inter
