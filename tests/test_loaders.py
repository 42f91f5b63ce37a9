"""Loaders: npz layouts (SMPL, SMPL-H, SMPL-X), the restricted .pkl unpickler, clear errors."""

import os
import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import body_models as bm
from body_models import safe_pickle

DATA = os.path.join(os.path.dirname(__file__), "data")
MODEL_NPZ = os.path.join(DATA, "synthetic_smpl_neutral.npz")

SMPLH_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
SMPLH_PARENTS += [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]  # left hand
SMPLH_PARENTS += [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]  # right hand
SMPLX_PARENTS = SMPLH_PARENTS[:22] + [15, 15, 15]  # jaw, left eye, right eye
SMPLX_PARENTS += [p + 3 if p >= 22 else p for p in SMPLH_PARENTS[22:]]


def _smpl_arrays():
    with np.load(MODEL_NPZ) as d:
        return {k: d[k] for k in d.files}


def _synthetic_layout(parents, num_shape, num_expr=0, V=120, seed=0):
    """A small random model in the smplx npz layout (kintree row 0 holds 2**32-1 for the root)."""
    rng = np.random.default_rng(seed)
    J = len(parents)
    W = rng.random((V, J)) ** 4
    W /= W.sum(1, keepdims=True)
    Jreg = rng.random((J, V))
    Jreg /= Jreg.sum(1, keepdims=True)
    kintree = np.stack([np.array(parents) % 2**32, np.arange(J)]).astype(np.uint32)
    return {
        "v_template": rng.normal(size=(V, 3)).astype(np.float32),
        "shapedirs": (0.1 * rng.normal(size=(V, 3, num_shape + num_expr))).astype(np.float32),
        "posedirs": (0.05 * rng.normal(size=(V, 3, (J - 1) * 9))).astype(np.float32),
        "J_regressor": Jreg.astype(np.float32),
        "weights": W.astype(np.float32),
        "kintree_table": kintree,
        "f": rng.integers(0, V, size=(50, 3)).astype(np.uint32),
        "hands_componentsl": np.zeros((45, 45), np.float32),  # extra keys are ignored
    }


def _numpy_lbs(data, coeffs, rotmats, transl, shape_cols):
    """Straightforward float64 reference: 4x4 transforms, one joint at a time (independent code)."""
    V = data["v_template"].shape[0]
    J = data["kintree_table"].shape[1]
    parents = data["kintree_table"][0].astype(np.int64)
    v = (
        data["v_template"].astype(np.float64)
        + data["shapedirs"][..., shape_cols].astype(np.float64) @ coeffs
    )
    Jr = data["J_regressor"].astype(np.float64) @ v
    feat = (rotmats[1:] - np.eye(3)).reshape(-1)
    v = v + (data["posedirs"].reshape(V * 3, -1).astype(np.float64) @ feat).reshape(V, 3)
    G = np.zeros((J, 4, 4))
    for j in range(J):
        local = np.eye(4)
        local[:3, :3] = rotmats[j]
        local[:3, 3] = Jr[j] - (Jr[parents[j]] if j else 0)
        G[j] = G[parents[j]] @ local if j else local
    posed_joints = G[:, :3, 3].copy()
    for j in range(J):
        G[j, :3, 3] -= G[j, :3, :3] @ Jr[j]
    T = np.einsum("vj,jab->vab", data["weights"].astype(np.float64), G)
    verts = np.einsum("vab,vb->va", T[:, :3, :3], v) + T[:, :3, 3]
    return verts + transl, posed_joints + transl


def _write_npz(tmp_path, name, data):
    path = os.fspath(tmp_path / name)
    np.savez(path, **data)
    return path


@pytest.mark.parametrize(
    "kind,parents,num_shape,num_expr,file_name",
    [
        ("smplh", SMPLH_PARENTS, 16, 0, "SMPLH_FEMALE.npz"),
        ("smplx", SMPLX_PARENTS, 300, 100, "SMPLX_MALE.npz"),
    ],
)
def test_smplh_and_smplx_layouts(tmp_path, kind, parents, num_shape, num_expr, file_name):
    data = _synthetic_layout(parents, num_shape, num_expr)
    path = _write_npz(tmp_path, file_name, data)
    model = bm.load_model(path)
    J = len(parents)
    assert model.num_joints == J and model.parents == tuple(parents)
    assert model.name == f"{kind}_{'female' if 'FEMALE' in file_name else 'male'}"
    assert model.num_betas == 10
    assert model.num_expression == (10 if kind == "smplx" else 0)
    assert model.shapedirs.shape == (120, 3, 10 + model.num_expression)
    shape_cols = list(range(10)) + list(range(300, 300 + model.num_expression))
    np.testing.assert_array_equal(model.shapedirs, data["shapedirs"][..., shape_cols])

    rng = np.random.default_rng(1)
    betas = rng.normal(size=10)
    expr = rng.normal(size=model.num_expression)
    aa = 0.3 * rng.normal(size=(J, 3))
    transl = rng.normal(size=3)
    R = np.asarray(
        jax.vmap(bm.rotations.axis_angle_to_matrix)(jnp.asarray(aa, jnp.float32)), np.float64
    )
    lbs = jax.jit(bm.lbs)
    out = lbs(
        model,
        jnp.asarray(betas, jnp.float32),
        jnp.asarray(R[0], jnp.float32),
        jnp.asarray(R[1:], jnp.float32),
        jnp.asarray(transl, jnp.float32),
        expression=jnp.asarray(expr, jnp.float32) if num_expr else None,
    )
    verts, joints = _numpy_lbs(data, np.concatenate([betas, expr]), R, transl, shape_cols)
    np.testing.assert_allclose(out.vertices, verts, atol=2e-4)
    np.testing.assert_allclose(out.joints, joints, atol=2e-4)
    if kind == "smplx":  # expression changes the surface; missing expression means zero
        zero = lbs(model, jnp.asarray(betas, jnp.float32), R[0], R[1:], transl)
        with_zero = lbs(
            model, jnp.asarray(betas, jnp.float32), R[0], R[1:], transl, expression=jnp.zeros(10)
        )
        np.testing.assert_allclose(zero.vertices, with_zero.vertices, atol=1e-6)
        assert np.abs(zero.vertices - out.vertices).max() > 1e-3


def test_npz_round_trip(tmp_path):
    model = bm.load_model(MODEL_NPZ)
    path = os.fspath(tmp_path / "copy_smpl_neutral.npz")
    bm.save_model_npz(model, path)
    again = bm.load_model(path)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.parents == model.parents and again.name == "smpl_neutral"
    half = again.astype(np.float16)
    assert half.v_template.dtype == np.float16 and half.faces.dtype == np.int32
    assert [p for p in os.listdir(tmp_path)] == ["copy_smpl_neutral.npz"]  # no temporary left


def test_wrong_shape_error_names_file_key_expected_found(tmp_path):
    data = _smpl_arrays()
    data["posedirs"] = data["posedirs"][:, :, :200]
    path = _write_npz(tmp_path, "bad_posedirs.npz", data)
    with pytest.raises(bm.ModelFormatError) as err:
        bm.load_model(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: posedirs: expected shape")
    assert "expected shape (6890, 3, 207)" in msg and "found shape (6890, 3, 200)" in msg
    assert (err.value.field, err.value.file) == ("posedirs", path)
    assert isinstance(err.value, bm.InputError)


def test_missing_key_and_bad_values(tmp_path):
    data = _smpl_arrays()
    del data["weights"]
    path = _write_npz(tmp_path, "no_weights.npz", data)
    with pytest.raises(
        bm.ModelFormatError, match=r"no_weights.npz: weights: expected present"
    ):
        bm.load_model(path)
    data = _smpl_arrays()
    data["v_template"] = data["v_template"].copy()
    data["v_template"][5, 1] = np.nan
    with pytest.raises(bm.ModelFormatError, match=r"nan.npz: v_template: expected finite values"):
        bm.load_model(_write_npz(tmp_path, "nan.npz", data))
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        bm.load_model(os.fspath(tmp_path / "nowhere.npz"))


class _FakeCh:
    """Mimics chumpy.ch.Ch's pickled form: an object whose state dict holds the value as 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()


def _pickle_with_fake_chumpy(obj, protocol):
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = _FakeCh
    chumpy.ch = ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        return pickle.dumps(obj, protocol=protocol)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
        _FakeCh.__module__, _FakeCh.__qualname__ = __name__, "_FakeCh"


@pytest.mark.parametrize("protocol", [0, 2])
def test_pkl_with_chumpy_objects_and_sparse_regressor(tmp_path, protocol):
    scipy_sparse = pytest.importorskip(
        "scipy.sparse", reason="scipy builds the csc regressor in the file"
    )
    data = _smpl_arrays()
    official = {
        "v_template": _FakeCh(data["v_template"].astype(np.float64)),
        "shapedirs": _FakeCh(data["shapedirs"].astype(np.float64)),
        "posedirs": data["posedirs"].astype(np.float64),
        "J_regressor": scipy_sparse.csc_matrix(data["J_regressor"].astype(np.float64)),
        "weights": data["weights"].astype(np.float64),
        "kintree_table": data["kintree_table"].astype(np.int64),
        "f": data["f"].astype(np.uint32),
        "bs_style": "lbs",
    }
    blob = _pickle_with_fake_chumpy(official, protocol)
    assert b"chumpy.ch" in blob and "chumpy" not in sys.modules
    # Official files date from numpy 1.x: use its module name for the array reconstructor.
    if protocol in (0, 2):
        blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(blob)
    model = bm.load_model(os.fspath(path))
    assert model.name == "smpl_neutral"
    reference = bm.load_model(MODEL_NPZ)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)
    assert "chumpy" not in sys.modules  # loading never imported chumpy


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pkl_payload_calling_os_system_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    with pytest.raises(
        bm.UnsafePickleError, match=r"refusing to load global '(posix|os|nt)\.system'"
    ):
        bm.load_model(os.fspath(path))
    assert not marker.exists()
    # A plain pickle.load would have run it: the payload is real.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_pkl_other_globals_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = tmp_path / "eval.pkl"
    path.write_bytes(pickle.dumps(Sneaky(), protocol=2))
    with pytest.raises(bm.UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        safe_pickle.load(os.fspath(path))
    # copyreg._reconstructor is allowed only for the stand-in classes.
    blob = b"ccopy_reg\n_reconstructor\n(cbuiltins\nobject\ncbuiltins\nobject\nNtR."
    path.write_bytes(blob)
    with pytest.raises(bm.UnsafePickleError, match="_reconstructor"):
        safe_pickle.load(os.fspath(path))
