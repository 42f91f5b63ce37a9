"""Convex solids (boxes, wedges, the room) as planes (for ray casting) and triangles.

Every solid of the synthetic scenes (and of the reference clip's scene) is a convex polytope. One
representation serves both uses: its bounding planes `n . x <= d` make ray casting exact and
vectorised (`synthetic.render.raycast_scene`), and its convex hull gives the triangle mesh stored
as ground truth (`gt_scene_vertices/faces`).
World frame: metres, y up, ground y = 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import spatial


@dataclasses.dataclass(frozen=True)
class Solid:
    """One convex solid.

    Attributes:
        planes: float64[P, 4] rows (nx, ny, nz, d), outward unit normal n, inside where n . x <= d.
        vertices: float64[N, 3] corners.
        faces: int32[F, 3] outward-oriented triangles over `vertices`.
        albedo: float64[3] base colour in [0, 1].
        kind: name of the part ("floor", "wall", "box", "step", "slope", "seat", ...).
        inside_out: True for the room: rays start inside and hit its inner faces.
    """

    planes: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    albedo: np.ndarray
    kind: str
    inside_out: bool = False


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about +y by `yaw` radians (x towards -z for positive yaw): float64[3, 3]."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def convex_solid(vertices: np.ndarray, albedo, kind: str, inside_out: bool = False) -> Solid:
    """Builds a `Solid` from the corners of a convex polytope (planes and faces from the hull).

    Args:
        vertices: float64[N, 3] corners (N >= 4, not coplanar).
        albedo: 3 floats in [0, 1].
        kind: part name.
        inside_out: the room; faces then point inwards.

    Returns:
        The solid.
    """
    vertices = np.asarray(vertices, np.float64)
    hull = spatial.ConvexHull(vertices)
    centre = vertices.mean(axis=0)
    faces = hull.simplices.astype(np.int32).copy()
    # Orient triangles outwards (inwards for the room, whose inner faces are what is seen).
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    outward = np.einsum("fi,fi->f", normal, a - centre) > 0
    flip = outward == inside_out
    faces[flip] = faces[flip][:, ::-1]
    # Merge the hull's coplanar facets into unique planes.
    eq = hull.equations  # (n, d') with n . x + d' <= 0 inside
    planes = np.concatenate([eq[:, :3], -eq[:, 3:]], axis=1)
    keys = np.round(planes, 6)
    _, keep = np.unique(keys, axis=0, return_index=True)
    planes = planes[np.sort(keep)]
    return Solid(planes=planes, vertices=vertices, faces=faces,
                 albedo=np.asarray(albedo, np.float64), kind=kind, inside_out=inside_out)


def box_corners(centre, size, yaw: float = 0.0) -> np.ndarray:
    """Corners of a box rotated by `yaw` about +y.

    Args:
        centre: (x, y, z) of the box centre.
        size: (sx, sy, sz) full extents.
        yaw: rotation about +y in radians.

    Returns:
        float64[8, 3].
    """
    half = 0.5 * np.asarray(size, np.float64)
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
    return (signs * half) @ yaw_matrix(yaw).T + np.asarray(centre, np.float64)


def box(centre, size, albedo, kind: str = "box", yaw: float = 0.0) -> Solid:
    """A box solid; see `box_corners`."""
    return convex_solid(box_corners(centre, size, yaw), albedo, kind)


def ground_box(x: float, z: float, size, albedo, kind: str = "box", yaw: float = 0.0,
               base: float = 0.0) -> Solid:
    """A box standing on height `base` (its bottom face at y = base), centred at (x, z)."""
    size = np.asarray(size, np.float64)
    return box((x, base + 0.5 * size[1], z), size, albedo, kind, yaw)


def wedge(x: float, z: float, length: float, width: float, height: float, albedo,
          yaw: float = 0.0, kind: str = "slope") -> Solid:
    """A ramp: a triangular prism on the ground rising from 0 to `height` along local +z.

    Args:
        x, z: centre of the footprint.
        length: footprint length along the slope (local z).
        width: footprint width (local x).
        height: height at the high end.
        albedo: colour.
        yaw: rotation about +y.
        kind: part name.

    Returns:
        The solid (6 corners).
    """
    hw, hl = 0.5 * width, 0.5 * length
    local = np.array([
        [-hw, 0.0, -hl], [hw, 0.0, -hl], [-hw, 0.0, hl], [hw, 0.0, hl],
        [-hw, height, hl], [hw, height, hl],
    ])
    return convex_solid(local @ yaw_matrix(yaw).T + np.array([x, 0.0, z]), albedo, kind)


def room(xmin: float, xmax: float, height: float, zmin: float, zmax: float, albedo) -> Solid:
    """The enclosing room, seen from inside (floor y = 0, walls, ceiling): every ray hits it."""
    corners = np.array([[x, y, z] for x in (xmin, xmax) for y in (0.0, height)
                        for z in (zmin, zmax)], np.float64)
    return convex_solid(corners, albedo, "room", inside_out=True)


def merge_meshes(solids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenates the solids' triangles.

    Returns:
        vertices float64[S, 3], faces int32[F, 3], face_solid int32[F] (index of each face's solid).
    """
    verts, faces, owner, offset = [], [], [], 0
    for k, solid in enumerate(solids):
        verts.append(solid.vertices)
        faces.append(solid.faces + offset)
        owner.append(np.full(len(solid.faces), k, np.int32))
        offset += len(solid.vertices)
    return (np.concatenate(verts), np.concatenate(faces).astype(np.int32),
            np.concatenate(owner))
