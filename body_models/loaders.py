"""Loading and saving body model files: smplx `.npz` layouts, official `.pkl` files, the mannequin.

The array layout of the files (the keys smplx reads) is documented and validated in
`body_models.arrays`.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
import zlib

import numpy as np
from absl import logging

from body_models import safe_pickle
from body_models.arrays import ModelFormatError, model_from_arrays, to_arrays
from body_models.builtin import mannequin
from body_models.model import BodyModel


def load_model(
    path: str | None = None,
    *,
    num_betas: int = 10,
    num_expression: int | None = None,
    name: str | None = None,
    dtype=np.float32,
) -> BodyModel:
    """Loads a body model: `.npz` (smplx layout), official `.pkl`, or None -> the mannequin.

    Args:
      path: a model file, or None for the licence-free built-in body (logged once per call).
      num_betas, num_expression, name, dtype: see `model_from_arrays`.

    Raises:
      FileNotFoundError: `path` does not exist.
      ModelFormatError: unreadable file, a key is missing or has the wrong shape (names the
        file and the key).
      safe_pickle.UnsafePickleFileError: a `.pkl` references a global outside the allow-list
        (both an `UnsafePickleError` and a `ModelFormatError`, naming the file).
    """
    if path is None:
        logging.info("No body model path given: using the built-in licence-free 'mannequin' body.")
        model = mannequin()
        if num_betas > model.num_betas:
            raise ValueError(
                f"the mannequin has {model.num_betas} shape coefficients, asked for {num_betas}"
            )
        return model_from_arrays(
            to_arrays(model),
            "mannequin",
            num_betas=num_betas,
            num_expression=0,
            name="mannequin",
            dtype=dtype,
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    data = _read_pkl(path) if path.endswith(".pkl") else _read_npz(path)
    return model_from_arrays(
        data, path, num_betas=num_betas, num_expression=num_expression, name=name, dtype=dtype
    )


def _read_pkl(path: str) -> dict:
    """The arrays of an official `.pkl` (restricted unpickler); errors name the file."""
    try:
        data = safe_pickle.load(path)
    except safe_pickle.UnsafePickleError as e:
        if isinstance(e, ModelFormatError):
            raise
        raise safe_pickle.UnsafePickleFileError(
            path, "(file)", "a body model pickle of numpy, chumpy and scipy sparse arrays only",
            str(e)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError) as e:
        raise ModelFormatError(path, "(file)", "a readable body model pickle",
                               f"{type(e).__name__}: {e}") from None
    if not isinstance(data, dict):
        raise ModelFormatError(path, "<root>", "a dict of arrays", type(data).__name__)
    return data


def _read_npz(path: str) -> dict:
    """The arrays of a smplx-layout `.npz` (no pickles); errors name the file and the key."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFormatError(path, "(file)", "an .npz archive of arrays",
                               f"an unreadable file ({type(e).__name__})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ModelFormatError(path, "(file)", "an .npz archive of arrays", "a single .npy array")
    data = {}
    with npz:
        for key in npz.files:
            try:
                data[key] = npz[key]
            except ValueError:
                raise ModelFormatError(path, key, "a numeric array (pickles are refused)",
                                       "a pickled object array") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise ModelFormatError(path, key, "readable array data",
                                       f"corrupt data ({type(e).__name__})") from None
    return data


def save_model_npz(model: BodyModel, path: str) -> None:
    """Writes `model` as an smplx-readable `.npz` (temporary name in the same folder, renamed)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **to_arrays(model))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
