"""The clip format's key table and its validation: a flat key -> array mapping <-> Clip, GroundTruth.

Dtype policy: strict on kind, lenient on width. Float arrays may be stored as float16/32/64 and are
cast on load (clip arrays to float32, ground truth to float64 except `gt_depth`, float32); integer
arrays may use any signed or unsigned width and are cast to int32 (values must fit); boolean arrays
must be bool; `images` must be uint8; strings are 0-d unicode arrays. Anything else is refused.

Every problem is reported as a `ClipFormatError`: one line naming the file, the key, what the
format expects and what was found (`josh_jax.errors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from josh_jax.clip.types import FORMAT_VERSION, Clip, GroundTruth
from josh_jax.errors import InputError

SUPPORTED_VERSIONS = (FORMAT_VERSION,)


class ClipFormatError(InputError):
    """A clip file (or in-memory clip) does not follow the format.

    `field` is the offending key (`(file)` when the file itself is unreadable).
    """


# --------------------------------------------------------------------------------------------
# The key table: kind ('f' float, 'i' integer, 'b' bool, 'u8' uint8, 's' string), symbolic shape,
# required flag, and the dtype arrays are cast to on load. Order matters: the first key that uses
# a dimension symbol binds it, so the big, unambiguous arrays come first.


@dataclasses.dataclass(frozen=True)
class _KeySpec:
    key: str
    kind: str
    dims: tuple[str | int, ...]
    required: bool
    cast: Any = None


_CLIP_SPECS = (
    _KeySpec("format_version", "s", (), True),
    _KeySpec("body_model", "s", (), True),
    _KeySpec("pointmaps", "f", ("T", "H", "W", 3), True, np.float32),
    _KeySpec("confidence", "f", ("T", "H", "W"), True, np.float32),
    _KeySpec("human_mask", "b", ("T", "H", "W"), True, np.bool_),
    _KeySpec("frame_index", "i", ("T",), True, np.int32),
    _KeySpec("fps", "f", (), True, np.float32),
    _KeySpec("images", "u8", ("T", "H", "W", 3), False, np.uint8),
    _KeySpec("focal_init", "f", (), False, np.float32),
    _KeySpec("pairs", "i", ("E", 2), True, np.int32),
    _KeySpec("matches", "f", ("E", "M", 2, 2), True, np.float32),
    _KeySpec("match_confidence", "f", ("E", "M"), True, np.float32),
    _KeySpec("pair_scores", "f", ("E",), False, np.float32),
    _KeySpec("smpl_body_pose", "f", ("P", "T", "J-1", 3, 3), True, np.float32),
    _KeySpec("smpl_global_orient", "f", ("P", "T", 3, 3), True, np.float32),
    _KeySpec("smpl_betas", "f", ("P", "T", "B"), True, np.float32),
    _KeySpec("smpl_transl", "f", ("P", "T", 3), True, np.float32),
    _KeySpec("hmr_focal", "f", (), True, np.float32),
    _KeySpec("smpl_valid", "b", ("P", "T"), True, np.bool_),
    _KeySpec("contact", "f", ("P", "T", "V"), True, np.float32),
    _KeySpec("track_id", "i", ("P",), False, np.int32),
)

_GT_SPECS = (
    _KeySpec("gt_T_world_cam", "f", ("T", 4, 4), False, np.float64),
    _KeySpec("gt_focal", "f", (), False, np.float64),
    _KeySpec("gt_pointmap_scale", "f", (), False, np.float64),
    _KeySpec("gt_smpl_global_orient", "f", ("P", "T", 3, 3), False, np.float64),
    _KeySpec("gt_smpl_body_pose", "f", ("P", "T", "J-1", 3, 3), False, np.float64),
    _KeySpec("gt_smpl_betas", "f", ("P", "T", "B"), False, np.float64),
    _KeySpec("gt_smpl_transl", "f", ("P", "T", 3), False, np.float64),
    _KeySpec("gt_contact", "b", ("P", "T", "V"), False, np.bool_),
    _KeySpec("gt_scene_vertices", "f", ("S", 3), False, np.float64),
    _KeySpec("gt_scene_faces", "i", ("NF", 3), False, np.int32),
    _KeySpec("gt_human_mask", "b", ("T", "H", "W"), False, np.bool_),
    _KeySpec("gt_depth", "f", ("T", "H", "W"), False, np.float32),
    _KeySpec("gt_frame_index", "i", ("F",), False, np.int32),
    _KeySpec("gt_T_world_cam_all", "f", ("F", 4, 4), False, np.float64),
    _KeySpec("gt_joints_world_all", "f", ("P", "F", "J", 3), False, np.float64),
)

CLIP_KEYS = tuple(s.key for s in _CLIP_SPECS)
GT_KEYS = tuple(s.key for s in _GT_SPECS)
REQUIRED_KEYS = tuple(s.key for s in _CLIP_SPECS if s.required)
_SPECS = {s.key: s for s in _CLIP_SPECS + _GT_SPECS}

_KIND_TEXT = {
    "f": "a float dtype (float16/32/64)",
    "i": "an integer dtype (int8..int64, uint8..uint64)",
    "b": "dtype bool",
    "u8": "dtype uint8",
    "s": "a 0-d unicode string array",
}


def _dtype_ok(arr: np.ndarray, kind: str) -> bool:
    k = arr.dtype.kind
    if kind == "f":
        return k == "f"
    if kind == "i":
        return k in "iu"
    if kind == "b":
        return k == "b"
    if kind == "u8":
        return arr.dtype == np.uint8
    if kind == "s":
        return k == "U"
    raise AssertionError(kind)


def _found_shape(arr: np.ndarray) -> str:
    return f"shape {tuple(arr.shape)}"


class _Checker:
    """Binds the dimension symbols and checks one key at a time, raising ClipFormatError."""

    def __init__(self, source: Any):
        self.source = source
        self.dims: dict[str, int] = {}
        self.bound_by: dict[str, str] = {}

    def fail(self, key: str, expected: str, found: str):
        raise ClipFormatError(self.source, key, expected, found)

    def _expected_dim(self, sym: str) -> int | None:
        if sym == "J" and "J-1" in self.dims:
            return self.dims["J-1"] + 1
        return self.dims.get(sym)

    def _shape_text(self, dims: tuple[str | int, ...]) -> str:
        parts = []
        for d in dims:
            if isinstance(d, int):
                parts.append(str(d))
            else:
                v = self._expected_dim(d)
                parts.append(d if v is None else f"{d}={v}")
        return "shape [" + ", ".join(parts) + "]"

    def check(self, key: str, value: Any, dims: tuple[str | int, ...] | None = None) -> np.ndarray:
        spec = _SPECS[key]
        dims = spec.dims if dims is None else dims
        arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
        if spec.kind == "s":
            if not _dtype_ok(arr, "s") or arr.ndim != 0:
                self.fail(key, _KIND_TEXT["s"], f"dtype {arr.dtype}, {_found_shape(arr)}")
            return arr
        if not _dtype_ok(arr, spec.kind):
            self.fail(key, _KIND_TEXT[spec.kind], f"dtype {arr.dtype}")
        if arr.ndim != len(dims):
            self.fail(
                key,
                f"{self._shape_text(dims)} (rank {len(dims)})",
                f"{_found_shape(arr)} (rank {arr.ndim})",
            )
        for axis, (d, n) in enumerate(zip(dims, arr.shape, strict=True)):
            want = d if isinstance(d, int) else self._expected_dim(d)
            if want is None:
                self.dims[d] = int(n)
                self.bound_by[d] = key
            elif want != n:
                if isinstance(d, int):
                    origin = ""
                elif d == "J":
                    origin = f", J = (J-1) + 1 from '{self.bound_by['J-1']}'"
                else:
                    origin = f", {d} from '{self.bound_by[d]}'"
                self.fail(
                    key,
                    f"{self._shape_text(dims)}{origin}",
                    f"{_found_shape(arr)} (axis {axis} is {n})",
                )
        if spec.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                self.fail(
                    key,
                    "finite values",
                    f"{int(bad.sum())} NaN/Inf values (first at index {idx}: {arr[idx]})",
                )
        if spec.kind == "i" and arr.size:
            lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
            if arr.min() < lo or arr.max() > hi:
                self.fail(key, "values that fit in int32", f"range [{arr.min()}, {arr.max()}]")
        return arr.astype(spec.cast, copy=False) if spec.cast is not None else arr


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_values(c: _Checker, a: dict[str, np.ndarray]) -> None:
    """Checks on values (ranges, indices, monotonicity) after shapes and dtypes are known good."""
    T = c.dims["T"]
    if T < 2:
        c.fail("pointmaps", "at least 2 frames (T >= 2): JOSH needs frame pairs", f"T={T}")
    if not str(a["body_model"]):
        c.fail("body_model", "a non-empty body model name", "''")
    _check_ranges(c, a)
    _check_frame_indices(c, a)
    _check_pairs_and_matches(c, a)
    _check_ground_truth_geometry(c, a)


def _check_ranges(c: _Checker, a: dict[str, np.ndarray]) -> None:
    """Positive scalars, non-negative confidences, contact probabilities in [0, 1]."""
    for key in ("fps", "hmr_focal", "focal_init", "gt_focal", "gt_pointmap_scale"):
        if key in a and not float(a[key]) > 0:
            c.fail(key, "a value > 0", f"{float(a[key])}")
    for key in ("confidence", "match_confidence", "pair_scores"):
        if key in a and a[key].size and a[key].min() < 0:
            idx = _first_bad(a[key] < 0)
            c.fail(key, "values >= 0", f"{a[key][idx]} at index {idx}")
    contact = a["contact"]
    if contact.size and (contact.min() < 0 or contact.max() > 1):
        idx = _first_bad((contact < 0) | (contact > 1))
        c.fail("contact", "probabilities in [0, 1]", f"{contact[idx]} at index {idx}")


def _check_frame_indices(c: _Checker, a: dict[str, np.ndarray]) -> None:
    """Video frame indices: non-negative and strictly increasing."""
    for key in ("frame_index", "gt_frame_index"):
        if key not in a:
            continue
        fi = a[key]
        if fi.min() < 0:
            c.fail(key, "frame indices >= 0", f"{fi.min()}")
        if np.any(np.diff(fi) <= 0):
            i = int(np.argmax(np.diff(fi) <= 0))
            c.fail(key, "strictly increasing frame indices",
                   f"{fi[i]} then {fi[i + 1]} at index {i}")


def _check_pairs_and_matches(c: _Checker, a: dict[str, np.ndarray]) -> None:
    """Pairs of two different frames; pixels of real matches inside the image."""
    T, H, W = c.dims["T"], c.dims["H"], c.dims["W"]
    pairs = a["pairs"]
    if pairs.size:
        if pairs.min() < 0 or pairs.max() >= T:
            idx = _first_bad((pairs < 0) | (pairs >= T))
            c.fail("pairs", f"frame indices in [0, {T - 1}] (T={T})", f"{pairs[idx]} at {idx}")
        same = pairs[:, 0] == pairs[:, 1]
        if same.any():
            e = int(np.argmax(same))
            c.fail("pairs", "pairs of two different frames (i != j)", f"{pairs[e].tolist()} at {e}")

    # Pixels of real matches must lie in the image; padding rows (confidence 0) may hold anything.
    real = a["match_confidence"] > 0
    xy = a["matches"]
    x_bad = (xy[..., 0] < 0) | (xy[..., 0] > W - 1)
    y_bad = (xy[..., 1] < 0) | (xy[..., 1] > H - 1)
    bad = (x_bad | y_bad) & real[..., None]
    if bad.any():
        e, m, s = _first_bad(bad)
        c.fail(
            "matches",
            f"pixels (x, y) in [0, {W - 1}] x [0, {H - 1}] where match_confidence > 0",
            f"{xy[e, m, s].tolist()} at pair {e}, match {m}, image {'ij'[s]}",
        )


def _check_ground_truth_geometry(c: _Checker, a: dict[str, np.ndarray]) -> None:
    """Rigid camera matrices; scene faces indexing the scene vertices."""
    for key in ("gt_T_world_cam", "gt_T_world_cam_all"):
        if key in a and a[key].size:
            bottom = a[key][:, 3, :]
            bad = np.abs(bottom - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=-1) > 1e-6
            if bad.any():
                t = int(np.argmax(bad))
                c.fail(key, "rigid 4x4 matrices with last row [0, 0, 0, 1]", f"{bottom[t]} at {t}")

    if "gt_scene_faces" in a and a["gt_scene_faces"].size:
        S = c.dims.get("S")
        faces = a["gt_scene_faces"]
        if S is None:
            c.fail("gt_scene_faces", "gt_scene_vertices next to the faces", "no gt_scene_vertices")
        if faces.min() < 0 or faces.max() >= S:
            idx = _first_bad((faces < 0) | (faces >= S))
            c.fail("gt_scene_faces", f"vertex indices in [0, {S - 1}]", f"{faces[idx]} at {idx}")


def validate_arrays(
    arrays: Mapping[str, Any], source: Any = "<in-memory clip>"
) -> tuple[Clip, GroundTruth | None]:
    """Validates a flat key -> array mapping and builds the Clip (and its ground truth).

    Args:
      arrays: the keys of the format (see `docs/clip_format.md`), e.g. the contents of an `.npz`.
      source: the file (or a description) named in error messages.

    Returns:
      (clip, gt): gt is None when no `gt_*` key is present. Arrays are cast to their canonical
      dtypes (see the module docstring).

    Raises:
      ClipFormatError: on the first problem found (one line naming source, key, expected, found).
    """
    c = _Checker(source)
    if "format_version" not in arrays:
        c.fail("format_version", f"a format version string (supported: {SUPPORTED_VERSIONS})",
               "no such key")
    version = c.check("format_version", arrays["format_version"])
    if str(version) not in SUPPORTED_VERSIONS:
        c.fail("format_version", f"one of {SUPPORTED_VERSIONS}", f"'{version}'")

    unknown = sorted(set(arrays) - set(_SPECS))
    if unknown:
        c.fail(unknown[0], "only keys of the clip format (see docs/clip_format.md)",
               f"unknown key(s) {unknown}")
    for key in REQUIRED_KEYS:
        if key not in arrays:
            spec = _SPECS[key]
            c.fail(key, f"a required key ({_KIND_TEXT[spec.kind]}, "
                   f"{c._shape_text(spec.dims)})", "no such key")

    out: dict[str, np.ndarray] = {}
    for spec in _CLIP_SPECS + _GT_SPECS:
        if spec.key not in arrays:
            continue
        value = arrays[spec.key]
        if value is None:
            continue
        dims = None
        if spec.key == "gt_smpl_betas" and np.ndim(value) == 2:
            dims = ("P", "B")  # constant shape per person: accepted, then broadcast over T
        out[spec.key] = c.check(spec.key, value, dims)
    if "gt_smpl_betas" in out and out["gt_smpl_betas"].ndim == 2:
        P, B = out["gt_smpl_betas"].shape
        out["gt_smpl_betas"] = np.broadcast_to(
            out["gt_smpl_betas"][:, None, :], (P, c.dims["T"], B)
        ).copy()
    _check_values(c, out)

    clip_fields = {k: out[k] for k in CLIP_KEYS if k in out}
    clip_fields["format_version"] = str(clip_fields["format_version"])
    clip_fields["body_model"] = str(clip_fields["body_model"])
    clip = Clip(**clip_fields)
    gt_fields = {k: out[k] for k in GT_KEYS if k in out}
    gt = GroundTruth(**gt_fields) if gt_fields else None
    return clip, gt


def to_arrays(clip: Clip, gt: GroundTruth | None = None) -> dict[str, np.ndarray]:
    """Flattens a clip (and ground truth) to the key -> numpy array mapping of the file format."""
    arrays: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(clip):
        value = getattr(clip, f.name)
        if value is not None:
            arrays[f.name] = np.asarray(value)
    if gt is not None:
        for f in dataclasses.fields(gt):
            value = getattr(gt, f.name)
            if value is not None:
                arrays[f.name] = np.asarray(value)
    return arrays


def validate(clip: Clip, gt: GroundTruth | None = None, source: Any = "<in-memory clip>"):
    """Validates an in-memory clip: (clip, gt) with canonical dtypes; see `validate_arrays`."""
    return validate_arrays(to_arrays(clip, gt), source)
