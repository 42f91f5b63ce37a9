"""The built-in, licence-free body: a procedural mannequin in SMPL topology counts.

Generated deterministically by the code below (no data file): 6890 vertices, 13776 triangles (one
closed genus-0 surface), the real SMPL 24-joint kinematic tree, 10 shape and 207 pose blendshapes.
Conventions as SMPL: metres, y up, the body faces +z, its left side is +x, T-pose at zero pose.
Unlike SMPL, the soles rest on the ground plane y = 0 in the rest pose with zero betas (SMPL's
template floats with the pelvis near the origin); betas keep the soles on y = 0.

How it is built (see docs/body_models.md):
  1. A quad box (the torso) is shaped into elliptic cross-sections; legs, arms and the neck/head are
     extruded from patches of it along smooth paths through the design joint positions, with
     radius profiles per limb (a foot bends forward at the ankle); ends are closed with domes.
     Triangulating the quads gives F = 2V - 4 = 13776 triangles.
  2. Taubin smoothing rounds the junctions; vertices below y = 0 are clamped, which makes the soles
     flat.
  3. Skinning weights: each vertex is assigned to a bone by its limb and arclength, then the
     one-hot weights are diffused over the mesh graph (smooth blending across each joint) and pruned
     to the 4 largest, like SMPL.
  4. The joint regressor reproduces the design joint positions as convex combinations of nearby
     vertices, so joints follow the surface under shape changes.
  5. Shape directions are analytic displacement fields (0: height, 1: girth, 2-9: smaller
     proportion changes); pose directions push vertices near a bent joint outwards along the normal
     (a volume-preserving corrective on the diagonal of R - I).

The surface (steps 1-2) is built in `body_models/mannequin_surface.py`; this module rigs it
(steps 3-5) and returns the arrays.

Vertex ids are NOT SMPL's: use `body_models.indices` for named vertex sets.
"""


from __future__ import annotations

import functools

import numpy as np

from body_models.arrays import model_from_arrays
from body_models.mannequin_surface import (
    ARM_L,
    ARM_R,
    HEAD,
    LEG_L,
    LEG_R,
    NUM_FACES,
    NUM_VERTICES,
    SMPL_PARENTS,
    TORSO,
    Surface,
    build_surface,
    design_joints,
    laplacian,
)
from body_models.model import BodyModel

__all__ = ["ARM_L", "ARM_R", "HEAD", "LEG_L", "LEG_R", "NUM_FACES", "NUM_VERTICES", "SMPL_PARENTS",
           "TORSO", "design_joints", "mannequin", "mannequin_arrays"]

NUM_JOINTS = 24


def _vertex_normals(pos, faces):
    fn = np.cross(pos[faces[:, 1]] - pos[faces[:, 0]], pos[faces[:, 2]] - pos[faces[:, 0]])
    vn = np.zeros_like(pos)
    for c in range(3):
        np.add.at(vn, faces[:, c], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _project_simplex(v):
    """Euclidean projection of each row of v: float[N, K] onto the probability simplex."""
    u = -np.sort(-v, axis=1)
    css = np.cumsum(u, axis=1) - 1
    ind = np.arange(1, v.shape[1] + 1)
    rho = np.sum(u - css / ind > 0, axis=1) - 1
    theta = css[np.arange(len(v)), rho] / (rho + 1)
    return np.maximum(v - theta[:, None], 0.0)


def _convex_weights(P, targets, iters=500):
    """Convex weights w[N, K] (w >= 0, rows sum to 1) with w_n @ P[n] ~= targets[n].

    Projected gradient from uniform weights; P: float[N, K, 3] candidate points.
    """
    N, K, _ = P.shape
    w = np.full((N, K), 1.0 / K)
    lipschitz = np.linalg.norm(P - P.mean(1, keepdims=True), ord=2, axis=(1, 2)) ** 2
    step = (0.5 / np.maximum(lipschitz, 1e-12))[:, None]
    for _ in range(iters):
        resid = np.einsum("nk,nkc->nc", w, P) - targets
        grad = np.einsum("nkc,nc->nk", P, resid) + 1e-4 * (w - 1.0 / K)
        w = _project_simplex(w - step * grad)
    return w


def _smoothstep(x, a, b):
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


# ---------------------------------------------------------------------------------------------
# Generation.


# ---------------------------------------------------------------------------------------------
# Rigging the surface.


def _skinning_weights(surface: Surface, JD) -> np.ndarray:
    """float64[V, 24]: bone by part and arclength, diffused over the mesh, pruned to the 4 largest."""
    pos, part, arclen, paths = surface.pos, surface.part, surface.arclen, surface.paths
    V = len(pos)
    bone = np.zeros(V, np.int64)
    y = pos[:, 1]
    torso = part == TORSO
    bone[torso] = np.select(
        [y[torso] < JD[3, 1], y[torso] < JD[6, 1], y[torso] < JD[9, 1]], [0, 3, 6], default=9
    )
    for sgn, collar in ((1, 13), (-1, 14)):
        bone[torso & (sgn * pos[:, 0] > 0.10) & (y > 1.30)] = collar

    def by_arclen(mask, path, joints):
        dense, s_dense = path
        s_j = [s_dense[np.argmin(np.linalg.norm(dense - JD[j], axis=1))] for j in joints[1:]]
        bone[mask] = np.asarray(joints)[np.searchsorted(s_j, arclen[mask])]

    by_arclen(part == LEG_L, paths[LEG_L], [1, 4, 7, 10])
    by_arclen(part == LEG_R, paths[LEG_R], [2, 5, 8, 11])
    by_arclen(part == ARM_L, paths[ARM_L], [16, 18, 20, 22])
    by_arclen(part == ARM_R, paths[ARM_R], [17, 19, 21, 23])
    by_arclen(part == HEAD, paths[HEAD], [12, 15])
    W = np.eye(NUM_JOINTS)[bone]
    for _ in range(14):
        W = W + 0.5 * laplacian(W, surface.edges, V)
    top = np.argsort(-W, axis=1, kind="stable")[:, 4:]
    np.put_along_axis(W, top, 0.0, axis=1)
    W[W < 1e-4] = 0.0
    W /= W.sum(axis=1, keepdims=True)
    return W, bone


def _joint_regressor(pos, JD) -> np.ndarray:
    """float64[24, V]: convex combinations of the 48 nearest vertices reproducing the design joints."""
    J_reg = np.zeros((NUM_JOINTS, len(pos)))
    near = np.argsort(np.linalg.norm(pos[None] - JD[:, None], axis=2), axis=1, kind="stable")[
        :, :48
    ]
    np.put_along_axis(J_reg, near, _convex_weights(pos[near], JD), axis=1)
    return J_reg


def _shape_directions(surface: Surface, bone, J_rest, normals, ground) -> np.ndarray:
    """float64[V, 3, 10] shape directions per unit beta (0: stature, 1: girth, 2-9: proportions)."""
    pos, part = surface.pos, surface.part
    V = len(pos)
    torso = part == TORSO
    x, y = pos[:, 0], pos[:, 1]
    S = np.zeros((V, 3, 10))
    S[:, 1, 0] = 0.045 * y  # 0: stature, about the ground
    # 1: girth, outwards from the local body axis (bone segment), most on the torso.
    seg_a = J_rest[bone]
    child = {j: c for c, j in reversed(list(enumerate(SMPL_PARENTS))) if j >= 0}
    seg_b = np.array([J_rest[child[b]] if b in child else J_rest[b] for b in bone])
    d = seg_b - seg_a
    t = np.clip(
        np.einsum("ij,ij->i", pos - seg_a, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-9), 0, 1
    )
    radial = pos - (seg_a + t[:, None] * d)
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    girth = np.where(torso, 0.035, np.where(part == HEAD, 0.003, 0.015))
    S[:, :, 1] = girth[:, None] * radial
    S[:, 1, 2] = 0.04 * np.minimum(y, 0.82) / 0.82  # 2: leg length (upper body rides up)
    S[:, 0, 3] = (
        0.025 * np.sign(x) * _smoothstep(np.abs(x), 0.05, 0.2) * _smoothstep(y, 1.2, 1.3)
    )  # shoulders
    arm = (part == ARM_L) | (part == ARM_R)
    S[:, 0, 4] = arm * np.sign(x) * 0.03 * np.clip((np.abs(x) - 0.18) / 0.6, 0, 1)  # 4: arm length
    S[:, 2, 5] = (
        0.03 * np.exp(-(((y - 1.0) / 0.08) ** 2)) * np.maximum(normals[:, 2], 0) * torso
    )  # belly
    S[:, 0, 6] = 0.02 * np.sign(x) * np.exp(-(((y - 0.85) / 0.1) ** 2)) * (1 - arm)  # 6: hips
    S[:, :, 7] = (
        0.05 * (pos - J_rest[15]) * (part == HEAD)[:, None] * _smoothstep(y, 1.45, 1.5)[:, None]
    )  # head
    S[:, 2, 8] = (
        0.02 * np.exp(-(((y - 1.25) / 0.08) ** 2)) * normals[:, 2] * torso
    )  # 8: chest depth
    S[:, 1, 9] = 0.02 * _smoothstep(y, 1.40, 1.48)  # 9: neck length
    S[:, 1, :] *= ground[:, None]
    return S


def _pose_directions(W, normals, ground) -> np.ndarray:
    """float64[V, 3, 207]: outward bulge around a bent joint (diagonal of R_j - I)."""
    P = np.zeros((len(W), 3, (NUM_JOINTS - 1) * 9))
    for j in range(1, NUM_JOINTS):
        bump = 4.0 * W[:, j] * W[:, SMPL_PARENTS[j]]
        for a in range(3):
            P[:, :, (j - 1) * 9 + 4 * a] = -0.01 * bump[:, None] * normals
    P[:, 1, :] *= ground[:, None]
    return P


def _foot_vertices(surface: Surface):
    """Sole vertex ids int32[N] (leg vertices on y = 0) and (left toe, left heel, right toe, right heel)."""
    pos, part = surface.pos, surface.part
    legs = (part == LEG_L) | (part == LEG_R)
    sole = np.nonzero(legs & (pos[:, 1] <= 0.0))[0].astype(np.int32)
    foot_ids = []
    for leg in (LEG_L, LEG_R):
        s = sole[part[sole] == leg]
        foot_ids += [s[np.argmax(pos[s, 2])], s[np.argmin(pos[s, 2])]]
    return sole, np.array(foot_ids, np.int32)


# ---------------------------------------------------------------------------------------------
# Generation.


@functools.lru_cache(maxsize=1)
def mannequin_arrays() -> dict[str, np.ndarray]:
    """Generates the mannequin's smplx-layout arrays (memoised; deterministic).

    Returns:
      dict with v_template float32[6890, 3], shapedirs float32[6890, 3, 10], posedirs
      float32[6890, 3, 207], J_regressor float32[24, 6890], weights float32[6890, 24],
      kintree_table uint32[2, 24], f uint32[13776, 3], plus sole_ids int32[N] and foot_ids int32[4]
      (left toe, left heel, right toe, right heel).
    """
    surface = build_surface()
    pos = surface.pos
    JD = design_joints()
    W, bone = _skinning_weights(surface, JD)
    J_reg = _joint_regressor(pos, JD)
    normals = _vertex_normals(pos, surface.tris)
    ground = _smoothstep(pos[:, 1], 0.0, 0.06)  # keeps the soles on y = 0
    S = _shape_directions(surface, bone, J_reg @ pos, normals, ground)
    P = _pose_directions(W, normals, ground)
    sole, foot_ids = _foot_vertices(surface)
    kintree = np.stack([np.array(SMPL_PARENTS, np.int64) % (2**32),
                        np.arange(NUM_JOINTS)]).astype(np.uint32)
    return {
        "v_template": pos.astype(np.float32),
        "shapedirs": S.astype(np.float32),
        "posedirs": P.astype(np.float32),
        "J_regressor": J_reg.astype(np.float32),
        "weights": W.astype(np.float32),
        "kintree_table": kintree,
        "f": surface.tris.astype(np.uint32),
        "sole_ids": sole,
        "foot_ids": foot_ids,
        "part": surface.part.astype(np.int32),
    }


@functools.lru_cache(maxsize=1)
def mannequin() -> BodyModel:
    """The built-in licence-free body as a float32 `BodyModel` named "mannequin" (memoised)."""
    return model_from_arrays(
        mannequin_arrays(), "mannequin", num_betas=10, num_expression=0, name="mannequin"
    )
