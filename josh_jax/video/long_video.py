"""JOSH on a long video: overlapping chunks in one batch, then one Sim(3) per chunk (docs/video.md).

    results, frame_ranges, timings = optimize_chunks(clip, config, body_model, long_config)
    result, info = stitch(results, frame_ranges, long_config, method="align")

`clip` holds every keyframe of the video (a front end's, or the synthetic oracle's noisy ground
truth). It is cut into chunks of `long_config.chunk_keyframes` keyframes sharing
`long_config.overlap_keyframes` with their neighbours (`video/chunks.py`). The chunks are optimised
as independent clips by `pipeline.reconstruct_many` (one `optimize_many` batch per bucket shape,
`long_config.batch_size` chunks at a time: memory is bounded by the chunk batch, not by the
video's length). `stitch` maps every chunk into chunk 0's world, either with the global alignment
("align": one Sim(3) per chunk solved from all shared frames: camera centres and orientations and
body joints by default, optionally the shared keyframes' scene points; rigid unless the solved
scale is far from 1 (`scale_gate`); then a short joint refinement across the seams,
`video/seams.py`; overlaps cross-faded) or with JOSH's plain concatenation ("concat", the baseline) and returns one Result at
every video frame.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from absl import logging

from josh_jax import pipeline
from josh_jax.clip import Clip
from josh_jax.errors import InputError
from josh_jax.result import Result
from josh_jax.video import chunks as chunks_lib
from josh_jax.video import seam_refine
from josh_jax.video import stitch as stitch_lib

METHODS = ("align", "concat")


# Bucketed sizes that vary from chunk to chunk of one video (contact entries, static pairs,
# contact vertices); the others (frames, pairs, matches per pair, tracks) are equal for chunks of
# equal length cut from one clip.
VARYING_BUCKETS = ("contacts", "static", "vertices")


def one_program_config(config):
    """`config` with the chunk-dependent buckets reduced to their largest size, so that all
    chunks of a video share one bucket shape: one compiled program, one `optimize_many` batch
    (the padding is small: these arrays are short)."""
    config = config.copy_and_resolve_references()
    for name in VARYING_BUCKETS:
        config.buckets[name] = (max(config.buckets[name]),)
    return config


def optimize_chunks(clip: Clip, config, body_model, long_config
                    ) -> tuple[list[Result], list[tuple[int, int]], dict[str, float]]:
    """Cut the clip into overlapping chunks and run JOSH on them, `batch_size` chunks per batch
    (with `long_config.one_program`, in one bucket shape: `one_program_config`).

    Returns:
      (one Result per chunk in its own world, half-open video frame ranges of the chunks,
      timings {"optimize_s", "num_chunks", "num_batches"}).
    """
    chunk_clips, key_ranges = chunks_lib.split_clip(
        clip, int(long_config.chunk_keyframes), int(long_config.overlap_keyframes))
    frame_ranges = chunks_lib.video_frame_ranges(clip, key_ranges)
    if long_config.one_program:
        config = one_program_config(config)
    size = int(long_config.batch_size) or len(chunk_clips)
    results, t = [], time.perf_counter()
    for start in range(0, len(chunk_clips), size):
        group = chunk_clips[start:start + size]
        results += [r for r, _ in pipeline.reconstruct_many(group, config, body_model)]
        logging.info("[long video] chunks %d..%d of %d optimised", start,
                     start + len(group) - 1, len(chunk_clips))
    timings = {"optimize_s": time.perf_counter() - t, "num_chunks": len(chunk_clips),
               "num_batches": -(-len(chunk_clips) // size)}
    return results, frame_ranges, timings


def stitch(results: list[Result], frame_ranges: list[tuple[int, int]], long_config,
           method: str = "align") -> tuple[Result, dict[str, Any]]:
    """One Result for the whole video from the chunk Results.

    Args:
      results: chunk Results (`optimize_chunks`), each in its own world.
      frame_ranges: their half-open video frame ranges.
      long_config: `experiments/configs/long_video.py` (weights, scale, blending).
      method: "align" (global Sim(3) alignment, then with `long_config.refine.enabled` the joint
        refinement across seams, overlaps assembled by `long_config.assemble`) or
        "concat" (JOSH: rigid glue at each chunk's first frame, later chunk wins).

    Returns:
      (result, info): info has the per-chunk `scale`; `seam_camera_m` / `seam_pelvis_m`, the
      distance between consecutive mapped chunks on their shared frames, per seam; and
      `border_step_camera_m` / `border_step_pelvis_m`, the stitched trajectory's extra step at
      each seam (`stitch.border_steps`); after a refinement also the seams before it
      (`seam_*_m_unrefined`) and the largest corrections of a camera centre and of a pelvis
      (`max_correction_camera_m`, `max_correction_pelvis_m`).
    """
    if method == "align":
        transforms = stitch_lib.align_transforms(
            results, frame_ranges, camera_weight=float(long_config.camera_weight),
            joint_weight=float(long_config.joint_weight), with_scale=bool(long_config.with_scale),
            rotation_weight=float(long_config.rotation_weight),
            scale_prior=float(long_config.scale_prior),
            scale_gate=float(long_config.scale_gate),
            scene_weight=float(long_config.scene_weight),
            scene_stride=int(long_config.scene_stride))
        mode = str(long_config.assemble)
    elif method == "concat":
        transforms = stitch_lib.concat_transforms(results, frame_ranges)
        mode = "later_wins"
    else:
        raise InputError("long video", "method", f"one of {METHODS}", repr(method))
    mapped = [stitch_lib.transform_result(r, S) for r, S in zip(results, transforms, strict=True)]
    extra = {}
    if method == "align" and long_config.refine.enabled:
        before = stitch_lib.seam_disagreement(mapped, frame_ranges)
        r = long_config.refine
        mapped, delta = seam_refine.refine_seams(
            mapped, frame_ranges, overlap_weight=float(r.overlap_weight),
            smooth_weight=float(r.smooth_weight), prior_weight=float(r.prior_weight),
            iters=int(r.iters))
        extra = {"seam_camera_m_unrefined": before["camera_m"],
                 "seam_pelvis_m_unrefined": before["pelvis_m"],
                 "max_correction_camera_m": float(np.max(np.linalg.norm(delta[:, :, 0], axis=-1))),
                 "max_correction_pelvis_m": float(np.max(
                     np.linalg.norm(delta[:, :, 2:2 + results[0].num_tracks], axis=-1),
                     initial=0.0))}
    seams = stitch_lib.seam_disagreement(mapped, frame_ranges)
    result = stitch_lib.assemble(mapped, frame_ranges, mode)
    steps = stitch_lib.border_steps(result, frame_ranges)
    info = {"scale": np.asarray([float(S.scale) for S in transforms]),
            "seam_camera_m": seams["camera_m"], "seam_pelvis_m": seams["pelvis_m"],
            "border_step_camera_m": steps["camera_m"], "border_step_pelvis_m": steps["pelvis_m"],
            "frame_ranges": list(frame_ranges), **extra}
    return result, info


def reconstruct_long(clip: Clip, config, body_model, long_config) -> tuple[Result, dict[str, Any]]:
    """`optimize_chunks` then `stitch(..., "align")`: one Result for the whole video."""
    results, frame_ranges, timings = optimize_chunks(clip, config, body_model, long_config)
    result, info = stitch(results, frame_ranges, long_config, "align")
    return result, {**info, "timings": timings}
