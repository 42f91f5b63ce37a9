"""Checks a clip passes before any work: limits on its size and plausibility of its values.

    check_clip(clip, config, source)             # limits + plausibility (after load_any)
    check_clip_body(clip, body_model, source)    # contact / joints / betas sized for the body
    check_memory(problems, clips, body_model, config)  # bucketed shapes, before compiling

The npz members themselves (declared sizes, zip bombs, lying `.npy` headers, dimensions from the
headers) are checked earlier, before they are inflated, by `josh_jax.clip.read_npz(path, limits)`.
Every limit and tolerance is `config.limits` (experiments/configs/josh.py); every refusal is an
`InputError` naming the source, the field and the limit (docs/robustness.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np

import body_models
from josh_jax.clip import Clip, ClipFormatError
from josh_jax.clip.io import LIMIT_NAMES, dimension_limits
from josh_jax.errors import InputError

_MB = 1024 * 1024
_GB = 1024 * _MB


def frame_span(clip: Clip) -> int:
    """F: the video frames a result covers (last - first `frame_index` + 1)."""
    fi = np.asarray(clip.frame_index)
    return int(fi[-1]) - int(fi[0]) + 1 if fi.size else 0


def check_clip(clip: Clip, config, source: str) -> None:
    """Size limits and physical plausibility of a loaded clip (see the module docstring).

    Raises:
      ClipFormatError: the first problem, naming `source`, the key and the limit or tolerance.
    """
    check_limits(clip, config.limits, source)
    check_image_size(clip, int(config.subsample), source)
    check_plausible(clip, config.limits, source)


def check_limits(clip: Clip, limits, source: str) -> None:
    """T, H, W, E, M, P, V and the frame span against `limits`."""
    shapes = {"pointmaps": clip.pointmaps.shape, "pairs": clip.pairs.shape,
              "matches": clip.matches.shape, "smpl_valid": clip.smpl_valid.shape,
              "contact": clip.contact.shape}
    for sym, key, axis, (lo, hi) in dimension_limits(limits):
        n = shapes[key][axis]
        if not lo <= n <= hi:
            raise ClipFormatError(source, key, f"{sym} in [{lo}, {hi}] ({LIMIT_NAMES[sym]})",
                                  f"{sym}={n} (shape {tuple(shapes[key])})")
    span = frame_span(clip)
    if span > limits.max_frame_span:
        raise ClipFormatError(
            source, "frame_index", f"a frame span (last - first + 1) of at most "
            f"limits.max_frame_span={limits.max_frame_span}",
            f"{span} (frames {int(clip.frame_index[0])}..{int(clip.frame_index[-1])})")


def check_image_size(clip: Clip, anchor_step: int, source: str) -> None:
    """H and W multiples of the anchor grid step (`config.subsample`)."""
    H, W = clip.pointmaps.shape[1:3]
    if H % anchor_step or W % anchor_step:
        raise ClipFormatError(source, "pointmaps",
                              f"H and W multiples of the anchor step config.subsample={anchor_step}",
                              f"H={H}, W={W}")


def _rotation_error(R: np.ndarray) -> np.ndarray:
    """max |R^T R - I| and |det R - 1| per matrix: float[...] for R float[..., 3, 3]."""
    R = R.astype(np.float64)
    gram = np.einsum("...ji,...jk->...ik", R, R)
    ortho = np.abs(gram - np.eye(3)).max(axis=(-2, -1))
    return np.maximum(ortho, np.abs(np.linalg.det(R) - 1.0))


def check_plausible(clip: Clip, limits, source: str) -> None:
    """Rotations, betas, fps, depths, scene pixels, matches and tracks that JOSH can use."""
    fps = float(clip.fps)
    if not limits.min_fps <= fps <= limits.max_fps:
        raise ClipFormatError(source, "fps", f"a frame rate in [{limits.min_fps}, "
                              f"{limits.max_fps}] (limits.min_fps/max_fps)", f"{fps:g}")
    valid = np.asarray(clip.smpl_valid, bool)
    empty = np.flatnonzero(~valid.any(axis=1))
    if empty.size:
        raise ClipFormatError(source, "smpl_valid", "at least one valid frame per track",
                              f"none for track {int(empty[0])} (of {valid.shape[0]})")
    _check_rotations(clip, valid, limits, source)
    betas = np.asarray(clip.smpl_betas)[valid]
    if betas.size and np.abs(betas).max() > limits.max_abs_beta:
        raise ClipFormatError(source, "smpl_betas", f"|betas| <= limits.max_abs_beta="
                              f"{limits.max_abs_beta} on valid frames",
                              f"{np.abs(betas).max():.4g}")
    _check_scene(clip, limits, source)
    if not (np.asarray(clip.match_confidence) > 0).any():
        raise ClipFormatError(source, "match_confidence", "at least one match with confidence > 0",
                              "none (every match is padding)")


def _check_rotations(clip: Clip, valid: np.ndarray, limits, source: str) -> None:
    for key, R in (("smpl_global_orient", np.asarray(clip.smpl_global_orient)),
                   ("smpl_body_pose", np.asarray(clip.smpl_body_pose))):
        err = _rotation_error(R)
        if key == "smpl_body_pose":
            err = err.max(axis=-1)
        err = np.where(valid, err, 0.0)
        if err.max() > limits.rotation_tol:
            p, t = (int(i) for i in np.unravel_index(np.argmax(err), err.shape))
            raise ClipFormatError(
                source, key, f"rotation matrices (max |R^T R - I|, |det R - 1| <= "
                f"limits.rotation_tol={limits.rotation_tol}) on valid frames",
                f"deviation {err.max():.3g} at track {p}, frame {t}")


def _check_scene(clip: Clip, limits, source: str) -> None:
    """Some confident scene pixels (outside the people), mostly in front of the camera."""
    mask = np.asarray(clip.human_mask, bool)
    if mask.all():
        raise ClipFormatError(source, "human_mask", "some scene pixels (False) to reconstruct",
                              "every pixel of every frame True")
    scene = (np.asarray(clip.confidence) > 0) & ~mask
    if not scene.any():
        raise ClipFormatError(source, "confidence", "confidence > 0 on some scene pixels",
                              "0 on every pixel outside human_mask")
    z = np.asarray(clip.pointmaps)[..., 2][scene]
    positive = float((z > 0).mean())
    if positive < limits.min_positive_depth:
        raise ClipFormatError(
            source, "pointmaps", f"depth z > 0 on at least limits.min_positive_depth="
            f"{limits.min_positive_depth:.0%} of the confident scene pixels", f"{positive:.0%}")


def check_clip_body(clip: Clip, body_model: body_models.BodyModel, source: str) -> None:
    """The clip's contact columns, joints and betas sized for `body_model`."""
    V = clip.contact.shape[-1]
    if V != body_model.num_vertices:
        raise ClipFormatError(source, "contact", f"one column per body vertex (V="
                              f"{body_model.num_vertices} for body {clip.body_model!r})",
                              f"V={V}")
    J1 = clip.smpl_body_pose.shape[2]
    if J1 != body_model.num_joints - 1:
        raise ClipFormatError(source, "smpl_body_pose", f"J-1={body_model.num_joints - 1} body "
                              f"joints for body {clip.body_model!r}", f"{J1}")
    B = clip.smpl_betas.shape[-1]
    if B > body_model.num_betas:
        raise ClipFormatError(source, "smpl_betas", f"at most {body_model.num_betas} shape "
                              f"coefficients for body {clip.body_model!r}", f"B={B}")


# Working memory of the optimisation relative to the problem's own size: parameters, Adam moments,
# gradients and per-residual temporaries. A rough allowance (not a measurement): the check is
# meant to refuse inputs orders of magnitude too big, before compiling, not to predict the peak.
_OPTIMIZE_FACTOR = 8


def estimate_memory_bytes(problems: Sequence, clips: Sequence[Clip],
                          body_model: body_models.BodyModel) -> int:
    """Rough peak bytes of optimising `problems` (bucketed shapes) and assembling and writing
    their results.

    Per video frame and track the result and its writers hold ~8 float32 copies of the posed
    vertices (the result, interpolation temporaries, the npz's float16 copy, the glb's buffers):
    calibrated on issue 11's trial, where a 20000-frame span peaked at 12 GB (~0.6 MB per frame
    and track for 6890 vertices).
    """
    problem_bytes = sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize
                        for p in problems for x in jax.tree.leaves(p))
    result_bytes = 0
    for clip in clips:
        P = clip.smpl_valid.shape[0]
        per_frame = P * (body_model.num_vertices * 3 * 4 * 8 + 64 * 4 * 9) + 2 * 16 * 4
        result_bytes += frame_span(clip) * per_frame + clip.pointmaps.nbytes * 2
    return problem_bytes * _OPTIMIZE_FACTOR + result_bytes


def memory_limit_bytes(limits) -> int:
    """`limits.max_memory_gb`, or 80 % of this machine's physical memory when it is 0."""
    if limits.max_memory_gb > 0:
        return int(limits.max_memory_gb * _GB)
    try:
        return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not reported on this system
        return 2**62


def check_memory(problems: Sequence, clips: Sequence[Clip], body_model, limits,
                 source: str) -> int:
    """`estimate_memory_bytes` against `memory_limit_bytes(limits)`; returns the estimate (bytes).

    Raises:
      InputError: over the limit (naming the limit and the estimate).
    """
    need = estimate_memory_bytes(problems, clips, body_model)
    limit = memory_limit_bytes(limits)
    if need > limit:
        raise InputError(source, "(memory)", f"an estimated peak of at most {limit / _GB:.1f} GB "
                         f"(limits.max_memory_gb={limits.max_memory_gb:g}; 0: 80% of the RAM)",
                         f"{need / _GB:.1f} GB for {len(clips)} clip(s) (frame spans "
                         f"{[frame_span(c) for c in clips]})")
    return need
