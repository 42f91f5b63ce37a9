"""Reading and writing clip `.npz` files (no pickles), validated on the way in and out."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np
from absl import logging

from josh_jax.clip.schema import ClipFormatError, to_arrays, validate, validate_arrays
from josh_jax.clip.types import Clip, GroundTruth
from josh_jax.io.atomic import atomic_write


def save_clip(
    path: str | os.PathLike, clip: Clip, gt: GroundTruth | None = None, *, compress: bool = True
) -> None:
    """Validates and writes a clip (and its ground truth) to one `.npz` file.

    The file is written under a temporary name in the same folder, then renamed over `path`
    (`josh_jax.io.atomic`), so a crash never leaves a half-written file. Strings are stored as 0-d
    unicode arrays, so the file loads with `allow_pickle=False`.

    Args:
      path: destination file (conventionally `*.npz`; written exactly at this name).
      clip: the clip.
      gt: optional ground truth, stored under `gt_*` keys.
      compress: zlib-compress the arrays (`np.savez_compressed`); slower, ~2x smaller.

    Raises:
      ClipFormatError: the clip is invalid (nothing is written).
    """
    path = os.fspath(path)
    clip, gt = validate(clip, gt, source=path)
    arrays = to_arrays(clip, gt)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads every array of an `.npz` without unpickling, with one-line errors.

    Raises:
      FileNotFoundError: no such file.
      ClipFormatError: not an `.npz`, corrupt data, or a pickled object array.
    """
    path = os.fspath(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ClipFormatError(
            path, "(file)", "an .npz archive (np.savez)", f"unreadable file ({type(e).__name__})"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ClipFormatError(
            path, "(file)", "an .npz archive of named arrays", f"a single .npy array {data.shape}"
        )
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError:
                raise ClipFormatError(
                    path, key, "a numeric, bool or unicode array (pickles are refused)",
                    "a pickled object array",
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise ClipFormatError(
                    path, key, "readable array data", f"corrupt data ({type(e).__name__})"
                ) from None
    return arrays


def load_clip(path: str | os.PathLike) -> tuple[Clip, GroundTruth | None]:
    """Loads and validates a clip written by `save_clip` (or any writer following the format).

    Returns:
      (clip, gt): gt is None when the file holds no `gt_*` key.

    Raises:
      FileNotFoundError: no such file.
      ClipFormatError: one line naming the file, the key, the expected and the found value.
    """
    path = os.fspath(path)
    clip, gt = validate_arrays(read_npz(path), source=path)
    logging.info("Loaded %s: %s", path, clip.describe())
    return clip, gt
