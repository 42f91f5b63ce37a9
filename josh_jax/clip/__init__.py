"""The Clip: raw inputs of one window of a video, its ground truth, its `.npz` format, importers.

    clip, gt = load_any(path)          # our .npz, the reference synthetic layout, a JOSH folder
    save_clip("clip.npz", clip, gt)    # validated, atomic
    clip, gt = load_clip("clip.npz")   # ClipFormatError: one line naming file, key, expected, found

`types.py` (Clip, GroundTruth), `schema.py` (the key table and its validation), `io.py` (npz read
and write), `importers/` (other layouts). Format: `docs/clip_format.md`.
"""

from josh_jax.clip.importers.auto import load_any
from josh_jax.clip.importers.josh_folder import PickleRefusedError, import_josh_folder
from josh_jax.clip.importers.reference import import_reference_arrays, import_reference_clip
from josh_jax.clip.io import load_clip, read_npz, save_clip
from josh_jax.clip.schema import (
    CLIP_KEYS,
    GT_KEYS,
    REQUIRED_KEYS,
    SUPPORTED_VERSIONS,
    ClipFormatError,
    to_arrays,
    validate,
    validate_arrays,
)
from josh_jax.clip.types import (
    FORMAT_VERSION,
    MIN_MATCH_CONFIDENCE,
    Clip,
    GroundTruth,
    default_pair_scores,
)

__all__ = [
    "CLIP_KEYS",
    "FORMAT_VERSION",
    "GT_KEYS",
    "MIN_MATCH_CONFIDENCE",
    "REQUIRED_KEYS",
    "SUPPORTED_VERSIONS",
    "Clip",
    "ClipFormatError",
    "GroundTruth",
    "PickleRefusedError",
    "default_pair_scores",
    "import_josh_folder",
    "import_reference_arrays",
    "import_reference_clip",
    "load_any",
    "load_clip",
    "read_npz",
    "save_clip",
    "to_arrays",
    "validate",
    "validate_arrays",
]
