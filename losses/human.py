"""Human terms of the JOSH optimiser, for ONE track of ONE clip (`docs/method.md` (7.3)-(7.7)).

Per-track terms are combined over the tracks of a clip with `track_weighted_mean` (the reference
weights each track by its number of SMPL frames n_t). All functions take masks for padding,
normalise by masked counts and return 0 when everything is masked.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
from jax import Array

from losses.robust import gamma_loss, masked_mean, safe_norm, weighted_sum


def contact_scale_loss(scene_depth: Array, vertex_depth: Array, weight: Array,
                       gamma: float = 1.1) -> Array:
    """Contact-scale term: scene depth at contact pixels vs. camera depth of the contact vertex.

        L_scale = sum_e w_e rho_gamma(|scene_depth_e - vertex_depth_e|) / sum_e w_e   (0 if no entry)

    In JOSH, scene_depth_e = D_{img_e}[a_e] * o_e (current anchor depth times the stored offset,
    not focal-compensated) and vertex_depth_e = V[b_e, v_e, z] * f / f_init: the caller builds both.

    Args:
        scene_depth: float[E] scene depth at the contact pixel of each entry.
        vertex_depth: float[E] camera-frame depth of the contact vertex (already rescaled).
        weight: float[E] entry confidence (0 = padding).
        gamma: robust exponent (JOSH: 1.1).

    Returns:
        float[] scalar loss.
    """
    # |x| as a 1-D safe norm: gradient 0 (not +-1) at a zero residual, like PyTorch.
    r = safe_norm((scene_depth - vertex_depth)[..., None], axis=-1)
    return masked_mean(gamma_loss(r, gamma), weight)


def contact_static_loss(verts_world_now: Array, verts_world_prev: Array, mask: Array,
                        gamma: float = 1.1) -> Array:
    """Contact-static term: a contact vertex kept in consecutive frames should not move in the world.

        L_static = (1/|S|) sum_{s in S} rho_gamma(|now_s - prev_s|)      (0 if S is empty)

    Entry s is a static pair (b, v): now_s = G[b, v], prev_s = G[b-1, v] with G the world-frame
    vertices (cam2w_{img(b)} applied to the camera-frame SMPL vertices); the caller gathers them.

    Args:
        verts_world_now: float[S, 3] world position of the vertex at SMPL frame b.
        verts_world_prev: float[S, 3] world position of the same vertex at frame b - 1.
        mask: float[S] or bool[S] (0 = padding; other values act as weights).
        gamma: robust exponent (JOSH: 1.1).

    Returns:
        float[] scalar loss.
    """
    r = safe_norm(verts_world_now - verts_world_prev, axis=-1)
    return masked_mean(gamma_loss(r, gamma), mask)


def joint_smoothness_loss(joints_world: Array, frame_index: Array, valid: Array,
                          gamma: float = 1.1) -> Array:
    """Robust acceleration of world joints over the valid frames of one track.

    With P the valid frames in array order and f their frame positions (b = 0..n-1):

        v_b = (P[b] - P[b-1]) / (f[b] - f[b-1]),        b = 1..n-1
        a_b = v_{b+1} - v_b,                            b = 1..n-2
        L_smooth = mean_{b = 1..n-2, j} rho_gamma(|a_b[j]|)      (0 if n < 3)

    The reference uses the sampled-image index as f (gap 1 between keyframes); passing video frame
    indices instead gives a true per-frame acceleration. Padding is expected at the end of the
    array, but any mask works: valid frames are gathered to the front (stable order) first.

    Args:
        joints_world: float[N, J, 3] world joints of the track at its N (padded) frames.
        frame_index: float[N] or int[N] frame positions, strictly increasing over valid frames. A
            zero gap between two valid frames is treated as 1 (keeps the loss finite).
        valid: bool[N] or {0,1}[N] which frames are real.
        gamma: robust exponent (JOSH: 1.1).

    Returns:
        float[] scalar loss.
    """
    valid = jnp.asarray(valid) > 0
    order = jnp.argsort(jnp.logical_not(valid).astype(jnp.int32), stable=True)
    P = joints_world[order]
    f = jnp.asarray(frame_index)[order].astype(P.dtype)
    v = valid[order]  # now a prefix: v[b] implies v[b-1]
    gap = f[1:] - f[:-1]
    pair_ok = v[1:]
    gap = jnp.where(pair_ok & (gap != 0), gap, 1.0)
    vel = (P[1:] - P[:-1]) / gap[:, None, None]
    acc = vel[1:] - vel[:-1]  # acc[b-1] = a_b, valid iff frame b+1 is valid
    r = safe_norm(acc, axis=-1)  # [N-2, J]
    acc_ok = jnp.broadcast_to(v[2:, None], r.shape)
    return masked_mean(gamma_loss(r, gamma), acc_ok)


def _flat_diff_norm(x: Array, x0: Array, lead: int) -> Array:
    """|vec(x - x0)| with the first `lead` axes kept, the rest flattened into one vector."""
    d = jnp.reshape(x - x0, x.shape[:lead] + (-1,))
    return safe_norm(d, axis=-1)


def prior_terms(per_frame: Mapping[str, Array], per_frame_init: Mapping[str, Array], valid: Array,
                per_track: Mapping[str, Array] | None = None,
                per_track_init: Mapping[str, Array] | None = None,
                gamma: float = 1.1) -> dict[str, Array]:
    """Unweighted prior terms, one per key (see `prior_loss`).

    Returns:
        dict key -> float[] scalar: per-frame keys give mean_{valid b} rho(|vec(x_b - x0_b)|),
        per-track keys give rho(|vec(x - x0)|) (0 when no frame is valid).
    """
    per_track = {} if per_track is None else per_track
    per_track_init = {} if per_track_init is None else per_track_init
    for name, a, b in (("per_frame", per_frame, per_frame_init),
                       ("per_track", per_track, per_track_init)):
        if set(a) != set(b):
            raise ValueError(f"prior_loss: {name} keys {sorted(a)} != {name}_init keys {sorted(b)}")
    overlap = set(per_frame) & set(per_track)
    if overlap:
        raise ValueError(f"prior_loss: keys {sorted(overlap)} are both per-frame and per-track")
    valid = jnp.asarray(valid) > 0
    terms = {}
    for k in per_frame:
        x, x0 = per_frame[k], per_frame_init[k]
        if x.shape != x0.shape or x.shape[:1] != valid.shape:
            raise ValueError(f"prior_loss: per_frame[{k!r}] shape {x.shape}, init {x0.shape}, "
                             f"expected both [N={valid.shape[0]}, ...]")
        terms[k] = masked_mean(gamma_loss(_flat_diff_norm(x, x0, 1), gamma), valid)
    any_valid = jnp.any(valid)
    for k in per_track:
        x, x0 = per_track[k], per_track_init[k]
        if x.shape != x0.shape:
            raise ValueError(f"prior_loss: per_track[{k!r}] shape {x.shape} != init {x0.shape}")
        term = gamma_loss(safe_norm(jnp.ravel(x - x0)), gamma)
        terms[k] = jnp.where(any_valid, term, 0.0)
    return terms


def prior_loss(per_frame: Mapping[str, Array], per_frame_init: Mapping[str, Array], valid: Array,
               per_track: Mapping[str, Array] | None = None,
               per_track_init: Mapping[str, Array] | None = None,
               gamma: float = 1.1, weights: Mapping[str, float] | None = None) -> Array:
    """Prior keeping the human parameters of one track close to their initial values.

        L_prior = sum_{k in per_frame} w_k mean_{valid b} rho(|vec(x_k[b] - x0_k[b])|)
                + sum_{k in per_track} w_k rho(|vec(x_k - x0_k)|)

    Each norm covers the whole vector of one frame (e.g. 207-D for 23 rotation matrices). The
    reference uses per_frame = {root quaternion [N,4] (wxyz), transl [N,3], body pose [N,23,3,3]},
    per_track = {betas [10]}, all weights 1. Any parametrisation works (6D [N,23,6], axis-angle
    [N,23,3], ...): the term is defined on whatever arrays the caller optimises.

    Args:
        per_frame: dict name -> float[N, ...] current per-frame parameters.
        per_frame_init: dict with the same keys and shapes: initial values.
        valid: bool[N] or {0,1}[N] frames of the track that are real (0 = padding).
        per_track: optional dict name -> float[...] parameters shared by the track (betas).
        per_track_init: their initial values (same keys and shapes).
        gamma: robust exponent (JOSH: 1.1).
        weights: optional dict name -> weight; missing names get weight 1.

    Returns:
        float[] scalar loss; 0 when no frame is valid.
    """
    terms = prior_terms(per_frame, per_frame_init, valid, per_track, per_track_init, gamma)
    return weighted_sum(terms, weights)


def track_weighted_mean(per_track_loss: Array, num_frames: Array) -> Array:
    """Combine per-track losses as the reference does: sum_t n_t L_t / sum_t n_t (0 if no frames).

    Args:
        per_track_loss: float[P] one loss per (padded) track.
        num_frames: float[P] or int[P] valid SMPL frames per track (0 for a padded track).

    Returns:
        float[] scalar.
    """
    return masked_mean(per_track_loss, jnp.asarray(num_frames, per_track_loss.dtype))


__all__ = [
    "contact_scale_loss", "contact_static_loss", "joint_smoothness_loss", "prior_loss",
    "prior_terms", "track_weighted_mean",
]
