"""Cameras of the reparametrised kinematic chain and the scene depths they imply.

docs/method.md §2.3-§2.5: each camera is a rotation and a "focal-plane point" relative to its
parent in the spanning tree; its centre sits z_i = sigma_i m_i f / f0_i behind that point, so a
change of focal or depth scale slides the camera along its axis while the scene stays put. The
depth of a pixel is its anchor's depth, rescaled by the focal and the image's depth scale, times
its block-relative offset.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from josh_jax import geometry
from josh_jax.optimize.params import Params
from josh_jax.prepare import CameraData, Problem


def normalize_quat(q: jax.Array) -> jax.Array:
    """q / max(|q|, 1e-12) over the last axis (PyTorch's `F.normalize`)."""
    return q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)


def compose_chain(R_rel, t_rel, parent):
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


def focal_of(params: Params, cameras: CameraData) -> jax.Array:
    """The shared focal exp(log_focal), clipped to `cameras.focal_bounds` (zero gradient outside)."""
    lo, hi = cameras.focal_bounds[0], cameras.focal_bounds[1]
    return jnp.clip(jnp.exp(params.log_focal), lo, hi)


def camera_forward(params: Params, problem: Problem, config):
    """Cameras of the reparametrised kinematic chain (docs/method.md §2.3, §2.4).

    Returns:
      (T_world_cam float[N, 4, 4], focal [], depth_scale float[N]: g sigma_i, the scale of each
      image's anchor depths; g = 1 / min sigma without people (JOSH's global scaling), else 1).
    """
    cameras = problem.cameras
    focal = focal_of(params, cameras)
    q, trans = params.cam_quat, params.cam_trans
    if config.fix_root_camera:
        # The losses are invariant to a global rigid motion: freezing the root's pose removes
        # that gauge (the reference lets it drift with rounding noise).
        root = (cameras.chain_parent < 0)[:, None]
        q = jnp.where(root, jax.lax.stop_gradient(q), q)
        trans = jnp.where(root, jax.lax.stop_gradient(trans), trans)
    R_world, t_world = compose_chain(geometry.quat_to_matrix(normalize_quat(q)), trans,
                                     cameras.chain_parent)
    sigma = jnp.exp(params.cam_log_size)
    has_humans = jnp.any(problem.tracks.valid)
    min_sigma = jnp.min(jnp.where(cameras.frame_valid, sigma, jnp.inf))
    g = jnp.where(has_humans, 1.0, 1.0 / min_sigma)
    # The camera centre sits z behind the focal-plane point t_world, along its optical axis.
    z = sigma * cameras.median_depth * focal / cameras.base_focal
    T_world_cam = geometry.se3(R_world, g * (t_world - R_world[:, :, 2] * z[:, None]))
    return T_world_cam, focal, g * sigma


def scene_depth(cameras: CameraData, img, anchor_depth, offset, focal, depth_scale,
                compensate=True, proportional=False):
    """Depth of a pixel of image `img` from its anchor depth d and offset o (§2.4, §2.5).

    JOSH's model (`proportional` False): D = g sigma (m (f/f0 - 1) + d), the anchor's current
    depth, times the offset, focal-compensated (1 + (o - 1) f0 / f) when `compensate`: a focal
    change shifts every depth by the same amount and shrinks the scene's relief as f0 / f.
    `proportional` (config.focal_depth_model = "proportional"): D = g sigma (f/f0) d times the
    offset as stored: every depth scales with f / f0 and the relative relief is kept
    (docs/method.md §4). All arguments broadcast together.
    """
    ratio = focal / cameras.base_focal[img]
    if proportional:
        return depth_scale[img] * ratio * anchor_depth * offset
    m = cameras.median_depth[img]
    D = depth_scale[img] * (m * (ratio - 1.0) + anchor_depth)
    if compensate:
        offset = 1.0 + (offset - 1.0) / ratio
    return D * offset


def is_proportional(config) -> bool:
    """Whether the scene depths follow the focal proportionally (config.focal_depth_model)."""
    if config.focal_depth_model not in ("josh", "proportional"):
        raise ValueError(f"focal_depth_model {config.focal_depth_model!r}: josh or proportional")
    return config.focal_depth_model == "proportional"


def anchor_depths(cameras: CameraData, focal, depth_scale, proportional=False) -> jax.Array:
    """float[N, A] current depth of every anchor (block centre), camera frame."""
    images = jnp.arange(cameras.frame_valid.shape[0])[:, None]
    core = cameras.core_depth
    return scene_depth(cameras, images, core, jnp.ones_like(core), focal, depth_scale,
                       proportional=proportional)
