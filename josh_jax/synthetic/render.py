"""Rendering of the synthetic world: depth, RGB, human masks (numpy, vectorised).

The scene (convex solids) is ray cast exactly, one ray per pixel centre; the people (triangle
meshes) are rasterised with a z-buffer; both are merged by depth. Pixel (u, v) looks along
`((u - cx) / f, (v - cy) / f, 1)` in OpenCV camera coordinates; depth is the camera z.
"""

from __future__ import annotations

import numpy as np

from josh_jax.raster import rasterize  # noqa: F401  (re-exported: moved to the library)
from josh_jax.synthetic import scenes

_LIGHT = np.array([0.35, 1.0, 0.25]) / np.linalg.norm([0.35, 1.0, 0.25])


def pixel_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Camera-frame ray through each pixel centre with unit z: float64[H, W, 3]."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64),
                       indexing="ij")
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)


def render_scene(scene: scenes.Scene, K: np.ndarray, T_world_cam: np.ndarray, height: int,
                 width: int) -> dict:
    """Ray casts the scene from one camera.

    Args:
        scene: the scene.
        K: float64[3, 3] intrinsics.
        T_world_cam: float64[4, 4] camera-to-world.
        height, width: image size.

    Returns:
        dict with depth float64[H, W] (camera z), solid int32[H, W], normal_world float64[H, W, 3],
        points_world float64[H, W, 3].
    """
    rays_cam = pixel_rays(K, height, width).reshape(-1, 3)
    R, t = T_world_cam[:3, :3], T_world_cam[:3, 3]
    # With unit-z camera rays, the ray parameter is the depth itself.
    dirs_world = rays_cam @ R.T
    # Only pixels inside a solid's projected bounding box can see it (all pixels if the solid
    # reaches behind the camera).
    candidates = []
    for s in scene.solids:
        if s.inside_out:
            candidates.append(None)
            continue
        x_cam = (s.vertices - t) @ R
        if np.any(x_cam[:, 2] <= 1e-6):
            candidates.append(None)
            continue
        u = K[0, 0] * x_cam[:, 0] / x_cam[:, 2] + K[0, 2]
        v = K[1, 1] * x_cam[:, 1] / x_cam[:, 2] + K[1, 2]
        u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())), width - 1)
        v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())), height - 1)
        if u0 > u1 or v0 > v1:
            candidates.append(np.zeros(0, np.int64))
            continue
        vv, uu = np.meshgrid(np.arange(v0, v1 + 1), np.arange(u0, u1 + 1), indexing="ij")
        candidates.append((vv * width + uu).ravel())
    depth, solid, normal = scenes.cast_rays(scene, t[None], dirs_world, candidates)
    points = t + depth[:, None] * dirs_world
    shape = (height, width)
    return dict(depth=depth.reshape(shape), solid=solid.reshape(shape),
                normal_world=normal.reshape(shape + (3,)), points_world=points.reshape(shape + (3,)))


def face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals of triangles: float64[F, 3] (zero for degenerate ones)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(b - a, c - a)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def render_frame(scene: scenes.Scene, K: np.ndarray, T_world_cam: np.ndarray, height: int,
                 width: int, people_verts_world=(), faces=None, people_vertex_colours=()) -> dict:
    """Renders one frame: the scene and every person, merged by depth.

    Args:
        scene: the scene.
        K: float64[3, 3] intrinsics.
        T_world_cam: float64[4, 4].
        height, width: image size.
        people_verts_world: sequence of float64[V, 3] world vertices, one per person.
        faces: int[F, 3] body triangles.
        people_vertex_colours: sequence of float64[V, 3] colours in [0, 1], one per person.

    Returns:
        dict: depth float64[H, W] (camera z of the first surface), scene_depth float64[H, W],
        person int32[H, W] (index of the person seen, -1 for the scene), rgb uint8[H, W, 3],
        solid int32[H, W] (scene solid behind each pixel).
    """
    out = render_scene(scene, K, T_world_cam, height, width)
    depth = out["depth"].copy()
    person = np.full((height, width), -1, np.int32)
    person_face = np.full((height, width), -1, np.int32)
    R_cam_world = T_world_cam[:3, :3].T
    t_cam_world = -R_cam_world @ T_world_cam[:3, 3]
    for p, verts in enumerate(people_verts_world):
        verts_cam = verts @ R_cam_world.T + t_cam_world
        d, fid = rasterize(verts_cam, faces, K, height, width)
        closer = d < depth
        depth = np.where(closer, d, depth)
        person = np.where(closer, p, person)
        person_face = np.where(closer, fid, person_face)
    # Scene colour: textured albedo, Lambert shading with an ambient term.
    solid = out["solid"].reshape(-1)
    albedo = scenes.albedo_at(scene, solid, out["points_world"].reshape(-1, 3))
    lambert = np.abs(out["normal_world"].reshape(-1, 3) @ _LIGHT)
    rgb = albedo * (0.45 + 0.55 * lambert)[:, None]
    # Fog-like darkening with distance gives far surfaces less contrast, as in real footage.
    rgb = rgb * np.exp(-0.03 * out["depth"].reshape(-1))[:, None]
    flat_person, flat_face = person.reshape(-1), person_face.reshape(-1)
    for p, verts in enumerate(people_verts_world):
        sel = flat_person == p
        if not np.any(sel):
            continue
        fids = flat_face[sel]
        normals = face_normals(verts, faces)[fids]
        colour = people_vertex_colours[p][faces[fids, 0]]
        rgb[sel] = colour * (0.4 + 0.6 * np.abs(normals @ _LIGHT))[:, None]
    rgb8 = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8).reshape(height, width, 3)
    return dict(depth=depth, scene_depth=out["depth"], person=person, rgb=rgb8,
                solid=out["solid"])
