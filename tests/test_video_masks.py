"""Human masks from bodies: the z-buffer silhouette, absent people, dilation."""

import numpy as np

from josh_jax import geometry
from josh_jax.video import masks


def _square(z):
    """A 1 m square facing the camera at depth z (two triangles)."""
    v = np.array([[-0.5, -0.5, z], [0.5, -0.5, z], [0.5, 0.5, z], [-0.5, 0.5, z]])
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_silhouette_matches_the_projection_and_absent_people_are_skipped():
    H = W = 32
    K = geometry.centred_intrinsics(16.0, H, W)
    v, faces = _square(2.0)  # half-width 0.5 m at 2 m, f 16 -> 4 px each side of the centre
    verts = np.stack([np.stack([v, v]), np.stack([v - [0.0, 0.0, 10.0], np.full_like(v, np.nan)])])
    T_world_cam = np.broadcast_to(np.eye(4), (2, 4, 4))
    m = masks.human_masks(verts, faces, K, T_world_cam, H, W, radius_px=0)
    assert m.shape == (2, H, W)
    cy, cx = K[1, 2], K[0, 2]
    vv, uu = np.mgrid[0:H, 0:W]
    inside = (np.abs(uu - cx) < 3.9) & (np.abs(vv - cy) < 3.9)
    outside = (np.abs(uu - cx) > 4.1) | (np.abs(vv - cy) > 4.1)
    assert m[0][inside].all() and not m[0][outside].any()
    np.testing.assert_array_equal(m[0], m[1])  # person 2: behind the camera, then absent (NaN)


def test_dilation_grows_by_the_radius():
    mask = np.zeros((1, 9, 9), bool)
    mask[0, 4, 4] = True
    d = masks.dilate(mask, 2)
    assert d.sum() == 25 and d[0, 2:7, 2:7].all()
    np.testing.assert_array_equal(masks.dilate(mask, 0), mask)
