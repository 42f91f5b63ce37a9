"""JSON reports (metrics, run summaries, benchmark records) with numpy values made JSON-safe."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from josh_jax.io.atomic import write_text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    arr = np.asarray(value)
    if arr.dtype.kind in "fiub":
        return arr.item() if arr.ndim == 0 else arr.tolist()
    return str(value)


def jsonable(value: Any) -> Any:
    """`value` with numpy arrays and scalars turned into lists and numbers (JSON-safe)."""
    return _jsonable(value)


def write_json(path: str, data: dict[str, Any]) -> str:
    """`data` (numbers, arrays, nested dicts) as indented JSON, written atomically."""
    text = json.dumps(_jsonable(data), indent=1, sort_keys=True, allow_nan=True)
    return write_text(path, text + "\n")
