"""The pairwise scene terms on the matches (docs/method.md §2.5, §2.8), in a fused form.

Stage 1 (`pair_loss_3d`): rho_1.1 of the 3D distance between the two images' points of a match.
Stage 2 (`pair_loss_2d`): rho_0.4 of the reprojection error of each point in the other image.
They equal `losses.match_3d_loss` / `losses.reprojection_loss` on the stacked points (tested) but
are written per pair on component arrays: a match's camera point is linear in a few per-match
constants (`stage1_points`, `stage2_features`, computed once per stage), so every iteration is one
small matrix product per pair, and XLA fuses the chain into one pass over the match arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import losses
from josh_jax import geometry
from josh_jax.optimize.cameras import is_proportional, scene_depth
from josh_jax.prepare import Problem


def match_points_world(problem: Problem, side: int, T_world_cam, focal, depth_scale,
                       proportional=False):
    """World points of one side (0: image i, 1: image j) of every match, 3 arrays float[E, M].

    The direct formula the fused terms are checked against: unproject the match pixel at its
    depth (`cameras.scene_depth` under the focal-depth model `proportional`), then move it to
    world.
    """
    matches, cameras = problem.matches, problem.cameras
    img = matches.pair_index[:, side]
    z = scene_depth(
        cameras, img[:, None], matches.depth[side], matches.offset[side], focal, depth_scale,
        proportional=proportional,
    )
    x = z * (matches.uv[2 * side] - cameras.pp[0]) / focal
    y = z * (matches.uv[2 * side + 1] - cameras.pp[1]) / focal
    T = T_world_cam[img]  # [E, 4, 4]
    col = lambda r, c: T[:, r, c][:, None]
    return tuple(col(r, 0) * x + col(r, 1) * y + col(r, 2) * z + col(r, 3) for r in range(3))


def stage1_points(problem: Problem, focal, proportional=False):
    """Camera-frame match points per unit depth scale, float[E, 6, M] (rows x, y, z of side i,
    then of side j), for a fixed focal (stage 1 freezes it): x_cam = (g sigma) * points."""
    matches, cameras = problem.matches, problem.cameras
    rows = []
    for side in range(2):
        img = matches.pair_index[:, side][:, None]
        unit_scale = jnp.ones_like(cameras.base_focal)
        z = scene_depth(cameras, img, matches.depth[side], matches.offset[side], focal, unit_scale,
                        proportional=proportional)
        rows += [
            z * (matches.uv[2 * side] - cameras.pp[0]) / focal,
            z * (matches.uv[2 * side + 1] - cameras.pp[1]) / focal,
            z,
        ]
    return jnp.stack(rows, 1)


def stage2_features(problem: Problem):
    """Per-match constant features float[E, 2, 12, M] of both sides (i, j).

    A match pixel's camera point is linear in 12 features: with s = f / f0, m the median depth,
    d the anchor depth and o the offset, z = g sigma (m (s-1) + d)(1 + (o-1)/s)
    = g sigma [m(s-1), 1, m(s-1)/s, 1/s] . [1, d, o-1, d(o-1)], and x_cam = z (du/f, dv/f, 1).
    The features are [1, d, o-1, d(o-1)] x (du, dv, 1); `_camera_coeffs` gives the matrix.
    Under the proportional focal-depth model z = g sigma s d o = g sigma [0, s, 0, s] . (same).
    """
    matches, pp = problem.matches, problem.cameras.pp
    sides = []
    for side in range(2):
        d = matches.depth[side]
        om = matches.offset[side] - 1.0
        phi = [jnp.ones_like(d), d, om, d * om]
        du = matches.uv[2 * side] - pp[0]
        dv = matches.uv[2 * side + 1] - pp[1]
        sides.append(jnp.stack([p * du for p in phi] + [p * dv for p in phi] + phi, 1))
    return jnp.stack(sides, 1)


def _camera_coeffs(problem: Problem, img, focal, depth_scale, proportional=False):
    """float[E, 3, 12]: x_cam = C @ features for images `img` (see `stage2_features`)."""
    s = focal / problem.cameras.base_focal[img]
    m = problem.cameras.median_depth[img]
    zero = jnp.zeros_like(m)
    if proportional:
        coeffs = [zero, s, zero, s]
    else:
        coeffs = [m * (s - 1.0), jnp.ones_like(m), m * (s - 1.0) / s, 1.0 / s]
    a = depth_scale[img][:, None] * jnp.stack(coeffs, 1)  # [E, 4]
    z4 = jnp.zeros_like(a)
    return jnp.stack(
        [
            jnp.concatenate([a / focal, z4, z4], 1),
            jnp.concatenate([z4, a / focal, z4], 1),
            jnp.concatenate([z4, z4, a], 1),
        ],
        1,
    )


def stage_constants(problem: Problem, stage: int, focal, proportional=False):
    """The per-match constants of a stage: `stage1_points` (at the stage's frozen focal) or
    `stage2_features` (the same for both focal-depth models)."""
    if stage == 1:
        return stage1_points(problem, focal, proportional)
    return stage2_features(problem)


def pair_loss_3d(problem: Problem, gamma, T_world_cam, depth_scale, points):
    """L_3d: sum c rho_gamma(|X_i - X_j|) / sum c over every match (`points`: stage1_points)."""
    i, j = problem.matches.pair_index[:, 0], problem.matches.pair_index[:, 1]
    R = T_world_cam[:, :3, :3]
    AB = jnp.concatenate(
        [depth_scale[i][:, None, None] * R[i], -depth_scale[j][:, None, None] * R[j]], 2
    )
    dt = T_world_cam[i, :3, 3] - T_world_cam[j, :3, 3]
    residual = jnp.einsum("eij,ejm->eim", AB, points) + dt[:, :, None]  # [E, 3, M]
    distance = losses.safe_norm_components(residual[:, 0], residual[:, 1], residual[:, 2])
    return losses.masked_mean(losses.gamma_loss(distance, gamma), problem.matches.conf)


def pair_loss_2d(problem: Problem, gamma, T_world_cam, focal, depth_scale, features,
                 proportional=False):
    """L_2d: rho_gamma of the reprojection errors in both images of every pair, each direction
    with the pair's weight (`features`: stage2_features)."""
    K = geometry.intrinsics_matrix(focal, problem.cameras.pp[0], problem.cameras.pp[1])
    T_cam_world = geometry.se3_inverse(T_world_cam)
    i, j = problem.matches.pair_index[:, 0], problem.matches.pair_index[:, 1]

    def seen_by(src, dst, feats):
        # y = K (R_dst^T (R_src C_src psi + t_src - t_dst)): one [3, 12] x [12, M] per pair.
        P = jnp.einsum("ij,ejk->eik", K, T_cam_world[dst][:, :3, :])  # [E, 3, 4]
        G = jnp.einsum(
            "eij,ejk,ekl->eil",
            P[:, :, :3],
            T_world_cam[src][:, :3, :3],
            _camera_coeffs(problem, src, focal, depth_scale, proportional),
        )
        h = jnp.einsum("eij,ej->ei", P[:, :, :3], T_world_cam[src][:, :3, 3]) + P[:, :, 3]
        y = jnp.einsum("eik,ekm->eim", G, feats) + h[:, :, None]
        zc = jnp.maximum(y[:, 2], 1e-3)
        return jnp.clip(y[:, 0] / zc, -1000.0, 2000.0), jnp.clip(y[:, 1] / zc, -1000.0, 2000.0)

    ui, vi = seen_by(j, i, features[:, 1])  # partner j's point seen by camera i
    uj, vj = seen_by(i, j, features[:, 0])
    uv = problem.matches.uv
    r_i = losses.safe_norm_components(uv[0] - ui, uv[1] - vi)
    r_j = losses.safe_norm_components(uv[2] - uj, uv[3] - vj)
    rho = losses.gamma_loss(r_i, gamma) + losses.gamma_loss(r_j, gamma)
    # Both directions share the pair's weight: sum c (rho_ij + rho_ji) / (2 sum c).
    return losses.masked_mean(rho, problem.matches.conf) / 2.0


def pair_loss(problem: Problem, config, stage: int, T_world_cam, focal, depth_scale,
              constants=None) -> jax.Array:
    """The stage's pair term: L_3d (stage 1, gamma = config.stage1.gamma) or L_2d (stage 2).

    Args:
      constants: the stage's `stage_constants` (computed here when None).
    """
    proportional = is_proportional(config)
    if constants is None:
        constants = stage_constants(problem, stage, focal, proportional)
    if stage == 1:
        return pair_loss_3d(problem, config.stage1.gamma, T_world_cam, depth_scale, constants)
    return pair_loss_2d(problem, config.stage2.gamma, T_world_cam, focal, depth_scale, constants,
                        proportional)
