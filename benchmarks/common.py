"""The one result writer every benchmark uses.

Each benchmark writes `benchmarks/results/<name>_<device>.json` as
`{"name", "device", "date", "command", "figures": {name_with_unit: number}, ...extra}` and prints
the same figures. The file is written to a temporary name and renamed.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

import jax

from josh_jax.io.report import write_json

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def device_description() -> tuple[str, str]:
    """(short device tag for the file name, human description) of jax's default backend."""
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return "cpu", f"cpu ({os.cpu_count()} cores, {jax.device_count()} jax device(s))"
    return dev.platform, f"{dev.device_kind} ({jax.device_count()} device(s))"


def write_result(
    name: str,
    figures: dict[str, float],
    *,
    out_dir: str = RESULTS_DIR,
    tag: str | None = None,
    device: str | None = None,
    **extra: Any,
) -> str:
    """Writes `<out_dir>/<name>_<tag>.json`, prints the figures, returns the path.

    Args:
      name: benchmark name.
      figures: {name_with_unit: number}.
      out_dir: output folder (created if needed).
      tag: device tag in the file name (default: jax's platform, e.g. "cpu", "gpu").
      device: human description of the device (default: from jax).
      **extra: more top-level keys (config, notes, per-clip details...).
    """
    default_tag, default_device = device_description()
    tag, device = tag or default_tag, device or default_device
    command = "python -m benchmarks." + os.path.splitext(os.path.basename(sys.argv[0]))[0]
    if os.environ.get("XLA_FLAGS"):
        command = f"XLA_FLAGS={os.environ['XLA_FLAGS']} " + command
    record = {
        "name": name,
        "device": device,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([command, *sys.argv[1:]]),
        "figures": figures,
        "load_average_at_end": os.getloadavg(),
        **extra,
    }
    os.makedirs(out_dir, exist_ok=True)
    path = write_json(os.path.join(out_dir, f"{name}_{tag}.json"), record)
    width = max((len(k) for k in figures), default=0)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"wrote {path}")
    return path
