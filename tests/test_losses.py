"""Tests for losses/: every term against plain-numpy formulas, masking, zero-residual gradients,
jit / vmap safety and the gamma constants of `docs/method.md` (6.1)."""

import os
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losses

RTOL = 1e-5
ATOL = 1e-6

# Jitted versions: one compile per shape instead of one per primitive keeps this file fast on a
# loaded 2-core machine; test_eager_mode_matches_jit checks the plain functions too.
jl = types.SimpleNamespace(**{
    name: jax.jit(getattr(losses, name), static_argnames=("gamma",))
    for name in ("match_3d_loss", "reprojection_loss", "contact_scale_loss", "contact_static_loss",
                 "joint_smoothness_loss", "prior_loss", "prior_terms")})
jl.track_weighted_mean = jax.jit(losses.track_weighted_mean)
jl.project_points = jax.jit(losses.project_points, static_argnames=("clip",))


def np_rho(r, gamma):
    """rho_gamma of `docs/method.md` (6.1) in plain numpy (float64)."""
    c = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    return (np.asarray(r, np.float64) + c) ** gamma - c ** gamma


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------- robust ---

@pytest.mark.parametrize("gamma,c,c_gamma", [(1.1, 0.385543, 0.350494), (0.4, 0.217153, 0.542884)])
def test_gamma_constants_match_spec(gamma, c, c_gamma):
    np.testing.assert_allclose(losses.gamma_constant(gamma), c, atol=1e-6)
    np.testing.assert_allclose(losses.gamma_constant(gamma) ** gamma, c_gamma, atol=1e-6)
    # rho(1) written out with the rounded constants of docs/method.md (6.1).
    np.testing.assert_allclose(float(losses.gamma_loss(jnp.float32(1.0), gamma)),
                               (1.0 + c) ** gamma - c_gamma, atol=2e-6)


@pytest.mark.parametrize("gamma", [1.1, 0.4, 1.5])
def test_gamma_loss_values_and_slope_at_zero(gamma):
    r = np.array([0.0, 1e-3, 0.5, 1.0, 3.0, 250.0], np.float32)
    np.testing.assert_allclose(np.asarray(losses.gamma_loss(jnp.asarray(r), gamma)),
                               np_rho(r, gamma), rtol=RTOL, atol=ATOL)
    assert float(losses.gamma_loss(jnp.float32(0.0), gamma)) == 0.0
    # c_gamma is chosen so that rho'(0) = 1.
    np.testing.assert_allclose(float(jax.grad(losses.gamma_loss)(0.0, gamma)), 1.0, rtol=1e-5)


def test_gamma_one_is_l1_and_traced_gamma_works():
    r = jnp.array([0.0, 0.3, 2.0])
    np.testing.assert_allclose(np.asarray(losses.gamma_loss(r, 1.0)), np.asarray(r))
    # gamma as a traced value (here vmapped) gives the same numbers as the static path.
    got = jax.vmap(losses.gamma_loss, in_axes=(None, 0))(r, jnp.array([1.1, 0.4]))
    np.testing.assert_allclose(np.asarray(got), [np_rho(r, 1.1), np_rho(r, 0.4)], rtol=1e-5, atol=1e-6)


def test_safe_norm_value_and_gradient():
    x = rng().normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(losses.safe_norm(jnp.asarray(x))),
                               np.linalg.norm(x, axis=-1), rtol=RTOL)
    np.testing.assert_allclose(np.asarray(losses.safe_norm(jnp.asarray(x), axis=0, keepdims=True)),
                               np.linalg.norm(x, axis=0, keepdims=True), rtol=RTOL)
    g0 = jax.grad(lambda v: losses.safe_norm(v))(jnp.zeros(3))
    assert np.all(np.isfinite(np.asarray(g0)))
    np.testing.assert_array_equal(np.asarray(g0), 0.0)
    # Away from zero the gradient is the unit vector.
    v = jnp.array([3.0, 0.0, 4.0])
    np.testing.assert_allclose(np.asarray(jax.grad(losses.safe_norm)(v)), [0.6, 0.0, 0.8], rtol=1e-6)
    # jnp.linalg.norm is NaN there: the reason safe_norm exists.
    assert np.isnan(np.asarray(jax.grad(jnp.linalg.norm)(jnp.zeros(3)))).any()


def test_safe_norm_components_matches_safe_norm():
    x = rng().normal(size=(3, 4, 5)).astype(np.float32)
    x[:, 0, 0] = 0.0  # a zero vector
    got = losses.safe_norm_components(*jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), np.linalg.norm(x, axis=0), rtol=RTOL)
    g = jax.grad(lambda v: losses.safe_norm_components(*v).sum())(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(g)[:, 0, 0], 0.0)
    unit = x[:, 1:] / np.linalg.norm(x[:, 1:], axis=0)
    np.testing.assert_allclose(np.asarray(g)[:, 1:], unit, rtol=1e-5)


def test_masked_mean_and_weighted_sum():
    v = jnp.array([1.0, 2.0, 4.0, jnp.nan])
    w = jnp.array([1.0, 3.0, 0.0, 0.0])
    np.testing.assert_allclose(float(losses.masked_mean(v, w)), (1 + 6) / 4.0, rtol=1e-6)
    assert float(losses.masked_mean(v, jnp.zeros(4))) == 0.0
    assert float(losses.masked_mean(jnp.zeros((0,)), jnp.zeros((0,)))) == 0.0
    terms = {"a": jnp.float32(2.0), "b": jnp.float32(3.0)}
    np.testing.assert_allclose(float(losses.weighted_sum(terms, {"b": 0.5})), 3.5)
    np.testing.assert_allclose(float(losses.weighted_sum(terms)), 5.0)
    with pytest.raises(ValueError, match="unknown terms"):
        losses.weighted_sum(terms, {"c": 1.0})


# ------------------------------------------------------------------------------------ scene ---

def test_eager_mode_matches_jit():
    P = jnp.asarray(rng(9).normal(size=(5, 2, 3)), jnp.float32)
    f = jnp.array([0.0, 1, 3, 4, 6])
    v = jnp.array([1, 1, 1, 1, 0])
    np.testing.assert_allclose(float(losses.joint_smoothness_loss(P, f, v)),
                               float(jl.joint_smoothness_loss(P, f, v)), rtol=1e-6)
    np.testing.assert_allclose(float(losses.match_3d_loss(P[0], P[1], f[:2])),
                               float(jl.match_3d_loss(P[0], P[1], f[:2])), rtol=1e-6)


def _matches(seed, m=7):
    r = rng(seed)
    xi = r.normal(size=(m, 3)).astype(np.float32)
    xj = (xi + 0.3 * r.normal(size=(m, 3))).astype(np.float32)
    c = r.uniform(0.5, 3.0, size=m).astype(np.float32)
    return xi, xj, c


def test_match_3d_loss_hand_computation():
    xi, xj, c = _matches(0)
    want = np.sum(c * np_rho(np.linalg.norm(xi - xj, axis=-1), 1.1)) / np.sum(c)
    got = jl.match_3d_loss(jnp.asarray(xi), jnp.asarray(xj), jnp.asarray(c))
    np.testing.assert_allclose(float(got), want, rtol=RTOL)
    # A tiny case written out: one match at distance 1 (weight 2), one at distance 0 (weight 1).
    got = jl.match_3d_loss(jnp.array([[0.0, 0, 0], [1, 1, 1]]), jnp.array([[1.0, 0, 0], [1, 1, 1]]),
                               jnp.array([2.0, 1.0]))
    np.testing.assert_allclose(float(got), 2 * ((1 + 0.385543) ** 1.1 - 0.350494) / 3, atol=2e-6)


def test_match_3d_loss_padding_changes_nothing():
    xi, xj, c = _matches(1)
    base = float(jl.match_3d_loss(jnp.asarray(xi), jnp.asarray(xj), jnp.asarray(c)))
    pad = 5
    junk = np.full((pad, 3), 1e6, np.float32)
    xi_p = np.concatenate([xi, junk])
    xj_p = np.concatenate([xj, -junk])
    c_p = np.concatenate([c, np.zeros(pad, np.float32)])
    padded = float(jl.match_3d_loss(jnp.asarray(xi_p), jnp.asarray(xj_p), jnp.asarray(c_p)))
    np.testing.assert_allclose(padded, base, rtol=1e-6)
    # NaN in padding does not leak into the value either.
    xi_p[-1] = np.nan
    padded = float(jl.match_3d_loss(jnp.asarray(xi_p), jnp.asarray(xj_p), jnp.asarray(c_p)))
    np.testing.assert_allclose(padded, base, rtol=1e-6)
    assert float(jl.match_3d_loss(jnp.asarray(xi), jnp.asarray(xj), jnp.zeros(7))) == 0.0


def test_match_3d_loss_gradient_finite_at_zero_residual():
    xi, _, c = _matches(2)
    g = jax.grad(jl.match_3d_loss, argnums=(0, 1))(jnp.asarray(xi), jnp.asarray(xi), jnp.asarray(c))
    for gi in g:
        assert np.all(np.isfinite(np.asarray(gi)))
    # Fully masked: value 0 and gradient 0.
    g = jax.grad(jl.match_3d_loss)(jnp.asarray(xi), jnp.asarray(xi + 1), jnp.zeros(7))
    np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_match_3d_loss_vmap_jit_equals_loop():
    batch = [_matches(s) for s in range(3)]
    xi, xj, c = (jnp.asarray(np.stack(a)) for a in zip(*batch, strict=True))
    got = jax.jit(jax.vmap(jl.match_3d_loss))(xi, xj, c)
    want = [float(jl.match_3d_loss(*(jnp.asarray(a) for a in b))) for b in batch]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def _np_project(K, T_cam_world, x, min_depth=1e-3, lo=-1000.0, hi=2000.0):
    y = (K @ (T_cam_world[:3, :3] @ x.T + T_cam_world[:3, 3:4])).T
    return np.clip(y[:, :2] / np.maximum(y[:, 2:3], min_depth), lo, hi)


def _camera():
    K = np.array([[400.0, 0, 256], [0, 400.0, 144], [0, 0, 1]], np.float32)
    a = 0.2
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
    T = np.eye(4, dtype=np.float32)
    T[:3, :3] = R
    T[:3, 3] = [0.1, -0.2, 0.5]
    return K, T


def test_project_points_matches_numpy_and_clamps():
    K, T = _camera()
    x = rng(3).uniform([-1, -1, 1], [1, 1, 4], size=(6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(jl.project_points(jnp.asarray(K), jnp.asarray(T),
                                                                jnp.asarray(x))),
                               _np_project(K, T, x), rtol=1e-5, atol=1e-3)
    # A point on the optical axis lands on the principal point; a 3x4 matrix works too.
    x_axis_cam = np.array([0.0, 0.0, 2.0], np.float32)
    x_axis_world = np.linalg.inv(T) @ np.append(x_axis_cam, 1.0)
    uv = jl.project_points(jnp.asarray(K), jnp.asarray(T[:3]), jnp.asarray(x_axis_world[None, :3]))
    np.testing.assert_allclose(np.asarray(uv)[0], [256.0, 144.0], atol=1e-3)
    # Behind the camera: depth clamped to 1e-3, then the pixel clipped to [-1000, 2000].
    behind = np.linalg.inv(T) @ np.array([2.0, -2.0, -1.0, 1.0])
    uv = np.asarray(jl.project_points(jnp.asarray(K), jnp.asarray(T), jnp.asarray(behind[None, :3])))
    np.testing.assert_allclose(uv[0], [2000.0, -1000.0], atol=1e-3)
    g = jax.grad(lambda p: jl.project_points(jnp.asarray(K), jnp.asarray(T), p).sum())(
        jnp.asarray(behind[None, :3], jnp.float32))
    assert np.all(np.isfinite(np.asarray(g)))


def test_reprojection_loss_hand_computation_and_padding():
    K, T = _camera()
    r = rng(4)
    x = r.uniform([-1, -1, 1], [1, 1, 4], size=(8, 3)).astype(np.float32)
    uv_obs = (_np_project(K, T, x) + r.normal(scale=3.0, size=(8, 2))).astype(np.float32)
    c = r.uniform(0.1, 2.0, size=8).astype(np.float32)
    uv_pred = jl.project_points(jnp.asarray(K), jnp.asarray(T), jnp.asarray(x))
    got = jl.reprojection_loss(jnp.asarray(uv_obs), uv_pred, jnp.asarray(c))
    res = np.linalg.norm(uv_obs - _np_project(K, T, x), axis=-1)
    want = np.sum(c * np_rho(res, 0.4)) / np.sum(c)
    np.testing.assert_allclose(float(got), want, rtol=1e-4)
    # Padding (conf 0) changes nothing.
    got_p = jl.reprojection_loss(jnp.asarray(np.concatenate([uv_obs, np.full((3, 2), 7e3)])),
                                     jnp.concatenate([uv_pred, jnp.zeros((3, 2))]),
                                     jnp.asarray(np.concatenate([c, np.zeros(3)])))
    np.testing.assert_allclose(float(got_p), float(got), rtol=1e-6)
    # Zero residual: value 0, gradient finite.
    val, g = jax.value_and_grad(jl.reprojection_loss, argnums=1)(uv_pred, uv_pred, jnp.asarray(c))
    assert float(val) == 0.0
    assert np.all(np.isfinite(np.asarray(g)))


def test_reprojection_loss_vmap_equals_loop():
    r = rng(5)
    uv_o = r.normal(size=(4, 6, 2)).astype(np.float32) * 10
    uv_p = r.normal(size=(4, 6, 2)).astype(np.float32) * 10
    c = (r.uniform(size=(4, 6)) > 0.3).astype(np.float32)
    got = jax.vmap(jl.reprojection_loss)(jnp.asarray(uv_o), jnp.asarray(uv_p), jnp.asarray(c))
    want = [float(jl.reprojection_loss(jnp.asarray(uv_o[b]), jnp.asarray(uv_p[b]),
                                           jnp.asarray(c[b]))) for b in range(4)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


# ------------------------------------------------------------------------------------ human ---

def test_contact_scale_loss_hand_computation_and_padding():
    a = np.array([2.0, 3.0, 1.5, 9.0], np.float32)
    b = np.array([2.5, 3.0, 1.0, -4.0], np.float32)
    w = np.array([1.0, 2.0, 0.5, 0.0], np.float32)  # last entry is padding
    got = jl.contact_scale_loss(jnp.asarray(a), jnp.asarray(b), jnp.asarray(w))
    want = (1.0 * np_rho(0.5, 1.1) + 2.0 * 0.0 + 0.5 * np_rho(0.5, 1.1)) / 3.5
    np.testing.assert_allclose(float(got), want, rtol=RTOL)
    got3 = jl.contact_scale_loss(jnp.asarray(a[:3]), jnp.asarray(b[:3]), jnp.asarray(w[:3]))
    np.testing.assert_allclose(float(got3), float(got), rtol=1e-6)
    assert float(jl.contact_scale_loss(jnp.asarray(a), jnp.asarray(b), jnp.zeros(4))) == 0.0
    g = jax.grad(jl.contact_scale_loss, argnums=(0, 1))(jnp.asarray(a), jnp.asarray(a), jnp.asarray(w))
    for gi in g:
        assert np.all(np.isfinite(np.asarray(gi)))


def test_contact_static_loss_hand_computation_and_padding():
    now = np.array([[0.0, 0, 0], [1, 1, 1], [2, 0, 0], [5, 5, 5]], np.float32)
    prev = np.array([[0.0, 0, 0.3], [1, 1, 1], [2, 0.4, 0], [0, 0, 0]], np.float32)
    mask = np.array([1, 1, 1, 0], np.float32)
    got = jl.contact_static_loss(jnp.asarray(now), jnp.asarray(prev), jnp.asarray(mask))
    want = (np_rho(0.3, 1.1) + 0.0 + np_rho(0.4, 1.1)) / 3.0
    np.testing.assert_allclose(float(got), want, rtol=RTOL)
    got_bool = jl.contact_static_loss(jnp.asarray(now), jnp.asarray(prev), jnp.asarray(mask > 0))
    np.testing.assert_allclose(float(got_bool), want, rtol=RTOL)
    assert float(jl.contact_static_loss(jnp.asarray(now), jnp.asarray(prev), jnp.zeros(4))) == 0.0
    g = jax.grad(jl.contact_static_loss)(jnp.asarray(now), jnp.asarray(now), jnp.asarray(mask))
    assert np.all(np.isfinite(np.asarray(g)))


def np_smoothness(P, f, gamma=1.1):
    """L_smooth of `docs/method.md` (7.6) over the valid frames, with explicit loops (float64)."""
    P = np.asarray(P, np.float64)
    f = np.asarray(f, np.float64)
    n = P.shape[0]
    if n < 3:
        return 0.0
    vals = []
    for b in range(1, n - 1):
        a = (P[b + 1] - P[b]) / (f[b + 1] - f[b]) - (P[b] - P[b - 1]) / (f[b] - f[b - 1])
        vals.extend(np_rho(np.linalg.norm(a, axis=-1), gamma))
    return float(np.mean(vals))


def _track(seed, n=6, j=4):
    r = rng(seed)
    P = np.cumsum(r.normal(scale=0.1, size=(n, j, 3)), axis=0).astype(np.float32)
    f = np.cumsum(r.integers(1, 6, size=n)).astype(np.float32)
    return P, f


def test_joint_smoothness_hand_computation():
    P, f = _track(0)
    got = jl.joint_smoothness_loss(jnp.asarray(P), jnp.asarray(f), jnp.ones(6, bool))
    np.testing.assert_allclose(float(got), np_smoothness(P, f), rtol=1e-5)
    # Unit gaps (the reference's sampled-image index).
    got1 = jl.joint_smoothness_loss(jnp.asarray(P), jnp.arange(6), jnp.ones(6))
    np.testing.assert_allclose(float(got1), np_smoothness(P, np.arange(6)), rtol=1e-5)
    # Tiny case written out: 3 frames of one joint, f = (0, 1, 3), x = (0, 1, 5) along x:
    # v1 = 1, v2 = 4/2 = 2, a = 1 -> rho(1).
    P3 = jnp.array([[[0.0, 0, 0]], [[1.0, 0, 0]], [[5.0, 0, 0]]])
    got3 = jl.joint_smoothness_loss(P3, jnp.array([0.0, 1.0, 3.0]), jnp.ones(3))
    np.testing.assert_allclose(float(got3), (1 + 0.385543) ** 1.1 - 0.350494, atol=2e-6)


def test_joint_smoothness_constant_velocity_is_zero_with_uneven_gaps():
    f = np.array([0.0, 5, 10, 12, 20], np.float32)
    vel = np.array([0.1, -0.2, 0.05], np.float32)
    P = (np.ones((5, 2, 3), np.float32) + f[:, None, None] * vel).astype(np.float32)
    got = jl.joint_smoothness_loss(jnp.asarray(P), jnp.asarray(f), jnp.ones(5))
    np.testing.assert_allclose(float(got), 0.0, atol=1e-5)
    # Gradient at zero acceleration is finite.
    g = jax.grad(jl.joint_smoothness_loss)(jnp.asarray(P), jnp.asarray(f), jnp.ones(5))
    assert np.all(np.isfinite(np.asarray(g)))


def test_joint_smoothness_padding_and_short_tracks():
    P, f = _track(1, n=5)
    base = float(jl.joint_smoothness_loss(jnp.asarray(P), jnp.asarray(f), jnp.ones(5)))
    # Padding at the end with garbage positions and repeated frame indices (gap 0).
    P_p = np.concatenate([P, np.full((3, 4, 3), 1e4, np.float32)])
    f_p = np.concatenate([f, np.zeros(3, np.float32)])
    valid = np.array([1] * 5 + [0] * 3, bool)
    got = jl.joint_smoothness_loss(jnp.asarray(P_p), jnp.asarray(f_p), jnp.asarray(valid))
    np.testing.assert_allclose(float(got), base, rtol=1e-6)
    g = jax.grad(jl.joint_smoothness_loss)(jnp.asarray(P_p), jnp.asarray(f_p), jnp.asarray(valid))
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_array_equal(np.asarray(g)[5:], 0.0)
    # Padding in the middle: the valid frames are taken in order.
    perm = np.array([0, 5, 1, 2, 6, 3, 4, 7])
    got_mid = jl.joint_smoothness_loss(jnp.asarray(P_p[perm]), jnp.asarray(f_p[perm]),
                                           jnp.asarray(valid[perm]))
    np.testing.assert_allclose(float(got_mid), base, rtol=1e-6)
    # Fewer than 3 valid frames: 0.
    for n_valid in (0, 1, 2):
        v = np.arange(8) < n_valid
        assert float(jl.joint_smoothness_loss(jnp.asarray(P_p), jnp.asarray(f_p), jnp.asarray(v))) == 0.0
    assert float(jl.joint_smoothness_loss(jnp.asarray(P[:2]), jnp.asarray(f[:2]), jnp.ones(2))) == 0.0


def test_joint_smoothness_vmap_jit_equals_loop():
    tracks = [_track(s) for s in range(3)]
    valid = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], np.float32)
    P = jnp.asarray(np.stack([t[0] for t in tracks]))
    f = jnp.asarray(np.stack([t[1] for t in tracks]))
    got = jax.jit(jax.vmap(jl.joint_smoothness_loss))(P, f, jnp.asarray(valid))
    want = [np_smoothness(t[0][: int(v.sum())], t[1][: int(v.sum())]) for t, v in zip(tracks, valid, strict=True)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)


def _prior_inputs(seed, n=4):
    r = rng(seed)
    init = {"quat": r.normal(size=(n, 4)).astype(np.float32),
            "transl": r.normal(size=(n, 3)).astype(np.float32),
            "body_pose": r.normal(size=(n, 23, 3, 3)).astype(np.float32)}
    cur = {k: (v + 0.1 * r.normal(size=v.shape)).astype(np.float32) for k, v in init.items()}
    betas0 = r.normal(size=10).astype(np.float32)
    betas = (betas0 + 0.2 * r.normal(size=10)).astype(np.float32)
    return cur, init, betas, betas0


def np_prior(cur, init, valid, betas, betas0, weights=None):
    weights = weights or {}
    total = 0.0
    v = np.asarray(valid, bool)
    for k in cur:
        d = (cur[k] - init[k]).reshape(cur[k].shape[0], -1)[v]
        total += weights.get(k, 1.0) * np.mean(np_rho(np.linalg.norm(d, axis=-1), 1.1))
    total += weights.get("betas", 1.0) * np_rho(np.linalg.norm(betas - betas0), 1.1)
    return total


def test_prior_loss_hand_computation():
    cur, init, betas, betas0 = _prior_inputs(0)
    j = lambda d: {k: jnp.asarray(v) for k, v in d.items()}
    valid = np.array([1, 1, 1, 0], bool)
    got = jl.prior_loss(j(cur), j(init), jnp.asarray(valid), {"betas": jnp.asarray(betas)},
                            {"betas": jnp.asarray(betas0)})
    np.testing.assert_allclose(float(got), np_prior(cur, init, valid, betas, betas0), rtol=1e-5)
    w = {"transl": 10.0, "betas": 0.5}
    got_w = jl.prior_loss(j(cur), j(init), jnp.asarray(valid), {"betas": jnp.asarray(betas)},
                              {"betas": jnp.asarray(betas0)}, weights=w)
    np.testing.assert_allclose(float(got_w), np_prior(cur, init, valid, betas, betas0, w), rtol=1e-5)
    terms = jl.prior_terms(j(cur), j(init), jnp.asarray(valid))
    assert sorted(terms) == ["body_pose", "quat", "transl"]
    # The padded frame changes nothing, whatever it holds.
    cur2 = {k: v.copy() for k, v in cur.items()}
    cur2["transl"][3] = 1e6
    got2 = jl.prior_loss(j(cur2), j(init), jnp.asarray(valid), {"betas": jnp.asarray(betas)},
                             {"betas": jnp.asarray(betas0)})
    np.testing.assert_allclose(float(got2), float(got), rtol=1e-6)


def test_prior_loss_zero_and_finite_gradient_at_init():
    _, init, _, betas0 = _prior_inputs(1)
    pf = {k: jnp.asarray(v) for k, v in init.items()}
    pt = {"betas": jnp.asarray(betas0)}

    def f(pf_, pt_):
        return jl.prior_loss(pf_, pf, jnp.ones(4), pt_, pt)

    val, (g_pf, g_pt) = jax.value_and_grad(f, argnums=(0, 1))(pf, pt)
    assert float(val) == 0.0
    for leaf in jax.tree.leaves((g_pf, g_pt)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # No valid frame: 0, even for the per-track term.
    moved = {"betas": pt["betas"] + 1.0}
    assert float(jl.prior_loss(pf, pf, jnp.zeros(4), moved, pt)) == 0.0


def test_prior_loss_bad_keys_and_shapes():
    cur, init, _, _ = _prior_inputs(2)
    with pytest.raises(ValueError, match="keys"):
        jl.prior_loss({"quat": cur["quat"]}, {"transl": init["transl"]}, np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        jl.prior_loss({"quat": cur["quat"]}, {"quat": init["quat"][:3]}, np.ones(4))


def test_prior_loss_vmap_over_tracks():
    ins = [_prior_inputs(s) for s in range(3)]
    valid = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    stack = lambda i: {k: jnp.asarray(np.stack([x[i][k] for x in ins])) for k in ins[0][i]}
    betas = jnp.asarray(np.stack([x[2] for x in ins]))
    betas0 = jnp.asarray(np.stack([x[3] for x in ins]))
    fn = lambda c, i, v, b, b0: jl.prior_loss(c, i, v, {"betas": b}, {"betas": b0})
    got = jax.jit(jax.vmap(fn))(stack(0), stack(1), jnp.asarray(valid), betas, betas0)
    want = [np_prior(x[0], x[1], v, x[2], x[3]) if v.any() else 0.0 for x, v in zip(ins, valid, strict=True)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


def test_track_weighted_mean():
    got = jl.track_weighted_mean(jnp.array([1.0, 4.0, 100.0]), jnp.array([3, 1, 0]))
    np.testing.assert_allclose(float(got), (3 * 1.0 + 4.0) / 4.0, rtol=1e-6)
    assert float(jl.track_weighted_mean(jnp.array([1.0, 2.0]), jnp.array([0, 0]))) == 0.0


def test_docs_example_runs_and_fits():
    """The optax example in docs/losses.md runs as written and improves the noisy track."""
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "losses.md")
    with open(path) as fh:
        code = re.search(r"```python\n(.*?)```", fh.read(), re.S).group(1)
    scope = {}
    exec(compile(code, path, "exec"), scope)  # noqa: S102
    curve = np.asarray(scope["curve"])
    assert np.all(np.isfinite(curve)) and curve[-1] < 0.5 * curve[0]
    err_fit = float(jnp.abs(scope["fitted"] - scope["clean"]).mean())
    err_noisy = float(jnp.abs(scope["noisy"] - scope["clean"]).mean())
    assert err_fit < 0.8 * err_noisy, (err_fit, err_noisy)
