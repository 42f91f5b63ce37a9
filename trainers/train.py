"""JOSH3R training loop: `run(config, workdir)`.

Build data, model and state (random, or `training.init_checkpoint`: converted MASt3R or JOSH3R
weights), restore the newest checkpoint that verifies if any, then step:

* batches are made and put on the devices in a background thread
  (`trainers.pair_iterator.Prefetcher`), so the crops, resizes and host-to-device copies of
  the next steps overlap the current one;
* the step (`trainers.train_step`) runs under `jax.jit` over a `("data",)` mesh or under
  `jax.pmap` (`trainers.parallel`);
* metrics stay on the device and are fetched every `log_every` steps (and before each save), so
  the host never waits for a step just to log it. Exception: on a CPU backend with several
  devices, every step is blocked on (`training.block_every_step` forces it elsewhere):
  back-to-back collectives without a block can hang there (STYLE, "CPU hazard");
* every `checkpoint_every` steps the state and the iterator state of the batches consumed are
  saved asynchronously (`trainers.checkpoint`), keeping `checkpoint_keep`.

Multi-host: when the environment names a coordinator (`JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), `jax.distributed.initialize()` is called first; the mesh
spans every process's devices, each process feeds its slice of the global batch
(`jax.make_array_from_process_local_data`) and the replicated state is one global array per
leaf, which every process saves and restores together. Only process 0 writes metrics.

The pieces are re-exported here under their former names (`train.make_optimizer`, ...).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
from absl import logging
from flax import nnx

import body_models
from trainers import checkpoint as ckpt_lib
from trainers.dataset import AugmentConfig, PairDataset, build_dataset
from trainers.metrics_writer import MetricsWriter, read_metrics
from trainers.pair_iterator import PairIterator, Prefetcher
from trainers.parallel import (
    make_jit_step,
    make_mesh,
    make_pmap_step,
    pmap_replicate,
    pmap_split_batch,
    pmap_to_global,
    pmap_unreplicate,
    replicate,
    shard_batch,
)
from trainers.train_state import (
    TrainState,
    init_train_state,
    load_init_weights,
    make_optimizer,
    optimizer_from_config,
)
from trainers.train_step import DATA_AXIS, StepFns, forward, make_step_fns, train_step

__all__ = [
    "DATA_AXIS", "MetricsWriter", "StepFns", "TrainState", "build_model", "forward",
    "init_train_state", "make_driver", "make_iterator", "make_jit_step", "make_mesh", "make_optimizer",
    "make_pmap_step", "make_step_fns", "maybe_initialize_distributed", "optimizer_from_config",
    "pmap_replicate", "pmap_split_batch", "pmap_to_global", "pmap_unreplicate", "read_metrics", "replicate", "run",
    "shard_batch", "train_step",
]


def maybe_initialize_distributed() -> bool:
    """Call `jax.distributed.initialize()` when the environment describes a multi-process job
    (and it was not called already)."""
    if int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1 and os.environ.get(
        "JAX_COORDINATOR_ADDRESS"
    ):
        if jax.distributed.is_initialized():
            return True
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
        return True
    return False


def build_model(config: Any) -> nnx.Module:
    """The JOSH3R model of `config.model` (`trainers.josh3r.JOSH3R`), random weights."""
    from trainers import josh3r  # noqa: PLC0415 (the model module is heavy; import on use)

    return josh3r.JOSH3R(config.model, rngs=nnx.Rngs(int(config.training.seed)))


def make_iterator(config: Any, dataset: PairDataset) -> PairIterator:
    """This process's `PairIterator` over `dataset` for `config.training` / `config.data`."""
    tc = config.training
    if tc.batch_size % jax.device_count():
        raise ValueError(
            f"config.training.batch_size: expected a multiple of the {jax.device_count()} "
            f"devices, found {tc.batch_size}")
    return PairIterator(
        dataset, global_batch_size=tc.batch_size, seed=tc.seed,
        image_hw=tuple(config.image_size), augment=AugmentConfig(**dict(config.data.augment)),
        process_index=jax.process_index(), process_count=jax.process_count())


def make_driver(fns: StepFns, mesh: jax.sharding.Mesh, state: TrainState, *, use_pmap: bool):
    """`(step_fn, state in the driver's layout, place)` for jit over `mesh` or pmap; `place`
    puts a host batch (this process's slice) where the step wants it."""
    if use_pmap:
        place = lambda local: pmap_split_batch(local, jax.local_device_count())
        return make_pmap_step(fns), pmap_replicate(state), place
    return make_jit_step(fns, mesh), state, lambda local: shard_batch(mesh, local)


class _MetricsBuffer:
    """Device metrics of the steps since the last flush; `flush` fetches and writes them."""

    def __init__(self, writer: MetricsWriter):
        self.writer = writer
        self.pending: list[tuple[int, Any]] = []
        self.t0 = time.perf_counter()
        self.steps = 0

    def add(self, step: int, metrics: Any) -> None:
        self.pending.append((step, metrics))
        self.steps += 1

    def flush(self) -> None:
        if not self.pending:
            return
        for step, metrics in jax.device_get(self.pending):
            self.writer.write(step, metrics)
        step, metrics = self.pending[-1][0], jax.device_get(self.pending[-1][1])
        rate = self.steps / max(time.perf_counter() - self.t0, 1e-9)
        logging.info("step %d loss %.4f lr %.2e (%.2f steps/s)", step, metrics["loss"],
                     metrics["lr"], rate)
        self.pending = []


def run(
    config: Any,
    workdir: str,
    *,
    model_fn: Callable[[Any], nnx.Module] | None = None,
    dataset: PairDataset | None = None,
    stop_after: int | None = None,
) -> TrainState:
    """Train JOSH3R; resumes from the newest good checkpoint in `workdir/checkpoints`.

    Args:
      config: a ConfigDict with `model`, `image_size`, `training` and `data` (see
        `experiments/configs/josh3r_train.py`).
      workdir: output folder: `checkpoints/`, `metrics.jsonl`, `tensorboard/`.
      model_fn: builds the model from `config` (default `build_model`).
      dataset: a `trainers.dataset.PairDataset`; default built from `config.data`.
      stop_after: stop (as if killed) after this many steps of *this* call; for tests.

    Returns:
      The final `TrainState`, replicated on the mesh (global arrays).

    Raises:
      checkpoint.CheckpointError: checkpoints exist but none restores.
    """
    maybe_initialize_distributed()
    tc = config.training
    body = body_models.load_model(tc.body_model_path or None)
    if dataset is None:
        dataset = build_dataset(config.data, body)
    mesh = make_mesh()
    iterator = make_iterator(config, dataset)
    ckpt = ckpt_lib.Checkpointer(
        os.path.join(workdir, "checkpoints"), save_every=tc.checkpoint_every,
        keep=tc.checkpoint_keep, async_save=tc.async_checkpoint)
    model = (model_fn or build_model)(config)
    if tc.init_checkpoint and not ckpt.all_steps():
        load_init_weights(model, tc.init_checkpoint)
    tx, schedule = optimizer_from_config(tc)
    fns = make_step_fns(model, tx, schedule, body, use_dropout=tc.use_dropout)
    state = replicate(mesh, init_train_state(model, tx, tc.seed))
    start = 0
    restored = ckpt.restore_latest(ckpt_lib.abstract_like(state))
    if restored is not None:
        state, data_state = restored
        iterator.set_state(data_state)
        start = int(state.step)
        logging.info("Resumed from %s at step %d", ckpt.directory, start)
    metrics_buffer = _MetricsBuffer(
        MetricsWriter(workdir, resume_step=start, enabled=jax.process_index() == 0))

    use_pmap = tc.parallel == "pmap"
    step_fn, state, place = make_driver(fns, mesh, state, use_pmap=use_pmap)
    block = tc.block_every_step or (jax.default_backend() == "cpu" and jax.device_count() > 1)
    done = 0
    with Prefetcher(iterator, size=tc.prefetch, transform=place) as batches:
        for step in range(start + 1, tc.num_steps + 1):
            if stop_after is not None and done >= stop_after:
                break
            batch, data_state = batches.next()
            state, metrics = step_fn(state, batch)
            if use_pmap:
                metrics = pmap_unreplicate(metrics)
            if block:
                jax.block_until_ready(metrics)
            metrics_buffer.add(step, metrics)
            done += 1
            last = step == tc.num_steps
            save = step % tc.checkpoint_every == 0 or last
            if step % tc.log_every == 0 or save:
                metrics_buffer.flush()
            if save:
                ckpt.save(step, pmap_to_global(state, mesh) if use_pmap else state, data_state,
                          force=last)
    metrics_buffer.flush()
    metrics_buffer.writer.close()
    ckpt.close()
    return pmap_to_global(state, mesh) if use_pmap else state
