"""Converted model state by dotted Flax path (`mast3r.encoder.blocks.attn.qkv.kernel`): the
format `experiments/convert_josh3r.py` writes and training checkpoints' init weights may use.

Usage:
  state = flax_state_dict(model)             # name -> host numpy (Param and BatchStat)
  if is_flax_state(state):
      report = load_flax_state(model, state)   # trainers.convert.ConversionReport

PyTorch state dicts go through `trainers.convert.convert_into` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers import convert


def is_flax_state(state: Mapping[str, Any]) -> bool:
    """True for a converted Flax state (dotted Flax paths, e.g. from `flax_state_dict`)."""
    return any(k.startswith(("mast3r.encoder.", "encoder.patch_embed.")) for k in state)


def _legacy_layer(name: str, targets: Mapping[str, nnx.Variable]) -> tuple[str, int] | None:
    """(stacked path, layer) of a per-layer Flax name (`encoder.blocks.3.attn...`, written
    before the blocks were stacked), or None."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            path = ".".join(parts[:i] + parts[i + 1:])
            if path in targets:
                return path, int(part)
    return None


def load_flax_state(model: nnx.Module, state: Mapping[str, Any], *,
                    source: str = "checkpoint") -> convert.ConversionReport:
    """Fills `model` from a dotted-Flax-path state (as written by `flax_state_dict`).

    Files written before the blocks were stacked (one name per layer, e.g.
    `mast3r.encoder.blocks.3.attn.qkv.kernel`) load into the stacked variables too.
    """
    targets = convert.model_variables(model)
    report = convert.ConversionReport()
    layers: dict[str, dict[int, np.ndarray]] = {}
    filled: set[str] = set()
    for name in state.keys():
        var, path, layer = targets.get(name), name, None
        if var is None:
            legacy = _legacy_layer(name, targets)
            if legacy is None:
                report.unmatched.append(name)
                continue
            path, layer = legacy
            var = targets[path]
        value = np.asarray(state[name])
        expected = tuple(var.get_value().shape)
        if layer is not None:
            if not 0 <= layer < expected[0]:
                report.unmatched.append(name)
                continue
            expected = expected[1:]
        if tuple(value.shape) != expected:
            report.mismatched.append(f"{name}: expected {expected}, found {tuple(value.shape)}")
            continue
        dtype = var.get_value().dtype
        if layer is None:
            var.set_value(jnp.asarray(value, dtype))
            filled.add(path)
        else:
            layers.setdefault(path, {})[layer] = value.astype(dtype)
            filled.add(f"{path}[{layer}]")
        report.loaded.append(name)
    report.missing = convert.write_layers(targets, layers, filled, shapes_only=False)
    return report


def flax_state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    """Param and BatchStat arrays of a model by dotted Flax path (host numpy)."""
    return {k: np.asarray(v.get_value()) for k, v in convert.model_variables(model).items()}
