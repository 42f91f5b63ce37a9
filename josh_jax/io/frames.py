"""Streaming frame reader: an `.mp4` (any ffmpeg video) or a folder of images, one frame at a time.

`iter_frames(path)` yields uint8 RGB frames `(H, W, 3)` in order and never keeps a reference to a
frame it has yielded, so at most one decoded frame (the one being yielded) is held by the reader,
however long the video. `frame_source_info(path)` reads the frame size and rate without decoding
the whole video. A missing, empty or undecodable source raises `FrameSourceError` (an
`InputError`: the binaries print one line and exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import imageio.v3 as iio
import numpy as np

from josh_jax.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class FrameSourceError(InputError):
    """A video file or image folder cannot be read as frames."""


def list_images(folder: str) -> list[str]:
    """Image files of `folder` (by extension), sorted by name."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


def _as_rgb(frame: np.ndarray, path: str) -> np.ndarray:
    """uint8 (H, W, 3): grey expanded, alpha dropped."""
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise FrameSourceError(path, "(file)", "an RGB image", f"shape {frame.shape}")
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame[..., :3]


def _iter_folder(folder: str) -> Iterator[np.ndarray]:
    paths = list_images(folder)
    if not paths:
        raise FrameSourceError(folder, "(file)", f"a folder with images {IMAGE_EXTENSIONS}", "none")
    for p in paths:
        try:
            rgb = _as_rgb(iio.imread(p), p)
        except FrameSourceError:
            raise
        except Exception as e:  # imageio raises many types for corrupt files.
            raise FrameSourceError(p, "(file)", "a readable image", f"{type(e).__name__}: {e}") from e
        yield rgb
        del rgb


def _iter_video(path: str) -> Iterator[np.ndarray]:
    count = 0
    try:
        for frame in iio.imiter(path, plugin="FFMPEG"):
            count += 1
            yield _as_rgb(frame, path)
    except FrameSourceError:
        raise
    except Exception as e:  # ffmpeg reports corrupt input as OSError / RuntimeError / IndexError.
        raise FrameSourceError(path, "(file)", "a readable video", f"{type(e).__name__}: {e}") from e
    if count == 0:
        raise FrameSourceError(path, "(file)", "a video with frames", "no frames")


def iter_frames(path: str, *, max_frames: int | None = None, stride: int = 1) -> Iterator[np.ndarray]:
    """Yield uint8 (H, W, 3) frames of a video file or an image folder, one at a time.

    Args:
      path: an ffmpeg-readable video file or a folder of images (sorted by name).
      max_frames: stop after this many yielded frames (None: all).
      stride: keep every `stride`-th frame.
    """
    if not os.path.exists(path):
        raise FrameSourceError(path, "(file)", "an existing video file or image folder", "nothing")
    if stride < 1:
        raise FrameSourceError(path, "stride", "an integer >= 1", stride)
    source = _iter_folder(path) if os.path.isdir(path) else _iter_video(path)
    kept = 0
    for i, frame in enumerate(source):
        if max_frames is not None and kept >= max_frames:
            return
        if i % stride:
            continue
        kept += 1
        yield frame
        del frame


def frame_rate(path: str, default: float = 30.0) -> float:
    """Frames per second of a video file (`default` for an image folder or when unknown)."""
    if os.path.isdir(path):
        return default
    try:
        fps = iio.immeta(path, plugin="FFMPEG").get("fps")
    except Exception as e:
        raise FrameSourceError(path, "(file)", "a readable video", f"{type(e).__name__}: {e}") from e
    return float(fps) if fps else default
