"""The objective of one clip: the pair term plus the weighted human terms (docs/method.md §2.8).

    loss_terms(params, problem, config, stage) -> (total, terms in CURVE_COLUMNS order)

Each human term is computed per track (`losses`, one track at a time, vmapped over tracks) and the
tracks are combined as sum_t n_t L_t / sum_t n_t with n_t the track's frame count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import losses
from josh_jax.optimize.cameras import camera_forward, is_proportional, scene_depth
from josh_jax.optimize.humans import human_forward
from josh_jax.optimize.matches import pair_loss
from josh_jax.optimize.params import Params, initial_rotations
from josh_jax.prepare import Problem

CURVE_COLUMNS = ("total", "pair", "scale", "static", "prior", "smooth")


def loss_terms(params: Params, problem: Problem, config, stage: int, constants=None):
    """All loss terms of one clip.

    Args:
      params: the parameters.
      problem: the clip.
      config: the josh config.
      stage: 1 (L_3d pair term) or 2 (L_2d).
      constants: the stage's per-match constants (`matches.stage_constants`), computed once per
        stage by the solver; computed here when None.

    Returns:
      (total [], terms float[6] in CURVE_COLUMNS order). Human columns hold the weighted track
      means w_k sum_t n_t L_t / sum_t n_t (as the reference's progress bar prints them), so
      total = pair + scale + static + prior + smooth; the prior column includes the focal prior
      (`focal_prior_term`, weights.focal).
    """
    T_world_cam, focal, depth_scale = camera_forward(params, problem, config)
    pair = pair_loss(problem, config, stage, T_world_cam, focal, depth_scale, constants)
    focal_prior = config.weights.focal * focal_prior_term(params.log_focal, problem)
    if problem.tracks.valid.shape[0] == 0:
        zero = jnp.zeros((), jnp.float32)
        total = pair + focal_prior
        return total, jnp.stack([total, pair, zero, zero, focal_prior, zero])
    vertices, joints = human_forward(params, problem, config, focal)  # camera frame
    if stage in tuple(config.human_global_scale_stages):
        # The human terms move the scene only through its global scale in this stage.
        T_world_cam, depth_scale = global_coupling(T_world_cam, depth_scale, problem)
    scale = contact_scale_term(vertices, problem, config, focal, depth_scale)
    static = static_term(vertices, problem, config, T_world_cam)
    smooth = smoothness_term(joints, problem, config, T_world_cam)
    prior = prior_term(params, problem, config)
    return _weighted_total(pair, problem, config.weights, scale, static, prior, smooth,
                           focal_prior)


def focal_prior_term(log_focal, problem: Problem) -> jax.Array:
    """[] (log f - log f_init)^2 of the log-focal parameter: a weak pull of the shared focal
    towards its initialisation (weighted by config.weights.focal; 0 turns it off, as JOSH).

    Under the proportional focal-depth model the scene terms see the focal through the scene's
    perspective only (a weak signal on a short baseline), so this keeps the focal from drifting
    where nothing constrains it (docs/method.md §4). Quadratic, not robust: its slope is 0 at
    f_init (a robust rho has slope 1 there, as large as the pair term's own slope in the focal,
    and held the focal at f_init on the reference clip).
    """
    # On the parameter (0 exactly at its initial value log f_init; the clip to the focal bounds
    # is left out).
    return jnp.square(log_focal - jnp.log(problem.cameras.focal_init))


def global_coupling(T_world_cam, depth_scale, problem: Problem):
    """The cameras as the human terms see them when only the scene's global scale is theirs.

    The camera poses and the per-image depth scales get no gradient from the human terms except
    through one global scale exp(mean log depth_scale) (over the valid images), which scales every
    depth and every camera position: the HMR's per-frame depth noise can then move the bodies
    (their depth offsets) but not a single camera, whose pose the matches fix.

    Args:
      T_world_cam: float[N, 4, 4]; depth_scale: float[N]; problem: the clip.

    Returns:
      (T_world_cam, depth_scale) with the same values and only the global-scale gradient.
    """
    valid = problem.cameras.frame_valid
    log_s = jnp.log(depth_scale)
    mean = jnp.sum(jnp.where(valid, log_s, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
    g = jnp.exp(mean - jax.lax.stop_gradient(mean))  # 1, with the global scale's gradient
    T = jax.lax.stop_gradient(T_world_cam)
    T = T.at[:, :3, 3].multiply(g)
    return T, jax.lax.stop_gradient(depth_scale) * g


def _weighted_total(pair, problem: Problem, weights, scale, static, prior, smooth, focal_prior):
    """(total, terms): per-track terms combined over tracks, weighted and added to the pair term
    (the weighted focal prior joins the prior column)."""
    frames_per_track = jnp.sum(problem.tracks.valid, axis=1).astype(jnp.float32)
    mean = lambda per_track: losses.track_weighted_mean(per_track, num_frames=frames_per_track)
    human = [
        weights.scale * mean(scale),
        weights.static * mean(static),
        weights.prior * mean(prior) + focal_prior,
        weights.smooth * mean(smooth),
    ]
    total = pair + human[0] + human[1] + human[2] + human[3]
    return total, jnp.stack([total, pair, *human])


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


def _to_world(T_world_cam, x_cam):
    """One point per pose: T[..., 4, 4] applied to x[..., 3]."""
    return jnp.einsum("...ij,...j->...i", T_world_cam[..., :3, :3], x_cam) + T_world_cam[..., :3, 3]


def contact_scale_term(vertices, problem: Problem, config, focal, depth_scale) -> jax.Array:
    """float[P] L_scale per track: the scene depth at each entry's surface point vs the camera
    depth of its contact vertex (re-read where the vertex projects now with `reassociate`)."""
    cameras, contacts = problem.cameras, problem.contacts

    def one_track(verts, image, frame, vertex, depth, offset, uv0, slope, conf):
        x = verts[frame, vertex]
        vertex_depth = x[..., 2]
        if not config.human_depth_follows_focal:
            vertex_depth = vertex_depth * focal / cameras.focal_init
        if config.contact_surface.reassociate:
            uv = focal * x[..., :2] / jnp.maximum(vertex_depth, 1e-6)[..., None] + cameras.pp
            offset = surface_offset(offset, slope, uv - uv0, contacts.radius)
        surface_depth = scene_depth(
            cameras, image, depth, offset, focal, depth_scale, config.compensate_contact_offset,
            proportional=is_proportional(config),
        )
        return losses.contact_scale_loss(surface_depth, vertex_depth, conf, config.human_gamma)

    return jax.vmap(one_track)(
        vertices,
        contacts.image,
        contacts.frame,
        contacts.vertex,
        contacts.depth,
        contacts.offset,
        contacts.uv,
        contacts.slope,
        contacts.conf,
    )


def static_term(vertices, problem: Problem, config, T_world_cam) -> jax.Array:
    """float[P] L_static per track: world motion of contact vertices kept in consecutive frames."""
    static = problem.static

    def one_track(verts, frame, prev, vertex, weight):
        now = _to_world(T_world_cam[frame], verts[frame, vertex])
        before = _to_world(T_world_cam[prev], verts[prev, vertex])
        return losses.contact_static_loss(now, before, weight, config.human_gamma)

    return jax.vmap(one_track)(vertices, static.frame, static.prev, static.vertex, static.weight)


def _smoothness_gaps(problem: Problem, config) -> jax.Array:
    """float[N] time of each keyframe for the smoothness term: the sampled-image index (the
    reference) or the video frame index in units of the median keyframe gap."""
    cameras = problem.cameras
    if config.smooth_gap == "image":
        return jnp.arange(cameras.frame_valid.shape[0], dtype=jnp.float32)
    gaps = jnp.diff(cameras.frame_index)
    median = jnp.nanmedian(jnp.where(cameras.frame_valid[1:], gaps, jnp.nan))
    median = jnp.maximum(median, 1.0)
    median = jnp.where(jnp.isfinite(median), median, 1.0)
    return cameras.frame_index / median


def smoothness_term(joints, problem: Problem, config, T_world_cam) -> jax.Array:
    """float[P] L_smooth per track: robust acceleration of the world joints."""
    times = _smoothness_gaps(problem, config)

    def one_track(joints_cam, valid):
        joints_world = _to_world(T_world_cam[:, None], joints_cam)
        return losses.joint_smoothness_loss(joints_world, times, valid, config.human_gamma)

    return jax.vmap(one_track)(joints, problem.tracks.valid)


def prior_term(params: Params, problem: Problem, config) -> jax.Array:
    """float[P] L_prior per track: robust distance of the SMPL parameters to their HMR values
    (and of the depth-along-ray parameters to 0), with the per-parameter `config.prior` weights."""
    weights = dict(
        orient=config.prior.orient,
        transl=config.prior.transl,
        pose=config.prior.pose,
        betas=config.prior.betas,
    )
    if config.depth_along_ray:
        # Per-frame depth offsets: a weak pull to the track's depth (the world-frame smoothness
        # and static terms remove the HMR's per-frame depth noise); the track's depth scale is
        # left to the contact terms.
        weights.update(depth=config.prior.depth_offset, depth_scale=config.prior.depth_scale)

    def one_track(root, pose, transl, betas, root0, pose0, transl0, betas0, valid, scale, offset):
        per_frame = dict(orient=root, transl=transl, pose=pose)
        per_frame0 = dict(orient=root0, transl=transl0, pose=pose0)
        per_track, per_track0 = dict(betas=betas), dict(betas=betas0)
        if config.depth_along_ray:
            per_frame["depth"], per_frame0["depth"] = offset[:, None], jnp.zeros_like(offset)[:, None]
            per_track["depth_scale"], per_track0["depth_scale"] = scale[None], jnp.zeros((1,))
        return losses.prior_loss(
            per_frame, per_frame0, valid, per_track, per_track0, config.human_gamma, weights
        )

    root0, pose0 = initial_rotations(problem, config)
    return jax.vmap(one_track)(
        params.root_rot,
        params.body_pose,
        params.transl,
        params.betas,
        root0,
        pose0,
        problem.tracks.transl,
        problem.tracks.betas,
        problem.tracks.valid,
        params.depth_log_scale,
        params.depth_log_offset,
    )
