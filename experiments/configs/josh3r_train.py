"""JOSH3R training configuration: the model config of `josh3r.py` plus `training` and `data`.

Presets (`--config=experiments/configs/josh3r_train.py:<preset>`): the model presets of
`josh3r.py` (`tiny`, `micro`, `full`, `*_bf16`); `tiny` and `micro` also shorten the run
(`micro` is the model of the training tests: a train step compiles in seconds on a CPU).

    python experiments/train_josh3r.py --config=experiments/configs/josh3r_train.py:tiny \
        --workdir=/tmp/josh3r_tiny
    # override anything: --config.training.num_steps=50 --config.data.source=pairs_npz \
    #     --config.data.path=/data/josh3r_pairs.npz

The JOSH3R paper's recipe (optimizer, schedule, batch, crops) is not public (`docs/josh3r_training.md`): these
values are this project's choices, not the reference's.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import josh, josh3r, synthetic


def _small(preset: str) -> bool:
    return preset.startswith(("tiny", "micro"))


def training_config(preset: str) -> ml_collections.ConfigDict:
    """`config.training` for a preset."""
    t = ml_collections.ConfigDict()
    t.seed = 0
    t.batch_size = 8  # global, over all devices; a multiple of the device count
    t.num_steps = 60 if _small(preset) else 100_000
    t.learning_rate = 3e-4 if _small(preset) else 1e-4  # the heads (everything not backbone)
    # The backbone (parameters under `backbone_prefixes`, dotted paths): pretrained MASt3R when
    # `init_checkpoint` is set, so the full preset fine-tunes it 10x slower than the heads.
    t.backbone_learning_rate = 3e-4 if _small(preset) else 1e-5
    t.backbone_prefixes = ("mast3r",)
    # Initial weights: "" -> random; a MASt3R checkpoint (the paper's start; the JOSH3R parts
    # start random) or a JOSH3R one, PyTorch (.pth/.safetensors/.npz) or converted Flax (.npz).
    # Ignored when the workdir has checkpoints (the run resumes instead).
    t.init_checkpoint = ""
    t.warmup_steps = 5 if _small(preset) else 2_000
    t.end_lr_factor = 0.01
    t.weight_decay = 1e-4  # on Linear/Conv kernels only (not biases, norms, tokens)
    t.grad_clip_norm = 1.0
    t.use_dropout = True
    t.parallel = "jit"  # "jit" (jit over a ("data",) mesh) or "pmap"
    t.checkpoint_every = 20 if _small(preset) else 1_000
    t.checkpoint_keep = 3
    t.async_checkpoint = True  # orbax writes in the background; `close` waits
    t.log_every = 10 if _small(preset) else 100  # metrics are fetched from the device this often
    # Block on every step's metrics. Always done on a CPU backend with several devices
    # (back-to-back collectives can hang there); True forces it elsewhere (debugging).
    t.block_every_step = False
    t.prefetch = 2  # host batches made ahead in a background thread
    t.body_model_path = ""  # "" -> the built-in mannequin; use an SMPL neutral .npz/.pkl
    return t


def data_config(preset: str) -> ml_collections.ConfigDict:
    """`config.data` for a preset."""
    d = ml_collections.ConfigDict()
    d.source = "synthetic_gt"  # "synthetic_gt" | "synthetic_josh" | "pairs_npz"
    d.path = ""  # for pairs_npz
    d.num_clips = 2 if _small(preset) else 64
    d.seed = 0
    # The synthetic clips' generator config (josh_jax.synthetic.generate_clip); its body must be
    # the training body (`training.body_model_path`; both default to the built-in mannequin).
    d.clip = synthetic.get_config("tiny" if _small(preset) else "reference_like")
    # The JOSH optimizer config used by source="synthetic_josh" (pseudo-labels from JOSH).
    d.josh = josh.get_config("fast" if _small(preset) else "default")
    d.min_gap = 3
    d.max_gap = 15  # every pair with 3 <= gap <= 15 video frames; 0 -> the reference chain only
    d.view2_depth_frame = "cam2"
    d.augment = ml_collections.ConfigDict(dict(
        enabled=True, crop_scale_min=0.5, crop_scale_max=1.0, brightness=0.1, contrast=0.1))
    return d


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The model preset `arg` of `josh3r.py` extended with `training` and `data`."""
    arg = arg or "tiny"
    config = josh3r.get_config(arg)
    config.unlock()
    config.training = training_config(arg)
    config.data = data_config(arg)
    config.lock()
    return config


def with_training_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Adds the `training` / `data` sections of the same preset to a model-only config (as made
    by `josh3r.py`); a config that has both is returned unchanged."""
    if "training" in config and "data" in config:
        return config
    full = get_config(config.get("preset", "tiny"))
    full.unlock()
    full.model = config.model
    if "image_size" in config:
        full.image_size = config.image_size
    full.lock()
    return full
