"""Gradients of `lbs` (hand-written skinning VJP, CPU block loop) against autodiff of plain LBS."""

import jax
import jax.numpy as jnp
import jax.test_util  # noqa: F401  (check_grads)
import numpy as np
import pytest

import body_models as bm
from body_models import rotations, skinning

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPLH_PARENTS = SMPL_PARENTS[:22]
SMPLH_PARENTS += [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]  # left hand
SMPLH_PARENTS += [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]  # right hand
SMPLX_PARENTS = SMPLH_PARENTS[:22] + [15, 15, 15]  # jaw, left eye, right eye
SMPLX_PARENTS += [p + 3 if p >= 22 else p for p in SMPLH_PARENTS[22:]]
KINDS = {"smpl": (SMPL_PARENTS, 0), "smplh": (SMPLH_PARENTS, 0), "smplx": (SMPLX_PARENTS, 10)}


@pytest.fixture
def blocks_of_8(monkeypatch):
    """CPU blocks of 8 bodies of the 200-vertex test models (the default block is ~16 SMPLs)."""
    monkeypatch.setattr(skinning, "BLOCK_ELEMENTS", 8 * 200 * 3)


def _random_model(kind, V=200, seed=0, dtype=np.float32):
    parents, num_expression = KINDS[kind]
    rng = np.random.default_rng(seed)
    J = len(parents)
    W = rng.random((V, J)) ** 4
    Jreg = rng.random((J, V))
    cast = lambda x: jnp.asarray(x, dtype)
    return bm.BodyModel(
        v_template=cast(rng.normal(size=(V, 3))),
        shapedirs=cast(0.1 * rng.normal(size=(V, 3, 10 + num_expression))),
        posedirs=cast(0.05 * rng.normal(size=((J - 1) * 9, V * 3))),
        J_regressor=cast(Jreg / Jreg.sum(1, keepdims=True)),
        lbs_weights=cast(W / W.sum(1, keepdims=True)),
        faces=jnp.zeros((1, 3), jnp.int32),
        parents=tuple(parents),
        name=kind,
        num_betas=10,
        num_expression=num_expression,
    )


def _plain_lbs(model, coeffs, R_local, transl):
    """Textbook LBS (4x4 transforms, one joint at a time, autodiff only): the reference."""
    V, J = model.lbs_weights.shape
    v_shaped = model.v_template + jnp.einsum("vcs,s->vc", model.shapedirs, coeffs)
    J_rest = model.J_regressor @ v_shaped
    feature = (R_local[1:] - jnp.eye(3, dtype=R_local.dtype)).reshape(-1)
    v_posed = v_shaped + (feature @ model.posedirs).reshape(V, 3)
    G = []
    for j, p in enumerate(model.parents):
        t = J_rest[j] - (J_rest[p] if j else 0.0)
        local = jnp.concatenate(
            [jnp.concatenate([R_local[j], t[:, None]], 1), jnp.eye(4, dtype=t.dtype)[3:]], 0
        )
        G.append(G[p] @ local if j else local)
    G = jnp.stack(G)
    joints = G[:, :3, 3]
    G_skin = G.at[:, :3, 3].add(-jnp.einsum("jab,jb->ja", G[:, :3, :3], J_rest))
    T = jnp.einsum("vj,jab->vab", model.lbs_weights, G_skin)
    verts = jnp.einsum("vab,vb->va", T[:, :3, :3], v_posed) + T[:, :3, 3]
    return verts + transl, joints + transl


def _pose_inputs(rep, n_joints, rng, dtype):
    aa = 0.5 * rng.normal(size=(n_joints, 3))
    R = np.asarray(rotations.axis_angle_to_matrix(jnp.asarray(aa)))
    return {
        "axis_angle": aa,
        "matrix": R,
        "6d": np.asarray(rotations.matrix_to_rot6d(jnp.asarray(R))),
    }[rep].astype(dtype)


def _losses(model, rep, expression_used):
    """(loss with the real lbs, loss with the plain reference), same inputs and random weights."""
    V, J = model.lbs_weights.shape
    rng = np.random.default_rng(7)
    cv = jnp.asarray(rng.normal(size=(V, 3)), model.v_template.dtype)
    cj = jnp.asarray(rng.normal(size=(J, 3)), model.v_template.dtype)

    def score(verts, joints):
        return jnp.sum(jnp.sin(verts) * cv) + jnp.sum(cj * joints**2)

    def loss(betas, pose, transl, expression):
        out = bm.lbs(
            model,
            betas,
            pose[0],
            pose[1:],
            transl,
            expression=expression if expression_used else None,
            rep=rep,
        )
        return score(out.vertices, out.joints)

    def loss_plain(betas, pose, transl, expression):
        R = {
            "matrix": lambda x: x,
            "axis_angle": rotations.axis_angle_to_matrix,
            "6d": rotations.rot6d_to_matrix,
        }[rep](pose)
        coeffs = jnp.concatenate([betas, expression]) if expression_used else betas
        return score(*_plain_lbs(model, coeffs, R, transl))

    return loss, loss_plain


def _inputs(model, rep, batch, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shape = lambda *s: (*batch, *s)
    pose = np.stack(
        [_pose_inputs(rep, model.num_joints, rng, dtype) for _ in range(int(np.prod(batch)))]
    )
    return (
        jnp.asarray(rng.normal(size=shape(10)), dtype),
        jnp.asarray(pose.reshape(*batch, *pose.shape[1:])),
        jnp.asarray(rng.normal(size=shape(3)), dtype),
        jnp.asarray(rng.normal(size=shape(max(model.num_expression, 1))), dtype),
    )


def _rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-30))


def _vmapped(fn, batch_dims):
    for _ in range(batch_dims):
        fn = jax.vmap(fn)
    return fn


def _grads(loss, batch_dims):
    fn = _vmapped(loss, batch_dims)
    return jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=(0, 1, 2, 3)))


# (kind, rep, batch): every joint count and rep, one body, CPU blocks with padding, nested vmap.
# SMPL-H/X compile the 52/55-joint plain reference (~15 s each on 2 cores): marked slow.
_slow = pytest.mark.slow
CASES = [
    ("smpl", "axis_angle", ()),
    ("smpl", "matrix", (37,)),
    pytest.param("smplh", "6d", (2, 19), marks=_slow),
    pytest.param("smplx", "axis_angle", (37,), marks=_slow),
    pytest.param("smplx", "6d", (), marks=_slow),
]


@pytest.mark.parametrize("kind,rep,batch", CASES)
def test_grads_equal_plain_autodiff(kind, rep, batch, blocks_of_8):
    """betas, pose, transl and expression gradients to 1e-5 of the largest entry (float32).

    37 bodies run the CPU block loop with padding (5 blocks of 8); 2 x 19 is a nested vmap.
    """
    model = _random_model(kind)
    loss, loss_plain = _losses(model, rep, expression_used=model.num_expression > 0)
    args = _inputs(model, rep, batch, seed=len(batch))
    got = _grads(loss, len(batch))(*args)
    want = _grads(loss_plain, len(batch))(*args)
    names = ["betas", "pose", "transl"] + (["expression"] if model.num_expression else [])
    for name, g, w in zip(names, got[: len(names)], want[: len(names)], strict=True):
        assert g.dtype == jnp.float32, name
        assert _rel_err(g, w) < 1e-5, (name, _rel_err(g, w))
        assert float(jnp.max(jnp.abs(w))) > 0, name
    values = jax.jit(_vmapped(loss, len(batch)))(*args)
    np.testing.assert_allclose(
        values, _vmapped(loss_plain, len(batch))(*args), rtol=1e-5, atol=1e-4
    )


def test_skin_check_grads_float64():
    """Finite differences of the hand-written VJP, weights included, one body and a batch."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        V, J = 30, 5
        W = jnp.asarray(rng.random((V, J)))
        A = jnp.asarray(rng.normal(size=(J, 4, 3)))
        v = jnp.asarray(rng.normal(size=(V, 3)))
        jax.test_util.check_grads(skinning.skin, (W, A, v), order=1, modes=["rev"])
        As = jnp.asarray(rng.normal(size=(20, J, 4, 3)))
        vs = jnp.asarray(rng.normal(size=(20, V, 3)))
        batched = jax.vmap(skinning.skin, in_axes=(None, 0, 0))
        jax.test_util.check_grads(batched, (W, As, vs), order=1, modes=["rev"])


def test_skin_blocks_match_one_body_at_a_time():
    """The CPU block loop (with padding) and the single-body path give the same values and VJPs."""
    rng = np.random.default_rng(4)
    V, J, B = 6890, 6, 19  # the default blocks: 2 of 10 SMPL-sized bodies, the second padded
    W = jnp.asarray(rng.random((V, J)), jnp.float32)
    A = jnp.asarray(rng.normal(size=(B, J, 4, 3)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(B, V, 3)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(B, V, 3)), jnp.float32)
    out, vjp = jax.vjp(jax.vmap(skinning.skin, in_axes=(None, 0, 0)), W, A, v)
    dW, dA, dv = vjp(g)
    dW_sum = jnp.zeros_like(W)
    one_body = jax.jit(
        lambda *a: jax.vjp(skinning.skin, *a[:3])[1](a[3]) + (skinning.skin(*a[:3]),)
    )
    for i in range(B):
        dW_i, dA_i, dv_i, out_i = one_body(W, A[i], v[i], g[i])
        np.testing.assert_allclose(out[i], out_i, rtol=1e-6, atol=1e-6)
        assert _rel_err(dA[i], dA_i) < 1e-5  # sums over 6890 vertices: relative to the largest
        np.testing.assert_allclose(dv[i], dv_i, rtol=1e-6, atol=1e-6)
        dW_sum = dW_sum + dW_i
    assert _rel_err(dW, dW_sum) < 1e-5


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_grads_wrt_model_arrays_equal_plain_autodiff(blocks_of_8):
    """The model pytree's cotangents (lbs_weights through the hand-written VJP) under vmap."""
    model = _random_model("smpl")
    args = _inputs(model, "axis_angle", (20,), seed=5)

    def total(m, which):
        loss = _losses(m, "axis_angle", expression_used=False)[which]
        return jnp.sum(jax.vmap(loss)(*args))

    grad = jax.jit(jax.grad(total, allow_int=True), static_argnums=1)  # faces are int32
    got, want = grad(model, 0), grad(model, 1)
    for field in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights"):
        g, w = getattr(got, field), getattr(want, field)
        assert _rel_err(g, w) < 1e-5, (field, _rel_err(g, w))
