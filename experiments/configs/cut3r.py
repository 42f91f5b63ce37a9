"""CUT3R model configuration (ml_collections).

Presets (`--config=experiments/configs/cut3r.py:<preset>`):
  released      the released `cut3r_512_dpt_4_64.pth` sizes (ViT-L/16 encoder, ViT-B decoders,
                768 state tokens, 256 memory slots, DPT 256/128): 793.3 M parameters
  tiny          the widths of the PyTorch parity vectors (`cut3r_tiny_forward.npz`)
  small         a CPU benchmark size between the two
  <preset>_bf16 the same with bfloat16 transformer matmuls (parameters, heads and softmax fp32)

`model.fp16_rope` reproduces the released encoder's float16 rounding of q and k around RoPE
(croco `Attention`); on by default so outputs match the released model.
"""

from __future__ import annotations

import ml_collections


def model_config(size: str = "tiny", compute_dtype: str = "float32") -> ml_collections.ConfigDict:
    """The `config.model` sub-config for one size ('tiny', 'small' or 'released')."""
    m = ml_collections.ConfigDict()
    m.patch_size = 16
    m.rope_base = 100.0
    m.mlp_ratio = 4.0
    m.ln_eps = 1e-6
    m.fp16_rope = True  # released behaviour: encoder q/k rounded to float16 around RoPE
    m.compute_dtype = compute_dtype  # 'float32' | 'bfloat16': transformer matmuls only
    m.ray_enc_depth = 2
    m.ray_enc_num_heads = 16  # hard-coded in the release
    m.conf_vmin = 1.0  # conf_mode ('exp', 1, inf)
    if size == "released":
        m.enc_embed_dim, m.enc_depth, m.enc_num_heads = 1024, 24, 16
        m.dec_embed_dim, m.dec_depth, m.dec_num_heads = 768, 12, 12
        m.state_dec_num_heads = 16
        m.state_size, m.local_mem_size = 768, 256
        m.dpt_feature_dim, m.dpt_last_dim = 256, 128
        m.dpt_layer_dims = (96, 192, 384, 768)
    elif size == "tiny":
        m.enc_embed_dim, m.enc_depth, m.enc_num_heads = 64, 2, 4
        m.dec_embed_dim, m.dec_depth, m.dec_num_heads = 32, 4, 2
        m.state_dec_num_heads = 4
        m.state_size, m.local_mem_size = 30, 8
        m.dpt_feature_dim, m.dpt_last_dim = 16, 8
        m.dpt_layer_dims = (8, 16, 24, 32)
    elif size == "small":
        m.enc_embed_dim, m.enc_depth, m.enc_num_heads = 192, 4, 4
        m.dec_embed_dim, m.dec_depth, m.dec_num_heads = 128, 4, 4
        m.state_dec_num_heads = 4
        m.state_size, m.local_mem_size = 96, 32
        m.dpt_feature_dim, m.dpt_last_dim = 32, 16
        m.dpt_layer_dims = (16, 32, 48, 64)
    else:
        raise ValueError(f"unknown CUT3R size {size!r}: expected 'tiny', 'small' or 'released'")
    return m


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config for a preset 'tiny' (default), 'small', 'released' or '<size>_bf16'."""
    arg = arg or "tiny"
    size, _, extra = arg.partition("_")
    if extra not in ("", "bf16"):
        raise ValueError(f"unknown CUT3R preset {arg!r}: expected <size> or <size>_bf16")
    config = ml_collections.ConfigDict()
    config.model = model_config(size, "bfloat16" if extra == "bf16" else "float32")
    # Online inference.
    config.image_size = 512  # long side
    config.reset_interval = 100  # frames per chunk (spec §3.12); a huge value disables resets
    config.ttt3r = False  # TTT3R gated state update
    config.lock()
    return config
