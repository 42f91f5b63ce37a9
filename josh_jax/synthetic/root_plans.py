"""Step 1 of a synthetic motion (`motions.py`): the root plan, the horizontal path a person follows.

The plan holds, per video frame, the point the feet step around (`anchor_xz`), the heading, the
pelvis's own horizontal position (it differs from the anchor when sitting), a sitting amount and a
torso lean.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from josh_jax.synthetic import scenes

MOTIONS = ("walk_straight", "walk_curved", "turn", "step_up", "sit", "stand")


def smoothstep(x):
    """float64[...]: 0 below 0, 1 above 1, the cubic 3x^2 - 2x^3 between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)



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
        heading = turn * smoothstep((u - 0.3) / 0.4)
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
        sit = smoothstep((u - 0.1) / 0.3) * (1.0 - smoothstep((u - 0.62) / 0.3))
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
