"""The Clip: raw inputs of one window of a video, its ground truth, and their `.npz` format.

A `Clip` holds what a front end produced for one window of a video (pointmaps, confidences, human
masks, pixel matches between frame pairs, per-frame SMPL estimates and per-vertex contacts); a
`GroundTruth` holds what a synthetic generator or an evaluation dataset knows for sure. Both are
frozen pytree dataclasses of host numpy arrays, saved together in one `.npz` (ground truth under
`gt_*` keys) by `save_clip` and read back, validated, by `load_clip`.

Every key, dtype, shape, unit and convention is documented in `docs/clip_format.md`; keep it true.

Dtype policy: strict on kind, lenient on width. Float arrays may be stored as float16/32/64 and are
cast on load (clip arrays to float32, ground truth to float64 except `gt_depth`, float32); integer
arrays may use any signed or unsigned width and are cast to int32 (values must fit); boolean arrays
must be bool; `images` must be uint8; strings are 0-d unicode arrays. Anything else is refused.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)

# Matches at or below this confidence are dropped by JOSH (`load_corres(min_conf_thr=1e-3)`).
MIN_MATCH_CONFIDENCE = 1e-3


class ClipFormatError(ValueError):
    """A clip file (or in-memory clip) does not follow the format.

    The message is one line: `<file>: key '<key>': expected <expected>; found <found>`.

    Attributes:
      file: path of the offending file (or a description of the in-memory source).
      key: the offending key (`(file)` when the file itself is unreadable).
      expected: what the format requires.
      found: what was found.
    """

    def __init__(self, file: Any, key: str, expected: str, found: str):
        self.file = str(file)
        self.key = key
        self.expected = expected
        self.found = found
        msg = f"{self.file}: key '{key}': expected {expected}; found {found}"
        super().__init__(" ".join(msg.split("\n")))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)  # arrays: no elementwise ==
class Clip:
    """Raw inputs of one window of a video (see `docs/clip_format.md`).

    T frames, image H x W, P human tracks, E image pairs, M matches per pair (padded), J-1 body
    joints, B shape coefficients, V body vertices. Cameras are OpenCV (x right, y down, z forward);
    pixel (u, v) = (x, y) with (0, 0) the centre of the top-left pixel; principal point (W/2, H/2).

    Attributes:
      frame_index: int32[T] index of each frame in the source video (strictly increasing).
      fps: float32[] source video frame rate.
      pointmaps: float32[T, H, W, 3] camera-frame pointmap of each frame, unknown global scale.
      confidence: float32[T, H, W] pointmap confidence (>= 0), raw (MASt3R: >= 1).
      human_mask: bool[T, H, W] True on pixels covered by people.
      pairs: int32[E, 2] frame pairs (i, j), i != j, indices into the T frames.
      matches: float32[E, M, 2, 2] pixel (x, y) of match m in frame i ([:, :, 0]) and j ([:, :, 1]).
      match_confidence: float32[E, M] match confidence (>= 0); 0 marks padding.
      smpl_global_orient: float32[P, T, 3, 3] root rotation in the camera frame (HMR).
      smpl_body_pose: float32[P, T, J-1, 3, 3] body joint rotations.
      smpl_betas: float32[P, T, B] shape coefficients per frame.
      smpl_transl: float32[P, T, 3] SMPL `transl` in the camera frame, metres under `hmr_focal`.
      hmr_focal: float32[] focal (pixels, at H x W) that the HMR assumed.
      smpl_valid: bool[P, T] track visible (and estimated) in this frame.
      contact: float32[P, T, V] per-vertex contact probability in [0, 1].
      images: optional uint8[T, H, W, 3] RGB frames.
      focal_init: optional float32[] initial focal in pixels (else estimated from the pointmaps).
      pair_scores: optional float32[E] pair weights for the camera spanning tree (JOSH: the match
        count of the pair); absent means "number of matches with confidence > 1e-3".
      track_id: optional int32[P] the front end's id of each track (e.g. TRAM `hps_track_{id}`).
      body_model: name of the body the SMPL parameters belong to (static).
      format_version: format version string (static).
    """

    frame_index: np.ndarray
    fps: np.ndarray
    pointmaps: np.ndarray
    confidence: np.ndarray
    human_mask: np.ndarray
    pairs: np.ndarray
    matches: np.ndarray
    match_confidence: np.ndarray
    smpl_global_orient: np.ndarray
    smpl_body_pose: np.ndarray
    smpl_betas: np.ndarray
    smpl_transl: np.ndarray
    hmr_focal: np.ndarray
    smpl_valid: np.ndarray
    contact: np.ndarray
    images: np.ndarray | None = None
    focal_init: np.ndarray | None = None
    pair_scores: np.ndarray | None = None
    track_id: np.ndarray | None = None
    body_model: str = jax.tree.static()
    format_version: str = jax.tree.static(default=FORMAT_VERSION)

    @property
    def num_frames(self) -> int:
        return int(self.pointmaps.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.pointmaps.shape[1]), int(self.pointmaps.shape[2])

    @property
    def num_people(self) -> int:
        return int(self.smpl_transl.shape[0])

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def replace(self, **changes: Any) -> Clip:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line: frames, size, pairs, matches and people (or 'scene only')."""
        H, W = self.image_size
        n_valid = int(np.sum(np.asarray(self.match_confidence) > MIN_MATCH_CONFIDENCE))
        if self.num_people == 0:
            people = "scene only (no people)"
        else:
            vis = np.asarray(self.smpl_valid).sum(axis=1).tolist()
            people = f"{self.num_people} people (frames visible per track: {vis})"
        return (
            f"clip v{self.format_version}: {self.num_frames} frames {H}x{W} "
            f"(video frames {int(self.frame_index[0])}..{int(self.frame_index[-1])} "
            f"at {float(self.fps):g} fps), {self.num_pairs} pairs, {n_valid} matches, {people}, "
            f"body '{self.body_model}'"
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)  # arrays: no elementwise ==
class GroundTruth:
    """Optional ground truth of a clip (synthetic clips, evaluation); every field is optional.

    World frame: metres; SMPL in smplx semantics (`transl` added after posing about the root joint).
    Track p of the ground truth is track p of the clip. F = number of source-video frames covered
    by the `*_all` arrays (the clip may be a subsample of them).

    Attributes:
      gt_T_world_cam: float64[T, 4, 4] camera-to-world of each clip frame (OpenCV camera).
      gt_focal: float64[] true focal in pixels (principal point (W/2, H/2)).
      gt_pointmap_scale: float64[] metres per pointmap unit (metric = pointmap * scale).
      gt_smpl_global_orient: float64[P, T, 3, 3] root rotation in the world frame.
      gt_smpl_body_pose: float64[P, T, J-1, 3, 3] body joint rotations.
      gt_smpl_betas: float64[P, T, B] shape coefficients ([P, B] is accepted on load and broadcast).
      gt_smpl_transl: float64[P, T, 3] SMPL `transl` in the world frame.
      gt_contact: bool[P, T, V] true contact vertices.
      gt_scene_vertices: float64[S, 3] scene mesh vertices in the world frame.
      gt_scene_faces: int32[NF, 3] scene mesh triangles (indices into gt_scene_vertices).
      gt_human_mask: bool[T, H, W] true human silhouettes.
      gt_depth: float32[T, H, W] noise-free metric camera-frame depth (z), scene and people.
      gt_frame_index: int32[F] source-video frame of each row of the `*_all` arrays.
      gt_T_world_cam_all: float64[F, 4, 4] camera-to-world at every listed video frame.
      gt_joints_world_all: float64[P, F, J, 3] world kinematic joints at every listed video frame.
    """

    gt_T_world_cam: np.ndarray | None = None
    gt_focal: np.ndarray | None = None
    gt_pointmap_scale: np.ndarray | None = None
    gt_smpl_global_orient: np.ndarray | None = None
    gt_smpl_body_pose: np.ndarray | None = None
    gt_smpl_betas: np.ndarray | None = None
    gt_smpl_transl: np.ndarray | None = None
    gt_contact: np.ndarray | None = None
    gt_scene_vertices: np.ndarray | None = None
    gt_scene_faces: np.ndarray | None = None
    gt_human_mask: np.ndarray | None = None
    gt_depth: np.ndarray | None = None
    gt_frame_index: np.ndarray | None = None
    gt_T_world_cam_all: np.ndarray | None = None
    gt_joints_world_all: np.ndarray | None = None

    def replace(self, **changes: Any) -> GroundTruth:
        return dataclasses.replace(self, **changes)

    def present(self) -> list[str]:
        """Names of the fields that are set."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


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
    T, H, W = c.dims["T"], c.dims["H"], c.dims["W"]
    if T < 2:
        c.fail("pointmaps", "at least 2 frames (T >= 2): JOSH needs frame pairs", f"T={T}")
    if not str(a["body_model"]):
        c.fail("body_model", "a non-empty body model name", "''")

    def positive(key: str) -> None:
        if key in a and not float(a[key]) > 0:
            c.fail(key, "a value > 0", f"{float(a[key])}")

    for key in ("fps", "hmr_focal", "focal_init", "gt_focal", "gt_pointmap_scale"):
        positive(key)

    def nonnegative(key: str) -> None:
        if key in a and a[key].size and a[key].min() < 0:
            idx = _first_bad(a[key] < 0)
            c.fail(key, "values >= 0", f"{a[key][idx]} at index {idx}")

    for key in ("confidence", "match_confidence", "pair_scores"):
        nonnegative(key)

    contact = a["contact"]
    if contact.size and (contact.min() < 0 or contact.max() > 1):
        idx = _first_bad((contact < 0) | (contact > 1))
        c.fail("contact", "probabilities in [0, 1]", f"{contact[idx]} at index {idx}")

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


def save_clip(
    path: str | os.PathLike, clip: Clip, gt: GroundTruth | None = None, *, compress: bool = True
) -> None:
    """Validates and writes a clip (and its ground truth) to one `.npz` file.

    The file is written under a temporary name in the same folder, then renamed over `path`, so a
    crash never leaves a half-written file. Strings are stored as 0-d unicode arrays, so the file
    loads with `allow_pickle=False`.

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
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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


def default_pair_scores(clip: Clip, min_confidence: float = MIN_MATCH_CONFIDENCE) -> np.ndarray:
    """Pair weights for the spanning tree: `clip.pair_scores`, else the count of real matches.

    Returns:
      float32[E].
    """
    if clip.pair_scores is not None:
        return np.asarray(clip.pair_scores, np.float32)
    return np.sum(np.asarray(clip.match_confidence) > min_confidence, axis=1).astype(np.float32)
