"""The contact estimator on hand-made motions: still + on the floor -> contact, else not."""

import numpy as np

from josh_jax.video import contacts

SPEED, DIST, BLOCK = 0.3, 0.05, 64


def _floor(seed=0):
    """A floor pointmap: a 2 cm grid on y = 0 over [-1, 1]^2, jittered by 3 mm."""
    g = np.arange(-1.0, 1.0, 0.02)
    xx, zz = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), np.zeros(xx.size), zz.ravel()], -1)
    return pts + np.random.default_rng(seed).normal(scale=0.003, size=pts.shape)


def test_still_sole_on_floor_is_contact_moving_or_lifted_or_non_candidate_are_not():
    T, fps = 10, 6.0
    times = np.arange(T) / fps
    verts = np.zeros((T, 4, 3))
    verts[:, 0] = [0.5, 0.0, 0.5]                       # planted sole
    verts[:, 1, 0] = np.linspace(-0.9, 0.9, T)           # sliding along the floor (1.2 m/s)
    verts[:, 2] = [0.0, 0.4, 0.0]                        # still but 40 cm above the floor
    verts[:, 3] = [-0.5, 0.0, -0.5]                      # planted, but not a candidate vertex
    cand = np.array([True, True, True, False])
    scene = [_floor(seed=t) for t in range(T)]
    p = contacts.estimate_contacts(verts, times, scene, cand, SPEED, DIST, BLOCK)
    assert p.shape == (T, 4) and p.dtype == np.float32
    assert p[:, 0].min() > 0.5
    assert p[:, 1].max() < 0.01 and p[:, 2].max() < 0.01 and p[:, 3].max() == 0.0


def test_frames_without_a_body_or_scene_give_zero():
    T = 4
    verts = np.zeros((T, 2, 3))
    verts[1] = np.nan
    scene = [_floor(), _floor(), np.zeros((0, 3)), _floor()]
    p = contacts.estimate_contacts(verts, np.arange(T) / 6.0, scene, np.ones(2, bool),
                                   SPEED, DIST, BLOCK)
    assert p[1].max() == 0.0 and p[2].max() == 0.0 and p[0].min() > 0.0


def test_distance_to_scene_is_exact_against_brute_force():
    rng = np.random.default_rng(3)
    x, s = rng.normal(size=(37, 3)), rng.normal(size=(50, 3))
    want = np.linalg.norm(x[:, None] - s[None], axis=-1).min(1)
    np.testing.assert_allclose(contacts.distance_to_scene(x, s, 8), want, atol=1e-9)
