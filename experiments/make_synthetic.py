r"""Writes N synthetic clips (with ground truth) and a contact-sheet PNG per clip.

    python -m experiments.make_synthetic --config=experiments/configs/synthetic.py:default \
        --out=/tmp/synthetic --num_clips=4 --seed=0

Clip k uses seed `seed + k` and is written to `<out>/clip_<k:04d>.npz` with its preview
`<out>/clip_<k:04d>.png` (files 0644, written atomically). --out and the clip names are checked
before any work: existing files are not overwritten unless --overwrite is given. Bad input: one
line on stderr, exit status 2.
"""

import os

import tqdm
from absl import flags, logging
from ml_collections import config_flags

from experiments import cli
from josh_jax.clip import save_clip
from josh_jax.errors import InputError
from josh_jax.io import outputs
from josh_jax.synthetic import generate_clip
from josh_jax.synthetic.preview import contact_sheet

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(cli.CONFIGS, "synthetic.py") + ":default", "Synthetic generator config.")
_OUT = flags.DEFINE_string("out", None, "Output folder (created if needed).")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 1, "Number of clips.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the first clip (clip k uses seed + k).")
_PREVIEW = flags.DEFINE_bool("preview", True, "Write a contact-sheet PNG per clip.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace clips that already exist.")


def run(config, out: str, num_clips: int, seed: int, preview: bool = True,
        overwrite: bool = False) -> list[str]:
    """Generates the clips; returns the written `.npz` paths."""
    if num_clips < 1:
        raise InputError("command line", "--num_clips", "at least 1", str(num_clips))
    outputs.check_writable_folder(out)
    paths = [os.path.join(out, f"clip_{k:04d}.npz") for k in range(num_clips)]
    for path in paths:  # before any work
        if os.path.exists(path) and not overwrite:
            raise InputError(path, "(file)", "a new file (pass --overwrite to replace it)",
                             "an existing file")
    os.makedirs(out, exist_ok=True)
    written = []
    for k in tqdm.trange(num_clips, desc="synthetic clips", unit="clip"):
        path = paths[k]
        clip, gt = generate_clip(config, seed + k)
        save_clip(path, clip, gt)
        if preview:
            title = (f"{os.path.basename(path)}  seed {seed + k}: scene {config.scene}, "
                     f"motion {config.motion}, camera {config.camera}")
            contact_sheet(clip, gt, path[:-4] + ".png", title=title)
        logging.info("%s: %s", path, clip.describe())
        written.append(path)
    return written


def main(argv):
    del argv
    run(_CONFIG.value, _OUT.value, _NUM_CLIPS.value, _SEED.value, _PREVIEW.value,
        _OVERWRITE.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["out"])
    cli.run(main)
