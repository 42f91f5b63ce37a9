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

Vertex ids are NOT SMPL's: use `body_models.indices` for named vertex sets.
"""

from __future__ import annotations

import functools

import numpy as np

from body_models.arrays import model_from_arrays
from body_models.model import BodyModel

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


# ---------------------------------------------------------------------------------------------
# Quad mesh construction.


class _QuadMesh:
    """Growing quad mesh with per-vertex part label and arclength along the part's path."""

    def __init__(self):
        self.pos: list[np.ndarray] = []
        self.part: list[int] = []
        self.arclen: list[float] = []
        self.quads: list[tuple[int, int, int, int]] = []

    def add_vertex(self, p, part, s=0.0) -> int:
        self.pos.append(np.asarray(p, np.float64))
        self.part.append(part)
        self.arclen.append(s)
        return len(self.pos) - 1


def _box(mesh: _QuadMesh):
    """Box lattice surface [0,NX]x[0,NY]x[0,NZ]; returns {(axis, sign): {(a, b): quad}}, ids."""
    n = (_NX, _NY, _NZ)
    ids = {}
    for i in range(n[0] + 1):
        for j in range(n[1] + 1):
            for k in range(n[2] + 1):
                if i in (0, n[0]) or j in (0, n[1]) or k in (0, n[2]):
                    ids[(i, j, k)] = mesh.add_vertex((i, j, k), TORSO)
    faces = {}
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3  # u x v = +axis
        for sign, level in ((+1, n[axis]), (-1, 0)):
            face = {}
            for a in range(n[u]):
                for b in range(n[v]):
                    corners = []
                    for da, db in ((0, 0), (1, 0), (1, 1), (0, 1)):
                        c = [0, 0, 0]
                        c[axis], c[u], c[v] = level, a + da, b + db
                        corners.append(ids[tuple(c)])
                    if sign < 0:
                        corners = corners[::-1]
                    face[(a, b)] = len(mesh.quads)
                    mesh.quads.append(tuple(corners))
            faces[(axis, sign)] = face
    return faces, ids


def _boundary_loop(mesh: _QuadMesh, quad_ids):
    """Ordered boundary vertices of a patch (following its quads' orientation) and interior ids."""
    directed = {}
    for q in quad_ids:
        c = mesh.quads[q]
        for e in range(4):
            directed[(c[e], c[(e + 1) % 4])] = True
    nxt = {a: b for (a, b) in directed if (b, a) not in directed}
    start = min(nxt)
    loop = [start]
    while nxt[loop[-1]] != start:
        loop.append(nxt[loop[-1]])
    assert len(loop) == len(nxt), "patch boundary is not a single loop"
    verts = {v for q in quad_ids for v in mesh.quads[q]}
    interior = sorted(verts - set(loop))
    return loop, interior


def _smooth_path(points, n_dense=400, passes=6):
    """Dense, corner-rounded polyline through control points; returns points and arclength."""
    points = np.asarray(points, np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n_dense)
    dense = np.stack([np.interp(t, s, points[:, c]) for c in range(3)], axis=1)
    for _ in range(passes):  # moving average rounds corners, ends pinned
        dense[1:-1] = (dense[:-2] + dense[1:-1] + dense[2:]) / 3.0
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    return dense, s


def _cross(a, b):
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _rotate_frame(e1, e2, d_old, d_new):
    """Parallel transport: rotate (e1, e2) by the minimal rotation taking d_old to d_new."""
    axis = _cross(d_old, d_new)
    sin = np.sqrt(axis @ axis)
    cos = d_old @ d_new
    if sin < 1e-12:
        return e1, e2
    k = axis / sin
    rot = lambda x: x * cos + _cross(k, x) * sin + k * (k @ x) * (1 - cos)
    return rot(e1), rot(e2)


def _extrude(mesh, quad_ids, part, control_points, radii, steps, e1_start, cap_len):
    """Extrudes a patch along a path with elliptic rings, closing the end with a dome.

    Args:
      control_points: float[K, 3] path; the first point is the patch centre.
      radii: callable s in [0, 1] -> (r1, r2), ring semi-axes along the frame axes (e1, e2).
      steps: number of new rings; the last ring is the rim of the end cap.
      e1_start: first frame axis at the start (perpendicular to the path start).
      cap_len: how far the dome's apex lies beyond the last ring.
    """
    loop, interior = _boundary_loop(mesh, quad_ids)
    dense, s_dense = _smooth_path(control_points)
    length = s_dense[-1]
    tangents = np.gradient(dense, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    d0 = tangents[0]
    e1 = e1_start - np.dot(e1_start, d0) * d0
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d0, e1)

    # Angles of the loop, re-spaced uniformly in loop order (orientation from the loop itself).
    centre = dense[0]
    rel = np.array([mesh.pos[v] - centre for v in loop])
    ang = np.arctan2(rel @ e2, rel @ e1)
    turn = np.sum(np.angle(np.exp(1j * np.diff(np.concatenate([ang, ang[:1]])))))
    direction = 1.0 if turn > 0 else -1.0
    n = len(loop)
    ang = ang[0] + direction * 2 * np.pi * np.arange(n) / n

    # Frames along the dense path by parallel transport.
    frames = [(e1, e2)]
    for i in range(1, len(dense)):
        frames.append(_rotate_frame(*frames[-1], tangents[i - 1], tangents[i]))

    prev = list(loop)
    s_rings = np.linspace(0, length, steps + 1)[1:]
    for s in s_rings:
        i = min(int(np.searchsorted(s_dense, s)), len(dense) - 1)
        c, (f1, f2) = dense[i], frames[i]
        r1, r2 = radii(s / length)
        ring = [
            mesh.add_vertex(c + r1 * np.cos(a) * f1 + r2 * np.sin(a) * f2, part, s) for a in ang
        ]
        for m in range(n):
            a, b = prev[m], prev[(m + 1) % n]
            a2, b2 = ring[m], ring[(m + 1) % n]
            mesh.quads.append((a, b, b2, a2))
        prev = ring

    # Cap: the patch quads move to the end; interior vertices go on a dome.
    remap = dict(zip(loop, prev, strict=True))
    for q in quad_ids:
        mesh.quads[q] = tuple(remap.get(v, v) for v in mesh.quads[q])
    c, (f1, f2), d = dense[-1], frames[-1], tangents[-1]
    r1, r2 = radii(1.0)
    rel = np.array([mesh.pos[v] - centre for v in interior]) if interior else np.zeros((0, 3))
    u, w = rel @ e1, rel @ e2
    # Normalised patch radius (max-norm) -> polar angle on the dome.
    bu = max(np.abs(np.array([mesh.pos[v] - centre for v in loop]) @ e1).max(), 1e-9)
    bw = max(np.abs(np.array([mesh.pos[v] - centre for v in loop]) @ e2).max(), 1e-9)
    for v, uu, ww in zip(interior, u, w, strict=True):
        rho = min(max(abs(uu) / bu, abs(ww) / bw), 0.999)
        phi = np.arctan2(ww / bw, uu / bu)
        alpha = rho * np.pi / 2
        mesh.pos[v] = (
            c
            + np.sin(alpha) * (r1 * np.cos(phi) * f1 + r2 * np.sin(phi) * f2)
            + np.cos(alpha) * cap_len * d
        )
        mesh.part[v] = part
        mesh.arclen[v] = length
    return dense, s_dense


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


def _vertex_neighbours(quads, V):
    edges = np.concatenate([quads[:, [0, 1]], quads[:, [1, 2]], quads[:, [2, 3]], quads[:, [3, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    edges = np.unique(edges, axis=0)
    return edges


def _laplacian(x, edges, V):
    """Uniform Laplacian; `edges` sorted by source (np.unique order), every vertex has an edge."""
    starts = np.searchsorted(edges[:, 0], np.arange(V))
    deg = np.diff(np.append(starts, len(edges))).astype(np.float64)
    return np.add.reduceat(x[edges[:, 1]], starts, axis=0) / deg[:, None] - x


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


@functools.lru_cache(maxsize=1)
def mannequin_arrays() -> dict[str, np.ndarray]:
    """Generates the mannequin's smplx-layout arrays (memoised; deterministic).

    Returns:
      dict with v_template float32[6890, 3], shapedirs float32[6890, 3, 10], posedirs
      float32[6890, 3, 207], J_regressor float32[24, 6890], weights float32[6890, 24],
      kintree_table uint32[2, 24], f uint32[13776, 3], plus sole_ids int32[N] and foot_ids int32[4]
      (left toe, left heel, right toe, right heel).
    """
    mesh = _QuadMesh()
    faces, _ = _box(mesh)
    for v in range(len(mesh.pos)):
        mesh.pos[v] = _torso_shape(mesh.pos[v])
    JD = design_joints()

    def patch(face_key, a0, a1, b0, b1):
        face = faces[face_key]
        return [face[(a, b)] for a in range(a0, a1) for b in range(b0, b1)]

    # Legs from the bottom face (axis 1, sign -1; its (u, v) = (z, x) lattice axes).
    pl = _LEG_PATCH
    z0 = (_NZ - pl[0]) // 2
    leg_profile = _profile(
        [
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
        ]
    )
    leg_paths = {}
    for part, sign in ((LEG_L, 1), (LEG_R, -1)):
        x0 = _NX - 1 - pl[1] if sign > 0 else 1
        quads = patch((1, -1), z0, z0 + pl[0], x0, x0 + pl[1])
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
        leg_paths[part] = _extrude(
            mesh, quads, part, pts, leg_profile, _LEG_STEPS, np.array([1.0, 0, 0]), 0.02
        )

    # Arms from the side faces (axis 0; (u, v) = (y, z)), top rows.
    pa = _ARM_PATCH
    zc0 = (_NZ - pa[1]) // 2
    arm_profile = _profile(
        [
            (0.0, 0.06, 0.06),
            (0.10, 0.052, 0.052),
            (0.40, 0.040, 0.040),
            (0.50, 0.040, 0.042),
            (0.75, 0.030, 0.033),
            (0.82, 0.018, 0.042),
            (0.95, 0.014, 0.040),
            (1.0, 0.012, 0.030),
        ]
    )
    arm_paths = {}
    for part, sign in ((ARM_L, 1), (ARM_R, -1)):
        quads = patch((0, sign), _NY - pa[0], _NY, zc0, zc0 + pa[1])
        x_side = sign * 0.175
        pts = [
            (x_side, 1.355, -0.01),
            (sign * 0.25, 1.38, -0.015),
            JD[18 if sign > 0 else 19],
            JD[20 if sign > 0 else 21],
            (sign * 0.86, 1.38, -0.025),
        ]
        arm_paths[part] = _extrude(
            mesh, quads, part, pts, arm_profile, _ARM_STEPS, np.array([0, 1.0, 0]), 0.015
        )

    # Neck and head from the top face (axis 1, sign +1; (u, v) = (z, x)).
    pn = _NECK_PATCH
    quads = patch(
        (1, 1),
        (_NZ - pn[1]) // 2,
        (_NZ - pn[1]) // 2 + pn[1],
        (_NX - pn[0]) // 2,
        (_NX - pn[0]) // 2 + pn[0],
    )
    head_profile = _profile(
        [
            (0.0, 0.07, 0.06),
            (0.15, 0.055, 0.055),
            (0.30, 0.056, 0.060),
            (0.45, 0.075, 0.090),
            (0.65, 0.080, 0.100),
            (0.85, 0.075, 0.090),
            (1.0, 0.050, 0.060),
        ]
    )
    head_path = _extrude(
        mesh,
        quads,
        HEAD,
        [(0, _Y_TOP - 0.02, -0.015), (0, 1.47, -0.01), (0, 1.56, 0.02), (0, 1.67, 0.02)],
        head_profile,
        _HEAD_STEPS,
        np.array([1.0, 0, 0]),
        0.045,
    )

    pos = np.array(mesh.pos)
    part = np.array(mesh.part)
    arclen = np.array(mesh.arclen)
    quads = np.array(mesh.quads, np.int64)
    V = len(pos)
    assert V == NUM_VERTICES, V
    # Every vertex is used (the cap interior vertices were moved, not dropped).
    assert len(np.unique(quads)) == V

    # Smooth (Taubin: no shrinkage), then flatten the soles on the ground.
    edges = _vertex_neighbours(quads, V)
    for _ in range(_SMOOTH_ITERS):
        pos = pos + 0.5 * _laplacian(pos, edges, V)
        pos = pos - 0.53 * _laplacian(pos, edges, V)
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

    # ---- Skinning weights: bone by part and arclength, diffused over the mesh.
    J = 24
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

    by_arclen(part == LEG_L, leg_paths[LEG_L], [1, 4, 7, 10])
    by_arclen(part == LEG_R, leg_paths[LEG_R], [2, 5, 8, 11])
    by_arclen(part == ARM_L, arm_paths[ARM_L], [16, 18, 20, 22])
    by_arclen(part == ARM_R, arm_paths[ARM_R], [17, 19, 21, 23])
    by_arclen(part == HEAD, head_path, [12, 15])
    W = np.eye(J)[bone]
    for _ in range(14):
        W = W + 0.5 * _laplacian(W, edges, V)
    top = np.argsort(-W, axis=1, kind="stable")[:, 4:]
    np.put_along_axis(W, top, 0.0, axis=1)
    W[W < 1e-4] = 0.0
    W /= W.sum(axis=1, keepdims=True)

    # ---- Joint regressor: convex combinations of nearby vertices reproducing the design joints.
    J_reg = np.zeros((J, V))
    near = np.argsort(np.linalg.norm(pos[None] - JD[:, None], axis=2), axis=1, kind="stable")[
        :, :48
    ]
    np.put_along_axis(J_reg, near, _convex_weights(pos[near], JD), axis=1)
    J_rest = J_reg @ pos

    # ---- Shape directions (per unit beta).
    normals = _vertex_normals(pos, tris)
    x, y = pos[:, 0], pos[:, 1]
    ground = _smoothstep(y, 0.0, 0.06)  # keeps the soles on y = 0
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

    # ---- Pose directions: outward bulge around a bent joint (diagonal of R_j - I).
    P = np.zeros((V, 3, (J - 1) * 9))
    for j in range(1, J):
        bump = 4.0 * W[:, j] * W[:, SMPL_PARENTS[j]]
        for a in range(3):
            P[:, :, (j - 1) * 9 + 4 * a] = -0.01 * bump[:, None] * normals
    P[:, 1, :] *= ground[:, None]

    # ---- Named vertex sets.
    sole = np.nonzero(legs & (pos[:, 1] <= 0.0))[0].astype(np.int32)
    foot_ids = []
    for leg in (LEG_L, LEG_R):
        s = sole[part[sole] == leg]
        foot_ids += [s[np.argmax(pos[s, 2])], s[np.argmin(pos[s, 2])]]

    kintree = np.stack([np.array(SMPL_PARENTS, np.int64) % (2**32), np.arange(J)]).astype(np.uint32)
    return {
        "v_template": pos.astype(np.float32),
        "shapedirs": S.astype(np.float32),
        "posedirs": P.astype(np.float32),
        "J_regressor": J_reg.astype(np.float32),
        "weights": W.astype(np.float32),
        "kintree_table": kintree,
        "f": tris.astype(np.uint32),
        "sole_ids": sole,
        "foot_ids": np.array(foot_ids, np.int32),
        "part": part.astype(np.int32),
    }


@functools.lru_cache(maxsize=1)
def mannequin() -> BodyModel:
    """The built-in licence-free body as a float32 `BodyModel` named "mannequin" (memoised)."""
    return model_from_arrays(
        mannequin_arrays(), "mannequin", num_betas=10, num_expression=0, name="mannequin"
    )
