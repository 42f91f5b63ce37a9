"""The built-in mannequin's surface: a quad mesh grown from a box, smoothed, soles flat on y = 0.

Steps 1-2 of `body_models/builtin.py`'s recipe (see its docstring and docs/body_models.md): a quad
box (the torso) is shaped into elliptic cross-sections; legs, arms and the neck/head are extruded
from patches of it along smooth paths through the design joint positions, with radius profiles per
limb, ends closed with domes; Taubin smoothing rounds the junctions and vertices below y = 0 are
clamped. The rig (weights, regressor, blendshapes) is built on this surface by `builtin.py`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from body_models.quad_mesh import QuadMesh, box, extrude, laplacian, vertex_neighbours

NUM_VERTICES = 6890
NUM_FACES = 13776
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# Part labels.
TORSO, LEG_L, LEG_R, ARM_L, ARM_R, HEAD = range(6)

# Mesh resolution, chosen so the vertex count is exactly 6890 (asserted below):
# box 2(NX NY + NY NZ + NZ NX) + 2, plus each extrusion step adds one ring (2 (p + q) vertices).
_NX, _NY, _NZ = 19, 22, 10
_LEG_PATCH, _ARM_PATCH, _NECK_PATCH = (8, 8), (5, 5), (7, 5)
_LEG_STEPS, _ARM_STEPS, _HEAD_STEPS = 48, 36, 30

# Design joint positions (left side; the right side mirrors x). Rest T-pose, soles at y = 0.
_JOINTS_DESIGN = {
    0: (0.0, 0.93, 0.0),
    1: (0.085, 0.85, 0.0),
    3: (0.0, 1.04, -0.01),
    4: (0.095, 0.49, 0.01),
    6: (0.0, 1.17, -0.005),
    7: (0.10, 0.09, -0.025),
    9: (0.0, 1.23, 0.0),
    10: (0.105, 0.035, 0.085),
    12: (0.0, 1.45, -0.015),
    13: (0.075, 1.37, -0.01),
    15: (0.0, 1.53, 0.025),
    16: (0.19, 1.38, -0.015),
    18: (0.44, 1.38, -0.025),
    20: (0.68, 1.38, -0.025),
    22: (0.77, 1.38, -0.025),
}
_MIRROR = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}

_Y_BOTTOM, _Y_TOP = 0.80, 1.42  # torso box height range
_SMOOTH_ITERS = 12  # Taubin smoothing steps (rounds the limb junctions)


def design_joints() -> np.ndarray:
    """float64[24, 3] design joint positions (the regressed rest joints approximate these)."""
    J = np.zeros((24, 3))
    for j, p in _JOINTS_DESIGN.items():
        J[j] = p
        if j in _MIRROR:
            J[_MIRROR[j]] = (-p[0], p[1], p[2])
    return J


def _profile(knots):
    """Piecewise-linear profile s in [0,1] -> (r1, r2) from knots [(s, r1, r2), ...]."""
    k = np.asarray(knots, np.float64)
    return lambda s: (float(np.interp(s, k[:, 0], k[:, 1])), float(np.interp(s, k[:, 0], k[:, 2])))


def _torso_shape(p):
    """Maps a box lattice point to the torso surface (elliptic sections, rounded ends)."""
    i, j, k = p
    u, h, w = 2 * i / _NX - 1, j / _NY, 2 * k / _NZ - 1
    knots_h = [0.0, 0.35, 0.7, 1.0]
    a = np.interp(h, knots_h, [0.175, 0.145, 0.165, 0.175])
    b = np.interp(h, knots_h, [0.105, 0.095, 0.11, 0.085])
    zc = np.interp(h, knots_h, [-0.005, -0.005, 0.0, -0.015])
    m = max(abs(u), abs(w))
    r = np.hypot(u, w)
    su, sw = (u * m / r, w * m / r) if r > 0 else (0.0, 0.0)  # square -> disk, radially
    y = _Y_BOTTOM + h * (_Y_TOP - _Y_BOTTOM)
    if j == _NY:
        y -= 0.05 * m**2  # shoulders slope down
    return np.array([a * su, y, zc + b * sw])


# ---------------------------------------------------------------------------------------------
# The whole surface.


@dataclasses.dataclass(frozen=True)
class Surface:
    """The mannequin's rest surface before rigging (host numpy, float64).

    pos: float64[V, 3] vertices; part: int[V] part label (TORSO, LEG_L, ...); arclen: float64[V]
    arclength along the part's path; quads: int64[Q, 4]; tris: int64[F, 3] outward triangles (each
    quad's pair together); edges: int64[E, 2] directed vertex neighbours sorted by source;
    paths: part label -> (dense path float64[N, 3], its arclength float64[N]).
    """

    pos: np.ndarray
    part: np.ndarray
    arclen: np.ndarray
    quads: np.ndarray
    tris: np.ndarray
    edges: np.ndarray
    paths: dict


# Radius profiles along each limb's path: (s in [0, 1], r1, r2), r1 along the frame axis e1.
_LEG_KNOTS = (
    (0.0, 0.085, 0.085),
    (0.12, 0.085, 0.085),
    (0.40, 0.058, 0.058),
    (0.45, 0.055, 0.055),
    (0.55, 0.058, 0.058),
    (0.70, 0.042, 0.042),
    (0.78, 0.036, 0.040),
    (0.84, 0.045, 0.036),
    (0.95, 0.045, 0.028),
    (1.0, 0.040, 0.024),
)
_ARM_KNOTS = (
    (0.0, 0.06, 0.06),
    (0.10, 0.052, 0.052),
    (0.40, 0.040, 0.040),
    (0.50, 0.040, 0.042),
    (0.75, 0.030, 0.033),
    (0.82, 0.018, 0.042),
    (0.95, 0.014, 0.040),
    (1.0, 0.012, 0.030),
)
_HEAD_KNOTS = (
    (0.0, 0.07, 0.06),
    (0.15, 0.055, 0.055),
    (0.30, 0.056, 0.060),
    (0.45, 0.075, 0.090),
    (0.65, 0.080, 0.100),
    (0.85, 0.075, 0.090),
    (1.0, 0.050, 0.060),
)


def _extrude_limbs(mesh: QuadMesh, faces) -> dict:
    """Extrudes legs, arms and head from the box's faces; returns part -> (dense path, arclength).

    The order (legs, arms, head) fixes the vertex numbering."""
    JD = design_joints()
    legs = _extrude_legs(mesh, faces, JD)
    arms = _extrude_arms(mesh, faces, JD)
    return {**legs, **arms, HEAD: _extrude_head(mesh, faces)}


def _patch(faces, face_key, a0, a1, b0, b1) -> list:
    """The quads of face `face_key` in lattice rows a0..a1-1, columns b0..b1-1."""
    face = faces[face_key]
    return [face[(a, b)] for a in range(a0, a1) for b in range(b0, b1)]


def _extrude_legs(mesh: QuadMesh, faces, JD) -> dict:
    """Legs from the bottom face (axis 1, sign -1; its (u, v) = (z, x) lattice axes)."""
    pl = _LEG_PATCH
    z0 = (_NZ - pl[0]) // 2
    leg_profile = _profile(list(_LEG_KNOTS))
    leg_paths = {}
    for part, sign in ((LEG_L, 1), (LEG_R, -1)):
        x0 = _NX - 1 - pl[1] if sign > 0 else 1
        quads = _patch(faces, (1, -1), z0, z0 + pl[0], x0, x0 + pl[1])
        hip, knee, ankle = (
            JD[1 if sign > 0 else 2],
            JD[4 if sign > 0 else 5],
            JD[7 if sign > 0 else 8],
        )
        x = sign * 0.09
        pts = [
            (x, _Y_BOTTOM, 0.0),
            (hip[0], 0.70, 0.0),
            knee,
            (ankle[0], 0.10, -0.03),
            (ankle[0], 0.045, -0.035),
            (ankle[0] + sign * 0.005, 0.04, 0.03),
            (ankle[0] + sign * 0.012, 0.035, 0.17),
        ]
        # Frame axis e1 = +x (sideways) so that r1 is the foot's half width.
        leg_paths[part] = extrude(
            mesh, quads, part, pts, leg_profile, _LEG_STEPS, np.array([1.0, 0, 0]), 0.02
        )
    return leg_paths


def _extrude_arms(mesh: QuadMesh, faces, JD) -> dict:
    """Arms from the side faces (axis 0; (u, v) = (y, z)), top rows."""
    pa = _ARM_PATCH
    zc0 = (_NZ - pa[1]) // 2
    arm_profile = _profile(list(_ARM_KNOTS))
    arm_paths = {}
    for part, sign in ((ARM_L, 1), (ARM_R, -1)):
        quads = _patch(faces, (0, sign), _NY - pa[0], _NY, zc0, zc0 + pa[1])
        x_side = sign * 0.175
        pts = [
            (x_side, 1.355, -0.01),
            (sign * 0.25, 1.38, -0.015),
            JD[18 if sign > 0 else 19],
            JD[20 if sign > 0 else 21],
            (sign * 0.86, 1.38, -0.025),
        ]
        arm_paths[part] = extrude(
            mesh, quads, part, pts, arm_profile, _ARM_STEPS, np.array([0, 1.0, 0]), 0.015
        )
    return arm_paths


def _extrude_head(mesh: QuadMesh, faces):
    """Neck and head from the top face (axis 1, sign +1; (u, v) = (z, x)): (path, arclength)."""
    pn = _NECK_PATCH
    quads = _patch(
        faces,
        (1, 1),
        (_NZ - pn[1]) // 2,
        (_NZ - pn[1]) // 2 + pn[1],
        (_NX - pn[0]) // 2,
        (_NX - pn[0]) // 2 + pn[0],
    )
    return extrude(
        mesh,
        quads,
        HEAD,
        [(0, _Y_TOP - 0.02, -0.015), (0, 1.47, -0.01), (0, 1.56, 0.02), (0, 1.67, 0.02)],
        _profile(list(_HEAD_KNOTS)),
        _HEAD_STEPS,
        np.array([1.0, 0, 0]),
        0.045,
    )


def build_surface() -> Surface:
    """Builds the mannequin's smoothed rest surface (deterministic; 6890 vertices, 13776 faces)."""
    mesh = QuadMesh()
    faces, _ = box(mesh, (_NX, _NY, _NZ), TORSO)
    for v in range(len(mesh.pos)):
        mesh.pos[v] = _torso_shape(mesh.pos[v])
    paths = _extrude_limbs(mesh, faces)

    pos = np.array(mesh.pos)
    part = np.array(mesh.part)
    arclen = np.array(mesh.arclen)
    quads = np.array(mesh.quads, np.int64)
    V = len(pos)
    assert V == NUM_VERTICES, V
    # Every vertex is used (the cap interior vertices were moved, not dropped).
    assert len(np.unique(quads)) == V

    # Smooth (Taubin: no shrinkage), then flatten the soles on the ground.
    edges = vertex_neighbours(quads, V)
    for _ in range(_SMOOTH_ITERS):
        pos = pos + 0.5 * laplacian(pos, edges, V)
        pos = pos - 0.53 * laplacian(pos, edges, V)
    legs = (part == LEG_L) | (part == LEG_R)
    pos[:, 1] -= pos[legs, 1].min() + 0.012
    pos[:, 1] = np.maximum(pos[:, 1], 0.0)

    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    tris = (
        tris.reshape(2, -1, 3).transpose(1, 0, 2).reshape(-1, 3)
    )  # keep each quad's pair together
    # Outward orientation: positive signed volume.
    vol = np.sum(np.einsum("ij,ij->i", pos[tris[:, 0]], np.cross(pos[tris[:, 1]], pos[tris[:, 2]])))
    if vol < 0:
        tris = tris[:, ::-1]
    assert len(tris) == NUM_FACES
    return Surface(pos=pos, part=part, arclen=arclen, quads=quads, tris=tris, edges=edges,
                   paths=paths)
