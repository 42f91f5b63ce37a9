"""The camera trajectory in TUM format (`timestamp tx ty tz qx qy qz qw`, readable by evo)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from josh_jax.io.atomic import write_text
from josh_jax.io.result_npz import ResultFormatError
from josh_jax.result import Result


def _matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """float[N, 4] xyzw unit quaternions (w >= 0) of rotation matrices float[N, 3, 3] (host)."""
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
    return write_text(path, text)


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
