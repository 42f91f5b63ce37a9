"""The `Result` as one `.npz` (no pickles; every key documented in `docs/outputs.md`), and back."""

from __future__ import annotations

import zipfile

import numpy as np

from josh_jax.errors import InputError
from josh_jax.io.atomic import atomic_write
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


class ResultFormatError(InputError):
    """A result file that cannot be read: names the file, the key, expected and found."""


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

    with atomic_write(path) as tmp:
        savez_deflated(tmp, arrays)
    return path


def savez_deflated(path: str, arrays: dict[str, np.ndarray], level: int = 1) -> None:
    """`np.savez_compressed` at zlib level `level` (numpy's fixed default is 6): the same `.npz`
    layout that `np.load` reads; level 1 compresses ~2x faster, files ~2 % larger."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for key, value in arrays.items():
            with z.open(key + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


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
