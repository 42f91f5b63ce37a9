"""One online view of Human3R (batch 1): CUT3R with human prompts, SMPL-X head, tracking.

Spec `human3r_spec.md` §1, §4, §3.10 (the Human3R loop: pose token and plain update on the view
after a reset; tracking memory never cleared). Static shapes: `max_people` prompt slots.
"""

import dataclasses

import jax
from jaxtyping import Array, Float

from trainers.cut3r.heads import Cut3rFrame
from trainers.cut3r.model import Cut3r
from trainers.cut3r.recurrent import Cut3rCarry, update_carry
from trainers.human3r import humans, smpl_head, tracking


@dataclasses.dataclass(frozen=True)
class HumanConfig:
    """Static settings of the human branch (defaults live in experiments/configs/human3r.py)."""

    res: int
    num_heads: int
    threshold: float
    max_people: int
    ttt3r: bool = False


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Human3rCarry:
    """cut3r: Cut3rCarry (state, memory, fresh); tracks: TrackMemory."""

    cut3r: Cut3rCarry
    tracks: tracking.TrackMemory


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Human3rFrame:
    """scene: Cut3rFrame (batch 1); valid: bool[P]; track_id: int32[P] (-1 unused);
    smplx: SmplxParams [P, ...]; mask: float32[R, R] human mask in the padded Multi-HMR frame."""

    scene: Cut3rFrame
    valid: jax.Array
    track_id: jax.Array
    smplx: smpl_head.SmplxParams
    mask: jax.Array


def step(model: Cut3r, backbone: dict, head: dict, carry: Human3rCarry, img: Float[Array, "H W 3"],
         reset: jax.Array, cfg: HumanConfig) -> tuple[Human3rCarry, Human3rFrame]:
    """img in [-1, 1] (H, W, 3); reset: bool[] reset CUT3R's state and memory after this view."""
    h, w = img.shape[:2]
    det = humans.detect_humans(backbone, head, img.transpose(2, 0, 1), res=cfg.res, num_heads=cfg.num_heads,
                               threshold=cfg.threshold, max_people=cfg.max_people)
    feat, pos = model.encode(img[None])
    fused, ppos = humans.prompts(head, det, feat[0], w // 16)
    c = carry.cut3r
    query = model.pose_query(feat, c.mem, c.fresh)
    dec = model.decode(c.state, feat, pos, query, extra=fused[None], extra_pos=ppos[None],
                       extra_valid=det.valid[None])
    scene = model.heads(feat, pos, dec, (h, w))
    new_mem = model.update_memory(c.mem, feat, dec.img_layers[-1][:, :1])
    next_c, _ = update_carry(model, c, dec, new_mem, reset, loop="human3r", ttt3r=cfg.ttt3r)
    tokens = dec.img_layers[-1][0, -cfg.max_people:]
    smplx = smpl_head.smplx_head(head, tokens, det.dino_feat)
    tracks, ids = tracking.track_step(carry.tracks, tokens, det.valid)
    frame = Human3rFrame(scene=scene, valid=det.valid, track_id=ids, smplx=smplx, mask=det.mask)
    return Human3rCarry(cut3r=next_c, tracks=tracks), frame
