"""JOSH3R training: one train step, run data-parallel two ways, and the training loop.

The step (`train_step`) is written once, for whatever batch it is given:

* **jit + mesh** (`make_jit_step`, the default; current JAX practice): `jax.jit` over a named
  `("data",)` mesh, the batch sharded `P("data")`, the state replicated `P()`. XLA inserts the
  gradient all-reduce; BatchNorm statistics are computed over the *global* batch.
* **pmap** (`make_pmap_step`, the user's design): the same function under
  `jax.pmap(axis_name="data")`. The loss returns each device's share of the global mean
  (`losses.reduce_losses(axis_name=...)`), gradients and metrics are `psum`-ed, and every
  BatchNorm gets `axis_name="data"` so its batch statistics are the global ones too. Both paths
  therefore compute the same update (tested in `tests/test_josh3r_train.py`).

Dropout: the model's dropout RNG streams are re-seeded every step from
`fold_in(base_key, step)` (and the device index under pmap), so a resumed run draws the same
masks as an uninterrupted one and nothing RNG-related has to be checkpointed beyond the base key.
The two parallel paths lay the random bits out differently, so they agree only with dropout off
(`use_dropout=False`), which is how they are compared.

`run(config, workdir)` is the loop: build data, model and state, restore the latest checkpoint
if any, step, log metrics (absl, `workdir/metrics.jsonl`, TensorBoard when `tensorboardX` is
importable), save every `checkpoint_every` steps keeping `checkpoint_keep`. Multi-host: when the
environment names a coordinator (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
`JAX_PROCESS_ID`), `jax.distributed.initialize()` is called first; each process feeds its own
slice of the global batch (`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import body_models
from trainers import losses as losses_lib

DATA_AXIS = "data"
BATCH_INPUTS = ("imgs", "img_shapes", "bbox")


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


# ---------------------------------------------------------------------------------------------
# Optimizer and state
# ---------------------------------------------------------------------------------------------


def make_optimizer(
    *,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    end_lr_factor: float = 0.01,
    weight_decay: float = 1e-4,
    grad_clip_norm: float | None = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with linear warmup then cosine decay (to `end_lr_factor * learning_rate`)."""
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
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay))
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
    )


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


def init_train_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """Initial `TrainState` from a freshly built model."""
    _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )


# ---------------------------------------------------------------------------------------------
# The step, written once
# ---------------------------------------------------------------------------------------------


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
        `bbox` float32[B, 2, 4] and the labels of `losses.LABEL_FIELDS`.
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
        loss, terms = losses_lib.reduce_losses(pred, batch, fns.body, axis_name=axis_name)
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


# ---------------------------------------------------------------------------------------------
# The two data-parallel drivers
# ---------------------------------------------------------------------------------------------


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D `("data",)` mesh over all (or the first `num_devices`) devices, Auto axis type."""
    n = jax.device_count() if num_devices is None else int(num_devices)
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(mesh: jax.sharding.Mesh, local_batch: Mapping[str, np.ndarray]) -> dict:
    """Place this process's slice of the global batch on the mesh, split along `"data"`."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def replicate(mesh: jax.sharding.Mesh, tree: Any) -> Any:
    """Put a pytree on every device of the mesh (replicated)."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def make_jit_step(fns: StepFns, mesh: jax.sharding.Mesh):
    """`step(state, batch) -> (state, metrics)`: `jax.jit` over the mesh; the state is donated."""
    replicated = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P(DATA_AXIS))
    return jax.jit(
        functools.partial(train_step, fns),
        in_shardings=(replicated, data),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )


def make_pmap_step(fns: StepFns, devices: list | None = None):
    """`step(state, batch) -> (state, metrics)` with `jax.pmap` (leading device axis on both).

    Use `pmap_replicate` / `pmap_split_batch` to add the device axis, `pmap_unreplicate` to drop it.
    """
    return jax.pmap(
        functools.partial(train_step, fns, axis_name=DATA_AXIS),
        axis_name=DATA_AXIS,
        devices=devices,
        donate_argnums=(0,),
    )


def pmap_replicate(tree: Any, num_devices: int) -> Any:
    """Stack `num_devices` copies along a new leading axis (the pmap input layout)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_devices,) + jnp.shape(x)), tree)


def pmap_unreplicate(tree: Any) -> Any:
    """Device 0's copy of a pmap-replicated pytree."""
    return jax.tree.map(lambda x: x[0], tree)


def pmap_split_batch(batch: Mapping[str, np.ndarray], num_devices: int) -> dict:
    """Reshape every [B, ...] array to [num_devices, B // num_devices, ...]."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.shape[0] % num_devices:
            raise ValueError(
                f"pmap_split_batch: batch key '{k}' has {v.shape[0]} examples, expected a "
                f"multiple of {num_devices} devices"
            )
        out[k] = v.reshape((num_devices, v.shape[0] // num_devices) + v.shape[1:])
    return out


# ---------------------------------------------------------------------------------------------
# Evaluation helper (used by inference and the benchmark)
# ---------------------------------------------------------------------------------------------


def make_predict_fn(fns: StepFns):
    """`predict(state, imgs, img_shapes, bbox) -> predictions dict` in eval mode (jitted)."""

    @jax.jit
    def predict(state: TrainState, imgs, img_shapes, bbox):
        pred, _ = forward(
            fns.graphdef_eval, state.params, state.batch_stats, fns.other,
            {"imgs": imgs, "img_shapes": img_shapes, "bbox": bbox},
        )
        return losses_lib.predictions_as_dict(pred)

    return predict


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def maybe_initialize_distributed() -> bool:
    """Call `jax.distributed.initialize()` when the environment describes a multi-process job."""
    if int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1 and os.environ.get(
        "JAX_COORDINATOR_ADDRESS"
    ):
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
        return True
    return False


class MetricsWriter:
    """Per-step metrics to absl logging, `metrics.jsonl` and (if importable) TensorBoard.

    On resume, lines for steps after the restored step are dropped (rewritten atomically) so
    the file describes exactly one run.
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
                kept = [ln for ln in f if ln.strip() and json.loads(ln)["step"] <= resume_step]
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(kept)
            os.replace(tmp, self.path)
        try:
            from tensorboardX import SummaryWriter  # noqa: PLC0415 (optional)

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:
            self._tb = None

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
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
    """The records of `workdir/metrics.jsonl`, in order."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def build_model(config: Any) -> nnx.Module:
    """The JOSH3R model of `config.model` (`trainers.josh3r.JOSH3R`)."""
    from trainers import josh3r  # noqa: PLC0415 (the model module is heavy; import on use)

    return josh3r.JOSH3R(config.model, rngs=nnx.Rngs(int(config.training.seed)))


def run(
    config: Any,
    workdir: str,
    *,
    model_fn: Callable[[Any], nnx.Module] | None = None,
    dataset: Any = None,
    stop_after: int | None = None,
) -> TrainState:
    """Train JOSH3R; resumes from the latest checkpoint in `workdir/checkpoints`.

    Args:
      config: a ConfigDict with `model` (the model's config) and `training` / `data` sections
        (see `experiments/configs/josh3r_train.py`).
      workdir: output folder: `checkpoints/`, `metrics.jsonl`, `tensorboard/`.
      model_fn: builds the model from `config` (default `build_model`); tests pass a small one.
      dataset: a `trainers.data.PairDataset`; default built from `config.data`.
      stop_after: stop (as if killed) after this many steps of *this* call; for tests.

    Returns:
      The final `TrainState` (replicated on the mesh).
    """
    from trainers import checkpoint as ckpt_lib  # noqa: PLC0415
    from trainers import data as data_lib  # noqa: PLC0415

    maybe_initialize_distributed()
    tc = config.training
    body = body_models.load_model(tc.get("body_model_path") or None)
    if dataset is None:
        dataset = data_lib.build_dataset(config.data, body)
    mesh = make_mesh()
    n_proc, proc = jax.process_count(), jax.process_index()
    if tc.batch_size % jax.device_count():
        raise ValueError(
            f"config.training.batch_size: expected a multiple of the {jax.device_count()} "
            f"devices, found {tc.batch_size}"
        )
    iterator = data_lib.PairIterator(
        dataset,
        global_batch_size=tc.batch_size,
        seed=tc.seed,
        image_hw=tuple(config.image_size),
        augment=data_lib.AugmentConfig(**dict(config.data.augment)),
        process_index=proc,
        process_count=n_proc,
    )

    model = (model_fn or build_model)(config)
    tx, schedule = optimizer_from_config(tc)
    fns = make_step_fns(model, tx, schedule, body, use_dropout=tc.use_dropout)
    state = replicate(mesh, init_train_state(model, tx, tc.seed))

    ckpt = ckpt_lib.Checkpointer(
        os.path.join(workdir, "checkpoints"), save_every=tc.checkpoint_every,
        keep=tc.checkpoint_keep,
    )
    start = 0
    if ckpt.latest_step() is not None:
        state, data_state = ckpt.restore(ckpt_lib.abstract_like(state))
        iterator.set_state(data_state)
        start = int(state.step)
        logging.info("Resumed from %s at step %d", ckpt.directory, start)
    writer = MetricsWriter(workdir, resume_step=start, enabled=proc == 0)

    use_pmap = tc.get("parallel", "jit") == "pmap"
    if use_pmap:
        n_local = jax.local_device_count()
        step_fn = make_pmap_step(fns)
        state = pmap_replicate(jax.device_get(state), n_local)
    else:
        step_fn = make_jit_step(fns, mesh)

    done = 0
    t0 = time.perf_counter()
    for step in range(start, tc.num_steps):
        if stop_after is not None and done >= stop_after:
            break
        local = iterator.next()
        if use_pmap:
            state, metrics = step_fn(state, pmap_split_batch(local, jax.local_device_count()))
            metrics = pmap_unreplicate(metrics)
        else:
            state, metrics = step_fn(state, shard_batch(mesh, local))
        # Blocking every step: logging needs the values anyway, and back-to-back collectives
        # without a block can hang on CPU (STYLE 5.4).
        metrics = jax.device_get(metrics)
        done += 1
        writer.write(step + 1, metrics)
        if (step + 1) % tc.log_every == 0 or step + 1 == tc.num_steps:
            rate = done / (time.perf_counter() - t0)
            logging.info("step %d loss %.4f lr %.2e (%.2f steps/s)", step + 1,
                         metrics["loss"], metrics["lr"], rate)
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.num_steps:
            to_save = pmap_unreplicate(state) if use_pmap else state
            ckpt.save(step + 1, to_save, iterator.get_state(), force=step + 1 == tc.num_steps)
    writer.close()
    ckpt.close()
    if use_pmap:
        state = replicate(mesh, pmap_unreplicate(state))
    return state
