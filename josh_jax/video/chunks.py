"""Overlapping chunks of a long clip: the oracle front end of the long-video driver.

A long video reaches JOSH as one Clip over all its keyframes (from a front end, or the synthetic
world's noisy ground truth: `josh_jax.synthetic.generate_clip` with many keyframes). JOSH cannot
optimise hundreds of keyframes at once, so the clip is cut into chunks of `length` keyframes that
share `overlap` keyframes with their neighbours (`sampling.overlapping_chunks`); each chunk is an
ordinary Clip (its pairs are the long clip's pairs inside the chunk, re-indexed), optimised on its
own and later aligned to the others from the shared frames (`video/long_video.py`).
"""

from __future__ import annotations

import numpy as np

from josh_jax.clip import Clip
from josh_jax.errors import InputError
from josh_jax.video import sampling


def slice_clip(clip: Clip, start: int, stop: int) -> Clip:
    """The keyframes [start, stop) of `clip` as a Clip of their own.

    Per-keyframe arrays are sliced; the pairs whose two frames both lie inside are kept (in their
    order) and re-indexed from 0, with their matches, match confidences and pair scores.

    Args:
      clip: a Clip with T keyframes.
      start, stop: 0 <= start < stop <= T.

    Returns:
      A Clip with stop - start keyframes.
    """
    T = clip.num_frames
    if not 0 <= start < stop <= T:
        raise InputError("chunks", "keyframe range", f"0 <= start < stop <= {T}",
                         f"[{start}, {stop})")
    pairs = np.asarray(clip.pairs)
    keep = np.all((pairs >= start) & (pairs < stop), axis=1)

    def frames(x, axis=0):
        return None if x is None else np.take(np.asarray(x), np.arange(start, stop), axis=axis)

    return clip.replace(
        frame_index=frames(clip.frame_index),
        pointmaps=frames(clip.pointmaps),
        confidence=frames(clip.confidence),
        human_mask=frames(clip.human_mask),
        pairs=(pairs[keep] - start).astype(np.int32),
        matches=np.asarray(clip.matches)[keep],
        match_confidence=np.asarray(clip.match_confidence)[keep],
        smpl_global_orient=frames(clip.smpl_global_orient, 1),
        smpl_body_pose=frames(clip.smpl_body_pose, 1),
        smpl_betas=frames(clip.smpl_betas, 1),
        smpl_transl=frames(clip.smpl_transl, 1),
        smpl_valid=frames(clip.smpl_valid, 1),
        contact=frames(clip.contact, 1),
        images=frames(clip.images),
        pair_scores=None if clip.pair_scores is None else np.asarray(clip.pair_scores)[keep],
    )


def split_clip(clip: Clip, length: int, overlap: int) -> tuple[list[Clip], list[tuple[int, int]]]:
    """Overlapping chunks of `length` keyframes sharing `overlap` keyframes (the last chunk ends at
    the last keyframe and may overlap more; a clip of <= `length` keyframes is one chunk).

    Returns:
      (chunks, keyframe ranges [a, b) of each chunk in the long clip).
    """
    ranges = sampling.overlapping_chunks(clip.num_frames, length, overlap)
    return [slice_clip(clip, a, b) for a, b in ranges], ranges


def video_frame_ranges(clip: Clip, keyframe_ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open video frame ranges [first keyframe, last keyframe + 1) of the chunks."""
    f = np.asarray(clip.frame_index)
    return [(int(f[a]), int(f[b - 1]) + 1) for a, b in keyframe_ranges]
