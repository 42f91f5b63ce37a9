"""The JOSH joint optimizer: `optimize(problem, config) -> Solution`, `optimize_many` (batched).

Public API:

  optimize(problem, config) -> Solution          # one clip; pure, jit-able (config is static)
  optimize_many(problems, config, mesh=None)     # stacked Problems [K, ...]: jit(vmap) sharded on a
                                                 # ("clips",) mesh; returns a stacked Solution
  init_params(problem, config) -> Params
  camera_forward(params, problem, config) -> (T_world_cam [N,4,4], focal [], depth_scale)
  human_forward(params, problem, config, f) -> per-track SMPL (camera frame)
  CURVE_COLUMNS = ("total", "pair", "scale", "static", "prior", "smooth")

`Solution` fields (one clip; a leading clip axis when batched):
  params: Params, the optimized parameters (internal parametrisation).
  T_world_cam: float32[N, 4, 4] camera-to-world of each keyframe (world = the chain root's
      frame up to the optimised relative poses; the first camera is NOT forced to identity).
  focal: float32[] final shared focal (pixels); K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] with
      (cx, cy) = problem.pp.
  anchor_depth: float32[N, A] final depth of every anchor (block centre), camera frame, in world
      units. Dense depth of pixel q in block a: anchor_depth[a] * (1 + (canon2_q - 1) * f_w / f)
      with f_w = problem.weiszfeld_focal (reference semantics) or base_focal.
  smpl_global_orient: float32[P, N, 3, 3] root rotation in the camera frame of its keyframe.
  smpl_body_pose: float32[P, N, 23, 3, 3] body pose (proper rotations; in reference_compat the
      raw optimised matrices, project them to SO(3) for output).
  smpl_transl: float32[P, N, 3] SMPL transl in the camera frame, consistent with the scene
      (human depth already follows the final focal unless reference_compat).
  smpl_betas: float32[P, B] per-track shape.
  smpl_valid: bool[P, N] (copied from the problem).
  curve_stage1: float32[I1, 6] loss terms per iteration (columns CURVE_COLUMNS), computed at the
      start of each iteration (row 0 = initial loss); human columns are weighted as summed into
      the total (total = pair + scale + static + prior + smooth), like the reference's curves.
  curve_stage2: float32[I2, 6] same for stage 2.
  final_terms: float32[6] loss terms at the final parameters (stage-2 loss).
  nan: bool[] a non-finite loss or parameter was met; params are the last finite ones.
  diverged: bool[] a stage ended with its loss above DIVERGENCE_FACTOR x its initial loss.
  iters_run: int32[2] iterations applied per stage (less than configured after a NaN).

World-frame SMPL: joints_world = R_wc @ joints_cam + t_wc with [R_wc | t_wc] = T_world_cam of the
keyframe; with smplx semantics the world `global_orient` is R_wc @ R_root and the world transl is
R_wc @ (transl + J0) + t_wc - J0 (J0 = rest pelvis of the betas).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import losses
from body_models.model import lbs
from josh_jax import geometry
from josh_jax.prepare import Problem

CURVE_COLUMNS = ("total", "pair", "scale", "static", "prior", "smooth")
# A stage whose loss ends above this multiple of where it started has diverged (a converging run
# ends below its start; the world-frame human terms may rise a little while cameras settle).
DIVERGENCE_FACTOR = 2.0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Params:
    """Optimised parameters of one clip.

    Attributes:
      cam_quat: float32[N, 4] rotation of each camera relative to its tree parent (wxyz).
      cam_trans: float32[N, 3] translation relative to the parent (focal-plane point, spec 2.4).
      cam_log_size: float32[N] log scale of each image's depth relief.
      log_focal: float32[] log of the shared focal.
      root_rot: float32[P, N, 3] axis-angle delta on the HMR root (rotation="delta") or
        float32[P, N, 4] root quaternion wxyz (rotation="matrix").
      body_pose: float32[P, N, 23, 3] axis-angle deltas (delta) or float32[P, N, 23, 3, 3] raw.
      transl: float32[P, N, 3] SMPL transl (camera frame, before the focal factor).
      betas: float32[P, B].
      depth_log_scale: float32[P] per-track log scale of the human depth along the camera ray
        (config.depth_along_ray; stays 0 otherwise).
      depth_log_offset: float32[P, N] per-frame log depth offsets along the ray (same).
    """

    cam_quat: jax.Array
    cam_trans: jax.Array
    cam_log_size: jax.Array
    log_focal: jax.Array
    root_rot: jax.Array
    body_pose: jax.Array
    transl: jax.Array
    betas: jax.Array
    depth_log_scale: jax.Array
    depth_log_offset: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """Result of `optimize` for one clip (see the module docstring for every field)."""

    params: Params
    T_world_cam: jax.Array
    focal: jax.Array
    anchor_depth: jax.Array
    smpl_global_orient: jax.Array
    smpl_body_pose: jax.Array
    smpl_transl: jax.Array
    smpl_betas: jax.Array
    smpl_valid: jax.Array
    curve_stage1: jax.Array
    curve_stage2: jax.Array
    final_terms: jax.Array
    nan: jax.Array
    diverged: jax.Array
    iters_run: jax.Array


# ----------------------------------------------------------------------------------------------
# Parameters and forward models


def init_params(problem: Problem, config) -> Params:
    """Initial parameters: identity relative cameras, log focal_init, the HMR humans."""
    N = problem.frame_valid.shape[-1]
    P = problem.smpl_valid.shape[-2]
    if config.rotation == "matrix":
        root = geometry.matrix_to_quat(problem.init_global_orient)
        pose = problem.init_body_pose
    else:
        root = jnp.zeros((P, N, 3), jnp.float32)
        pose = jnp.zeros(problem.init_body_pose.shape[:-2] + (3,), jnp.float32)
    return Params(
        cam_quat=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (N, 1)),
        cam_trans=jnp.zeros((N, 3), jnp.float32),
        cam_log_size=jnp.zeros((N,), jnp.float32),
        log_focal=jnp.log(problem.focal_init).astype(jnp.float32),
        root_rot=root,
        body_pose=pose,
        transl=problem.init_transl,
        betas=problem.init_betas,
        depth_log_scale=jnp.zeros((P,), jnp.float32),
        depth_log_offset=jnp.zeros((P, N), jnp.float32),
    )


def _compose_chain(R_rel, t_rel, parent):
    """World poses C_i = Rel_root ... Rel_parent(i) Rel_i by pointer doubling (log2 N steps).

    Ancestor lookups are one-hot [N, N] matrix products rather than gathers, so the backward pass
    has no scatter (cheaper to compile and run for N <= 48).

    Args:
      R_rel: float[N, 3, 3], t_rel: float[N, 3] relative poses; parent: int[N] (-1 for roots).

    Returns:
      (R float[N, 3, 3], t float[N, 3]).
    """
    N = parent.shape[0]
    A = jax.nn.one_hot(parent, N, dtype=R_rel.dtype)  # row i: one-hot of its ancestor (0 if none)
    R, t = R_rel, t_rel
    for _ in range(max(1, int(np.ceil(np.log2(max(N, 2)))))):
        has = jnp.sum(A, axis=1) > 0
        Ra = (A @ R.reshape(N, 9)).reshape(N, 3, 3)
        ta = A @ t
        R = jnp.where(has[:, None, None], Ra @ R, R)
        t = jnp.where(has[:, None], jnp.einsum("nij,nj->ni", Ra, t) + ta, t)
        A = A @ A
    return R, t


def focal_of(params: Params, problem: Problem):
    lo, hi = problem.focal_bounds[0], problem.focal_bounds[1]
    return jnp.clip(jnp.exp(params.log_focal), lo, hi)


def camera_forward(params: Params, problem: Problem, config):
    """Cameras of the reparametrised kinematic chain (spec 2.3-2.4).

    Returns:
      (T_world_cam float[N, 4, 4], focal [], sigma_g float[N]: g * sigma_i, the depth scale).
    """
    f = focal_of(params, problem)
    q, tr = params.cam_quat, params.cam_trans
    if config.get("fix_root_camera", False):
        # The losses are invariant to a global rigid motion: freezing the root's pose removes
        # that gauge (the reference lets it drift with rounding noise).
        root = (problem.chain_parent < 0)[:, None]
        q = jnp.where(root, jax.lax.stop_gradient(q), q)
        tr = jnp.where(root, jax.lax.stop_gradient(tr), tr)
    q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    R_rel = geometry.quat_to_matrix(q)
    Rw, tw = _compose_chain(R_rel, tr, problem.chain_parent)
    sigma = jnp.exp(params.cam_log_size)
    has_humans = jnp.any(problem.smpl_valid)
    min_sigma = jnp.min(jnp.where(problem.frame_valid, sigma, jnp.inf))
    g = jnp.where(has_humans, 1.0, 1.0 / min_sigma)
    z = sigma * problem.median_depth * f / problem.base_focal
    t_cam = g * (tw - Rw[:, :, 2] * z[:, None])
    T = geometry.se3(Rw, t_cam)
    return T, f, g * sigma


def _scene_depth(problem: Problem, img, d_anchor, offset, f, sg, compensate=True):
    """Pixel depth from anchor depth d, offset o: g s (m (f/f0 - 1) + d) (1 + (o-1) f0/f)."""
    m = problem.median_depth[img]
    f0 = problem.base_focal[img]
    ratio = f / f0
    D = sg[img] * (m * (ratio - 1.0) + d_anchor)
    if compensate:
        offset = 1.0 + (offset - 1.0) / ratio
    return D * offset


def _side_points_world(problem: Problem, side: int, T_world_cam, f, sg):
    """World points of one side of every match as 3 component arrays float[E, M].

    Written elementwise with per-pair coefficients broadcast over matches (no [E, M, 3] batched
    3x3 products), so XLA fuses the whole chain into one pass over the match arrays.
    """
    img = problem.pair_index[:, side]
    z = _scene_depth(
        problem, img[:, None], problem.match_depth[side], problem.match_offset[side], f, sg
    )
    xc = z * (problem.match_uv[2 * side] - problem.pp[0]) / f
    yc = z * (problem.match_uv[2 * side + 1] - problem.pp[1]) / f
    T = T_world_cam[img]  # [E, 4, 4]
    col = lambda r, c: T[:, r, c][:, None]
    return tuple(col(r, 0) * xc + col(r, 1) * yc + col(r, 2) * z + col(r, 3) for r in range(3))


def _project_components(K, T_cam_world, X):
    """Pixels of world points (component arrays) in per-pair cameras, like `losses.project_points`.

    Args:
      K: float[3, 3]; T_cam_world: float[E, 4, 4]; X: 3 arrays float[E, M].

    Returns:
      (u, v) float[E, M] each: y = K (R X + t), uv = clip(y_xy / max(y_z, 1e-3), -1000, 2000).
    """
    P = jnp.einsum("ij,ejk->eik", K, T_cam_world[:, :3, :])  # [E, 3, 4]
    col = lambda r, c: P[:, r, c][:, None]
    y = [col(r, 0) * X[0] + col(r, 1) * X[1] + col(r, 2) * X[2] + col(r, 3) for r in range(3)]
    zc = jnp.maximum(y[2], 1e-3)
    return jnp.clip(y[0] / zc, -1000.0, 2000.0), jnp.clip(y[1] / zc, -1000.0, 2000.0)


def _weighted_rho(r, w, gamma):
    """sum w rho_gamma(r) / sum w (0 if sum w = 0)."""
    return losses.masked_mean(losses.gamma_loss(r, gamma), w)


def _safe_len(*comps):
    sq = sum(c * c for c in comps)
    big = sq > 1e-24
    return jnp.where(big, jnp.sqrt(jnp.where(big, sq, 1.0)), 0.0)


def stage1_points(problem: Problem, f):
    """Camera-frame match points per unit depth scale, float[E, 6, M] (rows x, y, z of side i,
    then of side j), for a fixed focal f (stage 1 freezes it): x_cam = (g sigma) * points."""
    rows = []
    for side in range(2):
        img = problem.pair_index[:, side][:, None]
        ratio = f / problem.base_focal[img]
        z = (problem.median_depth[img] * (ratio - 1.0) + problem.match_depth[side]) * (
            1.0 + (problem.match_offset[side] - 1.0) / ratio
        )
        rows += [
            z * (problem.match_uv[2 * side] - problem.pp[0]) / f,
            z * (problem.match_uv[2 * side + 1] - problem.pp[1]) / f,
            z,
        ]
    return jnp.stack(rows, 1)


def stage2_features(problem: Problem):
    """Per-match constant features float[E, 2, 12, M] of both sides (i, j).

    A match pixel's camera point is linear in 12 features: with s = f / f0, m the median depth,
    d the anchor depth and o the offset, z = g sigma (m (s-1) + d)(1 + (o-1)/s)
    = g sigma [m(s-1), 1, m(s-1)/s, 1/s] . [1, d, o-1, d(o-1)], and x_cam = z (du/f, dv/f, 1).
    The features are [1, d, o-1, d(o-1)] x (du, dv, 1); `_camera_coeffs` gives the matrix.
    """
    sides = []
    for side in range(2):
        d = problem.match_depth[side]
        om = problem.match_offset[side] - 1.0
        phi = [jnp.ones_like(d), d, om, d * om]
        du = problem.match_uv[2 * side] - problem.pp[0]
        dv = problem.match_uv[2 * side + 1] - problem.pp[1]
        sides.append(jnp.stack([p * du for p in phi] + [p * dv for p in phi] + phi, 1))
    return jnp.stack(sides, 1)


def _camera_coeffs(problem: Problem, img, f, sg):
    """float[E, 3, 12]: x_cam = C @ features for images `img` (see `stage2_features`)."""
    s = f / problem.base_focal[img]
    m = problem.median_depth[img]
    a = sg[img][:, None] * jnp.stack(
        [m * (s - 1.0), jnp.ones_like(m), m * (s - 1.0) / s, 1.0 / s], 1
    )  # [E, 4]
    z4 = jnp.zeros_like(a)
    return jnp.stack(
        [
            jnp.concatenate([a / f, z4, z4], 1),
            jnp.concatenate([z4, a / f, z4], 1),
            jnp.concatenate([z4, z4, a], 1),
        ],
        1,
    )


def pair_loss(
    problem: Problem, config, stage: int, T_world_cam, f, sg, points1=None, features2=None
):
    """Stage 1: L_3d (rho_1.1 of 3D match distances); stage 2: L_2d (rho_0.4 of reprojection
    errors in both images of every pair). Same values as `losses.match_3d_loss` /
    `losses.reprojection_loss` on the stacked points (tested), computed on component arrays.

    `points1` (stage 1 only): `stage1_points(problem, f)` precomputed once per stage; the 3D
    residual is then one [3, 6] x [6, M] product per pair."""
    conf = problem.match_conf
    if stage == 1:
        if points1 is None:
            points1 = stage1_points(problem, f)
        i, j = problem.pair_index[:, 0], problem.pair_index[:, 1]
        R = T_world_cam[:, :3, :3]
        AB = jnp.concatenate([sg[i][:, None, None] * R[i], -sg[j][:, None, None] * R[j]], 2)
        dt = T_world_cam[i, :3, 3] - T_world_cam[j, :3, 3]
        res = jnp.einsum("eij,ejm->eim", AB, points1) + dt[:, :, None]
        r = _safe_len(res[:, 0], res[:, 1], res[:, 2])
        return _weighted_rho(r, conf, config.stage1.gamma)
    if features2 is None:
        features2 = stage2_features(problem)
    K = geometry.intrinsics_matrix(f, problem.pp[0], problem.pp[1])
    T_cw = geometry.se3_inverse(T_world_cam)
    i, j = problem.pair_index[:, 0], problem.pair_index[:, 1]

    def seen_by(src, dst, feats):
        # y = K (R_dst^T (R_src C_src psi + t_src - t_dst)): one [3, 12] x [12, M] per pair.
        P = jnp.einsum("ij,ejk->eik", K, T_cw[dst][:, :3, :])  # [E, 3, 4]
        G = jnp.einsum(
            "eij,ejk,ekl->eil",
            P[:, :, :3],
            T_world_cam[src][:, :3, :3],
            _camera_coeffs(problem, src, f, sg),
        )
        h = jnp.einsum("eij,ej->ei", P[:, :, :3], T_world_cam[src][:, :3, 3]) + P[:, :, 3]
        y = jnp.einsum("eik,ekm->eim", G, feats) + h[:, :, None]
        zc = jnp.maximum(y[:, 2], 1e-3)
        return jnp.clip(y[:, 0] / zc, -1000.0, 2000.0), jnp.clip(y[:, 1] / zc, -1000.0, 2000.0)

    ui, vi = seen_by(j, i, features2[:, 1])  # partner j's point seen by camera i
    uj, vj = seen_by(i, j, features2[:, 0])
    uv = problem.match_uv
    r_i = _safe_len(uv[0] - ui, uv[1] - vi)
    r_j = _safe_len(uv[2] - uj, uv[3] - vj)
    rho = losses.gamma_loss(r_i, config.stage2.gamma) + losses.gamma_loss(r_j, config.stage2.gamma)
    # Both directions share the pair's weight: sum c (rho_ij + rho_ji) / (2 sum c).
    return losses.masked_mean(rho, conf) / 2.0


def human_rotations(params: Params, problem: Problem, config):
    """Root and body rotation matrices [P, N, 3, 3], [P, N, 23, 3, 3] (camera frame)."""
    if config.rotation == "matrix":
        return geometry.quat_to_matrix(params.root_rot), params.body_pose
    R_root = problem.init_global_orient @ geometry.axis_angle_to_matrix(params.root_rot)
    R_body = problem.init_body_pose @ geometry.axis_angle_to_matrix(params.body_pose)
    return R_root, R_body


def effective_transl(params: Params, problem: Problem, config, f):
    """Camera-frame SMPL transl float[P, N, 3] used by every term and the output.

    With `depth_along_ray` the transl is also scaled by exp(s_track + o_frame): the body moves
    along its camera ray (its 2D projection barely changes, the HMR's depth does).
    """
    transl = params.transl
    if config.human_depth_follows_focal:
        scale = jnp.stack([1.0, 1.0, f / problem.focal_init]).astype(transl.dtype)
        transl = transl * scale
    if config.get("depth_along_ray", False):
        log_s = params.depth_log_scale[:, None] + params.depth_log_offset
        transl = transl * jnp.exp(log_s)[..., None]
    return transl


def human_forward(params: Params, problem: Problem, config, f):
    """Camera-frame SMPL of the used vertices: (verts [P, N, U+24, 3], joints [P, N, 24, 3])."""
    R_root, R_body = human_rotations(params, problem, config)
    transl = effective_transl(params, problem, config, f)

    def one(betas, Rr, Rb, t):
        out = lbs(problem.body, betas, Rr, Rb, t)
        return out.vertices, out.joints

    per_frame = jax.vmap(one, in_axes=(None, 0, 0, 0))
    return jax.vmap(per_frame)(params.betas, R_root, R_body, transl)


# ----------------------------------------------------------------------------------------------
# Losses


def surface_offset(offset, slope, duv, radius):
    """Depth offset of the local contact surface at uv0 + duv (contact re-association).

    The surface fitted in `prepare` has inverse depth affine in the pixel (a plane), so its depth
    at uv0 + duv is depth(uv0) / (1 + a du + b dv); duv is clipped to the fitted window.

    Args:
      offset: float[...] offset at uv0; slope: float[..., 2] (a, b); duv: float[..., 2] pixels;
      radius: float[] window radius (pixels).

    Returns:
      float[...] offset at uv0 + duv.
    """
    duv = jnp.clip(duv, -radius, radius)
    return offset / jnp.maximum(1.0 + jnp.sum(slope * duv, -1), 0.1)


def _apply(T, x):
    return jnp.einsum("...ij,...j->...i", T[..., :3, :3], x) + T[..., :3, 3]


def loss_terms(params: Params, problem: Problem, config, stage: int, points1=None, features2=None):
    """All loss terms of one clip (`points1`, `features2`: optional per-stage caches of
    constants, see `pair_loss`).

    Returns:
      (total [], terms float[6] in CURVE_COLUMNS order). Human columns hold the weighted
      track means w_k sum_t n_t L_t / sum_t n_t (as the reference's progress bar prints them), so
      total = pair + scale + static + prior + smooth.
    """
    T_wc, f, sg = camera_forward(params, problem, config)
    pair = pair_loss(problem, config, stage, T_wc, f, sg, points1, features2)

    P = problem.smpl_valid.shape[0]
    gh = config.human_gamma
    if P == 0:
        zero = jnp.zeros((), jnp.float32)
        terms = jnp.stack([pair, pair, zero, zero, zero, zero])
        return pair, terms
    verts, joints = human_forward(params, problem, config, f)  # camera frame
    n_t = jnp.sum(problem.smpl_valid, axis=1).astype(jnp.float32)

    # Contact scale: scene depth at the entry's surface point vs the vertex's camera depth.
    reassociate = config.contact_surface.reassociate
    radius = problem.contact_radius

    def scale_one(v, img, fr, vid, d, o, uv0, slope, c):
        x = v[fr, vid]
        vz = x[..., 2]
        if not config.human_depth_follows_focal:
            vz = vz * f / problem.focal_init
        if reassociate:
            uv = f * x[..., :2] / jnp.maximum(vz, 1e-6)[..., None] + problem.pp
            o = surface_offset(o, slope, uv - uv0, radius)
        scene = _scene_depth(problem, img, d, o, f, sg, config.compensate_contact_offset)
        return losses.contact_scale_loss(scene, vz, c, gh)

    L_scale = jax.vmap(scale_one)(
        verts,
        problem.contact_image,
        problem.contact_frame,
        problem.contact_vertex,
        problem.contact_depth,
        problem.contact_offset,
        problem.contact_uv,
        problem.contact_slope,
        problem.contact_conf,
    )

    def static_one(v, fr, prev, vid, w):
        now = _apply(T_wc[fr], v[fr, vid])
        before = _apply(T_wc[prev], v[prev, vid])
        return losses.contact_static_loss(now, before, w, gh)

    L_static = jax.vmap(static_one)(
        verts,
        problem.static_frame,
        problem.static_prev,
        problem.static_vertex,
        problem.static_weight,
    )

    if config.smooth_gap == "image":
        gaps = jnp.arange(problem.frame_valid.shape[0], dtype=jnp.float32)
    else:
        fi = problem.frame_index
        d = jnp.diff(fi)
        med = jnp.maximum(jnp.nanmedian(jnp.where(problem.frame_valid[1:], d, jnp.nan)), 1.0)
        med = jnp.where(jnp.isfinite(med), med, 1.0)
        gaps = fi / med

    def smooth_one(J, valid):
        Jw = _apply(T_wc[:, None], J)
        return losses.joint_smoothness_loss(Jw, gaps, valid, gh)

    L_smooth = jax.vmap(smooth_one)(joints, problem.smpl_valid)

    pw = config.prior
    if config.rotation == "matrix":
        root0 = geometry.matrix_to_quat(problem.init_global_orient)
        pose0 = problem.init_body_pose
    else:
        root0 = jnp.zeros_like(params.root_rot)
        pose0 = jnp.zeros_like(params.body_pose)

    along_ray = config.get("depth_along_ray", False)

    def prior_one(root, pose, tr, betas, r0, p0, t0, b0, valid, ds, do):
        per_frame = dict(orient=root, transl=tr, pose=pose)
        per_frame0 = dict(orient=r0, transl=t0, pose=p0)
        per_track, per_track0 = dict(betas=betas), dict(betas=b0)
        weights = dict(orient=pw.orient, transl=pw.transl, pose=pw.pose, betas=pw.betas)
        if along_ray:
            # Per-frame depth offsets: a weak pull to the track's depth (the world-frame
            # smoothness and static terms remove the HMR's per-frame depth noise); the track's
            # depth scale is left to the contact terms.
            per_frame["depth"], per_frame0["depth"] = do[:, None], jnp.zeros_like(do)[:, None]
            per_track["depth_scale"], per_track0["depth_scale"] = ds[None], jnp.zeros((1,))
            weights.update(depth=pw.depth_offset, depth_scale=pw.depth_scale)
        return losses.prior_loss(per_frame, per_frame0, valid, per_track, per_track0, gh, weights)

    L_prior = jax.vmap(prior_one)(
        params.root_rot,
        params.body_pose,
        params.transl,
        params.betas,
        root0,
        pose0,
        problem.init_transl,
        problem.init_betas,
        problem.smpl_valid,
        params.depth_log_scale,
        params.depth_log_offset,
    )
    # Per-track values are combined as sum_t n_t L_t / sum_t n_t (0 without SMPL frames).
    mean = functools.partial(losses.track_weighted_mean, num_frames=n_t)
    scale, static, prior, smooth = (mean(L_scale), mean(L_static), mean(L_prior), mean(L_smooth))
    w = config.weights
    total = pair + w.scale * scale + w.static * static + w.prior * prior + w.smooth * smooth
    return total, jnp.stack(
        [total, pair, w.scale * scale, w.static * static, w.prior * prior, w.smooth * smooth]
    )


# ----------------------------------------------------------------------------------------------
# Optimizer


class _RepeatedAdamState(tuple):
    pass


def _repeated_adam(lr_schedule, repeats, b1=0.9, b2=0.9, eps=1e-8):
    """Adam applied `repeats` times per step with one gradient and shared moments.

    Reproduces PyTorch's behaviour when one Parameter is listed `repeats` times in the optimizer
    (the reference's shared focal, once per image): each occurrence bumps the step count, updates
    the moments and moves the parameter. `repeats` may be a traced integer (number of images).
    """

    def init(params):
        z = jax.tree_util.tree_map(jnp.zeros_like, params)
        return dict(m=z, v=z, count=jnp.zeros((), jnp.int32), it=jnp.zeros((), jnp.int32))

    def update(grads, state, params=None):
        lr = lr_schedule(state["it"])

        def body(k, carry):
            m, v, count, upd = carry
            active = k < repeats
            count1 = count + 1
            m1 = jax.tree_util.tree_map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
            v1 = jax.tree_util.tree_map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
            c1 = 1 - b1 ** count1.astype(jnp.float32)
            c2 = 1 - b2 ** count1.astype(jnp.float32)
            step = jax.tree_util.tree_map(
                lambda m_, v_: -lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps), m1, v1
            )
            sel = lambda a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(active, x, y), a, b)
            upd1 = jax.tree_util.tree_map(jnp.add, upd, step)
            return (sel(m1, m), sel(v1, v), jnp.where(active, count1, count), sel(upd1, upd))

        zeros = jax.tree_util.tree_map(jnp.zeros_like, grads)
        max_rep = 64
        m, v, count, upd = jax.lax.fori_loop(
            0, max_rep, body, (state["m"], state["v"], state["count"], zeros)
        )
        return upd, dict(m=m, v=v, count=count, it=state["it"] + 1)

    return optax.GradientTransformation(init, update)


def _labels(params: Params, stage: int, config):
    focal = "focal" if (stage == 2 and config.optimize_focal) else "frozen"
    pose = "pose" if config.optimize_smpl else "frozen"
    transl = "transl" if config.optimize_smpl else "frozen"
    depth = "depth" if (config.optimize_smpl and config.get("depth_along_ray", False)) else "frozen"
    return Params(
        cam_quat="camera",
        cam_trans="camera",
        cam_log_size="camera",
        log_focal=focal,
        root_rot=pose,
        body_pose=pose,
        transl=transl,
        betas=pose,
        depth_log_scale=depth,
        depth_log_offset=depth,
    )


def _make_tx(problem: Problem, config, stage: int, params: Params):
    sc = config.stage1 if stage == 1 else config.stage2
    iters = max(int(sc.iters), 1)

    def adam(scale):
        sched = optax.cosine_decay_schedule(sc.lr * scale, iters)
        return optax.chain(
            optax.scale_by_adam(b1=0.9, b2=0.9, eps=1e-8), optax.scale_by_learning_rate(sched)
        )

    if config.focal_update == "per_image":
        n_img = jnp.sum(problem.frame_valid).astype(jnp.int32)
        focal_tx = _repeated_adam(
            optax.cosine_decay_schedule(sc.lr * config.lr_scale.focal, iters), n_img
        )
    else:
        focal_tx = adam(config.lr_scale.focal)
    txs = dict(
        camera=adam(config.lr_scale.camera),
        focal=focal_tx,
        pose=adam(config.lr_scale.pose),
        transl=adam(config.lr_scale.transl),
        depth=adam(config.lr_scale.get("depth", 1.0)),
        frozen=optax.set_to_zero(),
    )
    return optax.multi_transform(txs, _labels(params, stage, config))


def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _run_stage(params: Params, problem: Problem, config, stage: int, ok):
    sc = config.stage1 if stage == 1 else config.stage2
    iters = int(sc.iters)
    if iters == 0:
        return params, jnp.zeros((0, len(CURVE_COLUMNS)), jnp.float32), ok, jnp.zeros((), jnp.int32)
    tx = _make_tx(problem, config, stage, params)
    opt_state = tx.init(params)
    # Per-match constants of the stage, computed once outside the scan.
    points1 = stage1_points(problem, focal_of(params, problem)) if stage == 1 else None
    features2 = stage2_features(problem) if stage == 2 else None
    grad_fn = jax.value_and_grad(
        lambda p: loss_terms(p, problem, config, stage, points1, features2), has_aux=True
    )

    def step(carry, _):
        p, s, ok, n = carry
        (loss, terms), g = grad_fn(p)
        upd, s_new = tx.update(g, s, p)
        p_new = optax.apply_updates(p, upd)
        q = p_new.cam_quat
        p_new = dataclasses.replace(
            p_new, cam_quat=q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
        )
        good = ok & jnp.isfinite(loss) & _all_finite(p_new)
        sel = lambda a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(good, x, y), a, b)
        return (sel(p_new, p), sel(s_new, s), good, n + good.astype(jnp.int32)), terms

    (params, _, ok, n), curve = jax.lax.scan(
        step, (params, opt_state, ok, jnp.zeros((), jnp.int32)), None, length=iters
    )
    return params, curve, ok, n


def optimize(problem: Problem, config) -> Solution:
    """Runs both stages on one clip (pure; wrap in jax.jit with `config` closed over / static).

    Args:
      problem: Problem of one clip (from `prepare`).
      config: the josh ConfigDict (hashable values only are read; treat as static).

    Returns:
      Solution.
    """
    params = init_params(problem, config)
    ok = jnp.ones((), bool)
    params, c1, ok, n1 = _run_stage(params, problem, config, 1, ok)
    params, c2, ok, n2 = _run_stage(params, problem, config, 2, ok)
    _, final = loss_terms(params, problem, config, 2)
    diverged = jnp.zeros((), bool)
    if c1.shape[0]:
        diverged |= c1[-1, 0] > DIVERGENCE_FACTOR * c1[0, 0]
    if c2.shape[0]:
        diverged |= final[0] > DIVERGENCE_FACTOR * c2[0, 0]
    T_wc, f, sg = camera_forward(params, problem, config)
    R_root, R_body = human_rotations(params, problem, config)
    anchor_depth = _scene_depth(
        problem,
        jnp.arange(problem.frame_valid.shape[0])[:, None],
        problem.core_depth,
        jnp.ones_like(problem.core_depth),
        f,
        sg,
    )
    return Solution(
        params=params,
        T_world_cam=T_wc,
        focal=f,
        anchor_depth=anchor_depth,
        smpl_global_orient=R_root,
        smpl_body_pose=R_body,
        smpl_transl=effective_transl(params, problem, config, f),
        smpl_betas=params.betas,
        smpl_valid=problem.smpl_valid,
        curve_stage1=c1,
        curve_stage2=c2,
        final_terms=final,
        nan=~ok,
        diverged=diverged | ~ok,
        iters_run=jnp.stack([n1, n2]),
    )


_JIT_CACHE: dict = {}


def optimize_jit(problem: Problem, config) -> Solution:
    """`jax.jit(optimize)` cached per config (the config is closed over, i.e. static)."""
    key = ("single", _config_key(config))
    if key not in _JIT_CACHE:
        _JIT_CACHE[key] = jax.jit(lambda p: optimize(p, config))
    return _JIT_CACHE[key](problem)


def _config_key(config) -> str:
    return config.to_json() if hasattr(config, "to_json") else repr(config)


def _batched(config, mesh):
    key = ("many", _config_key(config), mesh)
    if key not in _JIT_CACHE:
        fn = jax.vmap(lambda p: optimize(p, config))
        spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("clips"))
        _JIT_CACHE[key] = jax.jit(fn, in_shardings=spec, out_shardings=spec)
    return _JIT_CACHE[key]


def make_clips_mesh(num_devices: int | None = None):
    """A 1-D ("clips",) mesh over the first `num_devices` devices (default: all)."""
    n = num_devices or jax.device_count()
    return jax.make_mesh(
        (n,), ("clips",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:n]
    )


def optimize_many(problems: Problem, config, mesh=None) -> Solution:
    """jit(vmap(optimize)) over stacked Problems, the clip axis sharded on a ("clips",) mesh.

    The clip count is padded to a multiple of the mesh size with fully masked dummy clips; the
    returned Solution has the original clip count. Clips are independent (no collectives): a
    clip that hits a NaN is flagged in `Solution.nan` and leaves the others untouched.

    Args:
      problems: a Problem with a leading clip axis (`stack_problems`), or a list of Problems.
      config: josh ConfigDict.
      mesh: a jax Mesh with a "clips" axis; None -> `make_clips_mesh()` over all devices.

    Returns:
      Solution with a leading clip axis.
    """
    from josh_jax.prepare import dummy_problem, stack_problems

    if isinstance(problems, (list, tuple)):
        problems = stack_problems(problems)
    K = int(problems.frame_valid.shape[0])
    if mesh is None:
        mesh = make_clips_mesh()
    n_dev = int(mesh.shape["clips"])
    K_pad = -(-K // n_dev) * n_dev
    if K_pad != K:
        first = jax.tree_util.tree_map(lambda x: x[0], problems)
        dummy = dummy_problem(first)
        extra = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (K_pad - K,) + x.shape), dummy)
        problems = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), problems, extra)
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("clips"))
    problems = jax.device_put(problems, spec)
    with jax.set_mesh(mesh):
        sol = _batched(config, mesh)(problems)
    if K_pad != K:
        sol = jax.tree_util.tree_map(lambda x: x[:K], sol)
    return sol
