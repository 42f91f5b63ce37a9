"""`prepare(clip, config) -> Problem`: the fixed-shape inputs of the JOSH optimizer (host side).

Runs once per clip outside jit (numpy / scipy, one small jitted SMPL pass), one builder per part
of the `Problem`:

* cameras: the kinematic chain (maximum spanning tree of pair scores, `camera_graph`), the focal
  initialisation (per-image Weiszfeld focals averaged with mean-cconf weights, `focal`) and the
  anchor depths of the canonical views (`anchors`);
* matches: per match and side the integer pixel, the absolute depth of its anchor and its
  block-relative offset; because the anchor depths are never trained (JOSH's
  `optimize_depth=False`) a match needs only these constants, not anchor indices. Unordered
  pairs are used once (the reference lists each twice; its normalised losses are invariant);
* tracks: the initial SMPL parameters (HMR transl z rescaled by focal_init / hmr_focal);
* contacts and static pairs of every track (`contacts`);
* the body restricted to the vertices those use, plus the 24 rest joints (`body`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from absl import logging

from body_models import load_model
from josh_jax.prepare.anchors import CanonicalViews, anchor_offsets, canonical_views
from josh_jax.prepare.batch import bucket_size, pad
from josh_jax.prepare.body import smpl_forward, subset_body_model
from josh_jax.prepare.camera_graph import chain_parents, max_spanning_tree
from josh_jax.prepare.contacts import ContactSettings, TrackContacts, build_contacts
from josh_jax.prepare.focal import initial_focal
from josh_jax.prepare.problem import (
    CameraData,
    ContactData,
    MatchData,
    Problem,
    StaticPairs,
    TrackInit,
)
from josh_jax.quality import input_warnings

NUM_JOINTS = 24
# The focal is clipped to these multiples of the image diagonal (docs/method.md §2.3).
FOCAL_BOUNDS = (0.25, 10.0)
# Contact surface windows are configured in pixels of an image this wide (MASt3R's input width).
SURFACE_REFERENCE_WIDTH = 512


@dataclasses.dataclass(frozen=True)
class PrepareInfo:
    """Host-side by-products of `prepare` (unpadded; for reports, parity checks and outputs).

    Attributes:
      views: canonical views (canon2, cconf, scene mask, anchor depths).
      mst_root: root image of the spanning tree.
      mst_edges: int32[N-1, 2] (parent, child) in BFS order.
      focal_init: initial focal.
      contacts: per track `TrackContacts` (original vertex ids, keyframe slots), None for a
        track without frames.
      num_matches: matches kept (after the per-pair cap).
      num_matches_total: valid matches in the clip.
    """

    views: CanonicalViews
    mst_root: int
    mst_edges: np.ndarray
    focal_init: float
    contacts: list[TrackContacts | None]
    num_matches: int
    num_matches_total: int


def prepare(clip, config, body_model=None, *, return_info: bool = False):
    """Builds the optimizer Problem of one clip (host side, outside jit).

    Args:
      clip: josh_jax.clip.Clip.
      config: the `josh` ml_collections config (experiments/configs/josh.py).
      body_model: body_models.BodyModel the clip's SMPL parameters belong to; default
        `body_models.load_model(config.body_model_path)`.
      return_info: also return the host-side `PrepareInfo`.

    Returns:
      Problem (jax arrays), or (Problem, PrepareInfo) with `return_info`.

    Raises:
      ValueError: disconnected match graph, image size not a multiple of the anchor step, or a
        clip larger than a fixed (non-growing) bucket.
    """
    input_warnings(clip, config)  # absl warnings for inputs that leave the method blind
    human_mask = None if config.reference_compat else clip.human_mask
    views = canonical_views(
        clip.pointmaps,
        clip.confidence,
        human_mask,
        subsample=int(config.subsample),
        conf_offset=config.conf_offset,
        conf_thres=config.conf_thres,
    )
    focal_init, focals = initial_focal(clip, views, config)
    mst_root, mst_edges = _camera_tree(clip, config)
    num_frames = bucket_size(clip.num_frames, config.buckets.frames)
    cameras = _camera_data(clip, views, focals, focal_init, mst_edges, num_frames)
    matches, num_kept, num_total = _match_data(clip, views, config)

    if body_model is None:
        body_model = load_model(config.body_model_path or None)
    tracks = _track_init(clip, config, focal_init, num_frames, int(body_model.num_betas))
    settings = _contact_settings(config, image_width=clip.pointmaps.shape[2])
    track_contacts = _track_contacts(clip, views, tracks, body_model, focal_init, settings)
    vertex_ids, vertex_slot = _used_vertices(track_contacts, config)
    num_tracks = tracks.valid.shape[0]
    problem = Problem(
        cameras=cameras,
        matches=matches,
        tracks=tracks,
        contacts=_contact_data(
            track_contacts, views, vertex_slot, num_tracks, config, settings.surface_radius
        ),
        static=_static_pairs(track_contacts, vertex_slot, num_tracks, config),
        body=subset_body_model(body_model, vertex_ids),
        body_vertex_ids=vertex_ids,
    )
    # device_put, not jnp.asarray: on a numpy leaf jnp.asarray compiles a tiny program per shape.
    problem = jax.device_put(problem)
    if not return_info:
        return problem
    info = PrepareInfo(
        views=views,
        mst_root=mst_root,
        mst_edges=mst_edges,
        focal_init=focal_init,
        contacts=track_contacts,
        num_matches=num_kept,
        num_matches_total=num_total,
    )
    return problem, info


# ---------------------------------------------------------------------------------------------
# Cameras


def _camera_tree(clip, config) -> tuple[int, np.ndarray]:
    """Spanning tree of the pair scores (the clip's, else its valid match counts)."""
    if clip.pair_scores is not None:
        scores = np.asarray(clip.pair_scores, np.float64)
    else:
        valid = np.asarray(clip.match_confidence, np.float32) > config.min_match_conf
        scores = valid.sum(1).astype(np.float64)
    return max_spanning_tree(clip.num_frames, np.asarray(clip.pairs, np.int64), scores)


def _camera_data(clip, views, focals, focal_init, mst_edges, num_frames) -> CameraData:
    T, H, W = clip.pointmaps.shape[:3]
    N = num_frames
    diag = float(np.hypot(W, H))
    frame_index = pad(np.asarray(clip.frame_index, np.float32), N)
    if N > T:  # keep padded frame indices increasing (never read: masked)
        frame_index[T:] = frame_index[T - 1] + np.arange(1, N - T + 1)
    median_depth = np.median(views.core_depth, axis=1).astype(np.float32)
    return CameraData(
        frame_valid=np.arange(N) < T,
        frame_index=frame_index,
        chain_parent=chain_parents(mst_edges, N),
        median_depth=pad(median_depth, N, value=1.0),
        core_depth=pad(views.core_depth, N, value=1.0),
        base_focal=np.full((N,), focal_init, np.float32),
        weiszfeld_focal=pad(focals.astype(np.float32), N, value=focal_init),
        focal_init=np.float32(focal_init),
        focal_bounds=np.asarray([FOCAL_BOUNDS[0] * diag, FOCAL_BOUNDS[1] * diag], np.float32),
        pp=np.asarray((W / 2.0, H / 2.0), np.float32),
    )


# ---------------------------------------------------------------------------------------------
# Matches


def cap_matches(xy: np.ndarray, conf: np.ndarray, cap: int, rng: np.random.Generator):
    """Confidence-weighted subsampling of one pair's matches down to `cap` (0: keep all).

    Matches are drawn without replacement with probability proportional to their confidence and
    then weighted uniformly (importance weights c / p are constant), so the expected weighted
    loss equals the full confidence-weighted loss. The kept weights are rescaled to the pair's
    total confidence so pairs keep their relative weight in the normalised loss.

    Args:
      xy: float[n, 2, 2] match pixels (side, (x, y)); conf: float[n] weights; cap: at most
        this many matches; rng: the draw's generator.

    Returns:
      (xy, conf) kept: the inputs themselves when n <= cap.
    """
    n = len(conf)
    if cap <= 0 or n <= cap:
        return xy, conf
    p = conf / conf.sum()
    keep = np.sort(rng.choice(n, size=cap, replace=False, p=p))
    w = np.full(cap, conf.sum() / cap, np.float32)
    return xy[keep], w


def _match_data(clip, views, config) -> tuple[MatchData, int, int]:
    """MatchData, the number of matches kept and of valid matches."""
    conf_all = np.asarray(clip.match_confidence, np.float32)
    valid = conf_all > config.min_match_conf
    pairs = np.asarray(clip.pairs, np.int64)
    rng = np.random.default_rng(int(config.seed))
    per_pair = []
    for e in np.nonzero(valid.any(1))[0]:
        xy = np.asarray(clip.matches[e][valid[e]], np.float32)  # [n, 2 sides, 2]
        xy, c = cap_matches(xy, conf_all[e][valid[e]], int(config.max_matches_per_pair), rng)
        per_pair.append((pairs[e], xy, c))
    E = bucket_size(len(per_pair), config.buckets.pairs)
    M = bucket_size(
        max([len(c) for _, _, c in per_pair], default=1), config.buckets.matches_per_pair
    )
    pair_index = np.zeros((E, 2), np.int32)
    uv = np.zeros((4, E, M), np.float32)
    depth = np.ones((2, E, M), np.float32)
    offset = np.ones((2, E, M), np.float32)
    conf = np.zeros((E, M), np.float32)
    for k, (pair, xy, c) in enumerate(per_pair):
        n = len(c)
        pair_index[k] = pair
        for side, img in enumerate(pair.tolist()):
            pix = np.rint(xy[:, side]).astype(np.int64)
            anchor, off = anchor_offsets(views, img, pix)
            uv[2 * side : 2 * side + 2, k, :n] = pix.T
            depth[side, k, :n] = views.core_depth[img, anchor]
            offset[side, k, :n] = off
        conf[k, :n] = c
    num_kept = sum(len(c) for _, _, c in per_pair)
    matches = MatchData(pair_index=pair_index, uv=uv, depth=depth, offset=offset, conf=conf)
    return matches, num_kept, int(valid.sum())


# ---------------------------------------------------------------------------------------------
# Humans


def _track_init(clip, config, focal_init, num_frames, num_betas) -> TrackInit:
    T, N, B = clip.num_frames, num_frames, num_betas
    num_tracks = int(clip.smpl_transl.shape[0])
    if num_tracks:
        P = bucket_size(num_tracks, config.buckets.tracks)
    else:
        P = int(min(config.buckets.tracks))
    eye = np.eye(3, dtype=np.float32)
    valid = np.zeros((P, N), bool)
    global_orient = np.tile(eye, (P, N, 1, 1))
    body_pose = np.tile(eye, (P, N, NUM_JOINTS - 1, 1, 1))
    transl = np.zeros((P, N, 3), np.float32)
    transl[..., 2] = 1.0
    betas = np.zeros((P, B), np.float32)
    ratio = np.float32(focal_init / float(clip.hmr_focal))
    for p in range(num_tracks):
        v = np.asarray(clip.smpl_valid[p], bool)
        valid[p, :T] = v
        global_orient[p, :T][v] = clip.smpl_global_orient[p][v]
        body_pose[p, :T][v] = clip.smpl_body_pose[p][v]
        t = np.asarray(clip.smpl_transl[p], np.float32).copy()
        t[:, 2] *= ratio
        transl[p, :T][v] = t[v]
        if v.any():
            betas[p] = np.asarray(clip.smpl_betas[p][v], np.float32).mean(0)[:B]
    return TrackInit(
        valid=valid, global_orient=global_orient, body_pose=body_pose, transl=transl, betas=betas
    )


def _contact_settings(config, image_width: int) -> ContactSettings:
    to_pixels = image_width / SURFACE_REFERENCE_WIDTH
    return ContactSettings(
        joint_radius=config.contact_joint_radius,
        contact_thres=config.contact_thres,
        depth_filter_ratio=config.depth_filter_ratio,
        surface_radius=max(2, round(config.contact_surface.radius * to_pixels)),
        surface_margin=max(1, round(config.contact_surface.margin * to_pixels)),
        surface_max_rms=float(config.contact_surface.max_rms),
        reference_compat=bool(config.reference_compat),
    )


def _track_contacts(clip, views, tracks, body_model, focal_init, settings):
    """TrackContacts of every track of the clip (None for a track without frames)."""
    T, H, W = clip.pointmaps.shape[:3]
    depth = np.asarray(clip.pointmaps[..., 2], np.float32)
    body_mask = None if settings.reference_compat else clip.human_mask
    B = int(body_model.num_betas)
    out = []
    for p in range(int(clip.smpl_transl.shape[0])):
        frames = np.nonzero(np.asarray(clip.smpl_valid[p], bool))[0]
        if len(frames) == 0:
            out.append(None)
            continue
        # Contacts use the TRAM betas of each frame, like the reference's initial mesh.
        vertices, joints = smpl_forward(
            body_model,
            np.asarray(clip.smpl_betas[p][frames], np.float32)[:, :B],
            tracks.global_orient[p, frames],
            tracks.body_pose[p, frames],
            tracks.transl[p, frames],
        )
        contact = np.asarray(clip.contact[p][frames])
        tc = build_contacts(
            vertices, joints, contact, frames, views, depth, focal_init, (W / 2.0, H / 2.0),
            settings, body_mask=body_mask,
        )
        logging.info(
            "track %d: %d contact candidates -> %d scale entries, %d static pairs",
            p, tc.num_candidates, len(tc.conf), len(tc.static_vertex),
        )
        if len(tc.conf) == 0:
            logging.warning(
                "prepare: track %d has no contact-scale entry; its metric scale comes only from "
                "the HMR translation prior", p,
            )
        out.append(tc)
    return out


def _used_vertices(track_contacts, config) -> tuple[np.ndarray, dict[int, int]]:
    """Body vertex ids the contacts use (padded to a bucket) and each id's slot."""
    used = sorted(
        {
            int(x)
            for tc in track_contacts
            if tc is not None
            for x in np.concatenate([tc.vertex, tc.static_vertex])
        }
    )
    vertex_ids = np.zeros(bucket_size(len(used), config.buckets.vertices), np.int32)
    vertex_ids[: len(used)] = used
    return vertex_ids, {v: k for k, v in enumerate(used)}


def _pack_tracks(track_contacts, values, dtype, *, num_tracks, size, fill=0, shape=()):
    """dtype[num_tracks, size, *shape]: `values(tc)` of each track in its row, padded with `fill`
    (rows of tracks without frames, beyond the clip's tracks and beyond each track's entries)."""
    out = np.full((num_tracks, size) + shape, fill, dtype)
    for p, tc in enumerate(track_contacts):
        if tc is not None:
            row = np.asarray(values(tc), dtype)
            out[p, : len(row)] = row
    return out


def _contact_data(track_contacts, views, vertex_slot, P, config, radius) -> ContactData:
    C = bucket_size(
        max([len(tc.conf) for tc in track_contacts if tc is not None], default=1),
        config.buckets.contacts,
    )
    pack = functools.partial(_pack_tracks, track_contacts, num_tracks=P, size=C)
    return ContactData(
        image=pack(lambda tc: tc.image, np.int32),
        frame=pack(lambda tc: tc.frame, np.int32),
        vertex=pack(lambda tc: [vertex_slot[int(x)] for x in tc.vertex], np.int32),
        depth=pack(lambda tc: views.core_depth[tc.image, tc.anchor], np.float32, fill=1),
        offset=pack(lambda tc: tc.offset, np.float32, fill=1),
        uv=pack(lambda tc: tc.uv, np.float32, shape=(2,)),
        slope=pack(lambda tc: tc.slope, np.float32, shape=(2,)),
        conf=pack(lambda tc: tc.conf, np.float32),
        radius=np.float32(radius),
    )


def _static_pairs(track_contacts, vertex_slot, P, config) -> StaticPairs:
    S = bucket_size(
        max([len(tc.static_vertex) for tc in track_contacts if tc is not None], default=1),
        config.buckets.static,
    )
    pack = functools.partial(_pack_tracks, track_contacts, num_tracks=P, size=S)
    return StaticPairs(
        frame=pack(lambda tc: tc.static_frame, np.int32),
        prev=pack(lambda tc: tc.static_prev, np.int32),
        vertex=pack(lambda tc: [vertex_slot[int(x)] for x in tc.static_vertex], np.int32),
        weight=pack(lambda tc: np.ones(len(tc.static_vertex)), np.float32),
    )
