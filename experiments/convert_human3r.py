"""Converts an official Human3R checkpoint to one JAX parameter file.

  python -m experiments.convert_human3r --config=experiments/configs/human3r.py:released \
      --checkpoint=/path/to/human3r.pth --output=/path/to/human3r_flax.npz

Reads `.pth`/`.pt` (needs torch), `.npz` or `.safetensors`; logs the conversion report and
refuses to write unless every entry matched (the error names each unmatched, mis-shaped or missing
key). The output `.npz` (`cut3r/<NNX path>`, `human/<PyTorch name>`) is written atomically;
`trainers.human3r.convert.load_params(path, sizes)` and `experiments/run_human3r.py
--checkpoint=` read it.
"""

from absl import flags, logging
from ml_collections import config_flags

from experiments import cli
from trainers.human3r.convert import Human3rSizes, load_human3r, save_params

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/human3r.py:released", "Human3R config file with preset."
)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "State dict (.pth/.pt/.npz/.safetensors).")
_OUTPUT = flags.DEFINE_string("output", None, "Output .npz.")


def main(argv):
    del argv
    params, report = load_human3r(_CHECKPOINT.value, Human3rSizes.from_config(_CONFIG.value))
    logging.info("%s", report.summary())
    print(f"wrote {save_params(_OUTPUT.value, params)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["checkpoint", "output"])
    cli.run(main)
