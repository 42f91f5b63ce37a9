"""One person's motion from a `Result`, as the animation writers and the viewer need it.

A `Result` stores, per track and video frame, the world root rotation, the parent-relative joint
rotations, smplx `transl` and betas. The exporters (animated glTF, AMASS npz, viewer) all need the
same few things on the host: the rotations with invalid frames filled from the nearest valid frame
(so that interpolating players never swing through identity), the rest joints of the shaped body,
the bind (rest) mesh with the betas baked in, world joint transforms by forward kinematics, and a
foot-contact flag. Everything here is numpy on one person (`P` is looped by the callers).

Forward kinematics is smplx's (see `body_models.model`): with rest joints J (of the frame's betas),
  G_0 = [R_0 | J_0 + transl],  G_j = G_parent(j) [R_j | J_j - J_parent(j)],
so the translation of G_j is the posed joint (`joints_world`), and a rest-pose point x moves to
G_j (x - J_j). Pose correctives are not part of it (they only move vertices, never joints).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

import body_models
from body_models import indices
from josh_jax.result import Result

# One colour per track (RGB, sRGB), shared by every exporter and the viewer.
TRACK_COLORS = np.array([[230, 90, 60], [60, 140, 230], [90, 200, 90], [220, 180, 40],
                         [170, 90, 210], [40, 200, 200]], np.uint8)
CONTACT_COLOR = np.array([255, 40, 40], np.uint8)
# Joints tested for contact: left ankle, right ankle, left foot (toes), right foot.
CONTACT_JOINTS = (7, 8, 10, 11)
# A contact joint is "in contact" while its world speed stays below this (m/s).
CONTACT_MAX_SPEED = 0.2


@dataclasses.dataclass(frozen=True)
class PersonMotion:
    """One track over all F video frames of a result (numpy, host side).

    Attributes:
      index: the track number p.
      valid: bool[F] the track exists at the frame.
      R_local: float32[F, J, 3, 3] root rotation in world, then parent-relative rotations; invalid
        frames hold the nearest valid frame's values.
      transl: float32[F, 3] smplx `transl` in world (filled the same way).
      betas: float32[B] the shape of the bind pose: the mean of the valid frames' betas.
      J_rest: float32[F, J, 3] rest joints of each frame's betas (all equal when betas are
        constant, as JOSH optimizes one shape per track).
      parents: the kinematic tree (parents[0] == -1).
    """

    index: int
    valid: np.ndarray
    R_local: np.ndarray
    transl: np.ndarray
    betas: np.ndarray
    J_rest: np.ndarray
    parents: tuple[int, ...]

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def betas_vary(self) -> bool:
        """Whether the rest joints differ between frames (by more than 1 micrometre)."""
        return bool(np.abs(self.J_rest - self.J_rest[:1]).max() > 1e-6)


def nearest_valid_rows(valid: np.ndarray) -> np.ndarray:
    """int[F]: for each row, the nearest row where `valid` is True (ties: the earlier one)."""
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        raise ValueError("nearest_valid_rows: expected at least one valid frame, found none")
    pos = np.searchsorted(rows, np.arange(valid.shape[0]))
    lo = rows[np.clip(pos - 1, 0, rows.size - 1)]
    hi = rows[np.clip(pos, 0, rows.size - 1)]
    frames = np.arange(valid.shape[0])
    return np.where(np.abs(frames - lo) <= np.abs(hi - frames), lo, hi)


def shaped_rest(body_model, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v_shaped float32[V, 3], J_rest float32[J, 3]): the rest mesh and joints of one shape.

    Expression (SMPL-X) is zero: a `Result` carries none.
    """
    coeffs = np.zeros(body_model.shapedirs.shape[-1], np.float32)
    coeffs[: body_model.num_betas] = betas
    v_shaped = np.asarray(body_model.v_template) + np.einsum(
        "vcs,s->vc", np.asarray(body_model.shapedirs), coeffs)
    return v_shaped.astype(np.float32), rest_joints(body_model, betas[None])[0]


# One compiled program (eager vmap would compile each of its operations separately).
_rest_joints_many = jax.jit(jax.vmap(body_models.rest_joints, in_axes=(None, 0)))


def rest_joints(body_model, betas: np.ndarray) -> np.ndarray:
    """float32[N, J, 3] rest joints of N shapes float[N, B]."""
    return np.asarray(_rest_joints_many(body_model, np.asarray(betas, np.float32)), np.float32)


def person_motion(result: Result, body_model, p: int) -> PersonMotion | None:
    """Track `p` of `result` (None when it is valid at no frame).

    Frames with a non-finite parameter count as invalid (a failed clip never breaks a writer).
    """
    R_local = np.concatenate([np.asarray(result.smpl_global_orient[p])[:, None],
                              np.asarray(result.smpl_body_pose[p])], axis=1)
    finite = (np.isfinite(R_local).all(axis=(1, 2, 3))
              & np.isfinite(np.asarray(result.smpl_transl[p])).all(axis=1)
              & np.isfinite(np.asarray(result.smpl_betas[p])).all(axis=1))
    valid = np.asarray(result.smpl_valid[p], bool) & finite
    if not valid.any():
        return None
    fill = nearest_valid_rows(valid)
    R_local = R_local[fill]
    betas_all = np.asarray(result.smpl_betas[p], np.float32)[fill]
    J = len(body_model.parents)
    if R_local.shape[1] != J:
        raise ValueError(f"result body pose: expected {J - 1} joints for body model "
                         f"{body_model.name!r}, found {R_local.shape[1] - 1}")
    return PersonMotion(
        index=p,
        valid=valid,
        R_local=R_local.astype(np.float32),
        transl=np.asarray(result.smpl_transl[p], np.float32)[fill],
        betas=betas_all[valid].mean(axis=0),
        J_rest=rest_joints(body_model, betas_all),
        parents=tuple(int(v) for v in body_model.parents),
    )


def forward_kinematics(motion: PersonMotion) -> tuple[np.ndarray, np.ndarray]:
    """World joint transforms of every frame: (R_world float[F, J, 3, 3], joints float[F, J, 3]).

    `joints` equals the result's `joints_world` at valid frames (smplx semantics, transl included).
    """
    R, J_rest = motion.R_local.astype(np.float64), motion.J_rest.astype(np.float64)
    R_world = np.empty_like(R)
    joints = np.empty(R.shape[:-1], np.float64)
    R_world[:, 0] = R[:, 0]
    joints[:, 0] = J_rest[:, 0] + motion.transl
    for j in range(1, motion.num_joints):
        q = motion.parents[j]
        R_world[:, j] = R_world[:, q] @ R[:, j]
        offset = (J_rest[:, j] - J_rest[:, q])[..., None]
        joints[:, j] = joints[:, q] + (R_world[:, q] @ offset)[..., 0]
    return R_world, joints


def foot_contacts(joints: np.ndarray, valid: np.ndarray, fps: float,
                  max_speed: float = CONTACT_MAX_SPEED) -> np.ndarray:
    """bool[F, 4]: `CONTACT_JOINTS` that are (nearly) still, i.e. planted on something.

    A result carries no contact labels (JOSH's come from the clip, Human3R has none), so contacts
    are derived from the motion alone: a foot joint whose world speed (central differences, one
    sided at the ends) is below `max_speed`. Invalid frames are never in contact.

    Args:
      joints: float[F, J, 3] world joints; valid: bool[F]; fps: frame rate.
      max_speed: speed threshold in world units per second.
    """
    feet = np.asarray(joints, np.float64)[:, list(CONTACT_JOINTS)]
    if feet.shape[0] < 2:
        return np.zeros(feet.shape[:2], bool)
    speed = np.linalg.norm(np.gradient(feet, axis=0), axis=-1) * float(fps)
    return (speed < max_speed) & np.asarray(valid, bool)[:, None]


def joint_names(num_joints: int) -> tuple[str, ...]:
    """SMPL's joint names for the 22 body joints (all 24 for SMPL), `joint<j>` beyond."""
    names = indices.SMPL_JOINT_NAMES if num_joints == 24 else indices.SMPL_JOINT_NAMES[:22]
    return tuple(names[:num_joints]) + tuple(f"joint{j}" for j in range(len(names), num_joints))


def gender_of(body_model_name: str) -> str:
    """"female" / "male" when the model name says so (`smplx_female`), else "neutral"."""
    for gender in ("female", "male"):
        if body_model_name.endswith(gender):
            return gender
    return "neutral"
