"""JOSH3R train state: the checkpointed pytree, the optimizer, and where the weights start.

* `TrainState`: step, `nnx.Param` state, `nnx.BatchStat` state, optax state, base RNG key data.
* `make_optimizer`: AdamW (Adam moments, decoupled weight decay, learning-rate schedule: linear
  warmup then cosine decay) after global-norm clipping, with
  - a **weight-decay mask**: only `kernel` leaves (Linear and Conv weights) decay; biases,
    LayerNorm/BatchNorm scales and anything else (tokens, embeddings) do not (`decay_mask`);
  - **two learning rates**: leaves whose dotted path starts with one of `backbone_prefixes`
    (default `mast3r`: everything MASt3R pretrained) step at `backbone_lr_factor` times the
    heads' rate (`param_groups`). Written as one Adam over the whole tree followed by a per-leaf
    scale, which is AdamW with per-group rates (Adam is invariant to that scale).
  Paths are matched by name, so the rule holds for the layer-stacked layout too.
* `load_init_weights`: fill a freshly built JOSH3R from converted MASt3R weights (the paper's
  start: the JOSH3R parts keep their initial values) or from JOSH3R weights (`trainers.state_dict_file`
  formats: PyTorch `.pth`, `.npz`, `.safetensors`, or the converted Flax `.npz`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from absl import logging
from flax import nnx

from josh_jax.errors import InputError
from trainers import convert, flax_state, state_dict_file


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a step changes; the checkpointed pytree.

    Attributes:
      step: int32[] number of updates done.
      params: `nnx.State` of the model's `nnx.Param`s.
      batch_stats: `nnx.State` of the model's `nnx.BatchStat`s (BatchNorm running mean/var).
      opt_state: the optax state.
      rng: uint32[k] key data of the base dropout key (`jax.random.key_data`).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


class InitCheckpointError(InputError):
    """`training.init_checkpoint` does not fit the model (names or shapes)."""


# ---------------------------------------------------------------------------------------------
# Parameter groups
# ---------------------------------------------------------------------------------------------


def path_names(path: Sequence[Any]) -> tuple[str, ...]:
    """A pytree key path of an `nnx.State` as plain names (`("mast3r", "encoder", ..., "kernel")`)."""
    names = tuple(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path)
    return tuple(n for n in names if n != "value")


def decay_mask(params: Any) -> Any:
    """Bool pytree like `params`: True where weight decay applies (`kernel` leaves only)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: path_names(p)[-1] == "kernel", params)


def param_groups(params: Any, backbone_prefixes: Sequence[str]) -> Any:
    """Str pytree like `params`: `"backbone"` for leaves under a prefix (dotted path), else
    `"heads"`."""
    prefixes = tuple(backbone_prefixes)

    def group(path, _):
        dotted = ".".join(path_names(path))
        return "backbone" if any(dotted == q or dotted.startswith(q + ".") for q in prefixes) \
            else "heads"

    return jax.tree_util.tree_map_with_path(group, params)


def scale_by_group(factors: dict[str, float], backbone_prefixes: Sequence[str]):
    """Stateless transform multiplying each leaf's update by its group's factor."""

    def apply(updates, params=None):
        del params
        groups = param_groups(updates, backbone_prefixes)
        return jax.tree.map(lambda u, g: u * jnp.asarray(factors[g], u.dtype), updates, groups)

    return optax.stateless(apply)


# ---------------------------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------------------------


def make_optimizer(
    *,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    end_lr_factor: float = 0.01,
    weight_decay: float = 1e-4,
    grad_clip_norm: float | None = 1.0,
    backbone_lr_factor: float = 1.0,
    backbone_prefixes: Sequence[str] = ("mast3r",),
    b1: float = 0.9,
    b2: float = 0.999,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW, decay masked to kernels, backbone at `backbone_lr_factor` x the heads' rate.

    Returns `(tx, schedule)`; `schedule(step)` is the heads' learning rate (the one logged).
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup_steps > 0 else learning_rate,
        peak_value=learning_rate,
        warmup_steps=int(warmup_steps),
        decay_steps=max(int(total_steps), int(warmup_steps) + 1),
        end_value=learning_rate * end_lr_factor,
    )
    parts = []
    if grad_clip_norm:
        parts.append(optax.clip_by_global_norm(grad_clip_norm))
    parts += [
        optax.scale_by_adam(b1=b1, b2=b2),
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        optax.scale_by_learning_rate(schedule),
    ]
    if float(backbone_lr_factor) != 1.0:
        parts.append(scale_by_group({"backbone": float(backbone_lr_factor), "heads": 1.0},
                                    backbone_prefixes))
    return optax.chain(*parts), schedule


def optimizer_from_config(tc: Any) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """`make_optimizer` with the fields of `config.training`."""
    return make_optimizer(
        learning_rate=tc.learning_rate,
        total_steps=tc.num_steps,
        warmup_steps=tc.warmup_steps,
        end_lr_factor=tc.end_lr_factor,
        weight_decay=tc.weight_decay,
        grad_clip_norm=tc.grad_clip_norm,
        backbone_lr_factor=tc.backbone_learning_rate / tc.learning_rate,
        backbone_prefixes=tuple(tc.backbone_prefixes),
    )


def init_train_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """Initial `TrainState` from a built model (random or loaded weights)."""
    _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )


# ---------------------------------------------------------------------------------------------
# Initial weights
# ---------------------------------------------------------------------------------------------


def load_init_weights(model: nnx.Module, path: str) -> convert.ConversionReport:
    """Fill `model` (a JOSH3R, in place) from MASt3R or JOSH3R weights at `path`.

    A file whose names start with `mast3r.` is a JOSH3R checkpoint and must fill every variable;
    any other is a MASt3R checkpoint: it fills the `mast3r` backbone (its names are prefixed
    with `mast3r.`) and the JOSH3R parts keep their initial values. Either may be a PyTorch
    state dict or a converted Flax state (`experiments/convert_josh3r.py`).

    Raises:
      InitCheckpointError: names that find no variable, shapes that differ, or (JOSH3R) variables
        left unfilled.
    """
    if not os.path.isfile(path):
        raise InitCheckpointError(path, "training.init_checkpoint", "a weights file", "no file")
    try:
        state = state_dict_file.load_state_dict_file(path)
    except Exception as e:  # noqa: BLE001 (torch, numpy, safetensors readers raise many types)
        raise InitCheckpointError(path, "(file)", "a readable state dict", str(e)) from None
    is_josh3r = any(k.startswith("mast3r.") for k in state)
    if not is_josh3r:
        state = {"mast3r." + k: v for k, v in state.items()}
    if flax_state.is_flax_state(state):
        report = flax_state.load_flax_state(model, state, source=path)
    else:
        report = convert.convert_into(model, state, source=path, strict=False)
    kind = "JOSH3R" if is_josh3r else "MASt3R"
    unfilled = report.missing if is_josh3r else [m for m in report.missing
                                                 if m.startswith("mast3r.")]
    problems = report.unmatched + report.mismatched + unfilled
    if problems or not report.loaded:
        raise InitCheckpointError(
            path, "training.init_checkpoint", f"{kind} weights that fit config.model",
            f"{len(report.unmatched)} unmatched, {len(report.mismatched)} mismatched, "
            f"{len(unfilled)} unfilled (first: {problems[:3]})")
    logging.info("Initial weights: %s (%s): loaded %d entries; %d variables keep their initial "
                 "values", path, kind, len(report.loaded), len(report.missing))
    return report
