"""Keyframes, chunks and window pairs exactly as JOSH samples them (spec §1.5.2, §1.5.4, §1.7).

All indices are plain Python ints (they decide array shapes, so they are static, never traced).
The JOSH values (interval 5, max_num 21, window 10, chunk stride 100) are passed by the caller
from its config; nothing here holds a default.
"""

from josh_jax.errors import InputError


def window_frame_count(remaining: int, interval: int, max_num: int) -> int:
    """Frames covered by one JOSH window starting at the current frame (spec §1.5.2).

    A remainder shorter than `1 + 2 k (M - 1)` (201 with JOSH's values) is taken whole; otherwise
    the window is `1 + k (M - 1)` frames (101).
    """
    if remaining < 1 + interval * (max_num - 1) * 2:
        return remaining
    return 1 + interval * (max_num - 1)


def keyframe_indices(n_files: int, start: int, interval: int, max_num: int) -> list[int]:
    """Sampled frame offsets of one window (spec §1.5.2, `load_images_and_masks`).

    Args:
      n_files: frames in the video.
      start: first frame of the window (`start_frame`).
      interval: frame stride k (`opt_interval`, 5).
      max_num: M (`max_frames`, 21).

    Returns:
      offsets from `start`, starting at 0 and ending at `num_frames - 1` (the last frame is
      forced in): e.g. 0, 5, ..., 100 for 101 frames; 0, 5, ..., 145, 149 for 150.
    """
    if interval < 1 or max_num < 2:
        raise InputError(
            "sampling", "interval/max_num", ">= 1 / >= 2", f"{interval} / {max_num}")
    remaining = n_files - start
    if remaining < 1:
        raise InputError("sampling", "start", f"< {n_files} (the frame count)", start)
    num_frames = window_frame_count(remaining, interval, max_num)
    offsets, i = [], 0
    while True:
        offsets.append(i)
        if i + 1 == num_frames:
            return offsets
        i = num_frames - 1 if i + 1 + interval > num_frames else i + interval


def chunk_starts(n_frames: int, stride: int) -> list[int]:
    """First frames of the long-video chunks (spec §1.7): 0, stride, 2 stride, ... while
    `n_frames - start > stride`; consecutive chunks share one frame."""
    starts, s = [0], 0
    while n_frames - (s + stride) > stride:
        s += stride
        starts.append(s)
    return starts


def chunk_frames(n_frames: int, stride: int, interval: int, max_num: int) -> list[list[int]]:
    """Absolute keyframe indices of every chunk of a long video (spec §1.7 + §1.5.2).

    JOSH's chunks: chunk k starts at `k * stride`, covers `window_frame_count` frames, and the last
    chunk takes the whole remainder (up to `2 stride` frames).
    """
    return [[s + o for o in keyframe_indices(n_frames, s, interval, max_num)]
            for s in chunk_starts(n_frames, stride)]


def overlapping_chunks(n_frames: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open frame ranges [a, b) of `length` frames overlapping by `overlap` frames.

    This project's long-video chunks (not JOSH's, which share a single frame): enough shared frames
    to solve one Sim(3) per chunk. The last chunk ends at `n_frames` (it may overlap more).
    """
    if not 0 <= overlap < length:
        raise InputError(
            "sampling", "overlap", f"0 <= overlap < length={length}", overlap)
    if n_frames <= length:
        return [(0, n_frames)]
    step, ranges, a = length - overlap, [], 0
    while a + length < n_frames:
        ranges.append((a, a + length))
        a += step
    ranges.append((n_frames - length, n_frames))
    return ranges


def window_pairs(n_images: int, window: int, symmetrize: bool) -> list[tuple[int, int]]:
    """MASt3R pair graph `window-w` (spec §1.5.4): unordered pairs with 1 <= j - i <= w, then (if
    `symmetrize`) both orientations, the reversed copies appended after all forward pairs.

    10 (N - 10) + 45 unordered pairs for N > 10 and w = 10 (155 for N = 21, 355 for N = 41).
    The reference collects them in a Python set (no defined order); here they are sorted.
    """
    forward = [(i, j) for i in range(n_images) for j in range(i + 1, min(i + window, n_images - 1) + 1)]
    if symmetrize:
        return forward + [(j, i) for i, j in forward]
    return forward
