"""Human3R configuration (ml_collections): CUT3R sizes, the human branch, online inference.

Presets (`--config=experiments/configs/human3r.py:<preset>`):
  released      the released `human3r.pth` sizes: CUT3R 793.3 M + DINOv2 ViT-L/14 at 896 and the
                human heads = 1,167.5 M parameters
  tiny          the widths of the PyTorch parity vectors (`human3r_tiny_forward.npz`)
  small         a CPU size for smoke runs and the CPU benchmark (`--random_init`)
  <preset>_bf16 the same with bfloat16 transformer matmuls in CUT3R

Every default of `experiments/run_human3r.py` and `benchmarks/human3r.py` lives here.
"""

from __future__ import annotations

import ml_collections

from experiments.configs.cut3r import model_config

# Where the official weights are published (the run binary prints it when none is given).
OFFICIAL_CHECKPOINT = (
    "the official Human3R checkpoint (human3r.pth) is linked from "
    "https://github.com/fanegg/Human3R (README, 'Download checkpoints'); "
    "convert it once with: python -m experiments.convert_human3r "
    "--checkpoint=human3r.pth --output=human3r_flax.npz, then pass "
    "--checkpoint=human3r_flax.npz (a .pth/.safetensors/.npz state dict "
    "also works directly)"
)


def human_config(size: str = "tiny") -> ml_collections.ConfigDict:
    """The `config.human` sub-config (DINOv2 backbone, detection, heads, tracking) for one size."""
    h = ml_collections.ConfigDict()
    h.dino_patch_size = 14
    h.mlp_ratio = 4.0
    h.det_threshold = 0.3  # after NMS (spec §4.3)
    h.sinkhorn_iters = 20
    h.sinkhorn_alpha = -10.0
    h.match_threshold = 0.2
    h.smpl_pose_dim = 318  # 53 joints x 6D rows
    h.num_betas = 10
    h.num_expression = 10
    h.num_betas_kid = 11
    h.cam_dim = 3
    if size == "released":
        h.dino_embed_dim, h.dino_depth, h.dino_num_heads = 1024, 24, 16
        h.dino_img_size = 518  # position-embedding grid 37 x 37
        h.mhmr_img_res = 896  # Multi-HMR input (64 x 64 tokens)
    elif size == "tiny":
        h.dino_embed_dim, h.dino_depth, h.dino_num_heads = 48, 2, 3
        h.dino_img_size = 70
        h.mhmr_img_res = 112
    elif size == "small":
        h.dino_embed_dim, h.dino_depth, h.dino_num_heads = 96, 2, 3
        h.dino_img_size = 70
        h.mhmr_img_res = 224
    else:
        raise ValueError(f"unknown Human3R size {size!r}: expected 'tiny', 'small' or 'released'")
    h.max_people = 8  # prompt slots per frame (static shape); extra detections are dropped
    h.track_slots = 32  # tracking memory slots (the oldest unmatched tracks fall off when full)
    return h


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config for 'tiny', 'small', 'released' (default) or '<size>_bf16'."""
    arg = arg or "released"
    size, _, extra = arg.partition("_")
    if extra not in ("", "bf16"):
        raise ValueError(f"unknown Human3R preset {arg!r}: expected <size> or <size>_bf16")
    config = ml_collections.ConfigDict()
    config.preset = arg
    config.model = model_config(size, "bfloat16" if extra == "bf16" else "float32")
    config.human = human_config(size)
    # Online inference (spec §3.1, §3.12, §5.1: the demo's settings).
    config.image_size = 512  # long side of the CUT3R input; cropped to multiples of 16
    config.reset_interval = 100  # frames per chunk; a huge value disables resets
    config.ttt3r = False  # TTT3R gated state update (the evaluation uses it)
    config.max_frames = 0  # 0: every frame
    config.stride = 1  # keep every stride-th frame
    config.seed = 0  # --random_init weights
    # Outputs.
    config.scene_stride = 4  # pixel step of the stored scene points (memory: one grid per frame)
    config.conf_threshold = 2.0  # scene points kept where conf_self >= this (demo --vis_threshold)
    config.writers = ("npz", "glb", "amass", "tum", "mp4")  # as run_josh (io/outputs.py)
    config.log_every = 10  # progress line every this many frames
    config.lock()
    return config
