"""JOSH3R model configuration (ml_collections).

Presets (`--config=experiments/configs/josh3r.py:<preset>`):
  full        official sizes (MASt3R ViT-L/16 encoder, ViT-B decoder, DPT, JOSH3R width 768)
  tiny        the widths of the PyTorch parity vectors (tests, CPU runs)
  micro       the same architecture and code paths at the smallest useful sizes (1 encoder
              block, 3 decoder blocks per view hooked at [0, 1, 2, 3]): the training tests
              compile a real JOSH3R train step in seconds on a 2-core CPU
  full_bf16   full sizes, bfloat16 matmuls in the transformer (params and heads float32)
  tiny_bf16   tiny sizes with bfloat16 matmuls (also `micro_bf16`)

Example:
  python experiments/convert_josh3r.py --config=experiments/configs/josh3r.py:full \
      --checkpoint=josh3r.pth --output=/tmp/josh3r_flax
"""

from __future__ import annotations

import ml_collections


def model_config(size: str = "tiny", compute_dtype: str = "float32") -> ml_collections.ConfigDict:
    """The `config.model` sub-config for one size ('tiny', 'micro' or 'full')."""
    m = ml_collections.ConfigDict()
    m.patch_size = 16
    m.rope_base = 100.0
    m.mlp_ratio = 4.0
    m.enc_ln_eps = 1e-6  # croco blocks
    m.josh_ln_eps = 1e-5  # JOSH3R's extra blocks and shared dec_norm (PyTorch default)
    m.bn_eps = 1e-5
    m.bn_momentum = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch
    # Indices into the DPT token list [encoder, dec_1, ..., dec_depth]; the last must be
    # dec_depth (the reference's [0, 6, 9, 12] for a 12-block decoder).
    m.dpt_hooks = (0, 6, 9, 12)
    m.desc_dim = 24
    m.local_feat_hidden_factor = 4.0
    m.conf_vmin = 1.0  # conf_mode ('exp', 1, inf)
    m.desc_conf_vmin = 0.0  # desc_conf_mode ('exp', 0, inf)
    m.roi_size = 7
    m.num_basic_blocks = 2
    m.dropout_rate = 0.5
    m.compute_dtype = compute_dtype  # 'float32' | 'bfloat16': transformer matmuls only
    # Rematerialisation of the scanned encoder/decoder block in the backward pass: 'none',
    # 'full' (store only each block's input), 'dots' (keep matmul outputs), 'dots_no_batch'.
    m.remat = "none"
    if size == "full":
        m.enc_embed_dim, m.enc_depth, m.enc_num_heads = 1024, 24, 16
        m.dec_embed_dim, m.dec_depth, m.dec_num_heads = 768, 12, 12
        m.dpt_feature_dim, m.dpt_last_dim = 256, 128
        m.dpt_layer_dims = (96, 192, 384, 768)
        m.josh_num_heads = 12
        m.roi_conv_channels = 256
    elif size == "tiny":
        m.enc_embed_dim, m.enc_depth, m.enc_num_heads = 64, 2, 4
        m.dec_embed_dim, m.dec_depth, m.dec_num_heads = 32, 12, 2
        m.dpt_feature_dim, m.dpt_last_dim = 32, 16
        m.dpt_layer_dims = (12, 24, 48, 96)
        m.josh_num_heads = 2
        m.roi_conv_channels = 32
    elif size == "micro":
        m.enc_embed_dim, m.enc_depth, m.enc_num_heads = 32, 1, 2
        m.dec_embed_dim, m.dec_depth, m.dec_num_heads = 16, 3, 2
        m.dpt_hooks = (0, 1, 2, 3)
        m.dpt_feature_dim, m.dpt_last_dim = 16, 8
        m.dpt_layer_dims = (8, 8, 16, 16)
        m.desc_dim = 8
        m.josh_num_heads = 2
        m.roi_conv_channels = 8
        m.num_basic_blocks = 1
    else:
        raise ValueError(f"unknown JOSH3R size {size!r}: expected 'tiny', 'micro' or 'full'")
    # JOSH3R's width (`mast3r_dim`) is the decoder width; heads' hidden width equals it.
    m.josh_dim = m.dec_embed_dim
    return m


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config for a preset 'tiny' (default), 'micro', 'full' or '<size>_bf16'."""
    arg = arg or "tiny"
    parts = arg.split("_")
    size = parts[0]
    extras = parts[1:]
    if size not in ("tiny", "micro", "full") or any(e not in ("bf16",) for e in extras):
        raise ValueError(f"unknown preset {arg!r}: expected tiny, micro, full or <size>_bf16")
    compute_dtype = "bfloat16" if "bf16" in extras else "float32"
    config = ml_collections.ConfigDict()
    config.preset = arg
    config.model = model_config(size, compute_dtype)
    # Image size used for default inputs (H, W): the reference trains/infers at 512 x {384..160}.
    config.image_size = {"tiny": (48, 80), "micro": (32, 48)}.get(size, (288, 512))
    config.lock()
    return config
