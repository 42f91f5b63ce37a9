"""Growing a closed quad mesh: a box lattice, patches extruded along paths, domed caps; Laplacians.

Generic construction used by the built-in mannequin (`body_models/mannequin_surface.py`); numpy
float64 on the host, nothing of the project imported.
"""

from __future__ import annotations

import numpy as np


class QuadMesh:
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


def box(mesh: QuadMesh, n: tuple[int, int, int], part: int):
    """Box lattice surface [0,n0]x[0,n1]x[0,n2]; returns {(axis, sign): {(a, b): quad}}, ids."""
    ids = {}
    for i in range(n[0] + 1):
        for j in range(n[1] + 1):
            for k in range(n[2] + 1):
                if i in (0, n[0]) or j in (0, n[1]) or k in (0, n[2]):
                    ids[(i, j, k)] = mesh.add_vertex((i, j, k), part)
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


def boundary_loop(mesh: QuadMesh, quad_ids):
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


def smooth_path(points, n_dense=400, passes=6):
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


def extrude(mesh, quad_ids, part, control_points, radii, steps, e1_start, cap_len):
    """Extrudes a patch along a path with elliptic rings, closing the end with a dome.

    Args:
      control_points: float[K, 3] path; the first point is the patch centre.
      radii: callable s in [0, 1] -> (r1, r2), ring semi-axes along the frame axes (e1, e2).
      steps: number of new rings; the last ring is the rim of the end cap.
      e1_start: first frame axis at the start (perpendicular to the path start).
      cap_len: how far the dome's apex lies beyond the last ring.
    """
    loop, interior = boundary_loop(mesh, quad_ids)
    dense, s_dense = smooth_path(control_points)
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



def vertex_neighbours(quads, V):
    """int64[E, 2] directed edges of a quad mesh (both directions), sorted by source."""
    edges = np.concatenate([quads[:, [0, 1]], quads[:, [1, 2]], quads[:, [2, 3]], quads[:, [3, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    edges = np.unique(edges, axis=0)
    return edges


def laplacian(x, edges, V):
    """Uniform Laplacian; `edges` sorted by source (np.unique order), every vertex has an edge."""
    starts = np.searchsorted(edges[:, 0], np.arange(V))
    deg = np.diff(np.append(starts, len(edges))).astype(np.float64)
    return np.add.reduceat(x[edges[:, 1]], starts, axis=0) / deg[:, None] - x
