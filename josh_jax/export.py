"""Writers for a `Result`: `.npz`, `.glb` / `.ply` (trimesh), TUM trajectory, `.mp4` preview, JSON.

Every writer goes through `atomic_write`: the file is written under a temporary name in the
destination folder and renamed with `os.replace`, so a reader never sees a partial file under the
final name, a failure leaves the previous file (if any) untouched, and nothing else in the folder is
touched. Every key of the `.npz` is documented in `docs/outputs.md`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from josh_jax.result import Result

NPZ_FORMAT_VERSION = "josh_jax.result/1"

# Result fields stored under their own name in the .npz (see docs/outputs.md).
_ARRAY_FIELDS = (
    "frame_index", "keyframe_index", "fps", "T_world_cam", "K",
    "scene_points_world", "scene_colors", "scene_conf", "scene_mask",
    "smpl_global_orient", "smpl_body_pose", "smpl_betas", "smpl_transl", "smpl_valid",
    "joints_world", "vertices_world", "faces",
)
_STATIC_FIELDS = ("body_model", "world_convention", "config_json")


class ResultFormatError(ValueError):
    """A result file that cannot be read: names the file, the key, expected and found."""

    def __init__(self, path: str, key: str, expected: str, found: Any):
        super().__init__(f"{path}: key '{key}': expected {expected}, found {found}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to `path`; on success rename it to `path`, else delete it.

    The temporary name keeps the extension (writers such as imageio pick the format from it) and
    starts with a dot so that globs over the folder do not pick it up.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    _, ext = os.path.splitext(base)
    if base.endswith(".tar.gz"):
        ext = ".tar.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _write_with(path: str, fn: Callable[[str], None]) -> str:
    with atomic_write(path) as tmp:
        fn(tmp)
    return path


# ---------------------------------------------------------------------------------------------
# .npz
# ---------------------------------------------------------------------------------------------


def result_to_arrays(result: Result, *, vertices: str = "float16") -> dict[str, np.ndarray]:
    """The flat dict of arrays written to the `.npz` (keys in docs/outputs.md).

    Args:
      result: the result.
      vertices: "float32", "float16" (half the size; ~1 mm resolution at a few metres) or "none".
    """
    if vertices not in ("float32", "float16", "none"):
        raise ValueError(f"vertices: expected 'float32', 'float16' or 'none', found {vertices!r}")
    out: dict[str, np.ndarray] = {"format_version": np.asarray(NPZ_FORMAT_VERSION)}
    for name in _ARRAY_FIELDS:
        arr = np.asarray(getattr(result, name))
        if name == "vertices_world":
            if vertices == "none":
                continue
            arr = arr.astype(np.float16 if vertices == "float16" else np.float32)
        out[name] = arr
    out["image_size"] = np.asarray(result.image_size, np.int32)
    out["scene_stride"] = np.asarray(result.scene_stride, np.int32)
    for name in _STATIC_FIELDS:
        out[name] = np.asarray(str(getattr(result, name)))
    for key, value in result.diagnostics.items():
        out[f"diag_{key}"] = np.asarray(value)
    return out


def save_result_npz(path: str, result: Result, *, vertices: str = "float16") -> str:
    """Write `result` to `path` (`.npz`, no pickles, compressed) atomically. Returns `path`."""
    arrays = result_to_arrays(result, vertices=vertices)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return _write_with(path, write)


def load_result_npz(path: str) -> Result:
    """Read a result `.npz` written by `save_result_npz` (vertices recomputed as zeros if absent)."""
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    version = str(data.get("format_version", "<missing>"))
    if version != NPZ_FORMAT_VERSION:
        raise ResultFormatError(path, "format_version", repr(NPZ_FORMAT_VERSION), repr(version))
    for name in _ARRAY_FIELDS + ("image_size", "scene_stride") + _STATIC_FIELDS:
        if name not in data and name != "vertices_world":
            raise ResultFormatError(path, name, "present", "missing")
    if "vertices_world" in data:
        verts = data["vertices_world"].astype(np.float32)
    else:
        P, F = data["smpl_valid"].shape
        V = int(data["faces"].max()) + 1 if data["faces"].size else 0
        verts = np.zeros((P, F, V, 3), np.float32)
    fields = {name: data[name] for name in _ARRAY_FIELDS if name != "vertices_world"}
    return Result(
        **fields,
        vertices_world=verts,
        diagnostics={k[5:]: v for k, v in data.items() if k.startswith("diag_")},
        image_size=tuple(int(v) for v in data["image_size"]),
        scene_stride=int(data["scene_stride"]),
        body_model=str(data["body_model"]),
        world_convention=str(data["world_convention"]),
        config_json=str(data["config_json"]),
    )


# ---------------------------------------------------------------------------------------------
# TUM trajectory
# ---------------------------------------------------------------------------------------------


def _matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """float[N, 4] xyzw unit quaternions (w >= 0) of rotation matrices float[N, 3, 3] (host)."""
    from scipy.spatial.transform import Rotation  # noqa: PLC0415

    q = Rotation.from_matrix(np.asarray(R, np.float64)).as_quat()  # xyzw
    return np.where(q[:, 3:4] < 0, -q, q)


def tum_lines(result: Result) -> list[str]:
    """`timestamp tx ty tz qx qy qz qw` per video frame: camera-to-world pose, time in seconds."""
    T = np.asarray(result.T_world_cam, np.float64)
    q = _matrix_to_quat_xyzw(T[:, :3, :3])
    times = np.asarray(result.frame_index, np.float64) / float(result.fps)
    return [
        f"{s:.6f} " + " ".join(f"{v:.9f}" for v in (*t, *qq))
        for s, t, qq in zip(times, T[:, :3, 3], q, strict=True)
    ]


def write_tum(path: str, result: Result) -> str:
    """Camera trajectory (camera-to-world, world = `result.world_convention`) in TUM format."""
    text = "# timestamp tx ty tz qx qy qz qw (camera-to-world, OpenCV camera)\n"
    text += "\n".join(tum_lines(result)) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    return _write_with(path, write)


def read_tum(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps float[N], poses float[N, 7] as tx ty tz qx qy qz qw) of a TUM file."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 8:
                raise ResultFormatError(path, f"line {i + 1}", "8 numbers", len(parts))
            rows.append([float(p) for p in parts])
    arr = np.asarray(rows, np.float64).reshape(-1, 8)
    return arr[:, 0], arr[:, 1:]


# ---------------------------------------------------------------------------------------------
# Scene files (trimesh)
# ---------------------------------------------------------------------------------------------


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


_TRACK_COLORS = np.array([[230, 90, 60], [60, 140, 230], [90, 200, 90], [220, 180, 40],
                          [170, 90, 210], [40, 200, 200]], np.uint8)


def build_trimesh_scene(result: Result, *, max_points: int = 300_000,
                        body_frames: str = "keyframes", frustum_depth: float | None = None):
    """A `trimesh.Scene`: scene point cloud, body meshes, camera frusta (keyframes).

    Args:
      result: the result.
      max_points: cap on scene points (evenly subsampled).
      body_frames: "keyframes" (one mesh per valid keyframe and track), "first" or "none".
      frustum_depth: frustum size in world units (default: 3 % of the scene extent).
    """
    import trimesh  # noqa: PLC0415

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
            color = np.append(_TRACK_COLORS[p % len(_TRACK_COLORS)], 255).astype(np.uint8)
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

    def write(tmp: str) -> None:
        data = scene.export(file_type="glb")
        with open(tmp, "wb") as f:
            f.write(data)

    return _write_with(path, write)


def write_ply(path: str, result: Result, max_points: int | None = None) -> str:
    """The coloured scene point cloud (all keyframes, masked) as a binary `.ply`."""
    import trimesh  # noqa: PLC0415

    points, colors = scene_point_cloud(result, max_points)
    rgba = np.concatenate([colors, np.full((colors.shape[0], 1), 255, np.uint8)], -1)
    cloud = trimesh.PointCloud(points, colors=rgba)

    def write(tmp: str) -> None:
        data = cloud.export(file_type="ply")
        with open(tmp, "wb") as f:
            f.write(data)

    return _write_with(path, write)


# ---------------------------------------------------------------------------------------------
# Preview video
# ---------------------------------------------------------------------------------------------


def render_points(points_world: np.ndarray, colors: np.ndarray, T_world_cam: np.ndarray,
                  K: np.ndarray, size: tuple[int, int], splat: int = 1,
                  background: int = 24) -> np.ndarray:
    """Z-buffered point splat of world points seen by one camera.

    Args:
      points_world: float[N, 3]; colors: uint8[N, 3].
      T_world_cam: float[4, 4] camera-to-world; K: float[3, 3] intrinsics of this image `size`.
      size: (H, W) of the output image.
      splat: side in pixels of the square each point covers.

    Returns:
      uint8[H, W, 3] image; the nearest point wins each pixel.
    """
    H, W = size
    R, t = T_world_cam[:3, :3], T_world_cam[:3, 3]
    x_cam = (points_world - t) @ R  # R^T (x - t), row form
    z = x_cam[:, 2]
    front = z > 1e-3
    x_cam, z, colors = x_cam[front], z[front], colors[front]
    # Far to near (one sort of the N points; the splat offsets keep that order): with repeated
    # indices numpy's assignment keeps the last value, i.e. the nearest point wins.
    order = np.argsort(-z, kind="stable")
    x_cam, z, colors = x_cam[order], z[order], colors[order]
    u = np.rint(K[0, 0] * x_cam[:, 0] / z + K[0, 2]).astype(np.int64)
    v = np.rint(K[1, 1] * x_cam[:, 1] / z + K[1, 2]).astype(np.int64)
    offsets = np.arange(splat) - (splat - 1) // 2
    du, dv = (a.reshape(-1) for a in np.meshgrid(offsets, offsets, indexing="ij"))
    u = (u[:, None] + du[None]).reshape(-1)
    v = (v[:, None] + dv[None]).reshape(-1)
    colors = np.repeat(colors, du.shape[0], axis=0)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    image = np.full((H, W, 3), background, np.uint8)
    image.reshape(-1, 3)[(v * W + u)[inside]] = colors[inside]
    return image


def preview_frames(result: Result, *, width: int = 320, max_points: int = 60_000,
                   splat: int = 2) -> np.ndarray:
    """uint8[F, h, w, 3]: scene points and bodies rendered from every estimated camera.

    The output size keeps the aspect ratio, with sides rounded to multiples of 16 (video codecs).
    """
    H, W = result.image_size
    w = max(16, int(round(width / 16)) * 16)
    h = max(16, int(round(H * w / W / 16)) * 16)
    scale = np.array([w / W, h / H, 1.0])
    points, colors = scene_point_cloud(result, max_points)
    verts = np.asarray(result.vertices_world, np.float32)
    valid = np.asarray(result.smpl_valid, bool)
    T_all = np.asarray(result.T_world_cam, np.float64)
    K_all = np.asarray(result.K, np.float64)
    frames = []
    for f in range(result.num_frames):
        pts, cols = [points], [colors]
        for p in range(valid.shape[0]):
            if valid[p, f] and verts.size:
                pts.append(verts[p, f])
                cols.append(np.broadcast_to(_TRACK_COLORS[p % len(_TRACK_COLORS)],
                                            verts[p, f].shape))
        K = K_all[f] * scale[:, None]
        frames.append(render_points(np.concatenate(pts).astype(np.float64), np.concatenate(cols),
                                    T_all[f], K, (h, w), splat=splat))
    return np.stack(frames)


def write_preview_mp4(path: str, result: Result, **kwargs) -> str:
    """An `.mp4` preview (H.264 via imageio-ffmpeg) at the video's fps, one frame per video frame."""
    import imageio.v3 as iio  # noqa: PLC0415

    frames = preview_frames(result, **kwargs)

    def write(tmp: str) -> None:
        iio.imwrite(tmp, frames, plugin="FFMPEG", fps=float(result.fps), codec="libx264",
                    macro_block_size=16)

    return _write_with(path, write)


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    arr = np.asarray(value)
    if arr.dtype.kind in "fiub":
        return arr.item() if arr.ndim == 0 else arr.tolist()
    return str(value)


def write_json(path: str, data: dict[str, Any]) -> str:
    """`data` (numbers, arrays, nested dicts) as indented JSON, written atomically."""
    text = json.dumps(_jsonable(data), indent=1, sort_keys=True, allow_nan=True)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text + "\n")

    return _write_with(path, write)


def write_all(out_dir: str, stem: str, result: Result, *, metrics: dict | None = None,
              npz: bool = True, glb: bool = True, ply: bool = False, tum: bool = True,
              mp4: bool = True, vertices: str = "float16") -> dict[str, str]:
    """Write the standard outputs of one clip as `{out_dir}/{stem}.{npz,glb,ply,txt,mp4}` and
    `{stem}.metrics.json` (when `metrics` is given). Returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    written = {}
    if npz:
        written["npz"] = save_result_npz(base + ".npz", result, vertices=vertices)
    if glb:
        written["glb"] = write_glb(base + ".glb", result)
    if ply:
        written["ply"] = write_ply(base + ".ply", result)
    if tum:
        written["tum"] = write_tum(base + ".tum.txt", result)
    if mp4:
        written["mp4"] = write_preview_mp4(base + ".mp4", result)
    if metrics is not None:
        written["metrics"] = write_json(base + ".metrics.json", metrics)
    return written
