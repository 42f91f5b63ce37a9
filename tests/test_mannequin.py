"""The built-in mannequin: topology, determinism, ground contact, shape and skinning behaviour."""

import hashlib
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import body_models as bm
from body_models import builtin as mq
from body_models import indices


@pytest.fixture(scope="module")
def model():
    return bm.mannequin()


@pytest.fixture(scope="module")
def arrays():
    return mq.mannequin_arrays()


# The model is a jit argument (a pytree): one compiled program serves every call of the module.
_LBS = jax.jit(lambda m, b, a: bm.lbs(m, b, a[0], a[1:], rep="axis_angle"))


def _pose(model, betas=None, aa=None):
    betas = jnp.zeros(10) if betas is None else jnp.asarray(betas, jnp.float32)
    aa = jnp.zeros((24, 3)) if aa is None else jnp.asarray(aa, jnp.float32)
    return _LBS(model, betas, aa)


def _digest(arrays):
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def test_deterministic_same_bytes_twice(arrays):
    fresh1 = mq.mannequin_arrays.__wrapped__()  # bypass the memo: really generate again
    fresh2 = mq.mannequin_arrays.__wrapped__()
    assert _digest(fresh1) == _digest(fresh2) == _digest(arrays)


def test_smpl_topology_counts_and_closed_genus0_surface(model):
    V, F = model.num_vertices, model.faces.shape[0]
    assert (V, F) == (6890, 13776)
    assert model.parents == mq.SMPL_PARENTS
    assert model.shapedirs.shape == (6890, 3, 10) and model.posedirs.shape == (207, 6890 * 3)
    f = np.asarray(model.faces)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # consistently oriented, manifold
    undirected = np.unique(np.sort(directed, axis=1), axis=0)
    assert len(undirected) * 2 == len(directed)  # closed: every edge has two faces
    assert V - len(undirected) + F == 2  # Euler characteristic of a sphere
    v = np.asarray(model.v_template, np.float64)
    volume = np.einsum("ij,ij->", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])) / 6
    assert 0.04 < volume < 0.12  # outward-facing, human-sized (m^3)


def test_humanoid_proportions(model):
    J = np.asarray(bm.rest_joints(model, jnp.zeros(10)))
    np.testing.assert_allclose(J, mq.design_joints(), atol=0.015)
    names = indices.SMPL_JOINT_NAMES
    j = {n: J[i] for i, n in enumerate(names)}
    assert (
        j["head"][1]
        > j["neck"][1]
        > j["spine3"][1]
        > j["pelvis"][1]
        > j["left_knee"][1]
        > j["left_ankle"][1]
    )
    assert j["left_wrist"][0] > j["left_elbow"][0] > j["left_shoulder"][0] > 0  # left is +x
    assert j["right_wrist"][0] < j["right_elbow"][0] < 0
    assert j["left_foot"][2] > j["left_ankle"][2]  # feet point forward (+z)
    height = float(model.v_template[:, 1].max())
    assert 1.6 < height < 1.8


def test_feet_flat_on_the_ground(model, arrays):
    v = np.asarray(model.v_template)
    assert v[:, 1].min() == 0.0
    soles = indices.sole_vertices("mannequin")
    assert np.all(v[soles, 1] == 0.0)
    part = arrays["part"]
    for leg, sign in ((mq.LEG_L, 1), (mq.LEG_R, -1)):
        s = soles[part[soles] == leg]
        assert len(s) >= 40
        assert np.all(np.sign(v[s, 0]) == sign)
        # A flat footprint: the sole spans a real area, not a point or a line.
        extent_x, extent_z = np.ptp(v[s, 0]), np.ptp(v[s, 2])
        assert extent_x > 0.04 and extent_z > 0.12
    # Only foot vertices touch the ground, and the four foot ids are toe/heel sole vertices.
    assert np.all(
        np.isin(
            np.nonzero(v[:, 1] < 0.01)[0], np.nonzero((part == mq.LEG_L) | (part == mq.LEG_R))[0]
        )
    )
    feet = indices.foot_vertices("mannequin")
    assert np.isin(feet, soles).all()
    assert (
        v[feet[0], 2] > v[feet[1], 2] + 0.1 and v[feet[2], 2] > v[feet[3], 2] + 0.1
    )  # toe ahead of heel
    assert v[feet[0], 0] > 0 > v[feet[2], 0]


def test_betas_keep_soles_on_ground_and_beta0_height_beta1_girth(model):
    soles = indices.sole_vertices("mannequin")
    rng = np.random.default_rng(0)
    for betas in rng.normal(size=(3, 10)) * 1.5:
        v = np.asarray(_pose(model, betas).vertices)
        np.testing.assert_allclose(v[soles, 1], 0.0, atol=1e-6)
        assert v[:, 1].min() > -1e-6

    def height_and_waist(betas):
        v = np.asarray(_pose(model, betas).vertices)
        band = np.abs(v[:, 1] - 1.02) < 0.02
        torso = (np.abs(v[:, 0]) < 0.25) & band
        return v[:, 1].max(), np.ptp(v[torso, 0]) + np.ptp(v[torso, 2])

    h0, w0 = height_and_waist(np.zeros(10))
    h_tall, w_tall = height_and_waist(np.eye(10)[0] * 2)
    h_wide, w_wide = height_and_waist(np.eye(10)[1] * 2)
    assert h_tall - h0 > 0.1  # 2 units of beta0: > 10 cm taller
    assert abs(w_tall - w0) < 0.02
    assert w_wide - w0 > 0.05  # 2 units of beta1: wider and deeper at the waist
    assert abs(h_wide - h0) < 0.01
    # The other coefficients are smaller, plausible variations.
    for k in range(2, 10):
        d = np.abs(np.asarray(model.shapedirs[:, :, k])).max()
        assert 0.005 < d < 0.06


def test_skinning_weights_smooth_and_bending_plausible(model):
    W = np.asarray(model.lbs_weights)
    np.testing.assert_allclose(W.sum(1), 1.0, atol=1e-5)
    assert W.min() >= 0 and (W > 0).sum(1).max() <= 4
    # Blending across the knee: some vertices share hip and knee weights (smooth, not rigid parts).
    knee_blend = (W[:, 1] > 0.2) & (W[:, 4] > 0.2)
    assert knee_blend.sum() >= 32
    # Bend the left knee and elbow by 90 degrees: no triangle tears or collapses.
    aa = np.zeros((24, 3))
    aa[4] = [np.pi / 2, 0, 0]
    aa[18] = [0, 0, np.pi / 2]
    rest = np.asarray(model.v_template)
    posed = np.asarray(_pose(model, aa=aa).vertices)
    f = np.asarray(model.faces)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    ratio = np.linalg.norm(posed[edges[:, 0]] - posed[edges[:, 1]], axis=1) / np.linalg.norm(
        rest[edges[:, 0]] - rest[edges[:, 1]], axis=1
    )
    assert ratio.max() < 3.0 and ratio.min() > 0.1
    # The shin swings backwards (knee flexion about +x moves the ankle towards -z... and up).
    J = np.asarray(_pose(model, aa=aa).joints)
    assert J[7, 1] > rest[:, 1].min() + 0.3  # left ankle lifted
    assert J[20, 1] > J[18, 1] + 0.2  # left forearm points up after the elbow bend


def test_load_model_default_is_mannequin_with_one_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        model = bm.load_model()
    assert model.name == "mannequin" and model.num_vertices == 6890
    lines = [r for r in caplog.records if "mannequin" in r.getMessage()]
    assert len(lines) == 1
    np.testing.assert_array_equal(model.v_template, bm.mannequin().v_template)
