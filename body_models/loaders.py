"""Loading and saving body model files: smplx `.npz` layouts, official `.pkl` files, the mannequin.

The array layout of the files (the keys smplx reads) is documented and validated in
`body_models.arrays`.
"""

from __future__ import annotations

import os
import tempfile

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
      ModelFormatError: a key is missing or has the wrong shape.
      safe_pickle.UnsafePickleError: a `.pkl` references a global outside the allow-list.
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
        raise FileNotFoundError(f"body model file not found: {path}")
    if path.endswith(".pkl"):
        data = safe_pickle.load(path)
        if not isinstance(data, dict):
            raise ModelFormatError(path, "<root>", "a dict of arrays", type(data).__name__)
    else:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    return model_from_arrays(
        data, path, num_betas=num_betas, num_expression=num_expression, name=name, dtype=dtype
    )


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
