"""Procedural human motions with planted feet, on any SMPL-topology body.

A motion is built in three steps, per person, for every video frame:

1. a root plan: the horizontal path the person follows (`anchor_xz`, the point the feet step
   around), the heading, the pelvis's own horizontal position (differs from the anchor when
   sitting), a sitting amount and a torso lean;
2. footsteps: a stepping controller plants each foot flat on the scene surface (height from ray
   casting) and swings it to a new spot only when the plan has moved away from it; a planted foot
   does not move at all;
3. joint rotations: analytic two-bone leg IK from the pelvis to each planted (or swinging) ankle,
   the ankle set so that the foot keeps its planned world orientation; arms lowered from the
   T-pose and swinging against the legs; spine lean.

Because the stance foot's world transform is fixed and the IK reaches it exactly, sole vertices
only move by pose-corrective blend shapes (millimetres). Joint rotations follow smplx
semantics: local rotations relative to the parent, about rest joints that are world-aligned.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

import body_models
from josh_jax.synthetic import scenes

MOTIONS = ("walk_straight", "walk_curved", "turn", "step_up", "sit", "stand")

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


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


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
# 1. Root plans.


@dataclasses.dataclass(frozen=True)
class RootPlan:
    """Per-frame plan of one person (F video frames).

    Attributes:
        anchor_xz: float64[F, 2] where the feet step around (the walking path).
        heading: float64[F] facing direction about +y.
        pelvis_xz: float64[F, 2] horizontal pelvis position.
        sit: float64[F] 0 standing .. 1 seated.
        seat_height: float; height of the seat surface (sit motions).
        lean: float64[F] forward torso lean (radians).
        speed: float64[F] walking speed (m/s), sets the knee bend.
    """

    anchor_xz: np.ndarray
    heading: np.ndarray
    pelvis_xz: np.ndarray
    sit: np.ndarray
    seat_height: float
    lean: np.ndarray
    speed: np.ndarray


def _integrate(start_xz, speed, heading, fps):
    step = np.stack([np.sin(heading), np.cos(heading)], -1) * (speed / fps)[:, None]
    return np.asarray(start_xz, np.float64) + np.concatenate([np.zeros((1, 2)),
                                                              np.cumsum(step[:-1], 0)])


def root_plan(kind: str, num_frames: int, fps: float, scene: scenes.Scene, *, lane: float = 0.0,
              speed: float = 1.0, rng: np.random.Generator | None = None) -> RootPlan:
    """The root plan of one motion.

    Args:
        kind: one of `MOTIONS`. "walk_straight": along +z. "walk_curved": an arc turning by about
            90 degrees. "turn": walks, stops, turns about 150 degrees in place, walks on.
            "step_up": walks along +z over the scene's step or slope (any scene works: feet follow
            the surface). "sit": stands in front of the bench, sits down, sits, stands up (needs
            the "bench" scene). "stand": stands still, swaying slightly.
        num_frames: F video frames.
        fps: video frame rate.
        scene: the scene (seat position for "sit").
        lane: lateral offset in metres (second person).
        speed: walking speed in m/s.
        rng: generator for small variations.

    Returns:
        The `RootPlan`.
    """
    if kind not in MOTIONS:
        raise ValueError(f"motion: expected one of {MOTIONS}, found {kind!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    f = np.arange(num_frames, dtype=np.float64)
    duration = num_frames / fps
    u = f / max(num_frames - 1, 1)
    zeros = np.zeros(num_frames)
    sit = zeros.copy()
    lean = np.full(num_frames, 0.05)
    seat_height = 0.0
    length = speed * duration
    if kind == "walk_straight":
        heading = np.full(num_frames, rng.uniform(-0.15, 0.15))
        v = np.full(num_frames, speed)
        start = np.array([lane, -0.5 * length])
    elif kind == "walk_curved":
        turn = np.deg2rad(90.0) * rng.choice([-1.0, 1.0])
        heading = -0.5 * turn + turn * u
        v = np.full(num_frames, speed)
        radius = length / abs(turn)
        start = np.array([lane + 0.5 * np.sign(turn) * radius * 0.6, -0.35 * length])
    elif kind == "turn":
        turn = np.deg2rad(150.0) * rng.choice([-1.0, 1.0])
        heading = turn * _smoothstep((u - 0.3) / 0.4)
        v = speed * (1.0 - np.exp(-(((u - 0.5) / 0.16) ** 4)))
        start = np.array([lane, -0.3 * length])
    elif kind == "step_up":
        heading = zeros.copy()
        v = np.full(num_frames, 0.8 * speed)
        start = np.array([lane, -0.2 - 0.8 * 0.55 * length])
    elif kind == "stand":
        heading = np.full(num_frames, rng.uniform(-0.5, 0.5))
        v = zeros.copy()
        start = np.array([lane, 0.0])
    else:  # sit
        seat = scene.features.get("seat")
        if seat is None:
            raise ValueError(f"motion 'sit' needs a scene with a seat ('bench'); "
                             f"found scene {scene.name!r}")
        heading = np.full(num_frames, np.pi)  # facing -z, back to the bench
        v = zeros.copy()
        seat_height = float(seat[1])
        start = np.array([seat[0] + lane, seat[2] - 0.55])
        sit = _smoothstep((u - 0.1) / 0.3) * (1.0 - _smoothstep((u - 0.62) / 0.3))
        # Leaning forward moves the weight over the feet while the pelvis travels.
        lean = 0.08 + 0.45 * np.sin(np.pi * np.clip(sit, 0, 1)) ** 2 * (sit < 0.999) + 0.1 * sit
    anchor = _integrate(start, v, heading, fps)
    pelvis = anchor.copy()
    if kind == "sit":
        back = np.stack([np.sin(heading + np.pi), np.cos(heading + np.pi)], -1)
        pelvis = anchor + back * (0.5 * sit)[:, None]
    if kind == "stand":
        sway = 0.015 * np.sin(2 * np.pi * f / fps / 3.0 + rng.uniform(0, 6))
        pelvis = anchor + np.stack([sway, 0.5 * sway], -1)
    return RootPlan(anchor_xz=anchor, heading=heading, pelvis_xz=pelvis, sit=sit,
                    seat_height=seat_height, lean=lean, speed=v)


# ------------------------------------------------------------------------------------------
# 2. Footsteps.


def plan_footsteps(plan: RootPlan, scene: scenes.Scene, fps: float, *, foot_width: float = 0.1,
                   swing_s: float = 0.38, double_support_s: float = 0.14,
                   clearance: float = 0.07, threshold: float = 0.05):
    """Plants the feet along the plan with a stepping controller.

    One foot swings at a time. A swing starts when the foot's planted spot is `threshold` away
    (position plus 0.25 m per radian of yaw) from where the plan will want it, and lands where the
    plan wants it half a gait cycle later, so feet land ahead of the body. Landing spots are moved
    forward off step edges so a planted foot is flat.

    Args:
        plan: the root plan.
        scene: the scene (surface heights).
        fps: video frame rate.
        foot_width: lateral offset of each foot from the path.
        swing_s: swing duration.
        double_support_s: minimum time with both feet down between swings.
        clearance: swing height.
        threshold: step trigger distance.

    Returns:
        foot_xz float64[F, 2, 2], foot_y float64[F, 2] (sole height), foot_yaw float64[F, 2],
        foot_pitch float64[F, 2] (toe up, on slopes), stance bool[F, 2]. Feet ordered (left,
        right).
    """
    num = len(plan.heading)
    swing_n = max(int(round(swing_s * fps)), 2)
    ds_n = max(int(round(double_support_s * fps)), 1)
    sides = np.array([1.0, -1.0])  # left foot is at +x of a body facing +z

    def wanted(k, side):
        # Before the first frame the path is extrapolated, so the gait is already under way.
        kc = int(np.clip(k, 0, num - 1))
        h = plan.heading[kc]
        lateral = np.array([np.cos(h), -np.sin(h)]) * sides[side] * foot_width
        anchor = plan.anchor_xz[kc]
        if k < 0 and num > 1:
            anchor = anchor + k * (plan.anchor_xz[1] - plan.anchor_xz[0])
        return anchor + lateral, h

    def surface(xz, yaw):
        # Slide forward off step edges until heel, middle and toe lie on one plane; on a slope
        # the foot pitches with the surface.
        fwd = np.array([np.sin(yaw), np.cos(yaw)])
        for _ in range(8):
            hs = scenes.ground_height(scene, xz + np.outer([-0.14, -0.07, 0.0, 0.08, 0.16], fwd))
            slope = (hs[4] - hs[0]) / 0.3
            planar = hs - (hs[2] + slope * np.array([-0.14, -0.07, 0.0, 0.08, 0.16]))
            if np.abs(planar).max() < 0.003 and abs(slope) < 0.4:
                break
            xz = xz + 0.05 * fwd
        return [xz, float(hs[2]), yaw, float(np.arctan(slope))]

    pre_roll = int(2.0 * fps)
    planted = []
    for side in range(2):
        planted.append(surface(*wanted(-pre_roll, side)))
    foot_xz = np.zeros((num, 2, 2))
    foot_y = np.zeros((num, 2))
    foot_yaw = np.zeros((num, 2))
    foot_pitch = np.zeros((num, 2))
    stance = np.ones((num, 2), bool)
    swing = None  # (side, start_frame, from_state, to_state)
    last_land, last_side = -pre_roll - ds_n, 1
    # Land ahead of the body by half the distance it travels during the coming stance.
    lead_n = (swing_n + 2 * ds_n) // 2
    for k in range(-pre_roll, num):
        if swing is None and k - last_land >= ds_n:
            errors = []
            for side in range(2):
                xz, yaw = wanted(k + swing_n + lead_n, side)
                dyaw = np.angle(np.exp(1j * (yaw - planted[side][2])))
                errors.append(np.linalg.norm(xz - planted[side][0]) + 0.25 * abs(dyaw))
            side = int(np.argmax(errors))
            if errors[1 - side] > threshold and side == last_side:
                side = 1 - side  # alternate feet while walking
            if errors[side] > threshold:
                swing = (side, k, list(planted[side]),
                         surface(*wanted(k + swing_n + lead_n, side)))
        if swing is not None:
            side, k0, src, dst = swing
            s = (k - k0 + 1) / swing_n
            e = _smoothstep((s - 0.15) / 0.85)  # lift first, then move forward (steps)
            yaw = src[2] + np.angle(np.exp(1j * (dst[2] - src[2]))) * e
            planted_side = [src[0] + (dst[0] - src[0]) * e,
                            src[1] + (dst[1] - src[1]) * _smoothstep(2.0 * s)
                            + clearance * np.sin(np.pi * min(s, 1.0)), yaw,
                            src[3] + (dst[3] - src[3]) * e]
            if s >= 1.0:
                planted[side] = dst
                swing, last_land, last_side = None, k, side
            elif k >= 0:
                stance[k, side] = False
                (foot_xz[k, side], foot_y[k, side], foot_yaw[k, side],
                 foot_pitch[k, side]) = planted_side
        if k < 0:
            continue
        for side in range(2):
            if stance[k, side]:
                (foot_xz[k, side], foot_y[k, side], foot_yaw[k, side],
                 foot_pitch[k, side]) = planted[side]
    return foot_xz, foot_y, foot_yaw, foot_pitch, stance


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


@functools.lru_cache(maxsize=8)
def _batched_lbs(model_name: str):
    del model_name  # one compiled function per body model kind (shapes differ)
    return jax.jit(jax.vmap(body_models.lbs, in_axes=(None, None, 0, 0, 0)))


def pose_vertices(model, betas, global_orient, body_pose, transl):
    """World vertices and joints of one person for every frame.

    Args:
        model: `body_models.BodyModel`.
        betas: float[B]; global_orient float[F, 3, 3]; body_pose float[F, J-1, 3, 3];
        transl: float[F, 3].

    Returns:
        vertices float64[F, V, 3], joints float64[F, J, 3].
    """
    out = _batched_lbs(model.name)(model, jnp.asarray(betas, jnp.float32),
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
