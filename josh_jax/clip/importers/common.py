"""Helpers shared by the importers."""

from __future__ import annotations

import numpy as np


def rows_at(frames: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each wanted frame, the row of `frames` holding it.

    Args:
      frames: int[N] frame number of each row.
      wanted: int[T] frame numbers to look up.

    Returns:
      (row int64[T], found bool[T]); row is 0 where the frame is missing.
    """
    frames = np.asarray(frames).reshape(-1)
    lookup = {int(f): r for r, f in enumerate(frames)}
    rows = np.array([lookup.get(int(f), -1) for f in wanted], np.int64)
    return np.maximum(rows, 0), rows >= 0
