"""One small wrapper over `orbax.checkpoint.CheckpointManager` for JOSH3R training.

A checkpoint holds two items:

* `state`: the train state pytree (parameters, BatchNorm statistics, optimizer state, step,
  base RNG key data), saved with `StandardSave` and always restored into an *abstract* state
  (`jax.ShapeDtypeStruct` leaves with shardings, derived with `jax.eval_shape` from the freshly
  built state) so that restored arrays land directly on the current mesh;
* `data`: the data iterator's state, a small JSON dict (`{"epoch": int, "step": int}`).

Saving is synchronous (`enable_async_checkpointing=False`): a killed run then never leaves a
half-written latest step behind that a resume could pick, and the CPU tests stay deterministic.
All processes call `save`/`restore` (orbax coordinates multi-host writes).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def abstract_like(tree: Any) -> Any:
    """Abstract version of a pytree of arrays: shape, dtype and sharding, no data."""

    def one(x):
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(one, tree)


class Checkpointer:
    """Save every `save_every` steps, keep the last `keep`, restore the latest exactly.

    Args:
      directory: checkpoint folder (created if missing); made absolute.
      save_every: save only at steps that are multiples of this (unless `force=True`).
      keep: number of checkpoints kept (older ones are deleted by orbax).
    """

    def __init__(self, directory: str, *, save_every: int = 100, keep: int = 3):
        if save_every < 1 or keep < 1:
            raise ValueError(
                f"Checkpointer: save_every and keep must be >= 1, found {save_every}, {keep}"
            )
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=save_every,
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data")
        )

    def latest_step(self) -> int | None:
        """The newest saved step, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All kept steps, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_state: dict | None = None, *, force=False) -> bool:
        """Save `state` (pytree) and the iterator state at `step`; returns whether it saved."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(dict(data_state or {})),
        )
        saved = self._manager.save(int(step), args=args, force=force)
        self._manager.wait_until_finished()
        return bool(saved)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into `abstract_state` (see `abstract_like`); returns `(state, data_state)`.

        Raises:
          FileNotFoundError: no checkpoint in the folder (or not that step).
        """
        if step is None:
            step = self.latest_step()
        if step is None or step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"{self.directory}: no checkpoint{'' if step is None else f' at step {step}'}; "
                f"found steps {self.all_steps()}"
            )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=ocp.args.JsonRestore(),
            ),
        )
        return restored["state"], dict(restored["data"] or {})

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
