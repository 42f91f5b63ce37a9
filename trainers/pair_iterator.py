"""Deterministic, resumable batches of a `PairDataset`, and a background prefetcher.

Why a plain iterator and not grain: the dataset is a few in-memory arrays, and the iterator's
whole state is two integers `(epoch, step)` (the order is a permutation seeded by
`(seed, epoch)`, each example's augmentation is seeded by `(seed, epoch, example)`), saved as
JSON next to the train state by `trainers.checkpoint`. Resuming replays exactly the same batches;
`grain` (not a dependency of this project) would add a package for the same guarantee.
Multi-host: every process builds the same dataset and permutation, and takes its contiguous
slice of each global batch.

`Prefetcher` runs the host side (crops, resizes, collation: ~0.3-0.9 s per 8-pair batch on a
CPU, about one GPU step) in a background thread with a bounded queue, and hands out each batch
with the iterator state *after* it, so a checkpoint saves the state of the batches consumed,
not of those prefetched.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from trainers.dataset import AugmentConfig, PairDataset, collate, make_example


class PairIterator:
    """Deterministic, resumable batches of a `PairDataset`.

    Epoch e visits the pairs in the order `permutation(seed, e)`, in global batches of
    `global_batch_size` (the last incomplete batch of an epoch is dropped); this process gets rows
    `[p * B / P, (p + 1) * B / P)` of each global batch. State: `{"epoch": e, "step": s}`.

    Args:
      dataset: the pairs.
      global_batch_size: examples per step over all processes.
      seed: order and augmentation seed.
      image_hw: model input size (h, w), multiples of 16.
      augment: `AugmentConfig`.
      process_index, process_count: this process's slice of every global batch.
    """

    def __init__(self, dataset: PairDataset, *, global_batch_size: int, seed: int = 0,
                 image_hw: tuple[int, int] = (48, 80), augment: AugmentConfig | None = None,
                 process_index: int = 0, process_count: int = 1):
        n = len(dataset)
        if global_batch_size > n:
            raise ValueError(f"PairIterator: global_batch_size {global_batch_size} is larger than "
                             f"the dataset ({n} pairs)")
        if global_batch_size % process_count:
            raise ValueError(f"PairIterator: global_batch_size {global_batch_size} is not a "
                             f"multiple of the {process_count} processes")
        self.dataset = dataset
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        self.image_hw = tuple(int(x) for x in image_hw)
        self.augment = augment or AugmentConfig()
        self.process_index, self.process_count = int(process_index), int(process_count)
        self.steps_per_epoch = n // self.global_batch_size
        self.epoch, self.step = 0, 0

    def get_state(self) -> dict[str, int]:
        return {"epoch": int(self.epoch), "step": int(self.step)}

    def set_state(self, state: Mapping[str, int]) -> None:
        if set(state) != {"epoch", "step"}:
            raise ValueError(
                f"PairIterator.set_state: expected keys epoch, step; found {sorted(state)}")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])

    def indices(self, epoch: int, step: int) -> np.ndarray:
        """Global batch `step` of `epoch`: int[global_batch_size] pair indices."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        return order[step * self.global_batch_size:(step + 1) * self.global_batch_size]

    def next(self) -> dict[str, np.ndarray]:
        """This process's slice of the next global batch (numpy, leading batch axis)."""
        idx = self.indices(self.epoch, self.step)
        local = self.global_batch_size // self.process_count
        mine = idx[self.process_index * local:(self.process_index + 1) * local]
        batch = collate([
            make_example(self.dataset, int(i), self.image_hw, self.augment,
                         np.random.default_rng([self.seed, self.epoch, int(i), 1]))
            for i in mine
        ])
        self.step += 1
        if self.step >= self.steps_per_epoch:
            self.epoch, self.step = self.epoch + 1, 0
        return batch

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()



class Prefetcher:
    """Batches of an iterator made ahead of time in a background thread (bounded queue).

    `next()` returns `(batch, state)`: the batch and the iterator's state right after it (what a
    checkpoint taken after consuming this batch must save). An exception in the thread is
    re-raised by the `next()` that would have returned its batch. Use as a context manager, or
    call `close()`, to stop the thread.

    Args:
      iterator: a `PairIterator` (anything with `next()` and `get_state()`); it must not be
        used elsewhere while the prefetcher runs.
      size: batches made ahead (>= 1); memory is `size` batches.
      transform: applied to each batch in the thread, e.g. placing it on the devices
        (`trainers.parallel.shard_batch`), so the host-to-device copy overlaps the step too.
    """

    def __init__(self, iterator: PairIterator, *, size: int = 2,
                 transform: Callable[[dict], Any] | None = None):
        if size < 1:
            raise ValueError(f"Prefetcher: size: expected >= 1, found {size}")
        self._iterator = iterator
        self._transform = transform or (lambda batch: batch)
        self._queue: queue.Queue = queue.Queue(maxsize=int(size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="pair-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._transform(self._iterator.next())
                item = (batch, self._iterator.get_state()), None
            except Exception as e:  # noqa: BLE001 (handed to the consumer)
                item = None, e
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[1] is not None:
                return

    def next(self) -> tuple[Any, dict[str, int]]:
        """The next `(batch, iterator state after it)`."""
        value, error = self._queue.get()
        if error is not None:
            raise error
        return value

    def close(self) -> None:
        """Stop the thread (batches already made are dropped)."""
        self._stop.set()
        self._thread.join(timeout=10.0)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
