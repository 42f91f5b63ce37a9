"""One frame of Human3R's human branch before the decoder: detect heads and build the prompt inputs.

Spec `human3r_spec.md` §4.1-4.5, §4.8, §4.13. Static shapes: `max_people` slots with a validity
mask (invalid slots hold cell (0, 0) and must be masked as keys downstream).
"""

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from trainers.human3r import detect, dinov2, postprocess


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Detections:
    """Per-frame detections, P = max_people slots.

    valid: Bool[P]; cells_hw: Int[P, 2] Multi-HMR grid cell (h, w); loc_xy: Float[P, 2] head in
    Multi-HMR pixels; cut3r_uv: Int[P, 2] CUT3R cell (u, v); dino_feat: Float[P, C] DINOv2 token at
    the cell; scores: Float[G, G] after NMS; mask: Float[R, R] human mask in the padded frame;
    dino_tokens: Float[G*G, C].
    """

    valid: jax.Array
    cells_hw: jax.Array
    loc_xy: jax.Array
    cut3r_uv: jax.Array
    dino_feat: jax.Array
    scores: jax.Array
    mask: jax.Array
    dino_tokens: jax.Array


def detect_humans(backbone: dict, head: dict, img: Float[Array, "3 H W"], *, res: int, num_heads: int,
                  threshold: float, max_people: int, patch: int = 14,
                  cut3r_patch: int = 16) -> Detections:
    """Image in [-1, 1] -> padded Multi-HMR image -> DINOv2 -> NMS detections and CUT3R cells."""
    _, h, w = img.shape
    tokens = dinov2.backbone_tokens(backbone, dinov2.normalize_for_dino(detect.pad_image(img, res)), num_heads, patch)
    g = res // patch
    logits = dinov2.mlp(head, tokens, "downstream_head.mlp_classif.", "relu")[:, 0]
    scores = detect.nms_scores(logits.reshape(g, g))
    cells, valid = detect.detect_heads(scores, threshold, max_people)
    feat = tokens[cells[:, 0] * g + cells[:, 1]]
    offset = dinov2.mlp(head, feat, "downstream_head.mlp_offset.", "relu")
    loc = detect.head_locations(cells, offset, patch)
    uv = detect.cut3r_cells(detect.unpad_uv(loc, res, h, w), cut3r_patch)
    msk = postprocess.mask_from_logits(dinov2.mlp(head, tokens, "downstream_head.mlp_msk.mlp.layers."), g, patch)
    zero = lambda x: jnp.where(valid.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0)
    return Detections(valid=valid, cells_hw=cells, loc_xy=zero(loc), cut3r_uv=zero(uv), dino_feat=zero(feat),
                      scores=scores, mask=msk, dino_tokens=tokens)


def prompts(head: dict, det: Detections, cut3r_feat: Float[Array, "N E"],
            grid_w: int) -> tuple[Float[Array, "P D"], Int[Array, "P 2"]]:
    """Human prompts mlp_fuse([DINOv2 token ; CUT3R token]) and their RoPE positions (v, u) (§4.5)."""
    idx = det.cut3r_uv[:, 1] * grid_w + det.cut3r_uv[:, 0]
    fused = dinov2.mlp(head, jnp.concatenate([det.dino_feat, cut3r_feat[idx]], -1), "downstream_head.mlp_fuse.mlp.layers.")
    return fused, det.cut3r_uv[:, ::-1]
