"""Converts an official CUT3R checkpoint to the NNX parameter file.

  python -m experiments.convert_cut3r --config=experiments/configs/cut3r.py:released \
      --checkpoint=/path/to/cut3r_512_dpt_4_64.pth --output=/path/to/cut3r_flax.npz

Reads `.pth`/`.pt` (needs torch), `.npz` or `.safetensors`; prints the conversion report and
refuses to write unless every entry matched (the error names each offending key). The output
`.npz` holds the parameters by dotted NNX path, written atomically;
`trainers.cut3r.convert.load_params(path, cfg)` reads it back.
"""

from absl import flags, logging
from ml_collections import config_flags

from experiments import cli
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.convert import load_cut3r, save_params

_CONFIG = config_flags.DEFINE_config_file("config", None, "CUT3R config file with preset.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "State dict (.pth/.pt/.npz/.safetensors).")
_OUTPUT = flags.DEFINE_string("output", None, "Output .npz (parameters by dotted NNX path).")


def main(argv):
    del argv
    cfg = Cut3rConfig.from_config(_CONFIG.value.model)
    model, report = load_cut3r(_CHECKPOINT.value, cfg)
    logging.info("%s", report.summary())
    print(f"wrote {save_params(_OUTPUT.value, model)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "checkpoint", "output"])
    cli.run(main)
