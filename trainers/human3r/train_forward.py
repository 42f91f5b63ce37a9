"""Human3R's training forward (spec §7.3: `_forward_impl(views, inference=False)`).

No detection: the ground-truth head cells `smpl_uv` pick the DINOv2 tokens; the offsets are still
predicted (`smpl_loc`) and mapped to CUT3R cells as at inference. Every view has `S` prompt slots;
an empty slot is fed `[mhmr_masked_smpl_token ; masked_smpl_token]` at position (0, 0) and, unlike
inference, stays in the attention (no key mask). Scores are returned without NMS. The CUT3R part is
`forward_recurrent`'s loop (pose token at view 0 only, plain state update). Only the forward is
ported (training is not part of this port); it is what the `train_` parity vectors check.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from trainers.cut3r.model import Cut3r
from trainers.cut3r.recurrent import init_carry, update_carry
from trainers.human3r import detect, dinov2, postprocess, smpl_head


def gt_prompts(
    head: dict,
    tokens: Float[Array, "G*G C"],
    cut3r_feat: Float[Array, "N E"],
    cells_hw: Int[Array, "S 2"],
    valid: Bool[Array, " S"],
    *,
    res: int,
    image_hw: tuple[int, int],
    patch: int = 14,
    cut3r_patch: int = 16,
) -> dict:
    """Prompts from ground-truth head cells (empty slots: the learned mask tokens at (0, 0)).

    Returns dict(loc [S,2] Multi-HMR pixels (0 for empty slots), dino [S,C] the DINOv2 token (mask
    token for empty slots), fuse_in [S,C+E], prompts [S,D], pos [S,2] (v, u)).
    """
    g = res // patch
    h, w = image_hw
    dino = tokens[cells_hw[:, 0] * g + cells_hw[:, 1]]
    offset = dinov2.mlp(head, dino, "downstream_head.mlp_offset.", "relu")
    loc = detect.head_locations(cells_hw, offset, patch)
    uv = detect.cut3r_cells(detect.unpad_uv(loc, res, h, w), cut3r_patch)
    grid_w = w // cut3r_patch
    cut = cut3r_feat[uv[:, 1] * grid_w + uv[:, 0]]
    v = valid[:, None]
    dino = jnp.where(v, dino, head["mhmr_masked_smpl_token"])
    cut = jnp.where(v, cut, head["masked_smpl_token"])
    fuse_in = jnp.concatenate([dino, cut], -1)
    prompts = dinov2.mlp(head, fuse_in, "downstream_head.mlp_fuse.mlp.layers.")
    return dict(
        loc=jnp.where(v, loc, 0.0),
        dino=dino,
        fuse_in=fuse_in,
        prompts=prompts,
        pos=jnp.where(v, uv[:, ::-1], 0),
    )


def train_forward(
    model: Cut3r,
    backbone: dict,
    head: dict,
    imgs: Float[Array, "T H W 3"],
    cells_hw: Int[Array, "T S 2"],
    valid: Bool[Array, "T S"],
    *,
    res: int,
    num_heads: int,
) -> dict:
    """All views (batch 1) of the training forward; outputs stacked on a leading T axis.

    Returns dict with the CUT3R frame fields (`pts3d_in_self_view` [T,1,H,W,3], ...),
    `enc_feat`, `pose_in`, `state_in`, `dec_img_last` [T,1,1+N+S,D], `dino_tokens` [T,G*G,C],
    `fuse_in`, `fuse_out`, `smpl_pos_in` [T,S,2] (v, u), `smpl_loc` [T,S,2], `smpl_scores`
    [T,G,G] (no NMS), `msk` [T,R,R], `smpl_rotmat` [T,S,53,3,3], `smpl_shape`, `smpl_transl`,
    `smpl_expression`.
    """
    hw = imgs.shape[1:3]
    g = res // 14

    def body(carry, xs):
        img, cells, ok = xs
        tokens = dinov2.backbone_tokens(
            backbone,
            dinov2.normalize_for_dino(detect.pad_image(img.transpose(2, 0, 1), res)),
            num_heads,
        )
        logits = dinov2.mlp(head, tokens, "downstream_head.mlp_classif.", "relu")[:, 0]
        scores = jax.nn.sigmoid(logits.reshape(g, g)) * (1.0 - 2e-6) + 1e-6
        msk = postprocess.mask_from_logits(
            dinov2.mlp(head, tokens, "downstream_head.mlp_msk.mlp.layers."), g, 14
        )
        feat, pos = model.encode(img[None])
        pr = gt_prompts(head, tokens, feat[0], cells, ok, res=res, image_hw=hw)
        query = model.pose_query(feat, carry.mem, carry.fresh)
        dec = model.decode(
            carry.state, feat, pos, query, extra=pr["prompts"][None], extra_pos=pr["pos"][None]
        )
        frame = model.heads(feat, pos, dec, hw)
        new_mem = model.update_memory(carry.mem, feat, dec.img_layers[-1][:, :1])
        next_carry, _ = update_carry(model, carry, dec, new_mem, jnp.asarray(False), loop="cut3r")
        smpl = smpl_head.smplx_head(head, dec.img_layers[-1][0, -cells.shape[0] :], pr["dino"])
        out = dict(
            vars(frame),
            enc_feat=feat[0],
            pose_in=query,
            state_in=carry.state,
            dec_img_last=dec.img_layers[-1],
            dino_tokens=tokens,
            fuse_in=pr["fuse_in"],
            fuse_out=pr["prompts"],
            smpl_pos_in=pr["pos"],
            smpl_loc=pr["loc"],
            smpl_scores=scores,
            msk=msk,
            smpl_rotmat=smpl.rotmat,
            smpl_shape=smpl.betas,
            smpl_transl=smpl.T_cam_head,
            smpl_expression=smpl.expression,
        )
        return next_carry, out

    _, outs = jax.lax.scan(body, init_carry(model, 1), (imgs, cells_hw, valid))
    return outs
