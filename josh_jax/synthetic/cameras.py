"""Camera trajectories of the synthetic world: static, pan, orbit and hand-held walk-along.

Cameras are OpenCV (x right, y down, z forward); `T_world_cam` maps camera to world
(`X_world = R @ X_cam + t`). Trajectories are built per video frame from the people's pelvis
paths, so the person stays in view.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

CAMERAS = ("static", "pan", "orbit", "walk_along")

# Keep cameras this far inside the room's walls (see scenes._ROOM) and out of clutter.
_BOUNDS = dict(xmin=-3.9, xmax=3.9, zmin=-4.5, zmax=5.0)


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world poses looking from `eye` at `target`, level (no roll), world up +y.

    Args:
        eye: float64[..., 3] camera centres.
        target: float64[..., 3] points to look at.

    Returns:
        float64[..., 4, 4] T_world_cam.
    """
    eye, target = np.broadcast_arrays(np.asarray(eye, np.float64), np.asarray(target, np.float64))
    z = target - eye
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    down = np.broadcast_to([0.0, -1.0, 0.0], z.shape)
    x = np.cross(down, z)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    T = np.zeros(eye.shape[:-1] + (4, 4))
    T[..., :3, 0], T[..., :3, 1], T[..., :3, 2], T[..., :3, 3] = x, y, z, eye
    T[..., 3, 3] = 1.0
    return T


def smooth_noise(rng: np.random.Generator, num: int, dims: int, sigma: float) -> np.ndarray:
    """Low-frequency noise with unit standard deviation per dimension.

    Args:
        rng: generator.
        num: number of samples (frames).
        dims: channels.
        sigma: Gaussian smoothing width in samples (0: white noise).

    Returns:
        float64[num, dims].
    """
    white = rng.standard_normal((num + 8 * int(sigma + 1), dims))
    smooth = ndimage.gaussian_filter1d(white, sigma, axis=0) if sigma > 0 else white
    smooth = smooth[4 * int(sigma + 1):][:num]
    return smooth / (smooth.std(axis=0, keepdims=True) + 1e-12)


def _clamp_inside(eye: np.ndarray) -> np.ndarray:
    eye = eye.copy()
    eye[..., 0] = np.clip(eye[..., 0], _BOUNDS["xmin"], _BOUNDS["xmax"])
    eye[..., 2] = np.clip(eye[..., 2], _BOUNDS["zmin"], _BOUNDS["zmax"])
    return eye


def camera_trajectory(kind: str, pelvis_world: np.ndarray, heading: np.ndarray,
                      rng: np.random.Generator, *, distance: float = 3.2, height: float = 1.5,
                      orbit_degrees: float = 90.0, jitter_pos_m: float = 0.02,
                      jitter_rot_deg: float = 1.0, fps: float = 30.0,
                      side_sign: float | None = None) -> np.ndarray:
    """Camera poses for every video frame.

    Args:
        kind: one of `CAMERAS`. "static": fixed, looking at the middle of the people's path from
            the side. "pan": fixed position, turning to follow the people. "orbit": circles the
            path's centre by `orbit_degrees` while looking at the people. "walk_along": a
            hand-held camera walking beside and ahead of the first person, with smooth position
            and rotation jitter.
        pelvis_world: float64[F, 3] mean pelvis of the people per video frame.
        heading: float64[F] heading of the first person (radians about +y; 0 = facing +z).
        rng: generator.
        distance: camera-to-subject distance in metres.
        height: camera height in metres.
        orbit_degrees: arc covered by "orbit".
        jitter_pos_m: hand-held position jitter (standard deviation, metres; walk_along and pan).
        jitter_rot_deg: hand-held rotation jitter (standard deviation, degrees).
        fps: video frame rate (sets the jitter's frequency content).
        side_sign: which side of the path (+1 / -1, in x for a path along z) the camera is on;
            None: random.

    Returns:
        float64[F, 4, 4] T_world_cam.
    """
    if kind not in CAMERAS:
        raise ValueError(f"camera: expected one of {CAMERAS}, found {kind!r}")
    num = len(pelvis_world)
    centre = pelvis_world.mean(axis=0)
    path_dir = pelvis_world[-1] - pelvis_world[0]
    path_dir[1] = 0.0
    if np.linalg.norm(path_dir) < 0.3:  # nearly in place: look at the person from the front
        path_dir = np.array([np.sin(heading[0]), 0.0, np.cos(heading[0])])
    path_dir /= np.linalg.norm(path_dir)
    sign = rng.choice([-1.0, 1.0])
    side = np.cross([0.0, 1.0, 0.0], path_dir)
    if side_sign is not None:
        sign = side_sign * (np.sign(side[0]) or 1.0)
    side = side * sign
    # Looking a little below the pelvis keeps the feet in the frame.
    target_smooth = ndimage.gaussian_filter1d(pelvis_world, 0.3 * fps, axis=0, mode="nearest")
    target_smooth = target_smooth + np.array([0.0, -0.15, 0.0])
    up = np.array([0.0, 1.0, 0.0])
    shake_pos = np.zeros((num, 3))
    shake_rot = np.zeros((num, 3))
    if kind == "static":
        eye = np.broadcast_to(centre + distance * 1.25 * side + 0.4 * path_dir, (num, 3)).copy()
        eye[:, 1] = height
        target = np.broadcast_to(centre + np.array([0.0, -0.3, 0.0]), (num, 3))
    elif kind == "pan":
        eye = np.broadcast_to(centre + distance * side - 0.8 * path_dir, (num, 3)).copy()
        eye[:, 1] = height
        target = target_smooth
        shake_rot = 0.5 * jitter_rot_deg * smooth_noise(rng, num, 3, 0.2 * fps)
    elif kind == "orbit":
        start = np.arctan2(side[0], side[2]) - 0.5 * np.deg2rad(orbit_degrees)
        angle = start + np.linspace(0.0, np.deg2rad(orbit_degrees), num)
        eye = centre + distance * np.stack([np.sin(angle), np.zeros(num), np.cos(angle)], 1)
        eye[:, 1] = height
        target = 0.5 * (target_smooth + centre)
    else:  # walk_along
        h = ndimage.gaussian_filter1d(np.unwrap(heading), 0.5 * fps, mode="nearest")
        fwd = np.stack([np.sin(h), np.zeros(num), np.cos(h)], 1)
        lateral = np.cross(up, fwd) * np.sign(side @ np.cross(up, path_dir) + 1e-9)
        base = ndimage.gaussian_filter1d(pelvis_world, 0.5 * fps, axis=0, mode="nearest")
        eye = base + 0.7 * distance * lateral + 0.6 * distance * fwd
        eye[:, 1] = height
        target = target_smooth
        # Hand-held: slow drift plus a faster bounce at the walking step frequency.
        shake_pos = jitter_pos_m * smooth_noise(rng, num, 3, 0.15 * fps)
        shake_rot = jitter_rot_deg * smooth_noise(rng, num, 3, 0.1 * fps)
    eye = _clamp_inside(eye + shake_pos)
    T = look_at(eye, target)
    if np.any(shake_rot):
        R_shake = Rotation.from_rotvec(np.deg2rad(shake_rot)).as_matrix()
        T[:, :3, :3] = T[:, :3, :3] @ R_shake
    return T
