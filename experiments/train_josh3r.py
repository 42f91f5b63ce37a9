"""Trains JOSH3R (data-parallel over all devices, orbax checkpoints, exact resume).

  python experiments/train_josh3r.py --config=experiments/configs/josh3r_train.py:tiny \
      --workdir=/tmp/josh3r_tiny
  # the model presets of josh3r.py also work (training/data defaults are added):
  python experiments/train_josh3r.py --config=experiments/configs/josh3r.py:tiny --workdir=...

Re-running with the same --workdir resumes from its latest checkpoint. Metrics go to
`<workdir>/metrics.jsonl` (and TensorBoard if tensorboardX is installed). Multi-host: set
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process. Start from
MASt3R weights with --config.training.init_checkpoint=<file>. A damaged newest checkpoint is
skipped (logged) and the newest good one used. Compiled steps are kept in JAX's persistent
cache (--compilation_cache, see experiments/compile_cache.py).
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli, compile_cache
from experiments.configs import josh3r_train
from trainers import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file with preset.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl, tensorboard/.")


def main(argv):
    del argv
    compile_cache.enable(compile_cache.COMPILATION_CACHE.value)  # a resumed run compiles once
    train.run(josh3r_train.with_training_defaults(_CONFIG.value), _WORKDIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)
