"""Procedural human motions with planted feet, on any SMPL-topology body.

A motion is built in three steps, per person, for every video frame:

1. a root plan (`root_plans.py`): the horizontal path the person follows (`anchor_xz`, the point
   the feet step around), the heading, the pelvis's own horizontal position (differs from the
   anchor when sitting), a sitting amount and a torso lean;
2. footsteps (`footsteps.py`): a stepping controller plants each foot flat on the scene surface
   (height from ray casting) and swings it to a new spot only when the plan has moved away from
   it; a planted foot does not move at all;
3. joint rotations (this module): analytic two-bone leg IK from the pelvis to each planted (or swinging) ankle,
   the ankle set so that the foot keeps its planned world orientation; arms lowered from the
   T-pose and swinging against the legs; spine lean.

Because the stance foot's world transform is fixed and the IK reaches it exactly, sole vertices
only move by pose-corrective blend shapes (millimetres). Joint rotations follow smplx
semantics: local rotations relative to the parent, about rest joints that are world-aligned.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from scipy import ndimage

import body_models
from josh_jax.synthetic import scenes
from josh_jax.synthetic.footsteps import plan_footsteps
from josh_jax.synthetic.root_plans import MOTIONS, RootPlan, root_plan

__all__ = ["MOTIONS", "Motion", "RootPlan", "make_motion", "plan_footsteps", "pose_vertices",
           "root_plan", "rot_x", "rot_y", "rot_z"]

# SMPL joint indices used here.
_PELVIS, _L_HIP, _R_HIP, _SPINE1, _L_KNEE, _R_KNEE, _SPINE2, _L_ANKLE, _R_ANKLE = range(9)
_SPINE3, _L_FOOT, _R_FOOT, _NECK = 9, 10, 11, 12
_L_SHOULDER, _R_SHOULDER, _L_ELBOW, _R_ELBOW = 16, 17, 18, 19


def rot_x(a):
    """float64[..., 3, 3] rotations about +x by angles `a` (radians)."""
    a = np.asarray(a, np.float64)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1),
                     np.stack([z, s, c], -1)], -2)


def rot_y(a):
    """float64[..., 3, 3] rotations about +y (heading: 0 faces +z, pi/2 faces +x)."""
    a = np.asarray(a, np.float64)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                     np.stack([-s, z, c], -1)], -2)


def rot_z(a):
    """float64[..., 3, 3] rotations about +z."""
    a = np.asarray(a, np.float64)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1),
                     np.stack([z, z, o], -1)], -2)


def _normalize(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclasses.dataclass(frozen=True)
class Motion:
    """World-frame SMPL parameters of one person for every video frame (F frames).

    Attributes:
        betas: float64[B].
        global_orient: float64[F, 3, 3] root rotation in the world.
        body_pose: float64[F, J-1, 3, 3] local joint rotations.
        transl: float64[F, 3] smplx `transl` in the world.
        heading: float64[F] facing direction about +y.
        stance: bool[F, 2] left / right foot planted.
        ik_residual_m: float64[] largest ankle IK miss (unreachable targets), metres.
    """

    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    heading: np.ndarray
    stance: np.ndarray
    ik_residual_m: float


@dataclasses.dataclass(frozen=True)
class _Rig:
    """Shape-dependent rest quantities of one body (numpy float64)."""

    joints: np.ndarray  # [J, 3] rest joints J(betas)
    sole_ref: np.ndarray  # [2, 3] rest point under each foot on the sole plane (L, R)
    leg_len: float  # hip-to-ankle length with a straight leg


def _rig(model, betas) -> _Rig:
    joints = np.asarray(body_models.rest_joints(model, jnp.asarray(betas, jnp.float32)),
                        np.float64)
    shaped = (np.asarray(model.v_template, np.float64)
              + np.einsum("vcs,s->vc", np.asarray(model.shapedirs, np.float64)[..., :len(betas)],
                          np.asarray(betas, np.float64)))
    sole = np.asarray(body_models.indices.sole_vertices(model))
    refs = []
    for ankle in (_L_ANKLE, _R_ANKLE):
        side = np.sign(joints[ankle, 0] - joints[_PELVIS, 0])
        idx = sole[np.sign(shaped[sole, 0] - joints[_PELVIS, 0]) == side]
        pts = shaped[idx]
        refs.append(np.array([pts[:, 0].mean(), pts[:, 1].min(), pts[:, 2].mean()]))
    thigh = np.linalg.norm(joints[_L_KNEE] - joints[_L_HIP])
    shin = np.linalg.norm(joints[_L_ANKLE] - joints[_L_KNEE])
    return _Rig(joints=joints, sole_ref=np.stack(refs), leg_len=thigh + shin)




# ------------------------------------------------------------------------------------------
# 3. Joint rotations.


def _frame(primary, hint):
    """Rotation whose columns are (primary, hint made orthogonal, cross): float64[..., 3, 3]."""
    e1 = _normalize(primary)
    e2 = _normalize(hint - np.sum(hint * e1, -1, keepdims=True) * e1)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def _leg_ik(hip, ankle_target, forward, rest_thigh, rest_shin):
    """Two-bone IK: world rotations of thigh and shin so the ankle reaches the target.

    Args:
        hip: float64[F, 3] hip joint.
        ankle_target: float64[F, 3].
        forward: float64[F, 3] direction the knee should point to.
        rest_thigh, rest_shin: float64[3] rest bone vectors (knee - hip, ankle - knee).

    Returns:
        G_thigh, G_shin float64[F, 3, 3] world rotations; miss float64[F] unreached distance.
    """
    l1, l2 = np.linalg.norm(rest_thigh), np.linalg.norm(rest_shin)
    delta = ankle_target - hip
    dist = np.linalg.norm(delta, axis=-1)
    d = np.clip(dist, abs(l1 - l2) + 1e-4, (l1 + l2) * (1.0 - 1e-6))
    u = delta / np.maximum(dist, 1e-9)[:, None]
    perp = _normalize(forward - np.sum(forward * u, -1, keepdims=True) * u)
    cos_hip = np.clip((l1**2 + d**2 - l2**2) / (2 * l1 * d), -1.0, 1.0)
    knee = hip + (l1 * cos_hip)[:, None] * u + (l1 * np.sqrt(1 - cos_hip**2))[:, None] * perp
    ankle = hip + d[:, None] * u
    rest_fwd = np.array([0.0, 0.0, 1.0])
    B_thigh = _frame(rest_thigh, rest_fwd)
    B_shin = _frame(rest_shin, rest_fwd)
    G_thigh = _frame(knee - hip, forward) @ np.swapaxes(B_thigh, -1, -2)
    G_shin = _frame(ankle - knee, forward) @ np.swapaxes(B_shin, -1, -2)
    return G_thigh, G_shin, np.abs(dist - d)


def _ankle_target(rig: _Rig, side: int, ankle: int, foot_xz, foot_y, foot_yaw, foot_pitch):
    """World ankle joint that puts the foot's sole reference on its planned spot: [F, 3]."""
    G_foot = rot_y(foot_yaw[:, side]) @ rot_x(-foot_pitch[:, side])
    ground = np.stack([foot_xz[:, side, 0], foot_y[:, side], foot_xz[:, side, 1]], -1)
    return ground + np.einsum("fij,j->fi", G_foot, rig.joints[ankle] - rig.sole_ref[side])


def _pose(rig: _Rig, plan: RootPlan, foot_xz, foot_y, foot_yaw, foot_pitch, pelvis_y,
          swing_arm):
    """Joint rotations and transl for every frame (numpy float64)."""
    num = len(plan.heading)
    J = rig.joints
    G_root = rot_y(plan.heading)
    pelvis = np.stack([plan.pelvis_xz[:, 0], pelvis_y, plan.pelvis_xz[:, 1]], -1)
    local = np.broadcast_to(np.eye(3), (num, 24, 3, 3)).copy()
    local[:, 0] = G_root
    # Spine lean spread over three joints.
    for j in (_SPINE1, _SPINE2, _SPINE3):
        local[:, j] = rot_x(plan.lean / 3.0)
    local[:, _NECK] = rot_x(-0.5 * plan.lean)  # keep looking ahead
    # Arms down from the T-pose, swinging against the legs, elbows slightly bent.
    local[:, _L_SHOULDER] = rot_x(-swing_arm) @ rot_z(np.full(num, -1.25))
    local[:, _R_SHOULDER] = rot_x(swing_arm) @ rot_z(np.full(num, 1.25))
    local[:, _L_ELBOW] = rot_y(np.full(num, -0.35))
    local[:, _R_ELBOW] = rot_y(np.full(num, 0.35))
    miss = np.zeros(num)
    for side, (hip, knee, ankle) in enumerate([(_L_HIP, _L_KNEE, _L_ANKLE),
                                                (_R_HIP, _R_KNEE, _R_ANKLE)]):
        G_foot = rot_y(foot_yaw[:, side]) @ rot_x(-foot_pitch[:, side])
        ankle_target = _ankle_target(rig, side, ankle, foot_xz, foot_y, foot_yaw, foot_pitch)
        hip_world = pelvis + np.einsum("fij,j->fi", G_root, J[hip] - J[_PELVIS])
        fwd_body = np.stack([np.sin(plan.heading), np.zeros(num), np.cos(plan.heading)], -1)
        fwd_foot = np.stack([np.sin(foot_yaw[:, side]), np.zeros(num),
                             np.cos(foot_yaw[:, side])], -1)
        G_thigh, G_shin, m = _leg_ik(hip_world, ankle_target, _normalize(fwd_body + fwd_foot),
                                     J[knee] - J[hip], J[ankle] - J[knee])
        miss = np.maximum(miss, m)
        local[:, hip] = np.swapaxes(G_root, -1, -2) @ G_thigh
        local[:, knee] = np.swapaxes(G_thigh, -1, -2) @ G_shin
        local[:, ankle] = np.swapaxes(G_shin, -1, -2) @ G_foot
    transl = pelvis - J[_PELVIS]
    return local, transl, miss


def pose_vertices(model, betas, global_orient, body_pose, transl):
    """World vertices and joints of one person for every frame.

    Args:
        model: `body_models.BodyModel`.
        betas: float[B]; global_orient float[F, 3, 3]; body_pose float[F, J-1, 3, 3];
        transl: float[F, 3].

    Returns:
        vertices float64[F, V, 3], joints float64[F, J, 3].
    """
    out = body_models.pose_bodies(model, jnp.asarray(betas, jnp.float32),
                                  jnp.asarray(global_orient, jnp.float32),
                                  jnp.asarray(body_pose, jnp.float32),
                                  jnp.asarray(transl, jnp.float32))
    return np.asarray(out.vertices, np.float64), np.asarray(out.joints, np.float64)


def make_motion(model, betas: np.ndarray, plan: RootPlan, scene: scenes.Scene,
                fps: float) -> Motion:
    """SMPL parameters of one person following `plan` with planted feet.

    Args:
        model: `body_models.BodyModel` (SMPL topology, 24 joints).
        betas: float64[B] shape.
        plan: the root plan.
        scene: the scene.
        fps: video frame rate.

    Returns:
        The `Motion`.
    """
    rig = _rig(model, betas)
    foot_xz, foot_y, foot_yaw, foot_pitch, stance = plan_footsteps(plan, scene, fps)
    # Pelvis height: as high as both legs can reach their ankle targets (with a little knee
    # bend), smoothed without ever exceeding that bound; blended towards the seat when sitting.
    reach = 0.985 * rig.leg_len
    allowed = np.full(len(plan.heading), np.inf)
    G_root = rot_y(plan.heading)
    for side, (hip, ankle) in enumerate([(_L_HIP, _L_ANKLE), (_R_HIP, _R_ANKLE)]):
        target = _ankle_target(rig, side, ankle, foot_xz, foot_y, foot_yaw, foot_pitch)
        hip_off = np.einsum("fij,j->fi", G_root, rig.joints[hip] - rig.joints[_PELVIS])
        hip_xz = plan.pelvis_xz + hip_off[:, [0, 2]]
        dh = np.linalg.norm(target[:, [0, 2]] - hip_xz, axis=-1)
        hip_y = target[:, 1] + np.sqrt(np.maximum(reach**2 - dh**2, 0.0))
        allowed = np.minimum(allowed, hip_y - hip_off[:, 1])
    window = max(int(0.3 * fps), 1)
    smooth = ndimage.gaussian_filter1d(ndimage.minimum_filter1d(allowed, window, mode="nearest"),
                                       0.1 * fps, mode="nearest")
    stand_y = np.minimum(smooth, allowed)
    seat_offset = 0.09
    for _ in range(2):  # second pass corrects the seated pelvis height from the posed mesh
        seated_y = plan.seat_height + seat_offset
        pelvis_y = stand_y + (seated_y - stand_y) * plan.sit
        fwd_l = np.einsum("fi,fi->f", foot_xz[:, 0] - foot_xz[:, 1],
                          np.stack([np.sin(plan.heading), np.cos(plan.heading)], -1))
        swing_arm = np.clip(0.9 * fwd_l, -0.5, 0.5) * (1.0 - plan.sit)
        local, transl, miss = _pose(rig, plan, foot_xz, foot_y, foot_yaw, foot_pitch, pelvis_y,
                                    swing_arm)
        if plan.sit.max() < 0.5:
            break
        k = int(np.argmax(plan.sit))
        # All frames (not one) so the compiled batched LBS is reused.
        verts, _ = pose_vertices(model, betas, local[:, 0], local[:, 1:], transl)
        weights = np.asarray(model.lbs_weights)
        hips = weights[:, [_PELVIS, _L_HIP, _R_HIP]].sum(1) > 0.5
        lowest = verts[k, hips, 1].min()
        seat_offset += plan.seat_height - lowest
    return Motion(betas=np.asarray(betas, np.float64), global_orient=local[:, 0],
                  body_pose=local[:, 1:], transl=transl, heading=plan.heading, stance=stance,
                  ik_residual_m=float(miss.max()))
