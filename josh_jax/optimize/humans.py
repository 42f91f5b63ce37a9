"""The SMPL bodies of every track in their keyframe's camera frame (docs/method.md §2.6).

World-frame SMPL: joints_world = R_wc @ joints_cam + t_wc with [R_wc | t_wc] = T_world_cam of the
keyframe; with smplx semantics the world `global_orient` is R_wc @ R_root and the world transl is
R_wc @ (transl + J0) + t_wc - J0 (J0 = rest pelvis of the betas).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from body_models.model import lbs
from josh_jax import geometry
from josh_jax.optimize.params import Params
from josh_jax.prepare import Problem


def human_rotations(params: Params, problem: Problem, config):
    """Root and body rotation matrices float[P, N, 3, 3], float[P, N, 23, 3, 3] (camera frame)."""
    if config.rotation == "matrix":
        return geometry.quat_to_matrix(params.root_rot), params.body_pose
    tracks = problem.tracks
    R_root = tracks.global_orient @ geometry.axis_angle_to_matrix(params.root_rot)
    R_body = tracks.body_pose @ geometry.axis_angle_to_matrix(params.body_pose)
    return R_root, R_body


def effective_transl(params: Params, problem: Problem, config, focal):
    """Camera-frame SMPL transl float[P, N, 3] used by every term and the output.

    With `human_depth_follows_focal` its z follows the focal (f / f_init); with `depth_along_ray`
    the transl is also scaled by exp(s_track + o_frame): the body moves along its camera ray (its
    2D projection barely changes, the HMR's depth does).
    """
    transl = params.transl
    if config.human_depth_follows_focal:
        scale = jnp.stack([1.0, 1.0, focal / problem.cameras.focal_init]).astype(transl.dtype)
        transl = transl * scale
    if config.depth_along_ray:
        log_s = params.depth_log_scale[:, None] + params.depth_log_offset
        transl = transl * jnp.exp(log_s)[..., None]
    return transl


def human_forward(params: Params, problem: Problem, config, focal):
    """Camera-frame SMPL of the used vertices.

    Returns:
      (vertices float[P, N, U+24, 3], joints float[P, N, 24, 3]); the last 24 vertices are the
      rest joints carried as virtual vertices (`josh_jax.prepare.subset_body_model`).
    """
    R_root, R_body = human_rotations(params, problem, config)
    transl = effective_transl(params, problem, config, focal)

    def one(betas, Rr, Rb, t):
        out = lbs(problem.body, betas, Rr, Rb, t)
        return out.vertices, out.joints

    per_frame = jax.vmap(one, in_axes=(None, 0, 0, 0))
    return jax.vmap(per_frame)(params.betas, R_root, R_body, transl)
