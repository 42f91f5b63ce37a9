"""Trains JOSH3R (data-parallel over all devices, orbax checkpoints, exact resume).

  python experiments/train_josh3r.py --config=experiments/configs/josh3r_train.py:tiny \
      --workdir=/tmp/josh3r_tiny
  # the model presets of josh3r.py also work (training/data defaults are added):
  python experiments/train_josh3r.py --config=experiments/configs/josh3r.py:tiny --workdir=...

Re-running with the same --workdir resumes from its latest checkpoint. Metrics go to
`<workdir>/metrics.jsonl` (and TensorBoard if tensorboardX is installed). Multi-host: set
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from experiments.configs import josh3r_train
from trainers import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file with preset.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl, tensorboard/.")


def main(argv):
    del argv
    train.run(josh3r_train.with_training_defaults(_CONFIG.value), _WORKDIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)
