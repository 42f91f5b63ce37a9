"""JOSH3R / MASt3R models built from checkpoints: abstract build, filled by name, made concrete.

Usage:
  model, report = load_josh3r("josh3r.pth", get_config("full").model)   # eval mode
  print(report.summary())
  model = abstract_model(JOSH3R, config.model)   # shapes only, nothing drawn
  model = concretise(model, JOSH3R, config.model, seed)

The name and layout rules live in `trainers.convert`; files are read by
`trainers.state_dict_file`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from trainers import convert, flax_state, state_dict_file
from trainers.josh3r import JOSH3R
from trainers.mast3r import MASt3R
from trainers.nn.layers import shapes_only


def abstract_model(cls, config, seed: int = 0) -> nnx.Module:
    """`cls(config)` with `jax.ShapeDtypeStruct` weights: the structure only, no values drawn.

    Built eagerly under `trainers.nn.layers.shapes_only` (random initialisers return shapes;
    small constant-initialised variables such as biases and norms stay concrete), which is far
    faster than tracing the constructor with `nnx.eval_shape`.
    """
    with shapes_only():
        return cls(config, rngs=nnx.Rngs(seed))


def concretise(model: nnx.Module, cls, config, seed: int) -> nnx.Module:
    """A loaded abstract model made concrete.

    Parameters and statistics the checkpoint filled are kept; RNG stream state (dropout keys
    and counters) gets fresh values from `seed`. Only when some parameter or statistic was not
    in the checkpoint (non-strict loading) is the model built eagerly (random initial values)
    and the loaded values copied into it.
    """
    flat = [(path, var) for path, var in nnx.to_flat_state(nnx.state(model))
            if convert.is_abstract(var.get_value())]
    if any(isinstance(var, (nnx.Param, nnx.BatchStat)) for _, var in flat):
        eager = cls(config, rngs=nnx.Rngs(seed))
        targets = convert.model_variables(eager)
        for name, var in convert.model_variables(model).items():
            if not convert.is_abstract(var.get_value()):
                targets[name].set_value(var.get_value())
        return eager
    key = jax.random.key(seed)
    for i, (_, var) in enumerate(flat):
        sds = var.get_value()
        if jax.dtypes.issubdtype(sds.dtype, jax.dtypes.prng_key):
            var.set_value(jax.random.fold_in(key, i))
        else:
            var.set_value(jnp.zeros(sds.shape, sds.dtype))
    return model


def _build_and_load(cls, state_dict, config, source, strict, seed):
    # Abstract build (no random draws), filled from the checkpoint; variables the checkpoint
    # lacks keep their initial values when strict=False (`concretise`).
    model = abstract_model(cls, config, seed)
    if flax_state.is_flax_state(state_dict):
        report = flax_state.load_flax_state(model, state_dict, source=source)
    else:
        report = convert.convert_into(model, state_dict, source=source, strict=False)
    if strict and not report.ok:
        raise convert.ConversionError(f"{source}: the state dict does not fit the "
                                      f"{cls.__name__} model\n{report.summary()}")
    model = concretise(model, cls, config, seed)
    model.eval()
    return model, report


def load_josh3r(state_dict: Mapping[str, Any] | str | os.PathLike, config, *,
                strict: bool = True, seed: int = 0) -> tuple[JOSH3R, convert.ConversionReport]:
    """Builds a JOSH3R from a PyTorch state dict (or a checkpoint path) in eval mode.

    Also accepts the converted Flax state written by `experiments/convert_josh3r.py`
    (`.npz` with dotted Flax paths), so inference can take either file.

    Returns (model, report); raises convert.ConversionError if strict and not clean.
    """
    source = "state dict"
    if isinstance(state_dict, (str, os.PathLike)):
        source = os.fspath(state_dict)
        state_dict = state_dict_file.load_state_dict_file(source)
    return _build_and_load(JOSH3R, state_dict, config, source, strict, seed)


def load_mast3r(state_dict: Mapping[str, Any] | str | os.PathLike, config, *,
                strict: bool = True, seed: int = 0) -> tuple[MASt3R, convert.ConversionReport]:
    """Like load_josh3r for the MASt3R backbone alone.

    Accepts a bare MASt3R state dict or a JOSH3R one (its `mast3r.*` entries are used; other
    JOSH3R entries are dropped before conversion).
    """
    source = "state dict"
    if isinstance(state_dict, (str, os.PathLike)):
        source = os.fspath(state_dict)
        state_dict = state_dict_file.load_state_dict_file(source)
    if any(k.startswith("mast3r.") for k in state_dict):
        state_dict = {k[len("mast3r."):]: v for k, v in state_dict.items()
                      if k.startswith("mast3r.")}
    return _build_and_load(MASt3R, state_dict, config, source, strict, seed)
