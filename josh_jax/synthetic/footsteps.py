"""Step 2 of a synthetic motion (`motions.py`): footsteps planted flat on the scene surface.

A stepping controller plants each foot on the scene (height from ray casting) and swings it to a
new spot only when the root plan has moved away from it; a planted foot does not move at all.
"""

from __future__ import annotations

import numpy as np

from josh_jax.synthetic import scenes
from josh_jax.synthetic.root_plans import RootPlan, smoothstep


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
            e = smoothstep((s - 0.15) / 0.85)  # lift first, then move forward (steps)
            yaw = src[2] + np.angle(np.exp(1j * (dst[2] - src[2]))) * e
            planted_side = [src[0] + (dst[0] - src[0]) * e,
                            src[1] + (dst[1] - src[1]) * smoothstep(2.0 * s)
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
