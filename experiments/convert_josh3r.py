"""Converts an official JOSH3R PyTorch checkpoint to a Flax state file.

  python experiments/convert_josh3r.py --config=experiments/configs/josh3r.py:full \
      --checkpoint=/path/to/josh3r.pth --output=/path/to/josh3r_flax.npz

Reads `.pth`/`.pt` (needs torch), `.npz` or `.safetensors`; prints the conversion report (every
unmatched or mis-shaped key by name) and refuses to write unless it is clean. The output `.npz`
holds the Flax Param/BatchStat arrays by dotted path; `trainers.pretrained.load_josh3r(path, config)`
loads either the original checkpoint or this file. An existing output is replaced atomically.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli, compile_cache
from trainers import flax_state, pretrained, state_dict_file

_CONFIG = config_flags.DEFINE_config_file("config", None, "JOSH3R config file with preset.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "PyTorch state dict (.pth/.pt/.npz/.safetensors).")
_OUTPUT = flags.DEFINE_string("output", None, "Output .npz (Flax state by dotted path).")
_STRICT = flags.DEFINE_bool("strict", True, "Refuse checkpoints with unmatched/missing keys.")


def main(argv):
    del argv
    compile_cache.enable(compile_cache.COMPILATION_CACHE.value)
    model, report = pretrained.load_josh3r(_CHECKPOINT.value, _CONFIG.value.model,
                                        strict=_STRICT.value)
    print(report.summary())
    state_dict_file.save_state_dict_npz(_OUTPUT.value, flax_state.flax_state_dict(model))
    print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "checkpoint", "output"])
    cli.run(main)
