"""The region contact estimator on hand-made motions: a still sole on the local surface is
labelled, a moving or floating one is not; the thresholds are the config's."""

import dataclasses

import numpy as np
import pytest

from experiments.configs import frontend as frontend_configs
from josh_jax.errors import InputError
from josh_jax.video import contacts

FPS = 6.0  # keyframe rate (30 fps video, every 5th frame)


@pytest.fixture(scope="module")
def settings():
    return contacts.ContactSettings.from_config(frontend_configs.get_config("tiny").contacts)


def _floor(tilt_deg=0.0, seed=0):
    """Scene points: a 2 cm grid on the plane y = tan(tilt) x over [-1, 1]^2, 3 mm noise."""
    g = np.arange(-1.0, 1.0, 0.02)
    xx, zz = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), np.tan(np.radians(tilt_deg)) * xx.ravel(), zz.ravel()], -1)
    return pts + np.random.default_rng(seed).normal(scale=0.003, size=pts.shape)


def _foot(centre, tilt_deg=0.0):
    """float[48, 3]: a 10 x 24 cm sole grid (6 x 6 = 36 vertices) and 12 vertices 8 cm above it,
    the sole resting on the plane y = tan(tilt) x at `centre` (x, z)."""
    u, w = np.meshgrid(np.linspace(-0.05, 0.05, 6), np.linspace(-0.12, 0.12, 6))
    sole = np.stack([u.ravel(), np.zeros(36), w.ravel()], -1)
    top = sole[::3] + [0.0, 0.08, 0.0]
    local = np.concatenate([sole, top])
    a = np.radians(tilt_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    x0, z0 = centre
    return local @ rot.T + [x0, np.tan(a) * x0, z0]


def _regions(num_feet):
    index = np.arange(48 * num_feet, dtype=np.int32).reshape(num_feet, 48)
    return index, np.ones_like(index, bool)


def _run(feet, settings, tilt_deg=0.0):
    """feet: float[T, F, 48, 3] -> float32[T, F, 48]."""
    T, F = feet.shape[:2]
    scene = [_floor(tilt_deg, seed=t) for t in range(T)]
    p = contacts.estimate_contacts(feet.reshape(T, F * 48, 3), np.arange(T) / FPS, scene,
                                   _regions(F), settings)
    assert p.shape == (T, F * 48) and p.dtype == np.float32
    return p.reshape(T, F, 48)


def test_still_sole_is_labelled_moving_or_floating_sole_is_not(settings):
    T = 6
    still = np.stack([_foot((0.5, 0.5))] * T)
    moving = np.stack([_foot((x, -0.5)) for x in np.linspace(-0.6, 0.6, T)])  # 1.44 m/s
    floating = still + [-1.0, 0.15, -1.0]  # still, 15 cm above the floor
    p = _run(np.stack([still, moving, floating], axis=1), settings)
    assert p[:, 0, :36].min() > 0.8          # the sole, every frame
    assert p[:, 0, 36:].max() == 0.0         # 8 cm above the sole: not labelled
    assert p[:, 1].max() < 0.2 and p[:, 2].max() < 0.02  # soft(3 s) = 1/82


def test_sole_on_a_slope_is_labelled_by_its_local_plane(settings):
    """A 25 deg slope: the sole is 14 cm above y = 0 but on the plane fitted near it."""
    p = _run(np.stack([_foot((0.3, 0.0), tilt_deg=25.0)] * 4)[:, None], settings, tilt_deg=25.0)
    assert p[:, 0, :36].min() > 0.8 and p[:, 0, 36:].max() == 0.0


def test_a_whole_body_offset_keeps_the_labels(settings):
    """A body estimate 3 cm too high still labels the sole (labels are relative to the gap),
    with the gap score lowering the probability."""
    foot = np.stack([_foot((0.0, 0.0))] * 4) + [0.0, 0.03, 0.0]
    p = _run(foot[:, None], settings)
    assert 0.5 < p[:, 0, :36].min() < 0.95 and p[:, 0, 36:].max() == 0.0


def test_thresholds_come_from_the_config(settings):
    c = frontend_configs.get_config("tiny").contacts
    assert settings == contacts.ContactSettings.from_config(c)
    assert settings.speed_scale_mps == c.speed_scale_mps and settings.gap_scale_m == c.gap_scale_m
    # A sole 8 cm up: no contact at the config's gap scale, contact at a looser one.
    foot = (np.stack([_foot((0.0, 0.0))] * 4) + [0.0, 0.08, 0.0])[:, None]
    assert _run(foot, settings).max() < 0.2
    loose = dataclasses.replace(settings, gap_scale_m=0.2)
    assert _run(foot, loose)[:, 0, :36].min() > 0.9
    # A sole at 0.6 m/s: contact at the config's speed scale, none at a tight one.
    slow = np.stack([_foot((x, 0.0)) for x in np.arange(5) * 0.6 / FPS])[:, None]
    assert _run(slow, settings)[:, 0, :36].min() > 0.5
    assert _run(slow, dataclasses.replace(settings, speed_scale_mps=0.2)).max() < 0.1


def test_unseen_frames_and_missing_scene_give_zero(settings):
    T = 5
    feet = np.stack([_foot((0.0, 0.0))] * T)
    feet[3] = np.nan
    scene = [_floor(), np.zeros((0, 3)), _floor(), _floor(), _floor()]
    p = contacts.estimate_contacts(feet, np.arange(T) / FPS, scene, _regions(1), settings)
    assert p[1].max() == 0.0 and p[3].max() == 0.0  # no scene points; no body
    assert p[4].max() == 0.0  # no seen neighbour: no speed
    assert p[0, :36].min() > 0.8 and p[2, :36].min() > 0.8  # one-sided speed next to frame 3


def test_vertex_speed_is_central_and_one_sided_at_gaps():
    x = np.zeros((5, 1, 3))
    x[:, 0, 0] = [0.0, 1.0, 3.0, 6.0, 10.0]
    x[3] = np.nan
    speed = contacts.vertex_speed(x, np.arange(5) * 0.5)
    np.testing.assert_allclose(speed[:, 0], [2.0, 3.0, 4.0, np.inf, np.inf])


def test_regions_follow_the_largest_skinning_weight():
    w = np.zeros((30, 4))
    w[np.arange(30), np.arange(30) % 4] = 1.0
    index, mask = contacts.region_vertices(w, ((0, 1), (3,)), min_size=5)
    assert sorted(index[0][mask[0]]) == [v for v in range(30) if v % 4 in (0, 1)]
    assert sorted(index[1][mask[1]]) == [v for v in range(30) if v % 4 == 3]
    with pytest.raises(InputError):
        contacts.region_vertices(w, ((2,),), min_size=20)
