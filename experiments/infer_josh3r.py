"""Runs JOSH3R on a clip and writes the Result (npz, glb, TUM trajectory, preview) like JOSH.

  # official weights (PyTorch .pth, or the .npz written by convert_josh3r.py):
  python experiments/infer_josh3r.py --config=experiments/configs/josh3r.py:full \
      --checkpoint=josh3r_flax.npz --clip=clip.npz --output=out/ --body_model=smpl_neutral.npz
  # a training run of experiments/train_josh3r.py (its workdir or workdir/checkpoints):
  python experiments/infer_josh3r.py --config=experiments/configs/josh3r_train.py:tiny \
      --checkpoint=/tmp/josh3r_tiny --clip=clip.npz --output=out/

`--reference_compat` reproduces the reference (whole-image ROI, chaining without the pelvis
offset); the default fixes both (`docs/method.md`, section 11).
"""

import os

import jax
from absl import flags, logging
from flax import nnx
from ml_collections import config_flags

import body_models
from experiments import cli, compile_cache
from experiments.configs.josh3r_train import with_training_defaults
from josh_jax.clip import load_clip
from josh_jax.io.outputs import write_all
from trainers import infer

_CONFIG = config_flags.DEFINE_config_file("config", None, "JOSH3R config file with preset.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Weights: .pth/.pt/.npz/.safetensors file, or a training workdir.")
_CLIP = flags.DEFINE_string("clip", None, "Input clip .npz (josh_jax.clip format, with images).")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder.")
_BODY = flags.DEFINE_string("body_model", "", "Body model file ('' = built-in mannequin).")
_COMPAT = flags.DEFINE_bool("reference_compat", False, "Reproduce the reference's bugs.")
_CROP = flags.DEFINE_float("center_crop_scale", 0.5, "Centre crop fed to the model.")
_TRACK = flags.DEFINE_integer("track", 0, "Human track to follow.")
_PREVIEW = flags.DEFINE_bool("preview", False, "Also write an .mp4 preview.")


def load_model(config, checkpoint: str) -> nnx.Module:
    """A JOSH3R from a weights file (trainers.pretrained) or a training workdir (orbax).

    Either way the model is built abstractly (`nnx.eval_shape`, no random draws) and filled
    from the checkpoint; from a workdir only the parameters and BatchNorm statistics of the
    newest good step are read (no optimizer state).
    """
    from trainers import checkpoint as ckpt_lib
    from trainers import josh3r, pretrained

    if os.path.isfile(checkpoint):
        model, report = pretrained.load_josh3r(checkpoint, config.model)
        logging.info("%s", report.summary())
        return model
    directory = checkpoint
    if os.path.isdir(os.path.join(checkpoint, "checkpoints")):
        directory = os.path.join(checkpoint, "checkpoints")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--checkpoint: {checkpoint} is neither a file nor a folder")
    config = with_training_defaults(config)
    seed = int(config.training.seed)
    model = pretrained.abstract_model(josh3r.JOSH3R, config.model, seed)
    _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    shapes = lambda tree: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
    ckpt = ckpt_lib.Checkpointer(directory)
    params, batch_stats, step = ckpt.restore_weights(shapes(params), shapes(batch_stats))
    logging.info("Restored the weights of step %d from %s", step, directory)
    nnx.update(model, params, batch_stats)
    model = pretrained.concretise(model, josh3r.JOSH3R, config.model, seed)
    model.eval()
    return model


def main(argv):
    del argv
    compile_cache.enable(compile_cache.COMPILATION_CACHE.value)
    config = _CONFIG.value
    clip, _ = load_clip(_CLIP.value)
    body = body_models.load_model(_BODY.value or None)
    model = load_model(config, _CHECKPOINT.value)
    cfg = infer.InferConfig(image_hw=tuple(config.image_size), reference_compat=_COMPAT.value,
                            center_crop_scale=_CROP.value, track=_TRACK.value)
    result = infer.infer_clip(model, clip, body, cfg)
    stem = os.path.splitext(os.path.basename(_CLIP.value))[0] + "_josh3r"
    writers = ("npz", "static_glb", "tum") + (("mp4",) if _PREVIEW.value else ())
    paths = write_all(_OUTPUT.value, stem, result, writers=writers)
    print(f"{len(result.diagnostics['pairs'])} pairs, {result.num_frames} frames")
    for kind, p in paths.items():
        print(f"wrote {kind}: {p}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "checkpoint", "clip", "output"])
    cli.run(main)
