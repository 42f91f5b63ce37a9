"""`load_any(path)`: a clip from any supported layout, detected automatically."""

from __future__ import annotations

import os

from absl import logging

from josh_jax.clip.importers.josh_folder import import_josh_folder
from josh_jax.clip.importers.reference import (
    REFERENCE_LAYOUT_KEYS,
    import_reference_arrays,
    is_reference_layout,
)
from josh_jax.clip.io import read_npz
from josh_jax.clip.schema import ClipFormatError, validate_arrays
from josh_jax.clip.types import Clip, GroundTruth


def load_any(
    path: str | os.PathLike,
    *,
    frontend: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    limits=None,
) -> tuple[Clip, GroundTruth | None]:
    """Loads a clip from any supported layout, detected automatically.

    - a `.npz` with `format_version`: our clip format (`load_clip`);
    - a `.npz` with the reference synthetic keys (`pred_depth`, `corr_offsets`, ...):
      `import_reference_clip`;
    - a folder: JOSH's preprocessing folder, with the front-end npz `frontend`
      (default `folder/frontend.npz`); `allow_pickle` as in `import_josh_folder`.

    `limits` (`config.limits`, or None) bounds the `.npz` before it is inflated (`read_npz`).

    Returns:
      (clip, gt): gt is None when the source has no ground truth.

    Raises:
      ClipFormatError: the layout is not recognised, or the file is invalid.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        fe = os.fspath(frontend) if frontend is not None else os.path.join(path, "frontend.npz")
        return import_josh_folder(path, fe, allow_pickle=allow_pickle, limits=limits), None
    arrays = read_npz(path, limits)
    if "format_version" in arrays:
        clip, gt = validate_arrays(arrays, source=path)
        logging.info("Loaded %s: %s", path, clip.describe())
        return clip, gt
    if is_reference_layout(arrays):
        clip, gt = import_reference_arrays(arrays, source=path)
        logging.info("Imported reference clip %s: %s", path, clip.describe())
        return clip, gt
    raise ClipFormatError(
        path, "format_version",
        f"a josh-jax clip (key 'format_version') or the reference layout (keys "
        f"{list(REFERENCE_LAYOUT_KEYS)})", f"neither (keys {sorted(arrays)[:8]}...)",
    )
