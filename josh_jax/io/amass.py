"""AMASS-style motion files: one `.npz` per person, as the SMPL-X and Meshcapade Blender add-ons load.

Both add-ons' "load animation" operators read `trans`, `gender`, `mocap_frame_rate` (or
`mocap_framerate`), `betas` and `poses` (axis-angle, `[N, 3 * joints]` in the model's joint order,
root first) and key one frame per pose row; `trans` is the smplx `transl` of the pelvis bone. We
write both frame-rate spellings, AMASS's split keys (`root_orient`, `pose_body`, `pose_hand`,
`pose_jaw`, `pose_eye`) and this project's camera per frame.

Layouts (`surface_model_type`):
- SMPL-X results (55 joints): `poses [N, 165]` = root, 21 body joints, jaw, left eye, right eye,
  15 left-hand and 15 right-hand joints (`smplx`, flat hand mean: the rotations are the model's).
- SMPL-H results (52 joints) and SMPL-topology results (24 joints: SMPL, the mannequin):
  `poses [N, 156]` in AMASS's SMPL+H layout (`smplh`): root, 21 body joints, 30 finger joints.
  SMPL has no fingers (zeros there) but two hand joints of its own, kept in `pose_smpl_hands
  [N, 6]` (left, right) so that the file re-poses the SMPL body exactly.
`betas` belong to the result's body model (`body_model` names it; SMPL-family betas are not
interchangeable between models or genders).

World: AMASS is z-up. The result's world is the first keyframe's OpenCV camera (y down, z
forward), mapped by `AMASS_FROM_WORLD` (x' = x, y' = z, z' = -y): the first camera's up direction
becomes +z and its viewing direction +y. Lengths stay in the result's units (metres).
`T_world_cam [N, 4, 4]` (camera-to-world, OpenCV camera axes) and `K [N, 3, 3]` are given in that
world for every row, with `image_size` (H, W).

Rows: the video frames from the person's first to last valid frame (`frame_index`), at the video's
frame rate; frames inside that span where the track is missing hold the nearest valid frame's pose
and are flagged by `valid` (the add-ons key every row).
"""

from __future__ import annotations

import os

import numpy as np
from scipy.spatial.transform import Rotation

import body_models
from josh_jax.io import motion as motion_lib
from josh_jax.io.atomic import atomic_write
from josh_jax.result import Result

AMASS_FORMAT_VERSION = "josh_jax.amass/1"
AMASS_FROM_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_SMPLH_FINGERS = 30


def _axis_angle(R: np.ndarray) -> np.ndarray:
    """float64[..., 3] rotation vectors of rotation matrices float[..., 3, 3]."""
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(R.shape[:-2] + (3,))


def _pose_keys(aa: np.ndarray) -> dict[str, np.ndarray]:
    """`poses` and the split AMASS keys from axis-angles float[N, J, 3] (root first)."""
    N, J = aa.shape[:2]
    out = {"root_orient": aa[:, 0], "pose_body": aa[:, 1:22].reshape(N, 63)}
    if J == 55:  # SMPL-X
        out |= {"pose_jaw": aa[:, 22], "pose_eye": aa[:, 23:25].reshape(N, 6),
                "pose_hand": aa[:, 25:55].reshape(N, 90), "surface_model_type": "smplx"}
        out["poses"] = aa.reshape(N, 165)
        return out
    if J == 52:  # SMPL-H
        hands = aa[:, 22:52].reshape(N, 90)
    elif J == 24:  # SMPL topology: no fingers; its own two hand joints kept aside
        hands = np.zeros((N, 3 * _SMPLH_FINGERS))
        out["pose_smpl_hands"] = aa[:, 22:24].reshape(N, 6)
    else:
        raise ValueError(f"body model: expected 24, 52 or 55 joints, found {J}")
    out |= {"pose_hand": hands, "surface_model_type": "smplh"}
    out["poses"] = np.concatenate([aa[:, :22].reshape(N, 66), hands], axis=1)
    return out


def amass_arrays(result: Result, body_model, p: int) -> dict[str, np.ndarray] | None:
    """The AMASS-style arrays of track `p` (None when the track is valid at no frame)."""
    motion = motion_lib.person_motion(result, body_model, p)
    if motion is None:
        return None
    valid_rows = np.flatnonzero(motion.valid)
    rows = np.arange(valid_rows[0], valid_rows[-1] + 1)
    A = AMASS_FROM_WORLD
    R_local = motion.R_local[rows].astype(np.float64)
    R_local[:, 0] = np.einsum("ab,nbc->nac", A, R_local[:, 0])
    # Rotating the whole body about the world origin: the posed pelvis J0(t) + transl(t) moves to
    # A (J0(t) + transl(t)), which the file's single shape reaches with trans = that - J0(betas).
    _, J_bind = motion_lib.shaped_rest(body_model, motion.betas)
    pelvis = (motion.J_rest[rows, 0] + motion.transl[rows]).astype(np.float64) @ A.T
    A4 = np.eye(4)
    A4[:3, :3] = A
    fps = float(result.fps)
    arrays = {
        "trans": pelvis - J_bind[0],
        "betas": motion.betas.astype(np.float64),
        "num_betas": np.int64(motion.betas.shape[0]),
        "gender": motion_lib.gender_of(result.body_model),
        "mocap_framerate": np.float64(fps),
        "mocap_frame_rate": np.float64(fps),
        "mocap_time_length": np.float64(rows.shape[0] / fps),
        **_pose_keys(_axis_angle(R_local)),
        "frame_index": np.asarray(result.frame_index, np.int32)[rows],
        "valid": motion.valid[rows],
        "T_world_cam": (A4 @ np.asarray(result.T_world_cam, np.float64)[rows]).astype(np.float32),
        "K": np.asarray(result.K, np.float32)[rows],
        "image_size": np.asarray(result.image_size, np.int32),
        "world_from_result": A,
        "body_model": result.body_model,
        "track": np.int32(p),
        "format_version": AMASS_FORMAT_VERSION,
    }
    return {k: np.asarray(v) for k, v in arrays.items()}


def repose(arrays: dict[str, np.ndarray], body_model) -> tuple[np.ndarray, np.ndarray]:
    """Pose the body of an AMASS-style file with `body_models` and map it back to the result's
    world: (joints float64[N, J, 3], vertices float64[N, V, 3]).

    Reads `root_orient`, the body/hand keys of the file's layout, `betas`, `trans`.
    """
    N, J = arrays["poses"].shape[0], len(body_model.parents)
    if J == 24:
        body = np.concatenate([arrays["pose_body"].reshape(N, 21, 3),
                               arrays["pose_smpl_hands"].reshape(N, 2, 3)], axis=1)
    else:
        body = arrays["poses"][:, 3:].reshape(N, J - 1, 3)
    betas = np.broadcast_to(np.asarray(arrays["betas"], np.float32), (N, body_model.num_betas))
    out = body_models.pose_bodies(body_model, betas, arrays["root_orient"].astype(np.float32),
                                  body.astype(np.float32), arrays["trans"].astype(np.float32),
                                  rep="axis_angle")
    A = np.asarray(arrays.get("world_from_result", AMASS_FROM_WORLD), np.float64)
    return np.asarray(out.joints, np.float64) @ A, np.asarray(out.vertices, np.float64) @ A


def amass_path(out_dir: str, stem: str, p: int) -> str:
    """`{out_dir}/{stem}.person{p}.amass.npz`."""
    return os.path.join(out_dir, f"{stem}.person{p}.amass.npz")


def write_amass(out_dir: str, stem: str, result: Result, body_model) -> dict[str, str]:
    """One AMASS-style `.npz` per track with at least one valid frame, each written atomically.

    Returns:
      {"amass_person<p>": path} of the files written.
    """
    written = {}
    for p in range(result.num_tracks):
        arrays = amass_arrays(result, body_model, p)
        if arrays is None:
            continue
        path = amass_path(out_dir, stem, p)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        written[f"amass_person{p}"] = path
    return written
