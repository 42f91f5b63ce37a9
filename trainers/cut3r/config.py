"""The CUT3R architecture hyper-parameters as a frozen dataclass (no defaults here: every value
comes from `experiments/configs/cut3r.py`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Cut3rConfig:
    """Sizes and numerics of one CUT3R model (spec §2.1, §3).

    Attributes:
      patch_size: encoder patch (16).
      enc_embed_dim, enc_depth, enc_num_heads: encoder width E, depth, heads.
      dec_embed_dim, dec_depth, dec_num_heads: decoder width D, depth L, image-stream heads.
      state_dec_num_heads: state-stream heads.
      state_size: S state tokens; local_mem_size: M memory slots.
      ray_enc_depth, ray_enc_num_heads: ray-map encoder (weights load; unused at inference).
      dpt_feature_dim, dpt_last_dim, dpt_layer_dims: DPT adapter widths.
      mlp_ratio, ln_eps, rope_base, conf_vmin: as named.
      fp16_rope: round the encoder's q and k to float16 around RoPE (the released numerics).
      compute_dtype: 'float32' or 'bfloat16' for the transformer matmuls.
    """

    patch_size: int
    enc_embed_dim: int
    enc_depth: int
    enc_num_heads: int
    dec_embed_dim: int
    dec_depth: int
    dec_num_heads: int
    state_dec_num_heads: int
    state_size: int
    local_mem_size: int
    ray_enc_depth: int
    ray_enc_num_heads: int
    dpt_feature_dim: int
    dpt_last_dim: int
    dpt_layer_dims: tuple[int, int, int, int]
    mlp_ratio: float
    ln_eps: float
    rope_base: float
    conf_vmin: float
    fp16_rope: bool
    compute_dtype: str

    @classmethod
    def from_config(cls, model: Mapping[str, Any]) -> Cut3rConfig:
        """Builds it from `get_config(...).model` (a ConfigDict or a dict); extra keys ignored."""
        values = {f.name: model[f.name] for f in dataclasses.fields(cls)}
        values["dpt_layer_dims"] = tuple(int(v) for v in values["dpt_layer_dims"])
        return cls(**values)

    @property
    def dtype(self):
        """The matmul compute dtype (None = float32, parameters' dtype)."""
        return {"float32": None, "bfloat16": jnp.bfloat16}[self.compute_dtype]

    @property
    def dpt_hooks(self) -> tuple[int, int, int, int]:
        """Indices into [encoder, dec_1, ..., dec_L] read by the DPT heads: 0, L/2, 3L/4, L."""
        depth = self.dec_depth
        return (0, depth // 2, depth * 3 // 4, depth)

    @property
    def state_width(self) -> int:
        """Columns of the state-token position grid: int(sqrt(S)), rounded up to even."""
        w = int(self.state_size ** 0.5)
        return w + 1 if w % 2 else w
