"""LBS: parity with smplx vectors, rotation representations, gradients, vmap/jit consistency."""

import os

import jax
import jax.numpy as jnp
import jax.test_util  # noqa: F401  (check_grads)
import numpy as np
import pytest

import body_models as bm
from body_models import indices, rotations

DATA = os.path.join(os.path.dirname(__file__), "data")
MODEL_NPZ = os.path.join(DATA, "synthetic_smpl_neutral.npz")
VECTORS_NPZ = os.path.join(DATA, "smpl_forward_vectors.npz")


@pytest.fixture(scope="module")
def ref():
    with np.load(VECTORS_NPZ) as d:
        return {k: d[k] for k in d.files}


def _batched_lbs(model):
    """One jitted, vmapped forward (betas, global_orient_aa, body_pose_aa, transl) -> BodyOutput,
    built once per model so every batch reuses its compiled program."""
    fn = lambda b, g, p, t: bm.lbs(model, b, g, p.reshape(-1, 3), t, rep="axis_angle")
    return jax.jit(jax.vmap(fn))


@pytest.mark.parametrize("x64,tol", [(False, 1e-4), (True, 1e-5)])
def test_parity_with_smplx(ref, x64, tol):
    x64_before = jax.config.jax_enable_x64
    with jax.enable_x64(x64):
        dtype = np.float64 if x64 else np.float32
        model = bm.load_model(MODEL_NPZ, dtype=dtype)
        assert model.name == "smpl_neutral"
        forward = _batched_lbs(model)
        for i in range(ref["betas"].shape[0]):
            args = [
                jnp.asarray(ref[k][i], dtype)
                for k in ("betas", "global_orient", "body_pose", "transl")
            ]
            out = forward(*args)
            assert out.vertices.dtype == dtype
            np.testing.assert_allclose(out.vertices, ref["vertices"][i], atol=tol, rtol=0)
            np.testing.assert_allclose(out.joints, ref["joints_lbs24"][i], atol=tol, rtol=0)
            regressed = jax.vmap(lambda v: bm.regress_joints(model, v))(out.vertices)
            np.testing.assert_allclose(regressed, ref["joints_regressed24"][i], atol=tol, rtol=0)
            # smplx's 45-joint output = 24 skinning joints + 21 named vertices.
            joints45 = np.concatenate(
                [
                    np.asarray(out.joints),
                    np.asarray(out.vertices)[:, indices.SMPL_EXTRA_VERTEX_IDS],
                ],
                axis=1,
            )
            np.testing.assert_allclose(joints45, ref["joints45"][i], atol=tol, rtol=0)
    assert jax.config.jax_enable_x64 == x64_before  # the context did not leak


@pytest.fixture(scope="module")
def smpl():
    return bm.load_model(MODEL_NPZ)


def _random_inputs(seed, n=3, scale=0.4):
    rng = np.random.default_rng(seed)
    return (
        jnp.asarray(rng.normal(size=(n, 10)), jnp.float32),
        jnp.asarray(rng.normal(size=(n, 3)) * scale, jnp.float32),
        jnp.asarray(rng.normal(size=(n, 23, 3)) * scale, jnp.float32),
        jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
    )


def test_rotation_representations_agree(smpl):
    betas, go, bp, tr = (x[0] for x in _random_inputs(0))
    lbs = jax.jit(bm.lbs, static_argnames="rep")
    ref = lbs(smpl, betas, go, bp, tr, rep="axis_angle")
    R_go, R_bp = rotations.axis_angle_to_matrix(go), rotations.axis_angle_to_matrix(bp)
    by_matrix = lbs(smpl, betas, R_go, R_bp, tr)
    by_6d = lbs(
        smpl, betas, rotations.matrix_to_rot6d(R_go), rotations.matrix_to_rot6d(R_bp), tr, rep="6d"
    )
    for out in (by_matrix, by_6d):
        np.testing.assert_allclose(out.vertices, ref.vertices, atol=1e-5)
        np.testing.assert_allclose(out.joints, ref.joints, atol=1e-5)
    with pytest.raises(ValueError, match="body_pose"):
        bm.lbs(smpl, betas, R_go, bp, tr)  # axis-angle passed as matrices


def test_transl_semantics_root_rotation_about_pelvis(smpl):
    betas, go, _, tr = (x[1] for x in _random_inputs(1, scale=1.0))
    R = rotations.axis_angle_to_matrix(go)
    out = bm.lbs(smpl, betas, R, jnp.tile(jnp.eye(3), (23, 1, 1)), tr)
    v_shaped = smpl.v_template + jnp.einsum("vcs,s->vc", smpl.shapedirs, betas)
    J0 = bm.rest_joints(smpl, betas)[0]
    expected = (v_shaped - J0) @ R.T + J0 + tr
    np.testing.assert_allclose(out.vertices, expected, atol=1e-5)
    np.testing.assert_allclose(out.joints[0], J0 + tr, atol=1e-6)
    np.testing.assert_allclose(bm.rest_joints(smpl, betas), smpl.J_regressor @ v_shaped, atol=1e-6)


@pytest.mark.parametrize("which", ["smpl", "mannequin"])
def test_zero_pose_gradients_finite(smpl, which):
    model = smpl if which == "smpl" else bm.mannequin()

    def loss(betas, pose_aa, transl):
        out = bm.lbs(model, betas, pose_aa[0], pose_aa[1:], transl, rep="axis_angle")
        return jnp.sum(out.vertices**2) + jnp.sum(out.joints**2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(
        jnp.zeros(10), jnp.zeros((24, 3)), jnp.zeros(3)
    )
    for g in grads:
        assert np.all(np.isfinite(g))
    assert np.abs(grads[1]).max() > 0  # pose does influence the loss at zero
    # 6D at the identity is finite too.
    d6 = rotations.matrix_to_rot6d(jnp.tile(jnp.eye(3), (24, 1, 1)))
    g6 = jax.jit(
        jax.grad(
            lambda d: jnp.sum(bm.lbs(model, jnp.zeros(10), d[0], d[1:], rep="6d").vertices ** 2)
        )
    )(d6)
    assert np.all(np.isfinite(g6))


def test_gradients_match_finite_differences(smpl):
    with jax.enable_x64(True):
        model = bm.load_model(MODEL_NPZ, dtype=np.float64)
        betas, go, bp, tr = (jnp.asarray(x[0], jnp.float64) for x in _random_inputs(2))
        pose = jnp.concatenate([go[None], bp])

        def loss(betas, pose, transl):
            out = bm.lbs(model, betas, pose[0], pose[1:], transl, rep="axis_angle")
            return jnp.sum(jnp.sin(out.vertices)) + jnp.sum(out.joints**2)

        jax.test_util.check_grads(
            jax.jit(loss), (betas, pose, tr), order=1, modes=["rev"], atol=1e-5, rtol=1e-5
        )


def test_pose_bodies_equals_python_loop(smpl):
    # [P, T] = [2, 2] bodies, each with its own betas (nested vmap; two compiles in all).
    betas, go, bp, tr = _random_inputs(3, n=4)
    batched = bm.pose_bodies(smpl, *(x.reshape((2, 2) + x.shape[1:]) for x in (betas, go, bp, tr)),
                             rep="axis_angle")
    assert batched.vertices.shape == (2, 2, smpl.num_vertices, 3)
    single_fn = jax.jit(bm.lbs, static_argnames="rep")
    for i in range(betas.shape[0]):
        single = single_fn(smpl, betas[i], go[i], bp[i], tr[i], rep="axis_angle")
        np.testing.assert_allclose(batched.vertices[i // 2, i % 2], single.vertices, atol=2e-6)
        np.testing.assert_allclose(batched.joints[i // 2, i % 2], single.joints, atol=2e-6)


def test_jit_equals_eager_and_model_is_a_pytree(smpl):
    betas, go, bp, tr = (x[0] for x in _random_inputs(4))
    eager = bm.lbs(smpl, betas, go, bp, tr, rep="axis_angle")
    # The model as a jit argument (pytree leaves traced, parents/name static).
    jitted = jax.jit(lambda m, *a: bm.lbs(m, *a, rep="axis_angle"))(smpl, betas, go, bp, tr)
    np.testing.assert_allclose(jitted.vertices, eager.vertices, atol=2e-6)
    np.testing.assert_allclose(jitted.joints, eager.joints, atol=2e-6)
    leaves, treedef = jax.tree.flatten(smpl)
    assert len(leaves) == 6
    assert jax.tree.unflatten(treedef, leaves).parents == smpl.parents


def test_bad_inputs_are_refused(smpl):
    with pytest.raises(ValueError, match=r"betas: expected shape \(10,\)"):
        bm.lbs(smpl, jnp.zeros(8), jnp.eye(3), jnp.tile(jnp.eye(3), (23, 1, 1)))
    with pytest.raises(ValueError, match="rep must be"):
        bm.lbs(smpl, jnp.zeros(10), jnp.eye(3), jnp.tile(jnp.eye(3), (23, 1, 1)), rep="quat")
    with pytest.raises(ValueError, match="no expression"):
        bm.lbs(
            smpl,
            jnp.zeros(10),
            jnp.eye(3),
            jnp.tile(jnp.eye(3), (23, 1, 1)),
            expression=jnp.zeros(10),
        )


def test_smpl_index_sets(smpl):
    assert len(indices.SMPL_JOINT_NAMES) == 24 == smpl.num_joints
    feet = indices.foot_vertices("smpl_neutral")
    np.testing.assert_array_equal(feet, [3216, 3387, 6617, 6787])
    soles = indices.sole_vertices(smpl)
    assert np.isin(feet, soles).all()  # the toe and heel vertices lie on the soles
    assert np.all(smpl.v_template[soles, 1] < smpl.v_template[:, 1].min() + 0.0151)
    with pytest.raises(ValueError, match="pass the loaded BodyModel"):
        indices.sole_vertices("smpl_neutral")
    with pytest.raises(ValueError, match="no vertex index sets"):
        indices.foot_vertices("flame")
