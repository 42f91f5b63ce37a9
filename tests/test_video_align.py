"""Sim(3) estimation and chunk alignment on trajectories with a known answer."""

import jax.numpy as jnp
import numpy as np
import pytest

from josh_jax import geometry
from josh_jax.video import sampling, sim3


def _random_sim3(rng, with_scale):
    R = np.asarray(geometry.axis_angle_to_matrix(jnp.asarray(rng.normal(size=3))))
    s = float(rng.uniform(0.5, 2.0)) if with_scale else 1.0
    return sim3.Sim3(jnp.asarray(s), jnp.asarray(R), jnp.asarray(rng.normal(size=3)))


@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_recovers_a_known_transform_and_ignores_zero_weights(with_scale):
    rng = np.random.default_rng(0)
    S = _random_sim3(rng, with_scale)
    x = jnp.asarray(rng.normal(size=(40, 3)))
    y = sim3.apply_points(S, x)
    w = jnp.ones(40).at[:10].set(0.0)
    y = y.at[:10].add(5.0)  # outliers with zero weight
    est = sim3.umeyama(x, y, w, with_scale)
    np.testing.assert_allclose(est.R, S.R, atol=1e-5)
    np.testing.assert_allclose(est.t, S.t, atol=1e-5)
    np.testing.assert_allclose(est.scale, S.scale, atol=1e-5)


def test_apply_poses_keeps_rotations_and_maps_centres():
    rng = np.random.default_rng(1)
    S = _random_sim3(rng, True)
    T = geometry.se3(geometry.axis_angle_to_matrix(jnp.asarray(rng.normal(size=(4, 3)))),
                     jnp.asarray(rng.normal(size=(4, 3))))
    T2 = sim3.apply_poses(S, T)
    np.testing.assert_allclose(T2[:, :3, 3], sim3.apply_points(S, T[:, :3, 3]), atol=1e-6)
    RtR = jnp.einsum("nji,njk->nik", T2[:, :3, :3], T2[:, :3, :3])
    np.testing.assert_allclose(RtR, jnp.broadcast_to(jnp.eye(3), (4, 3, 3)), atol=1e-5)


@pytest.mark.parametrize("with_scale", [True, False])
def test_align_chunks_undoes_per_chunk_transforms(with_scale):
    """A walk split into overlapping chunks, each seen in its own frame (chunk 0 untouched):
    the alignment returns the inverse transforms and the blended trajectory has no border step."""
    rng = np.random.default_rng(2)
    n, P = 90, 3
    t = np.linspace(0, 1, n)
    walk = np.stack([3 * t, np.sin(4 * t), 0.3 * np.cos(7 * t)], -1)
    x_world = walk[:, None, :] + rng.normal(size=(1, P, 3)) * 0.3  # a small rigid body per frame
    ranges = sampling.overlapping_chunks(n, 40, 15)
    truth = [sim3.identity()] + [_random_sim3(rng, with_scale) for _ in ranges[1:]]
    x_chunks, valid = [], []
    for (a, b), S in zip(ranges, truth, strict=False):
        inside = ((np.arange(n) >= a) & (np.arange(n) < b)).astype(np.float32)
        # chunk frame = S^-1 (world); we build it by solving S^-1 via umeyama on exact points
        S_inv = sim3.umeyama(sim3.apply_points(S, jnp.asarray(x_world.reshape(-1, 3))),
                             jnp.asarray(x_world.reshape(-1, 3)), jnp.ones(n * P), with_scale)
        x_c = sim3.apply_points(S_inv, jnp.asarray(x_world)) * inside[:, None, None]
        x_chunks.append(x_c)
        valid.append(jnp.broadcast_to(jnp.asarray(inside)[:, None], (n, P)))
    found = sim3.align_chunks(jnp.stack(x_chunks), jnp.stack(valid), with_scale)
    aligned = jnp.stack([sim3.apply_points(S, x) for S, x in zip(found, x_chunks, strict=False)])
    w = sim3.blend_weights(ranges, n)
    merged = jnp.einsum("cf,cfpd->fpd", w, aligned)
    np.testing.assert_allclose(merged, x_world, atol=1e-4)
    for S_found, S_true in zip(found, truth, strict=False):
        np.testing.assert_allclose(S_found.R, S_true.R, atol=1e-4)
        np.testing.assert_allclose(S_found.t, S_true.t, atol=1e-4)


def test_blend_weights_sum_to_one_and_fade_across_overlaps():
    ranges = sampling.overlapping_chunks(100, 40, 10)
    w = np.asarray(sim3.blend_weights(ranges, 100))
    np.testing.assert_allclose(w.sum(0), 1.0, atol=1e-6)
    a1 = ranges[1][0]
    assert w[0, a1] > w[1, a1] and w[1, ranges[0][1] - 1] > w[0, ranges[0][1] - 1]
    assert np.max(np.abs(np.diff(w, axis=1))) < 0.5  # no hard switch at a border



def _seen_through(x_world, ranges, truth, rng):
    """Chunks covering `ranges` of x_world[F, P, 3], each in its own frame (world = truth[c] of
    it), with 1 mm noise: (x_chunks[C, F, P, 3], valid[C, F, P])."""
    n, P, _ = x_world.shape
    x_chunks, valid = [], []
    for (a, b), S in zip(ranges, truth, strict=True):
        inside = ((np.arange(n) >= a) & (np.arange(n) < b)).astype(np.float32)
        local = np.einsum("ji,fpj->fpi", np.asarray(S.R), x_world - np.asarray(S.t))
        local = local / float(S.scale) + rng.normal(size=local.shape) * 1e-3
        x_chunks.append(local * inside[:, None, None])
        valid.append(np.broadcast_to(inside[:, None], (n, P)))
    return jnp.asarray(np.stack(x_chunks), jnp.float32), jnp.asarray(np.stack(valid))



def test_scale_gate_keeps_a_far_scale_and_solves_a_near_one_rigid():
    """Chunks seen through known similarities (scales 1.6 and 1.08 in chunk 0's world): with
    `scale_gate` 0.2 chunk 1 keeps its solved scale (rotation and translation recovered) and
    chunk 2 is solved rigid (scale exactly 1: the rigid fit of its overlap); without the gate
    both scales are recovered."""
    rng = np.random.default_rng(3)
    n = 90  # the shapes of test_align_chunks_undoes_per_chunk_transforms: its eager ops are reused
    t = np.linspace(0, 1, n)
    walk = np.stack([3 * t, np.sin(4 * t), 0.3 * np.cos(7 * t)], -1)
    x_world = walk[:, None, :] + rng.normal(size=(1, 3, 3)) * 0.3
    ranges = sampling.overlapping_chunks(n, 40, 15)
    R = [geometry.axis_angle_to_matrix(jnp.asarray(rng.normal(size=3))) for _ in range(2)]
    t_true = [jnp.asarray([1.0, -2.0, 0.5]), jnp.asarray([-0.5, 0.3, 2.0])]
    truth = [sim3.identity()] + [sim3.Sim3(jnp.asarray(s), r, tt)
                                 for s, r, tt in zip((1.6, 1.08), R, t_true, strict=True)]
    x, valid = _seen_through(x_world, ranges, truth, rng)
    free = sim3.align_chunks(x, valid, True)
    gated = sim3.align_chunks(x, valid, True, scale_gate=0.2)
    np.testing.assert_allclose([float(S.scale) for S in free], [1.0, 1.6, 1.08], rtol=2e-3)
    np.testing.assert_allclose(float(gated[1].scale), 1.6, rtol=2e-3)
    np.testing.assert_allclose(gated[1].R, R[0], atol=5e-3)
    np.testing.assert_allclose(gated[1].t, t_true[0], atol=1e-2)
    assert float(gated[2].scale) == 1.0
    overlap = (valid[2] * valid[1]).reshape(-1)  # chunk 2 shares frames with chunk 1 only
    target = sim3.apply_points(gated[1], x[1]).reshape(-1, 3)
    rigid = sim3.fit_sim3(x[2].reshape(-1, 3), target, overlap, False)
    np.testing.assert_allclose(gated[2].R, rigid.R, atol=1e-4)
    np.testing.assert_allclose(gated[2].t, rigid.t, atol=1e-4)
    np.testing.assert_allclose(gated[2].R, R[1], atol=0.05)  # the rotation still holds
