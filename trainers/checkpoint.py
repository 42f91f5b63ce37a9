"""One small wrapper over `orbax.checkpoint.CheckpointManager` for JOSH3R training, recovering.

A checkpoint (`<directory>/<step>/`) holds two items:

* `state`: the train state pytree (parameters, BatchNorm statistics, optimizer state, step,
  base RNG key data), saved with `StandardSave` and always restored into an *abstract* state
  (`jax.ShapeDtypeStruct` leaves with shardings, `abstract_like`) so that restored arrays land
  directly on the current mesh;
* `data`: the data iterator's state, a small JSON dict (`{"epoch": int, "step": int}`).

Saves are asynchronous by default (`async_save`): `save` returns once the arrays are copied off
the device and orbax writes in a background thread; orbax writes each step under a temporary
name and renames it when complete, so a killed run leaves no half-written step under a step
name. All processes call `save`/`restore` (orbax coordinates multi-host writes; the state must be
global arrays, see `trainers.parallel`).

`restore_weights` reads only `params` and `batch_stats` of a step (a partial restore: inference
needs no optimizer state).

Recovery. A step folder can still be damaged after the fact (a truncated file, an empty newer
step folder, unreadable metadata). `restore` tries the steps newest first and falls back to the
newest step that restores, logging a warning for every step it skipped and why; when training
resumes (`restore_latest`), the skipped steps are moved to `<directory>.damaged/<step>-<time>`
(kept for inspection) so that the run can save those step numbers again. When checkpoints exist but none restores, `NoValidCheckpointError`
names each step and its reason on one line. Every error here is a `josh_jax.errors.InputError`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from josh_jax.errors import InputError

ITEMS = ("state", "data")


class CheckpointError(InputError):
    """A checkpoint folder or step that cannot be used (the base of this module's errors)."""


class NoValidCheckpointError(CheckpointError):
    """Checkpoints exist but none restores (each step's reason is in the message)."""


def abstract_like(tree: Any) -> Any:
    """Abstract version of a pytree of arrays: shape, dtype and sharding, no data."""

    def one(x):
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(one, tree)


def _one_line(error: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, cut to `limit` characters."""
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0] if text else ''}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def step_problem(step_dir: str) -> str | None:
    """Why the step folder `step_dir` cannot be restored, from its files alone (None: no
    problem seen; a restore can still find damaged array data)."""
    if not os.path.isdir(step_dir) or not os.listdir(step_dir):
        return "empty step folder"
    for item in ITEMS:
        if not os.path.isdir(os.path.join(step_dir, item)):
            return f"item folder '{item}' missing"
    for rel in ("state/_METADATA", "data/metadata"):
        path = os.path.join(step_dir, rel)
        try:
            with open(path) as f:
                json.load(f)
        except (OSError, ValueError) as e:
            return f"unreadable metadata {rel}: {_one_line(e)}"
    return None


class Checkpointer:
    """Save every `save_every` steps, keep the last `keep`, restore the newest good step.

    Args:
      directory: checkpoint folder (created if missing); made absolute.
      save_every: save only at steps that are multiples of this (unless `force=True`).
      keep: number of checkpoints kept (older ones are deleted by orbax).
      async_save: write in the background (`close` or the next `save` waits for it).
    """

    def __init__(self, directory: str, *, save_every: int = 100, keep: int = 3,
                 async_save: bool = True):
        if save_every < 1 or keep < 1:
            raise CheckpointError(directory, "save_every, keep", ">= 1",
                                  f"{save_every}, {keep}")
        self.directory = os.path.abspath(directory)
        self._options = ocp.CheckpointManagerOptions(
            save_interval_steps=save_every, max_to_keep=keep, create=True,
            enable_async_checkpointing=async_save)
        self._manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        try:
            return ocp.CheckpointManager(self.directory, options=self._options, item_names=ITEMS)
        except (OSError, ValueError) as e:
            raise CheckpointError(self.directory, "(folder)", "a checkpoint folder",
                                  _one_line(e)) from None

    def latest_step(self) -> int | None:
        """The newest step folder (not verified), or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All step folders, oldest first (not verified)."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_state: dict | None = None, *, force=False) -> bool:
        """Save `state` (pytree) and the iterator state at `step`; returns whether it saved.

        With `async_save` this returns before the files are written (the arrays are copied
        first, so the caller may donate or change `state`)."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(dict(data_state or {})),
        )
        return bool(self._manager.save(int(step), args=args, force=force))

    def _restore_step(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        problem = step_problem(os.path.join(self.directory, str(step)))
        if problem:
            raise CheckpointError(self.directory, f"step {step}", "a complete checkpoint",
                                  problem)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 (orbax/tensorstore raise many types)
            raise CheckpointError(self.directory, f"step {step}", "readable array data",
                                  _one_line(e)) from None
        data_state = restored["data"]
        if not isinstance(data_state, dict):
            raise CheckpointError(self.directory, f"step {step}: data", "a JSON object",
                                  type(data_state).__name__)
        return restored["state"], dict(data_state)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into `abstract_state` (see `abstract_like`); returns `(state, data_state)`.

        `step=None`: the newest step that restores (see the module docstring; damaged steps are
        logged but left in place: readers such as inference do not move a run's files); a
        given `step` is restored or raises.

        Raises:
          CheckpointError: no checkpoint (or not that step), or that step is damaged.
          NoValidCheckpointError: steps exist but none restores.
        """
        if step is not None:
            if step not in self._manager.all_steps():
                raise CheckpointError(self.directory, f"step {step}", "a saved step",
                                      f"steps {self.all_steps()}")
            return self._restore_step(step, abstract_state)
        restored = self.restore_latest(abstract_state, move_aside=False)
        if restored is None:
            raise CheckpointError(self.directory, "(folder)", "a checkpoint", "no step folders")
        return restored

    def restore_latest(self, abstract_state: Any, *, move_aside: bool = True
                       ) -> tuple[Any, dict] | None:
        """The newest step that restores, as `(state, data_state)`; None when there are no
        steps. Steps skipped on the way are logged and (`move_aside`, what a run resuming
        needs to save those steps again) moved to `<directory>.damaged/`.

        Raises:
          NoValidCheckpointError: steps exist but none restores.
        """
        self._manager.wait_until_finished()
        skipped: list[tuple[int, str]] = []
        result = None
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                result = self._restore_step(step, abstract_state)
            except CheckpointError as e:
                skipped.append((step, e.found))
                logging.warning("%s: checkpoint step %d skipped: %s", self.directory, step,
                                e.found)
                continue
            if skipped:
                logging.warning("%s: restored step %d (skipped damaged newer steps %s)",
                                self.directory, step, [s for s, _ in skipped])
            break
        if skipped and move_aside:
            self._move_aside([s for s, _ in skipped])
        if result is None and skipped:
            reasons = "; ".join(f"step {s}: {why}" for s, why in skipped)
            raise NoValidCheckpointError(self.directory, "(folder)",
                                         "at least one step that restores", reasons)
        return result

    def _move_aside(self, steps: list[int]) -> None:
        """Move damaged step folders to `<directory>.damaged/` and reopen the manager."""
        if jax.process_index() == 0:
            aside = self.directory + ".damaged"
            os.makedirs(aside, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for step in steps:
                src = os.path.join(self.directory, str(step))
                if os.path.exists(src):
                    shutil.move(src, os.path.join(aside, f"{step}-{stamp}"))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("josh3r-checkpoint-move-aside")
        self._manager.close()
        self._manager = self._open()

    def restore_weights(self, abstract_params: Any, abstract_batch_stats: Any,
                        step: int | None = None) -> tuple[Any, Any, int]:
        """Only the `params` and `batch_stats` of a saved `TrainState` (no optimizer state is
        read: what inference needs). `step=None`: the newest step that restores (damaged steps
        logged, left in place). Returns `(params, batch_stats, step)`.

        Raises:
          CheckpointError: no step (or not that one) restores.
        """
        abstract = {"params": abstract_params, "batch_stats": abstract_batch_stats}
        self._manager.wait_until_finished()
        steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
        # A manager of its own: one that saved binds "state" to the standard handler, and a
        # partial restore needs the PyTree one.
        reader = ocp.CheckpointManager(self.directory, item_names=ITEMS)
        try:
            return self._restore_weights_from(reader, steps, abstract)
        finally:
            reader.close()

    def _restore_weights_from(self, reader: ocp.CheckpointManager, steps: list[int],
                              abstract: dict) -> tuple[Any, Any, int]:
        reasons = []
        for candidate in steps:
            problem = step_problem(os.path.join(self.directory, str(candidate)))
            if problem is None:
                try:
                    restored = reader.restore(candidate, args=ocp.args.Composite(
                        state=ocp.args.PyTreeRestore(
                            item=abstract,
                            restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                            partial_restore=True)))["state"]
                    return restored["params"], restored["batch_stats"], int(candidate)
                except Exception as e:  # noqa: BLE001 (orbax/tensorstore raise many types)
                    problem = _one_line(e)
            logging.warning("%s: checkpoint step %d skipped: %s", self.directory, candidate,
                            problem)
            reasons.append(f"step {candidate}: {problem}")
        raise CheckpointError(self.directory, "(folder)", "a step with params and batch_stats",
                              "; ".join(reasons) or "no step folders")

    def close(self) -> None:
        """Wait for pending saves, then release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
