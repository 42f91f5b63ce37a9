"""The CUT3R network (`ARCroco3DStereo`, spec §3): encoder, state, decoders, memory, heads.

Module names mirror the PyTorch state dict (`enc_blocks`, `dec_blocks_state`, `pose_retriever`,
`downstream_head.dpt_self`, ...), so the converter maps names one to one; stacks of blocks are
single modules with a leading layer axis, applied with `lax.scan`. Every method is one stage of
one frame; `trainers.cut3r.recurrent` strings them into the online loop.

Images are NHWC float[B, H, W, 3] in [-1, 1]; H, W multiples of 16; N = H/16 * W/16 tokens.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.heads import Cut3rHeads
from trainers.cut3r.layers import Block, DecoderBlock, scan_stack, stack_modules
from trainers.nn.layers import linear
from trainers.nn.vit import PatchEmbed


def state_positions(num_tokens: int, width: int) -> np.ndarray:
    """int32[S, 2] state-token positions (i // width, i % width) (`state_pe='2d'`)."""
    i = np.arange(num_tokens)
    return np.stack([i // width, i % width], axis=-1).astype(np.int32)


POSE_POSITION = (-1, -1)  # the pose token's RoPE position (y, x)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecoderOutput:
    """Both decoder streams of one frame.

    Attributes:
      new_state: float32[B, S, D] state candidate s' (after dec_norm_state).
      state_layers: float32[L, B, S, D] state after each layer (the last after dec_norm_state).
      img_layers: float32[L, B, 1 + N + n, D] image-side tokens [pose ; N image ; n extra] after
        each layer (the last after dec_norm): Human3R's heads read the extra (prompt) tokens.
      gate_logit: float32[B, S] mean over layers, heads and valid keys of the state stream's
        pre-softmax cross-attention logits (TTT3R gate = sigmoid of it).
    """

    new_state: jax.Array
    state_layers: jax.Array
    img_layers: jax.Array
    gate_logit: jax.Array


def _param(shape: tuple[int, ...], rngs: nnx.Rngs, std: float = 0.02) -> nnx.Param:
    return nnx.Param(std * jax.random.normal(rngs.params(), shape, jnp.float32))


class LocalMemory(nnx.Module):
    """`pose_retriever`: the pose memory read by `inquire` and written by `update_mem` (§3.7)."""

    def __init__(self, cfg: Cut3rConfig, *, rngs: nnx.Rngs):
        e, d, m = cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.local_mem_size
        self.proj_q = linear(e, d, rngs=rngs)
        self.masked_token = _param((1, 1, d), rngs)
        self.mem = _param((1, m, 2 * d), rngs)

        def make():
            return DecoderBlock(2 * d, cfg.dec_num_heads, mlp_ratio=cfg.mlp_ratio,
                                eps=cfg.ln_eps, rope_base=None, dtype=cfg.dtype, rngs=rngs)

        self.write_blocks = stack_modules(make, 2)
        self.read_blocks = stack_modules(make, 2)

    def inquire(self, feat_mean: jax.Array, mem: jax.Array) -> jax.Array:
        """feat_mean: float[B, 1, E]; mem: float[B, M, 2D] -> pose query float32[B, 1, D]."""
        b = feat_mean.shape[0]
        d = self.masked_token.shape[-1]
        x = jnp.concatenate([self.proj_q(feat_mean),
                             jnp.broadcast_to(self.masked_token[...], (b, 1, d))], axis=-1)
        zeros_x = jnp.zeros((b, 1, 2), jnp.int32)
        zeros_m = jnp.zeros((b, mem.shape[1], 2), jnp.int32)

        def body(blocks, x):
            return blocks[0](x, mem, zeros_x, zeros_m)[0], None

        x, _ = scan_stack((self.read_blocks,), body, x.astype(jnp.float32))
        return x[..., d:]

    def update_mem(self, mem: jax.Array, feat_mean: jax.Array, pose_tok: jax.Array) -> jax.Array:
        """mem float[B, M, 2D]; feat_mean float[B, 1, E]; pose_tok float[B, 1, D] -> new mem."""
        feat = jnp.concatenate([self.proj_q(feat_mean), pose_tok], axis=-1).astype(jnp.float32)
        zeros_f = jnp.zeros((feat.shape[0], 1, 2), jnp.int32)
        zeros_m = jnp.zeros(mem.shape[:2] + (2,), jnp.int32)

        def body(blocks, m):
            return blocks[0](m, feat, zeros_m, zeros_f)[0], None

        mem, _ = scan_stack((self.write_blocks,), body, mem.astype(jnp.float32))
        return mem


class Cut3r(nnx.Module):
    """CUT3R (`ARCroco3DStereo`, `state_pe='2d'`, RoPE100, DPT + pose + rgb heads).

    Build it abstractly and fill it from a checkpoint with `trainers.cut3r.convert.load_cut3r`;
    `Cut3r(cfg, rngs=...)` draws random weights (tests, benchmarks).
    """

    def __init__(self, cfg: Cut3rConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        e, d, p, dt = cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.patch_size, cfg.dtype

        def enc_block(heads, fp16):
            return lambda: Block(e, heads, mlp_ratio=cfg.mlp_ratio, eps=cfg.ln_eps,
                                 rope_base=cfg.rope_base, fp16_rope=fp16, dtype=dt, rngs=rngs)

        def dec_block(heads):
            return lambda: DecoderBlock(d, heads, mlp_ratio=cfg.mlp_ratio, eps=cfg.ln_eps,
                                        rope_base=cfg.rope_base, dtype=dt, rngs=rngs)

        self.patch_embed = PatchEmbed(e, p, rngs=rngs)
        self.enc_blocks = stack_modules(enc_block(cfg.enc_num_heads, cfg.fp16_rope),
                                        cfg.enc_depth)
        self.enc_norm = nnx.LayerNorm(e, epsilon=cfg.ln_eps, rngs=rngs)
        # Ray-map encoder: loaded with the checkpoint, unused by image-only inference (§3.11).
        self.patch_embed_ray_map = PatchEmbed(e, p, in_chans=6, rngs=rngs)
        self.enc_blocks_ray_map = stack_modules(enc_block(cfg.ray_enc_num_heads, False),
                                                cfg.ray_enc_depth)
        self.enc_norm_ray_map = nnx.LayerNorm(e, epsilon=cfg.ln_eps, rngs=rngs)
        self.masked_img_token = _param((1, e), rngs)
        self.masked_ray_map_token = _param((1, e), rngs)
        self.register_tokens = _param((cfg.state_size, e), rngs, std=1.0)
        self.decoder_embed_state = linear(e, d, rngs=rngs)
        self.decoder_embed = linear(e, d, rngs=rngs)
        self.dec_blocks_state = stack_modules(dec_block(cfg.state_dec_num_heads), cfg.dec_depth)
        self.dec_blocks = stack_modules(dec_block(cfg.dec_num_heads), cfg.dec_depth)
        self.dec_norm_state = nnx.LayerNorm(d, epsilon=cfg.ln_eps, rngs=rngs)
        self.dec_norm = nnx.LayerNorm(d, epsilon=cfg.ln_eps, rngs=rngs)
        self.pose_token = _param((1, 1, d), rngs)
        self.pose_retriever = LocalMemory(cfg, rngs=rngs)
        self.downstream_head = Cut3rHeads(cfg, rngs=rngs)

    # --- encoder (§3.2-3.4) -------------------------------------------------------------------
    def encode(self, img: jax.Array, *, return_blocks: bool = False):
        """img: float[B, H, W, 3] in [-1, 1] -> (feat float32[B, N, E], pos int32[B, N, 2]).

        With return_blocks also the patch tokens [B, N, E] and every block's output [depth, B, N, E].
        """
        tokens, pos = self.patch_embed(img)
        tokens = tokens.astype(jnp.float32)

        def body(blocks, x):
            x = blocks[0](x, pos)
            return x, x

        x, blocks_out = scan_stack((self.enc_blocks,), body, tokens)
        feat = self.enc_norm(x)
        if return_blocks:
            return feat, pos, tokens, blocks_out
        return feat, pos

    # --- state (§3.5) -------------------------------------------------------------------------
    def initial_state(self, batch: int) -> tuple[jax.Array, jax.Array]:
        """(s_0 float32[B, S, D] = decoder_embed_state(register_tokens), mem_0 float32[B, M, 2D])."""
        s0 = self.decoder_embed_state(self.register_tokens[...]).astype(jnp.float32)
        mem0 = self.pose_retriever.mem[...]
        return (jnp.broadcast_to(s0, (batch,) + s0.shape),
                jnp.broadcast_to(mem0, (batch,) + mem0.shape[1:]))

    def state_pos(self) -> np.ndarray:
        """int32[S, 2] state-token positions."""
        return state_positions(self.cfg.state_size, self.cfg.state_width)

    # --- pose query (§3.7) --------------------------------------------------------------------
    def pose_query(self, feat: jax.Array, mem: jax.Array, use_token: jax.Array) -> jax.Array:
        """feat float[B, N, E]; mem float[B, M, 2D]; use_token bool[] or bool[B] -> float32[B, 1, D].

        pose_token where use_token, else LocalMemory.inquire(mean_N feat, mem).
        """
        b = feat.shape[0]
        inquired = self.pose_retriever.inquire(jnp.mean(feat, axis=1, keepdims=True), mem)
        token = jnp.broadcast_to(self.pose_token[...], inquired.shape)
        use = jnp.broadcast_to(jnp.asarray(use_token), (b,))[:, None, None]
        return jnp.where(use, token, inquired)

    def update_memory(self, mem: jax.Array, feat: jax.Array, pose_tok: jax.Array) -> jax.Array:
        """mem' = update_mem(mem, mean_N feat, refined pose token float[B, 1, D])."""
        return self.pose_retriever.update_mem(mem, jnp.mean(feat, axis=1, keepdims=True), pose_tok)

    # --- decoder (§3.6) -----------------------------------------------------------------------
    def decode(self, state: jax.Array, feat: jax.Array, pos: jax.Array, pose_query: jax.Array,
               extra: jax.Array | None = None, extra_pos: jax.Array | None = None,
               extra_valid: jax.Array | None = None) -> DecoderOutput:
        """Runs both decoder streams for one frame.

        Args:
          state: float[B, S, D] s_{t-1}.
          feat: float[B, N, E] encoder output F_t; pos: int[B, N, 2] its positions.
          pose_query: float[B, 1, D] (pose_token or the memory's answer).
          extra: float[B, n, D] tokens appended after the image tokens (Human3R prompts) or None;
            extra_pos: int[B, n, 2] their positions; extra_valid: bool[B, n] (None = all valid):
            invalid extra tokens are masked as keys everywhere (their own outputs are garbage).
        """
        b = feat.shape[0]
        x = jnp.concatenate([pose_query.astype(jnp.float32),
                             self.decoder_embed(feat).astype(jnp.float32)], axis=1)
        xpos = jnp.concatenate([jnp.broadcast_to(jnp.asarray(POSE_POSITION, jnp.int32),
                                                 (b, 1, 2)), pos.astype(jnp.int32)], axis=1)
        x_mask = None
        if extra is not None:
            x = jnp.concatenate([x, extra.astype(jnp.float32)], axis=1)
            xpos = jnp.concatenate([xpos, extra_pos.astype(jnp.int32)], axis=1)
            if extra_valid is not None:
                x_mask = jnp.concatenate([jnp.ones((b, x.shape[1] - extra.shape[1]), bool),
                                          extra_valid.astype(bool)], axis=1)
        spos = jnp.broadcast_to(jnp.asarray(self.state_pos()), (b, self.cfg.state_size, 2))

        def body(blocks, carry):
            s, x = carry
            s_new, logit = blocks[0](s, x, spos, xpos, y_mask=x_mask)
            x_new, _ = blocks[1](x, s, xpos, spos, x_mask=x_mask)
            return (s_new, x_new), (s_new, x_new, logit)

        _, (s_layers, x_layers, logits) = scan_stack(
            (self.dec_blocks_state, self.dec_blocks), body, (state.astype(jnp.float32), x))
        s_last = self.dec_norm_state(s_layers[-1])
        x_last = self.dec_norm(x_layers[-1])
        return DecoderOutput(new_state=s_last,
                             state_layers=s_layers.at[-1].set(s_last),
                             img_layers=x_layers.at[-1].set(x_last),
                             gate_logit=jnp.mean(logits, axis=0))

    def heads(self, feat: jax.Array, pos: jax.Array, dec: DecoderOutput,
              image_hw: tuple[int, int], *, return_intermediates: bool = False):
        """The pose, DPT and rgb heads on one frame (`Cut3rHeads.__call__`)."""
        return self.downstream_head(feat, pos, dec.img_layers, image_hw,
                                    return_intermediates=return_intermediates)
