"""The JOSH3R train step, written once for whatever batch it is given (`trainers.parallel` runs
it under `jax.jit` over a mesh or under `jax.pmap`).

`make_step_fns` splits a model into its static graphs (train, pmap with BatchNorm
`axis_name="data"`, eval) and the state pieces; `train_step` is one AdamW update on a batch.

Dropout: the model's dropout RNG streams are re-seeded every step from
`fold_in(base_key, step)` (and the device index under pmap), so a resumed run draws the same
masks as an uninterrupted one and nothing RNG-related has to be checkpointed beyond the base key.
The two parallel paths lay the random bits out differently, so they agree only with dropout off
(`use_dropout=False`), which is how they are compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from trainers import pair_loss
from trainers.train_state import TrainState

DATA_AXIS = "data"

@dataclasses.dataclass(frozen=True)
class StepFns:
    """The static pieces a step needs, built once from a model (`make_step_fns`).

    Attributes:
      graphdef_train: model graph in training mode (BatchNorm batch statistics, dropout on/off).
      graphdef_pmap: the same with BatchNorm `axis_name="data"` for the pmap path.
      graphdef_eval: model graph in eval mode (running statistics, no dropout).
      other: the model's remaining state (RNG streams), re-seeded every step.
      tx: the optax transformation.
      schedule: learning-rate schedule (for logging).
      body: the SMPL body model used by the loss.
      rng_tags: the model's RNG stream tags, re-seeded every step.
    """

    graphdef_train: Any
    graphdef_pmap: Any
    graphdef_eval: Any
    other: Any
    tx: optax.GradientTransformation
    schedule: Callable[[Any], Any]
    body: Any
    rng_tags: tuple[str, ...] = ()


def _rng_stream_tags(other: Any) -> tuple[str, ...]:
    """Tags of the RNG streams held in a split-off state (e.g. 'default', 'dropout')."""
    tags = {getattr(v, "tag", None) for _, v in nnx.to_flat_state(other)
            if isinstance(v, nnx.RngKey)}
    return tuple(sorted(t for t in tags if t))


def make_step_fns(
    model: nnx.Module,
    tx: optax.GradientTransformation,
    schedule: Callable[[Any], Any],
    body: Any,
    *,
    use_dropout: bool = True,
) -> StepFns:
    """Split `model` into static graphs (train / pmap / eval) and the state pieces.

    The model object is left in eval mode with no BatchNorm axis name.
    """
    model.train()
    if not use_dropout:
        model.set_attributes(nnx.Dropout, deterministic=True, raise_if_not_found=False)
    graphdef_train, _, _, other = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    model.set_attributes(nnx.BatchNorm, axis_name=DATA_AXIS, raise_if_not_found=False)
    graphdef_pmap = nnx.split(model, nnx.Param, nnx.BatchStat, ...)[0]
    model.set_attributes(nnx.BatchNorm, axis_name=None, raise_if_not_found=False)
    model.eval()
    graphdef_eval = nnx.split(model, nnx.Param, nnx.BatchStat, ...)[0]
    return StepFns(graphdef_train, graphdef_pmap, graphdef_eval, other, tx, schedule, body,
                   _rng_stream_tags(other))


def forward(graphdef: Any, params: Any, batch_stats: Any, other: Any, batch: Mapping[str, Any]):
    """Run the model on a batch; returns (predictions, updated BatchStat state)."""
    model = nnx.merge(graphdef, params, batch_stats, other, copy=True)
    pred = model(batch["imgs"], batch["img_shapes"], batch["bbox"])
    return pred, nnx.state(model, nnx.BatchStat)


def train_step(
    fns: StepFns,
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One AdamW update on a batch of image pairs.

    Args:
      fns: static pieces (`make_step_fns`).
      state: the current `TrainState`.
      batch: images `imgs` float32[B, 2, h, w, 3] (NHWC) in [-1, 1], `img_shapes` int32[B, 2, 2],
        `bbox` float32[B, 2, 4] and the labels of `pair_loss.LABEL_FIELDS`.
      axis_name: None under `jit` (global batch); the pmap axis name under `pmap` (local batch).

    Returns:
      `(new_state, metrics)`; metrics are float32 scalars: `loss`, the seven terms,
      `grad_norm`, `lr`, `nonfinite` (1.0 when the loss or a gradient was NaN/Inf; the update
      is then skipped).
    """
    graphdef = fns.graphdef_pmap if axis_name is not None else fns.graphdef_train
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    other = fns.other
    if fns.rng_tags:
        tmp = nnx.merge(graphdef, state.params, state.batch_stats, other, copy=True)
        nnx.reseed(tmp, **{t: jax.random.fold_in(key, i) for i, t in enumerate(fns.rng_tags)})
        other = nnx.split(tmp, nnx.Param, nnx.BatchStat, ...)[3]

    def loss_fn(params):
        pred, new_bs = forward(graphdef, params, state.batch_stats, other, batch)
        loss, terms = pair_loss.reduce_losses(pred, batch, fns.body, axis_name=axis_name)
        return loss, (terms, new_bs)

    (loss, (terms, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
        grads, loss, terms = jax.lax.psum((grads, loss, terms), axis_name)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = fns.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # A non-finite step leaves the state untouched (and is reported), instead of poisoning it.
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = TrainState(
        step=state.step + 1,
        params=keep(params, state.params),
        batch_stats=keep(new_bs, state.batch_stats),
        opt_state=keep(opt_state, state.opt_state),
        rng=state.rng,
    )
    metrics = dict(terms)
    metrics.update(
        loss=loss,
        grad_norm=grad_norm,
        lr=jnp.asarray(fns.schedule(state.step), jnp.float32),
        nonfinite=1.0 - finite.astype(jnp.float32),
    )
    return new_state, metrics

