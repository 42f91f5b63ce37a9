"""`prepare(clip, config) -> Problem`: the fixed-shape inputs of the JOSH optimizer (host side).

Runs once per clip outside jit (numpy / scipy, one small jitted SMPL pass). It builds

* the scene data: per match and side the integer pixel, the absolute depth of its anchor
  (`core_depth[a]`, the pointmap z at the centre of its 8x8 block) and its block-relative offset
  (`canon2[y, x] / canon2[anchor]`); because the anchor depths are never trained (JOSH's
  `optimize_depth=False`) a match only needs these per-match constants, not anchor indices;
* the camera kinematic chain (maximum spanning tree of pair scores, MASt3R-SfM root, BFS order);
* the focal initialisation (per-image Weiszfeld focals averaged with mean-cconf weights);
* per track the initial SMPL parameters (HMR transl z rescaled by new_focal / hmr_focal), the
  contact-scale entries and the static pairs (`josh_jax.contacts`);
* a body model restricted to the vertices the losses touch (contact vertices) plus the 24 rest
  joints as virtual vertices, so the per-iteration skinning costs tens of vertices, not 6890.

Every variable-size set is padded to a bucket size (config `buckets`) with masks, so Problems of
many clips share one compiled program and stack on a leading axis (`stack_problems`).

Unordered image pairs are used once (the reference lists each twice; its normalised losses are
invariant to that).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from josh_jax import anchors as anchors_lib
from josh_jax import contacts as contacts_lib

NUM_JOINTS = 24


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Problem:
    """Fixed-shape optimizer inputs of ONE clip (stack with `stack_problems` for a batch).

    N frames (keyframes, padded), E pairs, M matches per pair, A anchors per image, P tracks,
    C contact entries per track, S static pairs per track, U body vertices used (padded),
    B shape coefficients. Padding is masked: `frame_valid`, `match_conf == 0`,
    `smpl_valid`, `contact_conf == 0`, `static_weight == 0`.

    Attributes:
      frame_valid: bool[N] real keyframes.
      frame_index: float32[N] video frame index of each keyframe (smoothness gaps).
      median_depth: float32[N] median anchor depth m_i (pointmap units).
      base_focal: float32[N] f0_i used in the depth reparametrisation (= focal_init, as JOSH).
      weiszfeld_focal: float32[N] per-image Weiszfeld focal of the pointmap.
      focal_init: float32[] initial shared focal (pixels).
      focal_bounds: float32[2] clip range of the focal ([0.25, 10] x image diagonal).
      pp: float32[2] principal point (cx, cy) = (W/2, H/2).
      chain_parent: int32[N] parent of each camera in the spanning tree (-1: root and padding).
      core_depth: float32[N, A] absolute anchor depths (pointmap z at the block centres).
      pair_index: int32[E, 2] images (i, j) of each pair (padding: (0, 0)).
      match_uv: float32[4, E, M] integer pixels of match m: rows (u_i, v_i, u_j, v_j) (component-
        major so the per-iteration loops stream contiguous rows).
      match_depth: float32[2, E, M] anchor depth d[a] of the match's pixel in image i / j.
      match_offset: float32[2, E, M] block-relative depth offset of that pixel in image i / j.
      match_conf: float32[E, M] match weight (0 = padding).
      smpl_valid: bool[P, N] SMPL frame present (track visible at this keyframe).
      init_global_orient: float32[P, N, 3, 3] HMR root rotation, camera frame.
      init_body_pose: float32[P, N, 23, 3, 3] HMR body pose.
      init_transl: float32[P, N, 3] HMR transl, z rescaled by focal_init / hmr_focal.
      init_betas: float32[P, B] mean HMR betas over the track's frames.
      body: body_models.BodyModel restricted to U used vertices + 24 virtual rest-joint vertices.
      body_vertex_ids: int32[U] original vertex id of each used vertex.
      contact_image: int32[P, C] image of each contact-scale entry.
      contact_frame: int32[P, C] SMPL frame (keyframe slot) whose vertex is used.
      contact_vertex: int32[P, C] index into the used vertices.
      contact_depth: float32[P, C] anchor depth d[a] at the entry's scene pixel.
      contact_offset: float32[P, C] depth offset of the entry's surface point relative to
        contact_depth (the scene depth there is contact_depth * contact_offset, pointmap units).
      contact_uv: float32[P, C, 2] pixel where that offset holds.
      contact_slope: float32[P, C, 2] relative inverse-depth slope of the local surface per pixel
        (the depth at contact_uv + (du, dv) is the depth there / (1 + a du + b dv)).
      contact_conf: float32[P, C] entry weight cconf (0 = padding).
      contact_radius: float32[] radius (pixels) of the surface windows.
      static_frame: int32[P, S] SMPL frame b of each static pair.
      static_prev: int32[P, S] the previous SMPL frame of the track.
      static_vertex: int32[P, S] index into the used vertices.
      static_weight: float32[P, S] 1 for real pairs, 0 for padding.
    """

    frame_valid: jax.Array
    frame_index: jax.Array
    median_depth: jax.Array
    base_focal: jax.Array
    weiszfeld_focal: jax.Array
    focal_init: jax.Array
    focal_bounds: jax.Array
    pp: jax.Array
    chain_parent: jax.Array
    core_depth: jax.Array
    pair_index: jax.Array
    match_uv: jax.Array
    match_depth: jax.Array
    match_offset: jax.Array
    match_conf: jax.Array
    smpl_valid: jax.Array
    init_global_orient: jax.Array
    init_body_pose: jax.Array
    init_transl: jax.Array
    init_betas: jax.Array
    body: Any
    body_vertex_ids: jax.Array
    contact_image: jax.Array
    contact_frame: jax.Array
    contact_vertex: jax.Array
    contact_depth: jax.Array
    contact_offset: jax.Array
    contact_uv: jax.Array
    contact_slope: jax.Array
    contact_conf: jax.Array
    contact_radius: jax.Array
    static_frame: jax.Array
    static_prev: jax.Array
    static_vertex: jax.Array
    static_weight: jax.Array

    @property
    def num_frames(self) -> int:
        return int(self.frame_valid.shape[-1])

    @property
    def num_tracks(self) -> int:
        return int(self.smpl_valid.shape[-2])


@dataclasses.dataclass(frozen=True)
class PrepareInfo:
    """Host-side by-products of `prepare` (unpadded; for reports, parity checks and outputs).

    Attributes:
      views: canonical views (canon2, cconf, scene mask, anchor depths).
      mst_root: root image of the spanning tree.
      mst_edges: int32[N-1, 2] (parent, child) in BFS order.
      focal_init: initial focal.
      contacts: per track `TrackContacts` (original vertex ids, keyframe slots).
      num_matches: matches kept (after the per-pair cap).
      num_matches_total: valid matches in the clip.
    """

    views: anchors_lib.CanonicalViews
    mst_root: int
    mst_edges: np.ndarray
    focal_init: float
    contacts: list
    num_matches: int
    num_matches_total: int


def bucket_size(n: int, sizes: Sequence[int]) -> int:
    """Smallest bucket >= n; past the largest, the next multiple of the largest (n >= 1)."""
    n = max(int(n), 1)
    sizes = sorted(int(s) for s in sizes)
    for s in sizes:
        if s >= n:
            return s
    return -(-n // sizes[-1]) * sizes[-1]


def _pad(x: np.ndarray, size: int, axis: int = 0, value=0) -> np.ndarray:
    x = np.asarray(x)
    if x.shape[axis] > size:
        raise ValueError(f"cannot pad axis {axis} of size {x.shape[axis]} down to {size}")
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return np.pad(x, widths, constant_values=value)


def subset_body_model(model, vertex_ids: np.ndarray):
    """The body restricted to `vertex_ids`, plus the J rest joints as J extra virtual vertices.

    Skinning only the vertices the losses use is exact for those vertices; the virtual vertices
    (template = J_regressor @ v_template, shape dirs = J_regressor @ shapedirs, no pose blend
    shapes) keep `rest_joints` exact through a one-hot regressor.

    Args:
      model: body_models.BodyModel.
      vertex_ids: int[U] vertex ids to keep.

    Returns:
      BodyModel with U + J vertices.
    """
    ids = np.asarray(vertex_ids, np.int64)
    J = len(model.parents)
    Jreg = np.asarray(model.J_regressor, np.float32)
    vt = np.asarray(model.v_template, np.float32)
    sd = np.asarray(model.shapedirs, np.float32)
    pd = np.asarray(model.posedirs, np.float32)
    V = vt.shape[0]
    pd = pd.reshape(pd.shape[0], V, 3)[:, ids].reshape(pd.shape[0], -1)
    v_template = np.concatenate([vt[ids], Jreg @ vt], 0)
    shapedirs = np.concatenate([sd[ids], np.einsum("jv,vcs->jcs", Jreg, sd)], 0)
    posedirs = np.concatenate([pd, np.zeros((pd.shape[0], J * 3), np.float32)], 1)
    J_regressor = np.concatenate(
        [np.zeros((J, len(ids)), np.float32), np.eye(J, dtype=np.float32)], 1
    )
    w = np.asarray(model.lbs_weights, np.float32)
    lbs_weights = np.concatenate([w[ids], np.eye(J, dtype=np.float32)], 0)
    return dataclasses.replace(
        model,
        v_template=jnp.asarray(v_template),
        shapedirs=jnp.asarray(shapedirs),
        posedirs=jnp.asarray(posedirs),
        J_regressor=jnp.asarray(J_regressor),
        lbs_weights=jnp.asarray(lbs_weights),
        faces=jnp.zeros((0, 3), jnp.int32),
    )


def _load_body_model(config):
    from body_models.loaders import load_model  # lazy: only prepare needs the loader

    path = config.get("body_model_path", None) or None
    return load_model(path)


def _smpl_forward_host(model, betas, orient, pose, transl):
    """Full-mesh SMPL of n frames (camera frame): vertices [n, V, 3], regressed joints [n, J, 3]."""
    from body_models.model import lbs, regress_joints

    def one(b, o, p, t):
        out = lbs(model, b, o, p, t)
        return out.vertices, regress_joints(model, out.vertices)

    V, Jr = jax.jit(jax.vmap(one))(
        jnp.asarray(betas), jnp.asarray(orient), jnp.asarray(pose), jnp.asarray(transl)
    )
    return np.asarray(V), np.asarray(Jr)


def _cap_matches(xy: np.ndarray, conf: np.ndarray, cap: int, rng: np.random.Generator):
    """Confidence-weighted subsampling of one pair's matches down to `cap`.

    Matches are drawn without replacement with probability proportional to their confidence and
    then weighted uniformly (importance weights c / p are constant), so the expected weighted
    loss equals the full confidence-weighted loss. The kept weights are rescaled to the pair's
    total confidence so pairs keep their relative weight in the normalised loss.
    """
    n = len(conf)
    if cap <= 0 or n <= cap:
        return xy, conf
    p = conf / conf.sum()
    keep = np.sort(rng.choice(n, size=cap, replace=False, p=p))
    w = np.full(cap, conf.sum() / cap, np.float32)
    return xy[keep], w


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
    cfg = config
    compat = bool(cfg.reference_compat)
    T, H, W = clip.pointmaps.shape[:3]
    s = int(cfg.subsample)
    pp = (W / 2.0, H / 2.0)
    human_mask = None if compat else clip.human_mask
    views = anchors_lib.canonical_views(
        clip.pointmaps,
        clip.confidence,
        human_mask,
        subsample=s,
        conf_offset=cfg.conf_offset,
        conf_thres=cfg.conf_thres,
    )
    depth = np.asarray(clip.pointmaps[..., 2], np.float32)

    # --- focal initialisation (spec 1.5.10) ---
    wf = np.array([anchors_lib.weiszfeld_focal(clip.pointmaps[i], pp) for i in range(T)])
    if cfg.get("init_focal", None):
        focal_init = float(cfg.init_focal)
    elif clip.focal_init is not None and not compat and cfg.use_clip_focal_init:
        focal_init = float(clip.focal_init)
    else:
        w = views.cconf.reshape(T, -1).mean(1)
        w = w / w.sum()
        focal_init = float(np.sum(w * wf))
    diag = float(np.hypot(W, H))

    # --- matches: filter, cap, anchors, offsets ---
    conf_all = np.asarray(clip.match_confidence, np.float32)
    valid_m = conf_all > cfg.min_match_conf
    pairs = np.asarray(clip.pairs, np.int64)
    if clip.pair_scores is not None:
        scores = np.asarray(clip.pair_scores, np.float64)
    else:
        scores = valid_m.sum(1).astype(np.float64)
    root, edges = anchors_lib.max_spanning_tree(T, pairs, scores)
    rng = np.random.default_rng(int(cfg.seed))
    cap = int(cfg.max_matches_per_pair)
    per_pair = []
    n_total = int(valid_m.sum())
    for e in range(len(pairs)):
        m = valid_m[e]
        if not m.any():
            continue
        xy = np.asarray(clip.matches[e][m], np.float32)  # [n, 2 sides, 2]
        c = conf_all[e][m]
        xy, c = _cap_matches(xy, c, cap, rng)
        per_pair.append((e, xy, c))
    E = bucket_size(len(per_pair), cfg.buckets.pairs)
    M = bucket_size(max([len(c) for _, _, c in per_pair], default=1), cfg.buckets.matches_per_pair)
    pair_index = np.zeros((E, 2), np.int32)
    match_uv = np.zeros((4, E, M), np.float32)
    match_depth = np.ones((2, E, M), np.float32)
    match_offset = np.ones((2, E, M), np.float32)
    match_conf = np.zeros((E, M), np.float32)
    n_kept = 0
    for k, (e, xy, c) in enumerate(per_pair):
        n = len(c)
        n_kept += n
        pair_index[k] = pairs[e]
        for side in range(2):
            img = int(pairs[e, side])
            pix = np.rint(xy[:, side]).astype(np.int64)
            a, off = anchors_lib.anchor_offsets(views, img, pix)
            match_uv[2 * side : 2 * side + 2, k, :n] = pix.T
            match_depth[side, k, :n] = views.core_depth[img, a]
            match_offset[side, k, :n] = off
        match_conf[k, :n] = c

    N = bucket_size(T, cfg.buckets.frames)
    chain_parent = np.full(N, -1, np.int32)
    for a, b in edges:
        chain_parent[b] = a
    med = np.median(views.core_depth, axis=1).astype(np.float32)

    # --- humans ---
    P_clip = int(clip.smpl_transl.shape[0])
    P = bucket_size(P_clip, cfg.buckets.tracks) if P_clip else int(min(cfg.buckets.tracks))
    if body_model is None:
        body_model = _load_body_model(cfg)
    B = int(body_model.num_betas)
    J1 = NUM_JOINTS - 1
    smpl_valid = np.zeros((P, N), bool)
    init_orient = np.tile(np.eye(3, dtype=np.float32), (P, N, 1, 1))
    init_pose = np.tile(np.eye(3, dtype=np.float32), (P, N, J1, 1, 1))
    init_transl = np.zeros((P, N, 3), np.float32)
    init_transl[..., 2] = 1.0
    init_betas = np.zeros((P, B), np.float32)
    track_contacts = []
    ratio = focal_init / float(clip.hmr_focal)
    # Surface windows are set in pixels of a 512-pixel-wide image (MASt3R's input width).
    surface_radius = max(2, round(cfg.contact_surface.radius * W / 512))
    for p in range(P_clip):
        v = np.asarray(clip.smpl_valid[p], bool)
        frames = np.nonzero(v)[0]
        smpl_valid[p, :T] = v
        init_orient[p, :T][v] = clip.smpl_global_orient[p][v]
        init_pose[p, :T][v] = clip.smpl_body_pose[p][v]
        tr = np.asarray(clip.smpl_transl[p], np.float32).copy()
        tr[:, 2] *= np.float32(ratio)
        init_transl[p, :T][v] = tr[v]
        if len(frames) == 0:
            track_contacts.append(None)
            continue
        init_betas[p] = np.asarray(clip.smpl_betas[p][v], np.float32).mean(0)[:B]
        # Contacts use the TRAM betas of each frame, like the reference's initial mesh.
        verts, jreg = _smpl_forward_host(
            body_model,
            np.asarray(clip.smpl_betas[p][frames], np.float32)[:, :B],
            init_orient[p, frames],
            init_pose[p, frames],
            init_transl[p, frames],
        )
        tc = contacts_lib.build_contacts(
            verts,
            jreg,
            np.asarray(clip.contact[p][frames]),
            frames,
            views,
            depth,
            focal_init,
            pp,
            joint_radius=cfg.contact_joint_radius,
            contact_thres=cfg.contact_thres,
            depth_filter_ratio=cfg.depth_filter_ratio,
            surface_radius=surface_radius,
            surface_margin=max(1, round(cfg.contact_surface.margin * W / 512)),
            surface_max_rms=float(cfg.contact_surface.max_rms),
            body_mask=human_mask,
            reference_compat=compat,
        )
        track_contacts.append(tc)
        logging.info(
            "track %d: %d contact candidates -> %d scale entries, %d static pairs",
            p,
            tc.num_candidates,
            len(tc.conf),
            len(tc.static_vertex),
        )
        if len(tc.conf) == 0:
            warnings.warn(
                f"prepare: track {p} has no contact-scale entry; its metric scale comes "
                f"only from the HMR translation prior",
                stacklevel=2,
            )

    used = sorted(
        {
            int(x)
            for tc in track_contacts
            if tc is not None
            for x in np.concatenate([tc.vertex, tc.static_vertex])
        }
    )
    U = bucket_size(len(used), cfg.buckets.vertices)
    vertex_ids = np.zeros(U, np.int32)
    vertex_ids[: len(used)] = used
    lookup = {v: k for k, v in enumerate(used)}
    C = bucket_size(
        max([len(tc.conf) for tc in track_contacts if tc is not None], default=1),
        cfg.buckets.contacts,
    )
    S = bucket_size(
        max([len(tc.static_vertex) for tc in track_contacts if tc is not None], default=1),
        cfg.buckets.static,
    )
    contact_image = np.zeros((P, C), np.int32)
    contact_frame = np.zeros((P, C), np.int32)
    contact_vertex = np.zeros((P, C), np.int32)
    contact_depth = np.ones((P, C), np.float32)
    contact_offset = np.ones((P, C), np.float32)
    contact_uv = np.zeros((P, C, 2), np.float32)
    contact_slope = np.zeros((P, C, 2), np.float32)
    contact_conf = np.zeros((P, C), np.float32)
    static_frame = np.zeros((P, S), np.int32)
    static_prev = np.zeros((P, S), np.int32)
    static_vertex = np.zeros((P, S), np.int32)
    static_weight = np.zeros((P, S), np.float32)
    for p, tc in enumerate(track_contacts):
        if tc is None:
            continue
        n = len(tc.conf)
        contact_image[p, :n] = tc.image
        contact_frame[p, :n] = tc.frame
        contact_vertex[p, :n] = [lookup[int(x)] for x in tc.vertex]
        contact_depth[p, :n] = views.core_depth[tc.image, tc.anchor]
        contact_offset[p, :n] = tc.offset
        contact_uv[p, :n] = tc.uv
        contact_slope[p, :n] = tc.slope
        contact_conf[p, :n] = tc.conf
        n = len(tc.static_vertex)
        static_frame[p, :n] = tc.static_frame
        static_prev[p, :n] = tc.static_prev
        static_vertex[p, :n] = [lookup[int(x)] for x in tc.static_vertex]
        static_weight[p, :n] = 1.0

    frame_valid = np.zeros(N, bool)
    frame_valid[:T] = True
    fidx = _pad(np.asarray(clip.frame_index, np.float32), N)
    if N > T:  # keep padded frame indices increasing (never read: masked)
        fidx[T:] = fidx[T - 1] + np.arange(1, N - T + 1)
    problem = Problem(
        frame_valid=jnp.asarray(frame_valid),
        frame_index=jnp.asarray(fidx),
        median_depth=jnp.asarray(_pad(med, N, value=1.0)),
        base_focal=jnp.full((N,), focal_init, jnp.float32),
        weiszfeld_focal=jnp.asarray(_pad(wf.astype(np.float32), N, value=focal_init)),
        focal_init=jnp.asarray(focal_init, jnp.float32),
        focal_bounds=jnp.asarray([0.25 * diag, 10.0 * diag], jnp.float32),
        pp=jnp.asarray(pp, jnp.float32),
        chain_parent=jnp.asarray(chain_parent),
        core_depth=jnp.asarray(_pad(views.core_depth, N, value=1.0)),
        pair_index=jnp.asarray(pair_index),
        match_uv=jnp.asarray(match_uv),
        match_depth=jnp.asarray(match_depth),
        match_offset=jnp.asarray(match_offset),
        match_conf=jnp.asarray(match_conf),
        smpl_valid=jnp.asarray(smpl_valid),
        init_global_orient=jnp.asarray(init_orient),
        init_body_pose=jnp.asarray(init_pose),
        init_transl=jnp.asarray(init_transl),
        init_betas=jnp.asarray(init_betas),
        body=subset_body_model(body_model, vertex_ids),
        body_vertex_ids=jnp.asarray(vertex_ids),
        contact_image=jnp.asarray(contact_image),
        contact_frame=jnp.asarray(contact_frame),
        contact_vertex=jnp.asarray(contact_vertex),
        contact_depth=jnp.asarray(contact_depth),
        contact_offset=jnp.asarray(contact_offset),
        contact_uv=jnp.asarray(contact_uv),
        contact_slope=jnp.asarray(contact_slope),
        contact_conf=jnp.asarray(contact_conf),
        contact_radius=jnp.asarray(surface_radius, jnp.float32),
        static_frame=jnp.asarray(static_frame),
        static_prev=jnp.asarray(static_prev),
        static_vertex=jnp.asarray(static_vertex),
        static_weight=jnp.asarray(static_weight),
    )
    if not return_info:
        return problem
    info = PrepareInfo(
        views=views,
        mst_root=root,
        mst_edges=edges,
        focal_init=focal_init,
        contacts=track_contacts,
        num_matches=n_kept,
        num_matches_total=n_total,
    )
    return problem, info


def stack_problems(problems: Sequence[Problem], pad_to: int | None = None) -> Problem:
    """Stacks Problems of equal bucket shapes on a new leading clip axis.

    Args:
      problems: Problems with identical array shapes (same buckets) and body model statics.
      pad_to: optional batch size; extra entries are dummy copies of the first clip with every
        mask cleared (they optimise nothing and are dropped by the caller).

    Returns:
      Problem whose arrays have a leading axis of len(problems) (or pad_to).

    Raises:
      ValueError: naming the first field whose shapes differ.
    """
    problems = list(problems)
    if not problems:
        raise ValueError("stack_problems: no problems given")
    ref = problems[0]
    flat0, tree0 = jax.tree_util.tree_flatten(ref)
    for k, p in enumerate(problems[1:], 1):
        flat, tree = jax.tree_util.tree_flatten(p)
        if tree != tree0:
            raise ValueError(
                f"stack_problems: problem {k} has a different structure or body "
                f"model statics than problem 0"
            )
        for f in dataclasses.fields(Problem):
            a, b = getattr(ref, f.name), getattr(p, f.name)
            sa = jax.tree_util.tree_map(np.shape, a)
            sb = jax.tree_util.tree_map(np.shape, b)
            if sa != sb:
                raise ValueError(
                    f"stack_problems: field {f.name!r} of problem {k} has shape {sb}, "
                    f"expected {sa} (use the same buckets for every clip)"
                )
    if pad_to is not None and pad_to > len(problems):
        problems = problems + [dummy_problem(ref)] * (pad_to - len(problems))
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *problems)


def dummy_problem(problem: Problem) -> Problem:
    """A fully masked copy of `problem` (a padding clip): no matches, people or contacts."""
    return dataclasses.replace(
        problem,
        match_conf=jnp.zeros_like(problem.match_conf),
        smpl_valid=jnp.zeros_like(problem.smpl_valid),
        contact_conf=jnp.zeros_like(problem.contact_conf),
        static_weight=jnp.zeros_like(problem.static_weight),
    )
