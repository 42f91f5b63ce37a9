"""Step 2 of a synthetic motion (`motions.py`): footsteps planted flat on the scene surface.

A stepping controller plants each foot on the scene (height from ray casting) and swings it to a
new spot only when the root plan has moved away from it; a planted foot does not move at all.
"""

from __future__ import annotations

import numpy as np

from josh_jax.synthetic import scenes
from josh_jax.synthetic.root_plans import RootPlan, smoothstep

_SIDES = np.array([1.0, -1.0])  # lateral sign per foot: the left foot is at +x of a body facing +z
_SOLE_SAMPLES = np.array([-0.14, -0.07, 0.0, 0.08, 0.16])  # heel to toe, metres along the foot


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
    pre_roll = int(2.0 * fps)
    # Land ahead of the body by half the distance it travels during the coming stance.
    lead = swing_n + (swing_n + 2 * ds_n) // 2
    planted = [_flat_landing(scene, *_wanted_spot(plan, -pre_roll, side, foot_width))
               for side in range(2)]
    feet = (np.zeros((num, 2, 2)), np.zeros((num, 2)), np.zeros((num, 2)), np.zeros((num, 2)))
    stance = np.ones((num, 2), bool)
    swing = None  # (side, start_frame, from_state, to_state)
    last_land, last_side = -pre_roll - ds_n, 1
    for k in range(-pre_roll, num):
        if swing is None and k - last_land >= ds_n:
            swing = _next_swing(plan, scene, planted, k, last_side, lead, foot_width, threshold)
        if swing is not None:
            side = swing[0]
            s, state = _swing_state(swing, k, swing_n, clearance)
            if s >= 1.0:
                planted[side] = swing[3]
                swing, last_land, last_side = None, k, side
            elif k >= 0:
                stance[k, side] = False
                _store(feet, k, side, state)
        if k >= 0:
            for side in range(2):
                if stance[k, side]:
                    _store(feet, k, side, planted[side])
    return (*feet, stance)


def _wanted_spot(plan: RootPlan, k: int, side: int, foot_width: float):
    """(xz float64[2], yaw) where the plan wants foot `side` (0 left, 1 right) at frame k.

    Before the first frame the path is extrapolated, so the gait is already under way.
    """
    num = len(plan.heading)
    kc = int(np.clip(k, 0, num - 1))
    h = plan.heading[kc]
    lateral = np.array([np.cos(h), -np.sin(h)]) * _SIDES[side] * foot_width
    anchor = plan.anchor_xz[kc]
    if k < 0 and num > 1:
        anchor = anchor + k * (plan.anchor_xz[1] - plan.anchor_xz[0])
    return anchor + lateral, h


def _flat_landing(scene: scenes.Scene, xz, yaw) -> list:
    """[xz, sole height, yaw, pitch] of a foot put down at xz facing yaw.

    Slides forward off step edges until heel, middle and toe lie on one plane; on a slope the foot
    pitches with the surface.
    """
    fwd = np.array([np.sin(yaw), np.cos(yaw)])
    for _ in range(8):
        hs = scenes.ground_height(scene, xz + np.outer(_SOLE_SAMPLES, fwd))
        slope = (hs[4] - hs[0]) / 0.3
        planar = hs - (hs[2] + slope * _SOLE_SAMPLES)
        if np.abs(planar).max() < 0.003 and abs(slope) < 0.4:
            break
        xz = xz + 0.05 * fwd
    return [xz, float(hs[2]), yaw, float(np.arctan(slope))]


def _next_swing(plan: RootPlan, scene: scenes.Scene, planted: list, k: int, last_side: int,
                lead: int, foot_width: float, threshold: float):
    """The swing starting at frame k, (side, k, from_state, to_state), or None.

    The foot farther (position plus 0.25 m per radian of yaw) from where the plan wants it `lead`
    frames later swings, the feet alternating while both are past `threshold`.
    """
    errors = []
    for side in range(2):
        xz, yaw = _wanted_spot(plan, k + lead, side, foot_width)
        dyaw = np.angle(np.exp(1j * (yaw - planted[side][2])))
        errors.append(np.linalg.norm(xz - planted[side][0]) + 0.25 * abs(dyaw))
    side = int(np.argmax(errors))
    if errors[1 - side] > threshold and side == last_side:
        side = 1 - side  # alternate feet while walking
    if errors[side] > threshold:
        return (side, k, list(planted[side]),
                _flat_landing(scene, *_wanted_spot(plan, k + lead, side, foot_width)))
    return None


def _swing_state(swing, k: int, swing_n: int, clearance: float):
    """(swing phase s, [xz, sole height, yaw, pitch]) of the swinging foot at frame k."""
    _, k0, src, dst = swing
    s = (k - k0 + 1) / swing_n
    e = smoothstep((s - 0.15) / 0.85)  # lift first, then move forward (steps)
    yaw = src[2] + np.angle(np.exp(1j * (dst[2] - src[2]))) * e
    return s, [src[0] + (dst[0] - src[0]) * e,
               src[1] + (dst[1] - src[1]) * smoothstep(2.0 * s)
               + clearance * np.sin(np.pi * min(s, 1.0)), yaw,
               src[3] + (dst[3] - src[3]) * e]


def _store(feet: tuple, k: int, side: int, state: list) -> None:
    """Writes one foot's [xz, sole height, yaw, pitch] into (foot_xz, foot_y, foot_yaw,
    foot_pitch) at frame k."""
    for array, value in zip(feet, state, strict=True):
        array[k, side] = value
