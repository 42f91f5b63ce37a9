"""JOSH3R / MASt3R Flax model: parity with the official PyTorch code on the tiny vectors.

Evidence: tests/data/josh3r_tiny_state_dict.npz is converted, the Flax model runs on the inputs
of josh3r_tiny_forward.npz / mast3r_tiny_forward.npz, and every output plus the intermediates
(patch tokens, encoder blocks, decoder layers, DPT stages, ROI features, human branch) must agree
with PyTorch's float32 values. Tolerance: max |jax - torch| <= 1e-4 * max |torch| per array
(achieved: <= ~2e-6 relative; float32 vs float64 noise of the vectors is ~1e-6).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs.josh3r import get_config
from trainers.matching import extract_correspondences, fast_reciprocal_nns, merge_correspondences
from trainers.nn.heads import reg_dense_depth_exp
from trainers.nn.rope2d import apply_rope2d
from trainers.pretrained import load_josh3r, load_mast3r
from trainers.state_dict_file import load_state_dict_file

DATA = os.path.join(os.path.dirname(__file__), "data")
REL_TOL = 1e-4


def assert_close(name, actual, ref, rel=REL_TOL):
    actual = np.asarray(actual, np.float64)
    ref = np.asarray(ref, np.float64)
    assert actual.shape == ref.shape, f"{name}: shape {actual.shape} != reference {ref.shape}"
    assert np.all(np.isfinite(actual)), f"{name}: non-finite values"
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(actual - ref).max())
    assert err <= rel * scale, f"{name}: max abs err {err:.3e} > {rel:g} * max|ref| {scale:.3e}"


def nchw(x):
    return np.asarray(x).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def state_dict():
    return load_state_dict_file(os.path.join(DATA, "josh3r_tiny_state_dict.npz"))


@pytest.fixture(scope="module")
def josh3r_run(state_dict):
    model, report = load_josh3r(state_dict, get_config("tiny").model)
    assert report.ok
    ref = dict(np.load(os.path.join(DATA, "josh3r_tiny_forward.npz")))
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, imgs, img_shapes, bbox):
        return nnx.merge(graphdef, state)(imgs, img_shapes, bbox, return_intermediates=True)

    imgs = jnp.asarray(ref["in_imgs"].transpose(0, 1, 3, 4, 2))  # NCHW -> NHWC
    out, inter = forward(state, imgs, ref["in_img_shapes"], ref["in_bbox"])
    jax.block_until_ready(out)
    return model, state, ref, out, inter


OUTPUTS = ["rel_trans", "rel_rot", "trans1", "trans2", "X11", "X21", "scale1", "scale2"]


@pytest.mark.parametrize("key", OUTPUTS)
def test_josh3r_outputs_match_pytorch(josh3r_run, key):
    _, _, ref, out, _ = josh3r_run
    assert_close(key, getattr(out, key), ref[f"out_{key}"])


def test_mast3r_intermediates_match_pytorch(josh3r_run):
    _, _, ref, out, inter = josh3r_run
    assert_close("patch_tokens", inter["patch_tokens"], ref["mast3r_patch_tokens"])
    assert_close("enc_blocks_out", inter["enc_blocks_out"], ref["mast3r_enc_blocks_out"])
    for v in (1, 2):
        assert_close(f"feat{v}", inter[f"feat{v}"], ref[f"mast3r_feat{v}"])
        np.testing.assert_array_equal(inter[f"pos{v}"], ref[f"mast3r_pos{v}"])
        assert_close(f"dec{v}_layers", inter[f"dec{v}_layers"], ref[f"mast3r_dec{v}_layers"])
        assert_close(f"head{v}_raw", nchw(inter[f"head{v}_raw"]), ref[f"mast3r_head{v}_raw"])
        res = getattr(out, f"view{v}")
        for field in ("pts3d", "conf", "desc", "desc_conf"):
            assert_close(f"res{v}_{field}", getattr(res, field), ref[f"mast3r_res{v}_{field}"])
    for k in ("act0", "act1", "act2", "act3", "rn0", "rn1", "rn2", "rn3", "refinenet4",
              "refinenet3", "refinenet2", "refinenet1"):
        assert_close(f"dpt_{k}", nchw(inter[f"head1_dpt_{k}"]), ref[f"mast3r_head1_dpt_{k}"])


def test_josh3r_branch_intermediates_match_pytorch(josh3r_run):
    _, _, ref, _, inter = josh3r_run
    for v in (1, 2):
        assert_close(f"roi_feat{v}", nchw(inter[f"roi_feat{v}"]), ref[f"josh_roi_feat{v}"])
        for k in ("human_feat", "tokens", "block", "dec", "human_token", "scene_token",
                  "scale"):
            name = {"tokens": f"tokens{v}_ext", "block": f"block{v}_out", "dec": f"dec{v}_new",
                    "scale": f"scale{v}_log"}.get(k, f"{k}{v}")
            assert_close(name, inter[name], ref[f"josh_{name}"])
        np.testing.assert_array_equal(inter[f"pos{v}_ext"], ref[f"josh_pos{v}_ext"])
    assert_close("all_tokens", inter["all_tokens"], ref["josh_all_tokens"])


def test_output_matches_float64_reference_within_float32_noise(josh3r_run):
    # The vectors' float64 re-run differs from float32 torch by <= 6.3e-6 (X11): a JAX float32 port
    # must sit within a small multiple of that noise.
    _, _, ref, out, _ = josh3r_run
    for key in OUTPUTS:
        assert_close(f"f64 {key}", getattr(out, key), ref[f"f64_out_{key}"], rel=1e-5)


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_bf16_compute_close_to_float32_and_params_stay_float32(state_dict, josh3r_run):
    _, _, ref, out32, _ = josh3r_run
    model, _ = load_josh3r(state_dict, get_config("tiny_bf16").model)
    params = nnx.state(model, nnx.Param)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    graphdef, state = nnx.split(model)

    def forward(state, imgs, img_shapes, bbox):
        return nnx.merge(graphdef, state)(imgs, img_shapes, bbox)

    imgs = jnp.asarray(ref["in_imgs"].transpose(0, 1, 3, 4, 2))
    args = (state, imgs, ref["in_img_shapes"], ref["in_bbox"])
    jaxpr = str(jax.make_jaxpr(forward)(*args))
    assert "bf16" in jaxpr, "bf16 preset must run matmuls in bfloat16"
    out = jax.jit(forward)(*args)
    # The heads run in float32: outputs are float32 and within bf16 rounding of the fp32 run.
    assert out.X11.dtype == jnp.float32 and out.rel_rot.dtype == jnp.float32
    for key in OUTPUTS:
        assert_close(f"bf16 {key}", getattr(out, key), getattr(out32, key), rel=0.1)
    assert float(np.abs(np.asarray(out.X11) - np.asarray(out32.X11)).max()) > 0, \
        "bf16 run is bit-identical to fp32: compute dtype not applied"


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_mast3r_symmetric_matches_pytorch(state_dict):
    model, report = load_mast3r(state_dict, get_config("tiny").model)
    assert report.ok and not report.missing
    ref = dict(np.load(os.path.join(DATA, "mast3r_tiny_forward.npz")))
    img1 = jnp.asarray(ref["in_img1"].transpose(0, 2, 3, 1))
    img2 = jnp.asarray(ref["in_img2"].transpose(0, 2, 3, 1))
    graphdef, state = nnx.split(model)
    hw = img1.shape[1:3]

    @jax.jit
    def encode(state, img1, img2):
        return nnx.merge(graphdef, state).encode_pair(img1, img2)

    @jax.jit
    def decode(state, feat_a, pos_a, feat_b, pos_b):
        # One decoder pass + both heads; compiled once, run both ways (symmetric_inference).
        m = nnx.merge(graphdef, state)
        tokens_a, tokens_b = m.decoder(feat_a, pos_a, feat_b, pos_b)
        return m.heads(tokens_a, tokens_b, hw)

    feat1, pos1, feat2, pos2 = encode(state, img1, img2)
    res11, res21 = decode(state, feat1, pos1, feat2, pos2)
    res22, res12 = decode(state, feat2, pos2, feat1, pos1)
    np.testing.assert_array_equal(ref["pos1"], pos1)
    assert_close("feat1", feat1, ref["feat1"])
    assert_close("feat2", feat2, ref["feat2"])
    results = {"11": res11, "21": res21, "22": res22, "12": res12}
    for name, res in results.items():
        for field in ("pts3d", "conf", "desc", "desc_conf"):
            assert_close(f"res{name}_{field}", getattr(res, field), ref[f"res{name}_{field}"])
    # Matching on our own descriptors: the reference's argmax margins (>= 3.6e-5) exceed our
    # descriptor error (~1e-6), so the merged correspondences must be identical.
    order = ("11", "21", "22", "12")
    xy1, xy2, conf = extract_correspondences(
        tuple(np.asarray(results[k].desc[0]) for k in order),
        tuple(np.asarray(results[k].desc_conf[0]) for k in order))
    np.testing.assert_array_equal(xy1, ref["corres_xy1"])
    np.testing.assert_array_equal(xy2, ref["corres_xy2"])
    np.testing.assert_allclose(conf, ref["corres_conf"], rtol=1e-5)


@pytest.mark.parametrize("pair", ["11to21", "21to11", "12to22", "22to12"])
def test_fast_reciprocal_nns_matches_mast3r_on_saved_descriptors(pair):
    ref = np.load(os.path.join(DATA, "mast3r_tiny_forward.npz"))
    a, b = pair.split("to")
    idx1, idx2, valid = fast_reciprocal_nns(ref[f"res{a}_desc"][0], ref[f"res{b}_desc"][0])
    m1, m2, _ = merge_correspondences(np.asarray(idx1), np.asarray(idx2), np.asarray(valid))
    assert len(m1) < len(idx1)  # 96 seeds collapse onto fewer unique pairs
    np.testing.assert_array_equal(m1, ref[f"nn_{pair}_idx1"])
    np.testing.assert_array_equal(m2, ref[f"nn_{pair}_idx2"])


def test_extract_correspondences_matches_josh_on_saved_descriptors():
    ref = np.load(os.path.join(DATA, "mast3r_tiny_forward.npz"))
    order = ("11", "21", "22", "12")
    xy1, xy2, conf = extract_correspondences(tuple(ref[f"res{k}_desc"][0] for k in order),
                                             tuple(ref[f"res{k}_desc_conf"][0] for k in order))
    np.testing.assert_array_equal(xy1, ref["corres_xy1"])
    np.testing.assert_array_equal(xy2, ref["corres_xy2"])
    np.testing.assert_allclose(conf, ref["corres_conf"], rtol=1e-6)


def test_rope2d_is_relative_and_norm_preserving():
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.standard_normal((1, 1, 2, 16)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((1, 1, 2, 16)), jnp.float32)

    def score(pq, pk):
        rq = apply_rope2d(q, jnp.asarray([[pq]]))
        rk = apply_rope2d(k, jnp.asarray([[pk]]))
        return jnp.sum(rq * rk, axis=-1)

    np.testing.assert_allclose(score((3, 5), (1, 2)), score((2, 3), (0, 0)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(score((-1, -1), (0, 4)), score((0, 0), (1, 5)), rtol=1e-5,
                               atol=1e-5)
    assert not np.allclose(score((3, 5), (1, 2)), score((3, 5), (2, 2)), atol=1e-3)
    rq = apply_rope2d(q, jnp.asarray([[(7, -2)]]))
    np.testing.assert_allclose(jnp.linalg.norm(rq, axis=-1), jnp.linalg.norm(q, axis=-1),
                               rtol=1e-5)


def test_pointmap_activation_has_finite_gradient_at_zero():
    g = jax.grad(lambda x: jnp.sum(reg_dense_depth_exp(x)))(jnp.zeros((2, 3)))
    assert np.all(np.isfinite(np.asarray(g)))


def test_train_mode_uses_batch_stats_and_dropout(state_dict):
    model, _ = load_josh3r(state_dict, get_config("tiny").model)
    head = model.rel_rot_head
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, head.input_linear.in_features)),
                    jnp.float32)
    mean_before = np.asarray(head.input_norm.mean[...])
    eval_a, eval_b = head(x), head(x)
    np.testing.assert_array_equal(eval_a, eval_b)
    head.train()
    train_a = head(x)
    train_b = head(x)
    assert not np.allclose(train_a, train_b), "dropout must differ between calls in train mode"
    # Running mean moved towards the batch mean with PyTorch momentum 0.1.
    batch_mean = np.asarray(head.input_linear(x)).mean(axis=0)
    expected = mean_before
    for _ in range(2):
        expected = 0.9 * expected + 0.1 * batch_mean
    np.testing.assert_allclose(head.input_norm.mean[...], expected, rtol=1e-5, atol=1e-6)
    head.eval()
    eval_c = head(x)
    np.testing.assert_array_equal(eval_c, head(x))  # deterministic again
    assert not np.allclose(eval_c, eval_a), "eval must use the updated running statistics"


def test_bf16_attention_uses_fused_path_and_matches_float32(monkeypatch):
    from trainers.nn.vit import multi_head_attention

    calls = []
    fused = jax.nn.dot_product_attention
    monkeypatch.setattr(jax.nn, "dot_product_attention",
                        lambda *a, **k: calls.append(1) or fused(*a, **k))

    rng = np.random.default_rng(2)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 5, 2, 8)), jnp.float32) for _ in range(3))
    ref = multi_head_attention(q, k, v)
    assert not calls, "float32 keeps the einsum (parity) path"
    bf = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    out = multi_head_attention(*bf)
    assert out.dtype == jnp.bfloat16
    assert len(calls) == 1, "bf16 attention must go through jax.nn.dot_product_attention"
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=3e-2)


def test_upsample2x_is_a_two_tap_lerp_matching_align_corners():
    from trainers.nn.dpt import upsample2x_bilinear

    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 3, 4, 2)), jnp.float32)
    y = np.asarray(upsample2x_bilinear(x))
    assert y.shape == (1, 6, 8, 2)
    # align_corners=True keeps the corners and interpolates linearly in between.
    np.testing.assert_allclose(y[0, [0, -1]][:, [0, -1]], np.asarray(x)[0, [0, -1]][:, [0, -1]],
                               rtol=1e-6)
    src = np.arange(8) * (3 / 7)
    lo = np.minimum(np.floor(src).astype(int), 3)
    hi = np.minimum(lo + 1, 3)
    row = np.asarray(x)[0, 0]
    expect = (1 - (src - lo))[:, None] * row[lo] + (src - lo)[:, None] * row[hi]
    np.testing.assert_allclose(y[0, 0], expect, rtol=1e-5, atol=1e-6)
    jaxpr = str(jax.make_jaxpr(upsample2x_bilinear)(x))
    assert "dot_general" not in jaxpr, "upsample must not multiply by interpolation matrices"


def test_inference_path_from_cached_features_matches_pytorch(josh3r_run):
    """`encode` per frame + `predict_from_features` (one DPT head, chunked) give the reference's
    pose outputs and X11, and compute nothing else."""
    model, state, ref, _, _ = josh3r_run
    graphdef = nnx.graphdef(model)
    imgs = jnp.asarray(ref["in_imgs"].transpose(0, 1, 3, 4, 2))
    hw = tuple(imgs.shape[2:4])

    @jax.jit
    def infer(state, imgs, img_shapes, bbox):
        m = nnx.merge(graphdef, state)
        feat1, pos1 = m.encode(imgs[:, 0])
        feat2, pos2 = m.encode(imgs[:, 1])
        return m.predict_from_features(feat1, pos1, feat2, pos2, img_shapes, bbox, hw,
                                       head_chunk=1)

    out = infer(state, imgs, ref["in_img_shapes"], ref["in_bbox"])
    assert sorted(out) == ["X11", "rel_rot", "rel_trans", "scale1", "trans1"]
    for key in out:
        assert_close(f"infer {key}", out[key], ref[f"out_{key}"])


@pytest.mark.slow  # two small grad compiles: ~15 s on 2 loaded cores
def test_scanned_blocks_with_remat_give_the_same_gradients(remat="full"):
    """Stacked + scanned encoder: one leaf per weight whatever the depth; remat recomputes the
    block in the backward pass without changing the gradients."""
    from trainers.nn.vit import ViTEncoder

    def build(depth, remat):
        return ViTEncoder(16, depth, 2, patch_size=4, remat=remat, rngs=nnx.Rngs(0))

    assert len(jax.tree.leaves(nnx.state(build(2, "none")))) == \
        len(jax.tree.leaves(nnx.state(build(5, "none"))))
    img = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (2, 8, 12, 3)), jnp.float32)

    def grads(model):
        graphdef, params = nnx.split(model)
        loss = lambda p: jnp.sum(nnx.merge(graphdef, p)(img)[0] ** 2)
        return jax.jit(jax.grad(loss))(params), jax.make_jaxpr(jax.grad(loss))(params)

    g_plain, jaxpr_plain = grads(build(2, "none"))
    g_remat, jaxpr_remat = grads(build(2, remat))
    assert "checkpoint" in str(jaxpr_remat) or "remat" in str(jaxpr_remat)
    assert "checkpoint" not in str(jaxpr_plain) and "remat" not in str(jaxpr_plain)
    for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="model.remat"):
        build(1, "everything")
