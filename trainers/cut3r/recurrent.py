"""The online loop (spec §3.10): one frame in, state and memory carried, one jit-able step.

    carry = init_carry(model, batch=1)
    for img, reset in frames:
        carry, frame = step(model, carry, img, reset)

`loop='cut3r'` is CUT3R's `forward_recurrent` (only the very first view uses the pose token);
`loop='human3r'` is Human3R's `forward_recurrent_lighter` (the view after a reset uses the pose
token too, and TTT3R skips it). `ttt3r=True` gates the state update (TTT3R):
`s_t = g * s' + (1 - g) * s_{t-1}`, `g = sigmoid(mean cross-attention logit)` per state token.
A reset returns state and memory to their initial values after the view.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from trainers.cut3r.model import Cut3r, DecoderOutput

LOOPS = ("cut3r", "human3r")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Cut3rCarry:
    """What one frame hands to the next.

    Attributes:
      state: float32[B, S, D] the scene state s_{t-1}.
      mem: float32[B, M, 2D] the pose memory.
      fresh: bool[] True when the next view queries with the pose token (first view; in the
        Human3R loop also the view after a reset), which also skips the TTT3R gate.
    """

    state: jax.Array
    mem: jax.Array
    fresh: jax.Array


def init_carry(model: Cut3r, batch: int = 1) -> Cut3rCarry:
    """The carry before the first frame: s_0, mem_0, fresh."""
    state, mem = model.initial_state(batch)
    return Cut3rCarry(state=state, mem=mem, fresh=jnp.asarray(True))


def update_carry(model: Cut3r, carry: Cut3rCarry, dec: DecoderOutput, new_mem: jax.Array,
                 reset: jax.Array, *, loop: str = "cut3r", ttt3r: bool = False,
                 update: jax.Array | bool = True) -> tuple[Cut3rCarry, jax.Array]:
    """The state/memory update rule after one view (§3.10).

    Args:
      carry: the carry the view started from; dec: its decoder output; new_mem: update_mem's
        output; reset: bool[] reset after this view; loop: 'cut3r' | 'human3r'; ttt3r: gate;
      update: bool[] `img_mask & update` (False keeps state and memory).

    Returns (next carry, the state update weight float32[B, S, 1]: 1 plain, the gate for TTT3R).
    """
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
    b, s = dec.new_state.shape[:2]
    weight = jnp.ones((b, s, 1), jnp.float32)
    if ttt3r:
        gate = jax.nn.sigmoid(dec.gate_logit)[..., None]
        weight = jnp.where(carry.fresh, weight, gate)
    m = jnp.asarray(update, jnp.float32)
    weight = weight * m
    state = weight * dec.new_state + (1.0 - weight) * carry.state
    mem = m * new_mem + (1.0 - m) * carry.mem
    s0, mem0 = model.initial_state(b)
    reset = jnp.asarray(reset)
    state = jnp.where(reset, s0, state)
    mem = jnp.where(reset, mem0, mem)
    fresh = reset if loop == "human3r" else jnp.asarray(False)
    return Cut3rCarry(state=state, mem=mem, fresh=jnp.asarray(fresh)), weight


def step(model: Cut3r, carry: Cut3rCarry, img: jax.Array, reset: jax.Array, *,
         loop: str = "cut3r", ttt3r: bool = False, return_intermediates: bool = False):
    """One online view of CUT3R.

    Args:
      img: float[B, H, W, 3] in [-1, 1]; reset: bool[] reset state and memory after this view.

    Returns (carry', Cut3rFrame) and, if asked, a dict of named intermediates (parity tests).
    """
    hw = img.shape[1:3]
    feat, pos, patch_tokens, blocks_out = model.encode(img, return_blocks=True)
    query = model.pose_query(feat, carry.mem, carry.fresh)
    dec = model.decode(carry.state, feat, pos, query)
    frame, head_inter = model.heads(feat, pos, dec, hw, return_intermediates=True)
    pose_tok = dec.img_layers[-1][:, :1]
    new_mem = model.update_memory(carry.mem, feat, pose_tok)
    new_carry, weight = update_carry(model, carry, dec, new_mem, reset, loop=loop, ttt3r=ttt3r)
    if not return_intermediates:
        return new_carry, frame
    inter = dict(head_inter)
    inter.update(
        enc_patch_tokens=patch_tokens, enc_blocks_out=blocks_out, enc_feat=feat,
        dec_img_embed=model.decoder_embed(feat), state_in=carry.state, img_pos=pos,
        pose_in=query, dec_state_layers=dec.state_layers, dec_img_layers=dec.img_layers,
        new_state=dec.new_state, mem_query=jnp.mean(feat, axis=1, keepdims=True),
        mem_in=carry.mem, mem_feat_v=pose_tok, new_mem=new_mem, state_out=new_carry.state,
        mem_out=new_carry.mem, update_weight=weight, used_pose_token=carry.fresh)
    return new_carry, frame, inter


def run_sequence(model: Cut3r, frames: jax.Array, resets: jax.Array, *, loop: str = "cut3r",
                 ttt3r: bool = False, return_intermediates: bool = False):
    """All views with one lax.scan: frames float[T, B, H, W, 3], resets bool[T].

    Returns (final carry, per-view outputs stacked on a leading T axis).
    """
    carry = init_carry(model, frames.shape[1])

    def body(c, xs):
        img, reset = xs
        out = step(model, c, img, reset, loop=loop, ttt3r=ttt3r,
                   return_intermediates=return_intermediates)
        return out[0], out[1:]

    carry, outs = jax.lax.scan(body, carry, (frames, resets))
    return (carry,) + tuple(outs)
