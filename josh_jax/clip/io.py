"""Reading and writing clip `.npz` files (no pickles), validated on the way in and out.

Reading checks the zip directory and every member's `.npy` header first (`read_npz_headers`,
`check_header_dims`): with `limits` (`config.limits`), an oversized or zip-bombed member, or a
clip dimension over its limit, is refused before any array is inflated; a header that claims more
data than its member holds is always refused (docs/robustness.md).
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class MemberHeader:
    """What an npz member declares before it is inflated.

    Attributes:
      shape, dtype: from the `.npy` header.
      data_bytes: bytes the header's shape and dtype need.
      stored_bytes: bytes the member holds after its header (declared uncompressed size).
      compressed_bytes: bytes it takes in the zip.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    data_bytes: int
    stored_bytes: int
    compressed_bytes: int


def read_npz_headers(path: str | os.PathLike, limits=None) -> dict[str, MemberHeader]:
    """Reads the zip directory and each member's `.npy` header, inflating no array data.

    Checks, before anything large is read: the declared (inflated) size of each member and of
    the whole file against `limits.max_member_mb` / `limits.max_file_mb`, the inflation ratio of
    big members against `limits.max_compression_ratio` (zip bombs), object dtypes (pickles), and
    that each header's shape and dtype fit in the data the member holds.

    Args:
      path: the `.npz`.
      limits: `config.limits` (experiments/configs/josh.py) or None (no size caps; the header
        checks still run).

    Raises:
      FileNotFoundError: no such file.
      ClipFormatError: one line naming the file, the member and the limit or the mismatch.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
        found = _single_npy(path) or f"unreadable file ({type(e).__name__})"
        raise ClipFormatError(path, "(file)", "an .npz archive (np.savez)", found) from None
    headers = {}
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        _check_declared_sizes(path, infos, limits)
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ClipFormatError(path, info.filename, "only .npy members (np.savez)",
                                      "another file in the archive")
            headers[info.filename[:-4]] = _member_header(path, zf, info)
    return headers


def _single_npy(path: str) -> str | None:
    """'a single .npy array <shape>' when `path` is a `.npy` file (header only), else None."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, _ = read(f)
    except (ValueError, OSError, EOFError):
        return None
    return f"a single .npy array {tuple(shape)}"


def _check_declared_sizes(path: str, infos: list[zipfile.ZipInfo], limits) -> None:
    if limits is None:
        return
    mb = 1024 * 1024
    total = 0
    for info in infos:
        key = info.filename.removesuffix(".npy")
        total += info.file_size
        if info.file_size > limits.max_member_mb * mb:
            raise ClipFormatError(
                path, key, f"at most limits.max_member_mb={limits.max_member_mb} MB inflated",
                f"{info.file_size / mb:.0f} MB declared")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_min_mb * mb and ratio > limits.max_compression_ratio:
            raise ClipFormatError(
                path, key, f"at most limits.max_compression_ratio={limits.max_compression_ratio}x"
                f" inflation for members over {limits.ratio_min_mb} MB",
                f"{info.file_size / mb:.0f} MB from {info.compress_size / mb:.2f} MB "
                f"({ratio:.0f}x, a zip bomb?)")
    if total > limits.max_file_mb * mb:
        raise ClipFormatError(path, "(file)",
                              f"at most limits.max_file_mb={limits.max_file_mb} MB inflated",
                              f"{total / mb:.0f} MB declared")


def _member_header(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> MemberHeader:
    """Reads one member's `.npy` header (a few hundred bytes) and checks it against its size."""
    key = info.filename[:-4]
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
            header_len = f.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ClipFormatError(path, key, "a .npy member with a valid header",
                              f"corrupt header ({type(e).__name__})") from None
    if dtype.hasobject:
        raise ClipFormatError(path, key, "a numeric, bool or unicode array (pickles are refused)",
                              "a pickled object array")
    data_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    stored = info.file_size - header_len
    if data_bytes > stored:
        raise ClipFormatError(
            path, key, f"the {data_bytes} bytes its header declares (shape {tuple(shape)}, "
            f"{dtype})", f"{stored} bytes in the member (truncated or a lying header)")
    return MemberHeader(tuple(int(n) for n in shape), dtype, data_bytes, stored,
                        info.compress_size)


def check_header_dims(path: str, headers: dict[str, MemberHeader], limits) -> None:
    """Clip dimensions (T, H, W, E, M, P, V) read from the headers against `limits`.

    Raises:
      ClipFormatError: a dimension over its limit, naming the key it was read from.
    """
    if limits is None:
        return
    for sym, key, axis, bound in dimension_limits(limits):
        h = headers.get(key)
        if h is None or len(h.shape) <= axis:
            continue
        lo, hi = bound
        if not lo <= h.shape[axis] <= hi:
            raise ClipFormatError(path, key, f"{sym} in [{lo}, {hi}] ({LIMIT_NAMES[sym]})",
                                  f"{sym}={h.shape[axis]} (shape {h.shape})")


# Dimension symbol -> the limit that bounds it (config.limits).
LIMIT_NAMES = {
    "T": "limits.max_frames", "H": "limits.min/max_image_size", "W": "limits.min/max_image_size",
    "E": "limits.max_pairs", "M": "limits.max_matches_per_pair", "P": "limits.max_tracks",
    "V": "limits.max_vertices",
}


def dimension_limits(limits) -> list[tuple[str, str, int, tuple[int, int]]]:
    """(symbol, key it is read from, axis, (min, max)) for every bounded clip dimension."""
    size = (int(limits.min_image_size), int(limits.max_image_size))
    return [
        ("T", "pointmaps", 0, (0, int(limits.max_frames))),
        ("H", "pointmaps", 1, size),
        ("W", "pointmaps", 2, size),
        ("E", "pairs", 0, (0, int(limits.max_pairs))),
        ("M", "matches", 1, (0, int(limits.max_matches_per_pair))),
        ("P", "smpl_valid", 0, (0, int(limits.max_tracks))),
        ("V", "contact", 2, (0, int(limits.max_vertices))),
    ]


def read_npz(path: str | os.PathLike, limits=None) -> dict[str, np.ndarray]:
    """Reads every array of an `.npz` without unpickling, with one-line errors.

    The zip directory and the `.npy` headers are checked first (`read_npz_headers`,
    `check_header_dims`), so an oversized, bombed or lying member is refused before it is inflated.

    Args:
      path: the `.npz`.
      limits: `config.limits` (experiments/configs/josh.py), or None for no size caps.

    Raises:
      FileNotFoundError: no such file.
      ClipFormatError: not an `.npz`, over a limit, corrupt data, or a pickled object array.
    """
    path = os.fspath(path)
    headers = read_npz_headers(path, limits)
    check_header_dims(path, headers, limits)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ClipFormatError(
            path, "(file)", "an .npz archive (np.savez)", f"unreadable file ({type(e).__name__})"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # cannot happen after the zip check
        raise ClipFormatError(path, "(file)", "an .npz archive of named arrays", "another file")
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as e:
                raise ClipFormatError(path, key, "readable array data",
                                      f"corrupt data ({type(e).__name__})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise ClipFormatError(
                    path, key, "readable array data", f"corrupt data ({type(e).__name__})"
                ) from None
    return arrays


def load_clip(path: str | os.PathLike, limits=None) -> tuple[Clip, GroundTruth | None]:
    """Loads and validates a clip written by `save_clip` (or any writer following the format).

    Returns:
      (clip, gt): gt is None when the file holds no `gt_*` key.

    Raises:
      FileNotFoundError: no such file.
      ClipFormatError: one line naming the file, the key, the expected and the found value.
    """
    path = os.fspath(path)
    clip, gt = validate_arrays(read_npz(path, limits), source=path)
    logging.info("Loaded %s: %s", path, clip.describe())
    return clip, gt
