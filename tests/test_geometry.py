"""Geometry primitives against scipy and closed forms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from josh_jax import geometry as g

RNG = np.random.default_rng(0)
AA = RNG.normal(size=(64, 3)) * 1.5
R_SCIPY = Rotation.from_rotvec(AA)


def test_axis_angle_matrix_roundtrip_matches_scipy():
    R = g.axis_angle_to_matrix(jnp.asarray(AA, jnp.float32))
    np.testing.assert_allclose(R, R_SCIPY.as_matrix(), atol=2e-6)
    aa_back = g.matrix_to_axis_angle(R)
    np.testing.assert_allclose(aa_back, R_SCIPY.as_rotvec(), atol=5e-5)


def test_quaternion_conventions_against_scipy_xyzw():
    q_xyzw = R_SCIPY.as_quat()  # scipy is xyzw
    q_wxyz = np.asarray(g.quat_xyzw_to_wxyz(jnp.asarray(q_xyzw)))
    np.testing.assert_allclose(g.quat_to_matrix(q_wxyz), R_SCIPY.as_matrix(), atol=1e-6)
    # Non-unit quaternions describe the same rotation (pytorch3d semantics).
    np.testing.assert_allclose(g.quat_to_matrix(3.0 * q_wxyz), R_SCIPY.as_matrix(), atol=1e-6)
    q_back = np.asarray(g.matrix_to_quat(R_SCIPY.as_matrix()))
    assert np.all(q_back[:, 0] >= 0)
    np.testing.assert_allclose(np.abs(np.sum(q_back * q_wxyz, -1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(g.quat_wxyz_to_xyzw(q_wxyz), q_xyzw, atol=0)
    q_from_aa = np.asarray(g.axis_angle_to_quat(AA))  # same rotation, sign may differ (q ~ -q)
    np.testing.assert_allclose(np.abs(np.sum(q_from_aa * q_wxyz, -1)), 1.0, atol=1e-6)


def test_quat_multiply_composes_rotations():
    q = np.asarray(g.quat_xyzw_to_wxyz(R_SCIPY.as_quat()))
    prod = g.quat_multiply(q[:32], q[32:])
    np.testing.assert_allclose(
        g.quat_to_matrix(prod), (R_SCIPY[:32] * R_SCIPY[32:]).as_matrix(), atol=1e-6
    )


def test_rot6d_is_first_two_rows_and_gram_schmidt():
    R = R_SCIPY.as_matrix()
    d6 = g.matrix_to_rot6d(R)
    np.testing.assert_allclose(d6, R[:, :2, :].reshape(-1, 6), atol=0)
    np.testing.assert_allclose(g.rot6d_to_matrix(d6), R, atol=1e-6)
    # A perturbed 6D still decodes to a proper rotation.
    R2 = np.asarray(g.rot6d_to_matrix(d6 + 0.1 * RNG.normal(size=d6.shape)))
    np.testing.assert_allclose(R2 @ np.swapaxes(R2, -1, -2), np.broadcast_to(np.eye(3), R2.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(R2), 1.0, atol=1e-5)


@pytest.mark.parametrize(  # numpy inputs: no JAX operation at import (conftest sets the devices)
    "fn,x0",
    [
        (g.axis_angle_to_matrix, np.zeros(3, np.float32)),
        (g.matrix_to_axis_angle, np.eye(3, dtype=np.float32)),
        (g.quat_to_matrix, np.array([1.0, 0, 0, 0], np.float32)),
        (g.matrix_to_quat, np.eye(3, dtype=np.float32)),
        (g.rot6d_to_matrix, np.array([1.0, 0, 0, 0, 1, 0], np.float32)),
        (g.axis_angle_to_quat, np.zeros(3, np.float32)),
    ],
)
def test_gradients_finite_at_identity(fn, x0):
    grad = jax.grad(lambda x: jnp.sum(fn(x) * jnp.arange(fn(x).size).reshape(fn(x).shape)))(x0)
    assert np.all(np.isfinite(grad))


def test_axis_angle_gradient_at_zero_is_the_skew_derivative():
    # d/d aa of R(aa) at 0 is skew(e_i): check one directional derivative.
    _, tangent = jax.jvp(g.axis_angle_to_matrix, (jnp.zeros(3),), (jnp.array([0.0, 0.0, 1.0]),))
    np.testing.assert_allclose(tangent, g.skew(jnp.array([0.0, 0.0, 1.0])), atol=1e-6)


def test_se3_inverse_apply_compose():
    R = R_SCIPY.as_matrix()[:8]
    t = RNG.normal(size=(8, 3))
    T = g.se3(jnp.asarray(R), jnp.asarray(t))
    chex.assert_shape(T, (8, 4, 4))
    np.testing.assert_allclose(g.se3_inverse(T) @ T, np.broadcast_to(np.eye(4), T.shape), atol=1e-5)
    pts = RNG.normal(size=(8, 5, 3))
    np.testing.assert_allclose(g.se3_apply(T, pts), pts @ np.swapaxes(R, -1, -2) + t[:, None], atol=1e-5)


def test_se3_interpolate_matches_scipy_slerp_and_hits_keys():
    key_times = np.array([0.0, 5.0, 10.0, 12.0])
    rots = Rotation.from_rotvec(RNG.normal(size=(4, 3)))
    trans = RNG.normal(size=(4, 3))
    T_keys = g.se3(jnp.asarray(rots.as_matrix()), jnp.asarray(trans))
    query = np.arange(13, dtype=np.float64)
    T_q = np.asarray(g.se3_interpolate(T_keys, key_times, query))
    np.testing.assert_array_equal(T_q[[0, 5, 10, 12]], np.asarray(T_keys))  # exact, last key too
    expected_R = Slerp(key_times, rots)(query).as_matrix()
    np.testing.assert_allclose(T_q[:, :3, :3], expected_R, atol=1e-6)
    expected_t = np.stack([np.interp(query, key_times, trans[:, i]) for i in range(3)], -1)
    np.testing.assert_allclose(T_q[:, :3, 3], expected_t, atol=1e-5)
    # Clamped outside the key range.
    T_out = g.se3_interpolate(T_keys, key_times, np.array([-3.0, 20.0]))
    np.testing.assert_array_equal(T_out, np.asarray(T_keys)[[0, -1]])


def test_host_pinhole_twins_agree_with_the_traced_camera():
    K = g.centred_intrinsics(420.0, 144, 256)
    assert K.dtype == np.float64
    np.testing.assert_array_equal(K, np.asarray(g.intrinsics_matrix(420.0, 128.0, 72.0)))
    depth = RNG.uniform(1.0, 3.0, (2, 5, 6))
    points = g.pointmaps_from_depth(depth, 420.0)
    assert points.shape == (2, 5, 6, 3) and points.dtype == np.float32
    K = g.centred_intrinsics(420.0, 5, 6)
    expected = g.unproject(jnp.asarray(K, jnp.float32), g.pixel_grid(5, 6), jnp.asarray(depth))
    np.testing.assert_allclose(points, expected, rtol=1e-6)


def test_axis_angle_host_twin_matches_the_traced_formula_in_float64():
    rng = np.random.default_rng(3)
    aa = rng.normal(size=(6, 5, 3))
    aa[0, 0] = 0.0  # identity
    aa[0, 1] = [1e-5, -2e-5, 0.0]  # the small-angle branch
    with jax.enable_x64(True):
        traced = np.asarray(g.axis_angle_to_matrix(jnp.asarray(aa, jnp.float64)))
    host = g.axis_angle_to_matrix_host(aa)
    assert host.dtype == np.float64 and host.shape == (6, 5, 3, 3)
    np.testing.assert_allclose(host, traced, rtol=0, atol=1e-15)
    np.testing.assert_allclose(host[1:], Rotation.from_rotvec(aa[1:].reshape(-1, 3)).as_matrix()
                               .reshape(5, 5, 3, 3), atol=1e-12)


def test_project_unproject_roundtrip_and_pixel_grid():
    K = g.intrinsics_matrix(420.0, 256.0, 144.0)
    uv = g.pixel_grid(6, 7)
    chex.assert_shape(uv, (6, 7, 2))
    assert float(uv[2, 3, 0]) == 3.0 and float(uv[2, 3, 1]) == 2.0  # indexed [v, u]
    depth = jnp.full((6, 7), 2.5)
    x_cam = g.unproject(K, uv, depth)
    np.testing.assert_allclose(x_cam[..., 2], 2.5)
    np.testing.assert_allclose(g.project(K, x_cam), uv, atol=1e-4)
    # The principal point looks straight ahead.
    np.testing.assert_allclose(g.unproject(K, jnp.array([256.0, 144.0]), jnp.array(1.0)), [0, 0, 1])
