"""The scene as files: points, bodies and camera frusta as binary glTF, the point cloud as `.ply`."""

from __future__ import annotations

import numpy as np
import trimesh

from josh_jax.io.atomic import write_bytes
from josh_jax.result import Result

# One colour per track (RGB), shared by the scene files and the preview.
TRACK_COLORS = np.array([[230, 90, 60], [60, 140, 230], [90, 200, 90], [220, 180, 40],
                         [170, 90, 210], [40, 200, 200]], np.uint8)


def scene_point_cloud(result: Result, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(points float[N, 3], colours uint8[N, 3]) of the masked scene points of all keyframes."""
    mask = np.asarray(result.scene_mask, bool)
    points = np.asarray(result.scene_points_world, np.float32)[mask]
    colors = np.asarray(result.scene_colors, np.uint8)[mask]
    finite = np.all(np.isfinite(points), axis=-1)
    points, colors = points[finite], colors[finite]
    if max_points is not None and points.shape[0] > max_points:
        keep = np.linspace(0, points.shape[0] - 1, max_points).astype(np.int64)
        points, colors = points[keep], colors[keep]
    return points, colors


def camera_frustum(T_world_cam: np.ndarray, K: np.ndarray, image_size: tuple[int, int],
                   depth: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A pyramid mesh (vertices float[5, 3], faces int[6, 3]) for one camera, apex at its centre."""
    H, W = image_size
    corners_uv = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], np.float64)
    f_x, f_y, c_x, c_y = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x = (corners_uv[:, 0] - c_x) / f_x * depth
    y = (corners_uv[:, 1] - c_y) / f_y * depth
    corners_cam = np.stack([x, y, np.full(4, depth)], -1)
    verts_cam = np.concatenate([np.zeros((1, 3)), corners_cam])
    verts = verts_cam @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1], [1, 3, 2], [1, 4, 3]], np.int64)
    return verts, faces


def build_trimesh_scene(result: Result, *, max_points: int = 300_000,
                        body_frames: str = "keyframes", frustum_depth: float | None = None):
    """A `trimesh.Scene`: scene point cloud, body meshes, camera frusta (keyframes).

    Args:
      result: the result.
      max_points: cap on scene points (evenly subsampled).
      body_frames: "keyframes" (one mesh per valid keyframe and track), "first" or "none".
      frustum_depth: frustum size in world units (default: 3 % of the scene extent).
    """
    scene = trimesh.Scene()
    points, colors = scene_point_cloud(result, max_points)
    if points.shape[0]:
        rgba = np.concatenate([colors, np.full((colors.shape[0], 1), 255, np.uint8)], -1)
        scene.add_geometry(trimesh.PointCloud(points, colors=rgba), geom_name="scene_points")

    faces = np.asarray(result.faces)
    valid = np.asarray(result.smpl_valid, bool)
    verts = np.asarray(result.vertices_world, np.float32)
    positions = result.keyframe_positions
    if body_frames == "first":
        positions = positions[:1]
    elif body_frames == "none":
        positions = positions[:0]
    if faces.size and verts.size:
        for p in range(valid.shape[0]):
            color = np.append(TRACK_COLORS[p % len(TRACK_COLORS)], 255).astype(np.uint8)
            for f in positions:
                if not valid[p, f]:
                    continue
                mesh = trimesh.Trimesh(verts[p, f], faces, process=False)
                mesh.visual.vertex_colors = np.broadcast_to(color, (verts.shape[2], 4))
                scene.add_geometry(mesh, geom_name=f"body_track{p}_frame{int(result.frame_index[f])}")

    T_all = np.asarray(result.T_world_cam, np.float64)
    K_all = np.asarray(result.K, np.float64)
    if frustum_depth is None:
        centres = T_all[:, :3, 3]
        extent = np.ptp(points, axis=0).max() if points.shape[0] else np.ptp(centres, 0).max()
        frustum_depth = float(max(0.03 * extent, 1e-2))
    for f in result.keyframe_positions:
        v, fc = camera_frustum(T_all[f], K_all[f], result.image_size, frustum_depth)
        mesh = trimesh.Trimesh(v, fc, process=False)
        mesh.visual.face_colors = np.broadcast_to(np.array([250, 60, 60, 255], np.uint8), (6, 4))
        scene.add_geometry(mesh, geom_name=f"camera_frame{int(result.frame_index[f])}")
    return scene


def write_glb(path: str, result: Result, **kwargs) -> str:
    """Scene points, bodies at the keyframes and camera frusta as one binary glTF."""
    scene = build_trimesh_scene(result, **kwargs)
    return write_bytes(path, scene.export(file_type="glb"))


def write_ply(path: str, result: Result, max_points: int | None = None) -> str:
    """The coloured scene point cloud (all keyframes, masked) as a binary `.ply`."""
    points, colors = scene_point_cloud(result, max_points)
    rgba = np.concatenate([colors, np.full((colors.shape[0], 1), 255, np.uint8)], -1)
    cloud = trimesh.PointCloud(points, colors=rgba)
    return write_bytes(path, cloud.export(file_type="ply"))
