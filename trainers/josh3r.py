"""JOSH3R (JOSH's feed-forward student) in Flax NNX: MASt3R + a human branch.

API (stable; used by training and inference):

  from experiments.configs.josh3r import get_config
  model = JOSH3R(get_config("tiny").model, rngs=nnx.Rngs(0))
  model.eval()                                  # BatchNorm running stats, Dropout off
  out = model(imgs, img_shapes, bbox)           # -> JOSH3ROutput
    imgs:       float32[B, 2, H, W, 3] in [-1, 1] (NHWC; view axis 1). H, W multiples of 16.
    img_shapes: int/float[B, 2, 2] (H, W) per view, or None (= the images' size). Like the
                reference, only img_shapes[:, 1] is used (for both views' box normalisation).
    bbox:       float32[B, 2, 4] person box per view, xyxy in input pixels.
  out.rel_trans [B, 3], out.rel_rot [B, 6] (6D, pytorch3d rows), out.trans1/trans2 [B, 3],
  out.X11/X21 [B, H*W, 3] (pixel index y*W + x), out.scale1/scale2 [B, 1],
  out.view1/view2: the MASt3R HeadOutput (pts3d, conf, desc, desc_conf) of both views.
  model(..., return_intermediates=True) -> (out, dict of intermediates) for debugging/parity.

Training mode (`model.train()`): BatchNorm uses batch statistics and updates its running
statistics (PyTorch momentum 0.1); Dropout(0.5) needs the model's 'dropout' RNG stream.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from trainers.mast3r import MASt3R, compute_dtype
from trainers.nn.decoder import DecoderBlock
from trainers.nn.heads import HeadOutput
from trainers.nn.layers import conv2d, linear


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class JOSH3ROutput:
    """JOSH3R forward output for B pairs (shapes in the module docstring)."""

    rel_trans: jax.Array
    rel_rot: jax.Array
    trans1: jax.Array
    trans2: jax.Array
    X11: jax.Array
    X21: jax.Array
    scale1: jax.Array
    scale2: jax.Array
    view1: HeadOutput
    view2: HeadOutput


PRED_KEYS = ("rel_trans", "rel_rot", "trans1", "trans2", "scale1", "scale2")


def _torch_linspace(start: jnp.ndarray, end: jnp.ndarray, steps: int) -> jnp.ndarray:
    """torch.linspace arithmetic (symmetric from both ends): start, end [...] -> [..., steps]."""
    i = jnp.arange(steps, dtype=jnp.float32)
    step = (end - start)[..., None] / (steps - 1)
    from_start = start[..., None] + i * step
    from_end = end[..., None] - (steps - 1 - i) * step
    return jnp.where(i < steps // 2, from_start, from_end)


def sample_roi(feat: jnp.ndarray, box: jnp.ndarray, image_hw: jnp.ndarray,
               size: int = 7) -> jnp.ndarray:
    """ROI sampling like `F.grid_sample(bilinear, align_corners=False, padding_mode='border')`.

    Args:
      feat: float[hp, wp, D] token feature map of one view.
      box: float[4] xyxy in input pixels.
      image_hw: float[2] (H, W) of the input image.
      size: grid size (7).

    Returns:
      float[size, size, D]: out[i, j] samples (x = linspace(x1, x2)[j], y = linspace(y1, y2)[i]).
    """
    hp, wp = feat.shape[0], feat.shape[1]
    h, w = image_hw[0].astype(jnp.float32), image_hw[1].astype(jnp.float32)
    box = box.astype(jnp.float32)
    nx1, ny1 = box[0] / w * 2 - 1, box[1] / h * 2 - 1
    nx2, ny2 = box[2] / w * 2 - 1, box[3] / h * 2 - 1
    gx = _torch_linspace(nx1, nx2, size)
    gy = _torch_linspace(ny1, ny2, size)
    # Unnormalise (align_corners=False) and clamp (border padding).
    ix = jnp.clip(((gx + 1) * wp - 1) / 2, 0, wp - 1)
    iy = jnp.clip(((gy + 1) * hp - 1) / 2, 0, hp - 1)
    x0 = jnp.floor(ix)
    y0 = jnp.floor(iy)
    fx = (ix - x0)[None, :, None]
    fy = (iy - y0)[:, None, None]
    x0i = x0.astype(jnp.int32)
    y0i = y0.astype(jnp.int32)
    x1i = jnp.minimum(x0i + 1, wp - 1)  # weight is 0 whenever the clamp bites
    y1i = jnp.minimum(y0i + 1, hp - 1)
    f00 = feat[y0i[:, None], x0i[None, :]]
    f01 = feat[y0i[:, None], x1i[None, :]]
    f10 = feat[y1i[:, None], x0i[None, :]]
    f11 = feat[y1i[:, None], x1i[None, :]]
    return ((1 - fy) * ((1 - fx) * f00 + fx * f01) + fy * ((1 - fx) * f10 + fx * f11))


def _batch_norm(n: int, c, rngs: nnx.Rngs) -> nnx.BatchNorm:
    # Flax momentum is the weight of the old running value: 1 - PyTorch momentum.
    return nnx.BatchNorm(n, momentum=1.0 - c.bn_momentum, epsilon=c.bn_eps, rngs=rngs)


class ROIFeatureRegressor(nnx.Module):
    """3 x [conv3x3 -> BatchNorm -> ReLU], flatten (channel-major, as NCHW), Linear, BatchNorm1d."""

    def __init__(self, in_dim: int, out_dim: int, config, *, rngs: nnx.Rngs):
        ch = config.roi_conv_channels
        s = config.roi_size

        def conv(cin):
            return conv2d(cin, ch, 3, rngs=rngs)
        self.conv1, self.bn1 = conv(in_dim), _batch_norm(ch, config, rngs)
        self.conv2, self.bn2 = conv(ch), _batch_norm(ch, config, rngs)
        self.conv3, self.bn3 = conv(ch), _batch_norm(ch, config, rngs)
        self.fc1 = linear(ch * s * s, out_dim, rngs=rngs)
        self.bn_fc1 = _batch_norm(out_dim, config, rngs)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: float[B, s, s, C_in] (NHWC ROI features) -> float[B, out_dim]."""
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = jax.nn.relu(self.bn2(self.conv2(x)))
        x = jax.nn.relu(self.bn3(self.conv3(x)))
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # PyTorch flatten order (c, y, x)
        return self.bn_fc1(self.fc1(x))


class BasicLinearBlock(nnx.Module):
    """r = x; Linear-BN-ReLU-Dropout-Linear-BN; + r; ReLU; Dropout."""

    def __init__(self, dim: int, config, *, rngs: nnx.Rngs):
        self.linear1 = linear(dim, dim, rngs=rngs)
        self.norm1 = _batch_norm(dim, config, rngs)
        self.linear2 = linear(dim, dim, rngs=rngs)
        self.norm2 = _batch_norm(dim, config, rngs)
        self.dropout1 = nnx.Dropout(config.dropout_rate, rngs=rngs)
        self.dropout2 = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        y = self.dropout1(jax.nn.relu(self.norm1(self.linear1(x))))
        y = self.norm2(self.linear2(y))
        return self.dropout2(jax.nn.relu(y + x))


class MLPHead(nnx.Module):
    """JOSH `MLPHead`: Linear-BN-ReLU, `num_basic_blocks` BasicLinearBlocks, final Linear.

    With zero_init the final Linear has no bias and a zero weight (output 0 at init).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, config, *,
                 zero_init: bool = False, rngs: nnx.Rngs):
        self.input_linear = linear(in_dim, hidden, rngs=rngs)
        self.input_norm = _batch_norm(hidden, config, rngs)
        self.blocks = nnx.List([BasicLinearBlock(hidden, config, rngs=rngs)
                                for _ in range(config.num_basic_blocks)])
        if zero_init:
            self.final = linear(hidden, out_dim, use_bias=False, zero=True, rngs=rngs)
        else:
            self.final = linear(hidden, out_dim, rngs=rngs)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: float[B, in_dim] -> float[B, out_dim]."""
        x = jax.nn.relu(self.input_norm(self.input_linear(x)))
        for blk in self.blocks:
            x = blk(x)
        return self.final(x)


class JOSH3R(nnx.Module):
    """JOSH3R: MASt3R backbone, per-view ROI human features, human token, two extra decoder
    blocks with a shared final LayerNorm, and MLP heads (see the module docstring)."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        c = config
        d = c.josh_dim
        if d != c.dec_embed_dim:
            raise ValueError(f"josh_dim {d} must equal dec_embed_dim {c.dec_embed_dim}")
        self.roi_size = c.roi_size
        dtype = compute_dtype(c.compute_dtype)
        self.mast3r = MASt3R(c, rngs=rngs)
        self.human_feat_extractor_1 = ROIFeatureRegressor(d, d, c, rngs=rngs)
        self.human_feat_extractor_2 = ROIFeatureRegressor(d, d, c, rngs=rngs)
        self.human_head_1 = MLPHead(d, 3, d, c, rngs=rngs)
        self.human_head_2 = MLPHead(d, 3, d, c, rngs=rngs)
        self.rel_trans_head = MLPHead(4 * d, 3, d, c, zero_init=True, rngs=rngs)
        self.rel_rot_head = MLPHead(4 * d, 6, d, c, rngs=rngs)
        self.scene_head_1 = MLPHead(d, 1, d, c, zero_init=True, rngs=rngs)
        self.scene_head_2 = MLPHead(d, 1, d, c, zero_init=True, rngs=rngs)

        def block():
            return DecoderBlock(d, c.josh_num_heads, c.mlp_ratio, eps=c.josh_ln_eps,
                                rope_base=c.rope_base, dtype=dtype, rngs=rngs)
        self.decoder_block_1 = block()
        self.decoder_block_2 = block()
        self.dec_norm = nnx.LayerNorm(d, epsilon=c.josh_ln_eps, rngs=rngs)

    def human_branch(self, dec1: jnp.ndarray, dec2: jnp.ndarray, pos1: jnp.ndarray,
                     pos2: jnp.ndarray, hw: jnp.ndarray, bbox: jnp.ndarray,
                     grid: tuple[int, int]) -> dict[str, jnp.ndarray]:
        """ROI features, human token, two extra decoder blocks and MLP heads.

        Args:
          dec1, dec2: float[B, n, D] last MASt3R decoder tokens of each view.
          pos1, pos2: int[B, n, 2] token positions.
          hw: float[B, 2] (H, W) used to normalise the boxes.
          bbox: float[B, 2, 4] person box per view (xyxy, input pixels).
          grid: static (hp, wp) token grid.

        Returns:
          dict of the branch's tensors (see `__call__`'s intermediates), with `rel_trans`
          [B, 3], `rel_rot` [B, 6], `trans1`/`trans2` [B, 3], `scale1`/`scale2` [B, 1].
        """
        b = dec1.shape[0]
        hp, wp = grid
        roi = jax.vmap(lambda f, bx, s: sample_roi(f, bx, s, self.roi_size))
        roi1 = roi(dec1.reshape(b, hp, wp, -1), bbox[:, 0], hw)
        roi2 = roi(dec2.reshape(b, hp, wp, -1), bbox[:, 1], hw)
        human_feat1 = self.human_feat_extractor_1(roi1)
        human_feat2 = self.human_feat_extractor_2(roi2)

        human_pos = jnp.full((b, 1, 2), -1, pos1.dtype)
        tokens1 = jnp.concatenate([dec1, human_feat1[:, None]], axis=1)
        tokens2 = jnp.concatenate([dec2, human_feat2[:, None]], axis=1)
        pos1_ext = jnp.concatenate([pos1, human_pos], axis=1)
        pos2_ext = jnp.concatenate([pos2, human_pos], axis=1)
        # Parallel update: both blocks read the other view's pre-block tokens.
        block1 = self.decoder_block_1(tokens1, tokens2, pos1_ext, pos2_ext)
        block2 = self.decoder_block_2(tokens2, tokens1, pos2_ext, pos1_ext)
        dec1_new = self.dec_norm(block1).astype(jnp.float32)
        dec2_new = self.dec_norm(block2).astype(jnp.float32)
        human1, human2 = dec1_new[:, -1], dec2_new[:, -1]
        scene1 = jnp.max(dec1_new[:, :-1], axis=1)
        scene2 = jnp.max(dec2_new[:, :-1], axis=1)
        scale1_log = self.scene_head_1(scene1)
        scale2_log = self.scene_head_2(scene2)
        all_tokens = jnp.concatenate([human1, human2, scene1, scene2], axis=-1)
        return dict(
            rel_trans=self.rel_trans_head(all_tokens), rel_rot=self.rel_rot_head(all_tokens),
            trans1=self.human_head_1(human1), trans2=self.human_head_2(human2),
            scale1=jnp.exp(scale1_log), scale2=jnp.exp(scale2_log),
            roi_feat1=roi1, roi_feat2=roi2, human_feat1=human_feat1, human_feat2=human_feat2,
            tokens1_ext=tokens1, tokens2_ext=tokens2, pos1_ext=pos1_ext, pos2_ext=pos2_ext,
            block1_out=block1, block2_out=block2, dec1_new=dec1_new, dec2_new=dec2_new,
            human_token1=human1, human_token2=human2, scene_token1=scene1, scene_token2=scene2,
            scale1_log=scale1_log, scale2_log=scale2_log, all_tokens=all_tokens)

    def encode(self, imgs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Encoder of single frames (inference caches it per frame).

        imgs: float[N, H, W, 3] in [-1, 1] -> (feat float32[N, n, E], pos int32[N, n, 2]).
        """
        return self.mast3r.encoder(imgs)

    def predict_from_features(self, feat1: jnp.ndarray, pos1: jnp.ndarray, feat2: jnp.ndarray,
                              pos2: jnp.ndarray, img_shapes: Any, bbox: jnp.ndarray,
                              image_hw: tuple[int, int], *, with_scene: bool = True,
                              head_chunk: int = 0) -> dict[str, jnp.ndarray]:
        """What inference chaining reads, from cached encoder features of B pairs.

        Only view 1's pointmap (`X11` [B, H*W, 3], DPT of head 1, no descriptors) and the pose
        outputs (`rel_trans` [B, 3], `rel_rot` [B, 6], `trans1` [B, 3], `scale1` [B, 1]) are
        computed: no second DPT head, no X21/trans2/scale2. `with_scene=False` also drops X11.
        `head_chunk` > 0 runs the DPT head `head_chunk` pairs at a time (`lax.map`), so its
        full-resolution temporaries do not grow with B.

        Args:
          feat1, feat2: float[B, n, E] encoder outputs (`encode`) of the pairs' two frames.
          pos1, pos2: int[B, n, 2] their positions.
          img_shapes: [B, 2, 2] (H, W) per view or None; bbox: float[B, 2, 4].
          image_hw: static (H, W) of the model input.
        """
        b = feat1.shape[0]
        h, w = image_hw
        p = self.mast3r.patch_size
        if img_shapes is None:
            img_shapes = jnp.broadcast_to(jnp.asarray([h, w], jnp.float32), (b, 2, 2))
        hw = jnp.asarray(img_shapes)[:, 1].astype(jnp.float32)  # reference: view 2's shape
        hooks = tuple(self.mast3r.head1.dpt.hooks) if with_scene else ()
        tokens1, tokens2 = self.mast3r.decoder(feat1, pos1, feat2, pos2, keep1=hooks, keep2=())
        br = self.human_branch(tokens1[-1], tokens2[-1], pos1, pos2, hw, bbox, (h // p, w // p))
        out = {k: br[k] for k in ("rel_trans", "rel_rot", "trans1", "scale1")}
        if with_scene:
            head = self.mast3r.head1
            hooked = {k: tokens1[k] for k in hooks}
            out["X11"] = head.pts3d_chunked(hooked, image_hw, head_chunk).reshape(b, h * w, 3)
        return out

    def __call__(self, imgs: jnp.ndarray, img_shapes: Any, bbox: jnp.ndarray, *,
                 return_intermediates: bool = False):
        """Forward of B image pairs; see the module docstring for shapes."""
        if imgs.ndim != 5 or imgs.shape[1] != 2 or imgs.shape[-1] != 3:
            raise ValueError(f"imgs must be float[B, 2, H, W, 3] (NHWC), got {imgs.shape}")
        b, _, h, w, _ = imgs.shape
        p = self.mast3r.patch_size
        if img_shapes is None:
            img_shapes = jnp.broadcast_to(jnp.asarray([h, w], jnp.float32), (b, 2, 2))
        hw = jnp.asarray(img_shapes)[:, 1].astype(jnp.float32)  # reference: view 2's shape
        m = self.mast3r(imgs[:, 0], imgs[:, 1], return_intermediates=return_intermediates)
        m, m_inter = m if return_intermediates else (m, {})
        br = self.human_branch(m.dec1, m.dec2, m.pos1, m.pos2, hw, bbox, (h // p, w // p))
        out = JOSH3ROutput(
            rel_trans=br["rel_trans"], rel_rot=br["rel_rot"], trans1=br["trans1"],
            trans2=br["trans2"], X11=m.view1.pts3d.reshape(b, h * w, 3),
            X21=m.view2.pts3d.reshape(b, h * w, 3), scale1=br["scale1"], scale2=br["scale2"],
            view1=m.view1, view2=m.view2)
        if not return_intermediates:
            return out
        inter = dict(m_inter)
        inter.update(feat1=m.feat1, feat2=m.feat2, pos1=m.pos1, pos2=m.pos2, dec1_last=m.dec1,
                     dec2_last=m.dec2)
        inter.update({k: v for k, v in br.items() if k not in PRED_KEYS})
        return out, inter
