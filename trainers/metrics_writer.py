"""Training metrics to absl logging, `workdir/metrics.jsonl` and (if importable) TensorBoard.

`metrics.jsonl` has one JSON record per step, `{"step": int, <name>: float, ...}`. On resume,
records after the restored step are dropped (the file is rewritten atomically) so the file
describes exactly one run. A line that does not parse (a run killed while appending tears the
last line) is dropped with a warning, at resume and when reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from absl import logging

from josh_jax.io.atomic import write_text


def parse_metrics_lines(lines: list[str], path: str) -> list[dict]:
    """The records of `metrics.jsonl` lines; a line that is not a JSON record with an integer
    `step` (a torn last line, after a kill) is dropped with a warning naming it."""
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not a record with an integer 'step'")
        except ValueError as e:
            last = " (the last line: torn by a killed run?)" if number == len(lines) else ""
            logging.warning("%s: line %d dropped%s: %s", path, number, last, e)
            continue
        records.append(record)
    return records


class MetricsWriter:
    """Per-step metrics to absl logging, `metrics.jsonl` and (if importable) TensorBoard.

    Args:
      workdir: the run's folder.
      resume_step: records after this step are dropped (the run restarts from it).
      enabled: False on every process but the first.
    """

    def __init__(self, workdir: str, *, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if os.path.exists(self.path):
            with open(self.path) as f:
                records = parse_metrics_lines(f.readlines(), self.path)
            kept = [r for r in records if r["step"] <= resume_step]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        try:
            from tensorboardX import SummaryWriter  # noqa: PLC0415 (optional)

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:
            self._tb = None

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one step's record (host floats)."""
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
    """The records of `workdir/metrics.jsonl`, in order (unparsable lines dropped, warned)."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        return parse_metrics_lines(f.readlines(), path)
