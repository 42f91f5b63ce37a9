"""The optimised parameters of one clip and their initial values (docs/method.md §2.2, §2.11)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from josh_jax import geometry
from josh_jax.prepare import Problem


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Params:
    """Optimised parameters of one clip (N keyframes, P tracks, B shape coefficients).

    Attributes:
      cam_quat: float32[N, 4] rotation of each camera relative to its tree parent (wxyz).
      cam_trans: float32[N, 3] translation relative to the parent (focal-plane point,
        docs/method.md §2.4).
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


def initial_rotations(problem: Problem, config) -> tuple[jax.Array, jax.Array]:
    """Initial (root_rot, body_pose) parameters: the HMR's rotations in the parametrisation of
    `config.rotation` (zero deltas for "delta"); also the reference of the rotation priors."""
    tracks = problem.tracks
    if config.rotation == "matrix":
        return geometry.matrix_to_quat(tracks.global_orient), tracks.body_pose
    P, N = tracks.valid.shape
    root = jnp.zeros((P, N, 3), jnp.float32)
    pose = jnp.zeros(tracks.body_pose.shape[:-2] + (3,), jnp.float32)
    return root, pose


def init_params(problem: Problem, config) -> Params:
    """Initial parameters: identity relative cameras, log focal_init, the HMR humans."""
    P, N = problem.tracks.valid.shape
    root_rot, body_pose = initial_rotations(problem, config)
    return Params(
        cam_quat=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (N, 1)),
        cam_trans=jnp.zeros((N, 3), jnp.float32),
        cam_log_size=jnp.zeros((N,), jnp.float32),
        log_focal=jnp.log(problem.cameras.focal_init).astype(jnp.float32),
        root_rot=root_rot,
        body_pose=body_pose,
        transl=problem.tracks.transl,
        betas=problem.tracks.betas,
        depth_log_scale=jnp.zeros((P,), jnp.float32),
        depth_log_offset=jnp.zeros((P, N), jnp.float32),
    )
