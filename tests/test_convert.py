"""PyTorch state dict -> Flax conversion: names, layouts, reports, files, full-size shapes."""

import json
import os
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from experiments.configs.josh3r import get_config
from trainers import convert, flax_state, pretrained, state_dict_file
from trainers.josh3r import JOSH3R, MLPHead, ROIFeatureRegressor

DATA = os.path.join(os.path.dirname(__file__), "data")
MANIFEST = os.path.join(DATA, "josh3r_state_dict_manifest.json")


@pytest.fixture(scope="module")
def state_dict():
    return state_dict_file.load_state_dict_file(os.path.join(DATA, "josh3r_tiny_state_dict.npz"))


@pytest.fixture(scope="module")
def loaded(state_dict):
    return pretrained.load_josh3r(state_dict, get_config("tiny").model)


def test_tiny_checkpoint_converts_cleanly(state_dict, loaded):
    _, report = loaded
    assert report.ok, report.summary()
    assert not report.unmatched and not report.mismatched and not report.missing
    # Everything is accounted for: 1086 entries = loaded + deliberately skipped.
    assert len(report.loaded) + len(report.skipped) == len(state_dict) == 1086
    skipped = set(report.skipped)
    assert "mast3r.mask_token" in skipped
    assert all(k.startswith("smpl.") or k.endswith("num_batches_tracked")
               or k == "mast3r.mask_token" for k in skipped)


def test_layouts_follow_pytorch_conventions(state_dict, loaded):
    model, _ = loaded
    sd = state_dict
    blk = model.mast3r.encoder.blocks  # stacked: layer 1 is row 1 of every variable
    np.testing.assert_array_equal(blk.attn.qkv.kernel[1],
                                  sd["mast3r.enc_blocks.1.attn.qkv.weight"].T)
    np.testing.assert_array_equal(blk.norm2.scale[1], sd["mast3r.enc_blocks.1.norm2.weight"])
    np.testing.assert_array_equal(blk.norm2.scale[0], sd["mast3r.enc_blocks.0.norm2.weight"])
    np.testing.assert_array_equal(model.mast3r.encoder.patch_embed.proj.kernel[...],
                                  sd["mast3r.patch_embed.proj.weight"].transpose(2, 3, 1, 0))
    dpt = model.mast3r.head2.dpt
    np.testing.assert_array_equal(
        dpt.act_postprocess[0].resample.kernel[...],
        sd["mast3r.downstream_head2.dpt.act_postprocess.0.1.weight"].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(
        dpt.refinenet[3].res_conf_unit1.conv2.bias[...],
        sd["mast3r.downstream_head2.dpt.scratch.refinenet4.resConfUnit1.conv2.bias"])
    np.testing.assert_array_equal(model.mast3r.decoder.blocks2.cross_attn.projk.bias[11],
                                  sd["mast3r.dec_blocks2.11.cross_attn.projk.bias"])
    head = model.rel_rot_head
    np.testing.assert_array_equal(head.input_norm.var[...],
                                  sd["rel_rot_head.head_layers.0.1.running_var"])
    np.testing.assert_array_equal(head.blocks[1].norm2.mean[...],
                                  sd["rel_rot_head.head_layers.2.0.norm2.running_mean"])
    np.testing.assert_array_equal(head.final.kernel[...], sd["rel_rot_head.head_layers.3.weight"].T)
    assert model.rel_trans_head.final.bias is None  # zero_init head: Linear(bias=False)


def test_unmatched_mismatched_and_missing_keys_are_named(state_dict):
    sd = dict(state_dict)
    sd["mast3r.enc_blocks.7.attn.qkv.weight"] = np.zeros((192, 64), np.float32)  # no block 7
    sd["totally.unknown"] = np.zeros((3,), np.float32)
    sd["human_head_1.head_layers.3.weight"] = np.zeros((4, 32), np.float32)  # expected (3, 32)
    del sd["dec_norm.bias"]
    with pytest.raises(convert.ConversionError) as err:
        pretrained.load_josh3r(sd, get_config("tiny").model)
    msg = str(err.value)
    for needle in ("mast3r.enc_blocks.7.attn.qkv.weight", "totally.unknown",
                   "human_head_1.head_layers.3.weight", "(3, 32)", "(4, 32)", "dec_norm.bias"):
        assert needle in msg, f"{needle!r} missing from:\n{msg}"
    model, report = pretrained.load_josh3r(sd, get_config("tiny").model, strict=False)
    assert report.unmatched == ["mast3r.enc_blocks.7.attn.qkv.weight", "totally.unknown"]
    assert len(report.mismatched) == 1
    # A mis-shaped entry also leaves its target unfilled.
    assert report.missing == ["dec_norm.bias", "human_head_1.final.kernel"]
    np.testing.assert_array_equal(model.dec_norm.scale[...], sd["dec_norm.weight"])


def test_missing_layer_of_a_stacked_block_is_named(state_dict):
    sd = {k: v for k, v in state_dict.items() if k != "mast3r.dec_blocks.4.mlp.fc2.bias"}
    model, report = pretrained.load_josh3r(sd, get_config("tiny").model, strict=False)
    assert report.missing == ["mast3r.decoder.blocks1.mlp.fc2.bias[4]"]
    bias = np.asarray(model.mast3r.decoder.blocks1.mlp.fc2.bias[...])
    np.testing.assert_array_equal(bias[5], state_dict["mast3r.dec_blocks.5.mlp.fc2.bias"])


def test_per_layer_flax_state_loads_into_the_stacked_layout(state_dict, loaded):
    """Converted files written before the blocks were stacked (one name per layer) still load."""
    ref_model, _ = loaded
    stacked = flax_state.flax_state_dict(ref_model)
    per_layer = {}
    for name, value in stacked.items():
        for stack in ("encoder.blocks.", "decoder.blocks1.", "decoder.blocks2."):
            if f"mast3r.{stack}" in name:
                head, tail = name.split(stack)
                per_layer.update({f"{head}{stack}{i}.{tail}": v for i, v in enumerate(value)})
                break
        else:
            per_layer[name] = value
    assert "mast3r.encoder.blocks.1.attn.qkv.kernel" in per_layer
    model, report = pretrained.load_josh3r(per_layer, get_config("tiny").model)
    assert report.ok and not report.missing
    got = flax_state.flax_state_dict(model)
    for k in stacked:
        np.testing.assert_array_equal(got[k], stacked[k], err_msg=k)


def test_wrong_size_config_is_refused(state_dict):
    cfg = get_config("tiny").model
    cfg.unlock()
    cfg.roi_conv_channels = 16
    with pytest.raises(convert.ConversionError, match="human_feat_extractor_1.conv1.weight"):
        pretrained.load_josh3r(state_dict, cfg)


def test_npz_and_safetensors_roundtrip(tmp_path, state_dict):
    subset = {k: v for k, v in state_dict.items() if k.startswith("human_head_1.")}
    path = tmp_path / "sd.npz"
    state_dict_file.save_state_dict_npz(path, subset)
    back = state_dict_file.load_state_dict_file(path)
    assert sorted(back) == sorted(subset)
    for k in subset:
        np.testing.assert_array_equal(back[k], subset[k])
    safetensors = pytest.importorskip("safetensors.numpy", reason="safetensors not installed")
    st = tmp_path / "sd.safetensors"
    safetensors.save_file({k: np.ascontiguousarray(v) for k, v in subset.items()}, str(st))
    back = state_dict_file.load_state_dict_file(st)
    for k in subset:
        np.testing.assert_array_equal(back[k], subset[k])


def test_pth_via_torch_and_clear_error_without_it(tmp_path, state_dict, monkeypatch):
    path = tmp_path / "josh3r.pth"
    subset = {k: v for k, v in state_dict.items() if k.startswith("scene_head_2.")}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.save({"state_dict": {k: torch.from_numpy(np.array(v)) for k, v in subset.items()}},
                   path)
        back = state_dict_file.load_state_dict_file(path)
        assert sorted(back) == sorted(subset)
        for k in subset:
            np.testing.assert_array_equal(back[k], subset[k])
    else:
        path.write_bytes(b"not a real checkpoint")
    monkeypatch.setitem(sys.modules, "torch", None)  # simulate an install without torch
    with pytest.raises(convert.ConversionError, match="needs torch"):
        state_dict_file.load_state_dict_file(path)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(convert.ConversionError, match="file not found"):
        state_dict_file.load_state_dict_file(tmp_path / "nope.npz")
    other = tmp_path / "x.onnx"
    other.write_bytes(b"")
    with pytest.raises(convert.ConversionError, match="unknown checkpoint extension"):
        state_dict_file.load_state_dict_file(other)


def test_bare_mast3r_state_dict(state_dict):
    bare = {k[len("mast3r."):]: v for k, v in state_dict.items() if k.startswith("mast3r.")}
    model, report = pretrained.load_mast3r(bare, get_config("tiny").model)
    assert report.ok and report.skipped == ["mask_token"]
    np.testing.assert_array_equal(model.decoder.embed.kernel[...], bare["decoder_embed.weight"].T)


def _manifest_shapes():
    with open(MANIFEST) as f:
        return state_dict_file.iter_manifest(json.load(f)["entries"])


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_full_size_manifest_converts_without_unmatched_keys():
    """All 1350 names/shapes of the official checkpoint against the full-size Flax model.

    Shape-only: the model is built abstractly (nnx.eval_shape, no 3 GB allocation) and every
    manifest entry is resolved, layout-transformed and shape-checked.
    """
    shapes = _manifest_shapes()
    assert len(shapes) == 1350
    model = nnx.eval_shape(lambda: JOSH3R(get_config("full").model, rngs=nnx.Rngs(0)))
    report = convert.convert_into(model, shapes, shapes_only=True, source="manifest")
    assert report.ok, report.summary()
    assert len(report.loaded) + len(report.skipped) == 1350
    n_params = sum(int(np.prod(s)) for k, s in shapes.items()
                   if k in set(report.loaded) and "running_" not in k
                   and ".dpt.scratch.layer_rn." not in k)
    # 754,037,908 parameters minus mask_token (768, unused in the forward).
    assert n_params == 754_037_908 - 768
    flax_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert flax_params == n_params
    # The full-size forward is shape-consistent at a training resolution (abstract, no compute).
    model.eval()
    graphdef, state = nnx.split(model)
    b, h, w = 1, 288, 512
    out = jax.eval_shape(lambda s, x, bb: nnx.merge(graphdef, s)(x, None, bb), state,
                         jax.ShapeDtypeStruct((b, 2, h, w, 3), np.float32),
                         jax.ShapeDtypeStruct((b, 2, 4), np.float32))
    assert out.X11.shape == (b, h * w, 3) and out.rel_rot.shape == (b, 6)
    assert out.view2.desc.shape == (b, h, w, 24) and out.scale2.shape == (b, 1)


class _FullHumanBranch(nnx.Module):
    """Full-size ROI regressor + rel_rot head under their JOSH3R names (16 M params)."""

    def __init__(self, config, rngs):
        d = config.josh_dim
        self.human_feat_extractor_1 = ROIFeatureRegressor(d, d, config, rngs=rngs)
        self.rel_rot_head = MLPHead(4 * d, 6, d, config, rngs=rngs)


def _bn(x, sd, p, axis=-1):
    shape = [1] * x.ndim
    shape[axis] = -1
    g = lambda k: sd[f"{p}.{k}"].reshape(shape)
    return (x - g("running_mean")) / np.sqrt(g("running_var") + 1e-5) * g("weight") + g("bias")


def _torch_conv3x3_nchw(x, w, b):
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
    return out + b[None, :, None, None]


def test_full_size_values_convert_key_by_key():
    """Random full-size values (manifest shapes) for the human branch, checked numerically.

    The state dict is a lazy mapping: each array is drawn when the converter asks for it.
    Reference: a float64 numpy re-implementation of the PyTorch eval forward (NCHW, flatten in
    (c, y, x) order, BatchNorm with running stats).
    """
    shapes = _manifest_shapes()
    config = get_config("full").model
    names = [k for k in shapes if k.startswith(("human_feat_extractor_1.", "rel_rot_head."))]

    class Lazy(dict):
        def __getitem__(self, key):  # one array at a time, deterministic per key
            seed = abs(hash(key)) % (2 ** 32)
            r = np.random.default_rng(seed)
            if key.endswith("running_var"):
                return r.uniform(0.5, 1.5, shapes[key]).astype(np.float32)
            if key.endswith("num_batches_tracked"):
                return np.zeros((), np.int64)
            scale = 1.0 if key.endswith(("norm1.weight", "norm2.weight")) else 0.05
            return (r.standard_normal(shapes[key]) * scale).astype(np.float32)

    lazy = Lazy.fromkeys(names)
    model = _FullHumanBranch(config, nnx.Rngs(0))
    report = convert.convert_into(model, lazy, source="synthetic full-size")
    assert report.ok and len(report.loaded) == len([n for n in names if "num_batches" not in n])
    model.eval()
    sd = {k: lazy[k].astype(np.float64) for k in names}
    rng = np.random.default_rng(1)
    roi = rng.standard_normal((2, 768, 7, 7))
    x = roi
    for i in (1, 2, 3):
        p = f"human_feat_extractor_1.conv{i}"
        x = np.maximum(_bn(_torch_conv3x3_nchw(x, sd[p + ".weight"], sd[p + ".bias"]), sd,
                           f"human_feat_extractor_1.bn{i}", axis=1), 0)
    x = x.reshape(2, -1) @ sd["human_feat_extractor_1.fc1.weight"].T + sd[
        "human_feat_extractor_1.fc1.bias"]
    ref_feat = _bn(x, sd, "human_feat_extractor_1.bn_fc1")
    feat = model.human_feat_extractor_1(np.asarray(roi.transpose(0, 2, 3, 1), np.float32))
    np.testing.assert_allclose(feat, ref_feat, rtol=1e-3, atol=1e-3 * np.abs(ref_feat).max())

    z = rng.standard_normal((2, 3072))
    p = "rel_rot_head.head_layers"
    lin = lambda x, k: x @ sd[f"{k}.weight"].T + sd[f"{k}.bias"]
    h = np.maximum(_bn(lin(z, f"{p}.0.0"), sd, f"{p}.0.1"), 0)
    for b in (1, 2):
        q = f"{p}.{b}.0"
        y = np.maximum(_bn(lin(h, f"{q}.linear1"), sd, f"{q}.norm1"), 0)
        h = np.maximum(_bn(lin(y, f"{q}.linear2"), sd, f"{q}.norm2") + h, 0)
    ref_rot = lin(h, f"{p}.3")
    rot = model.rel_rot_head(np.asarray(z, np.float32))
    np.testing.assert_allclose(rot, ref_rot, rtol=1e-3, atol=1e-3 * np.abs(ref_rot).max())


@pytest.mark.slow
def test_readme_commands_convert_then_infer(tmp_path, state_dict, loaded):
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "josh3r_flax.npz"
    out.write_bytes(b"old")  # replaced atomically, never half-written
    cmd = [sys.executable, os.path.join(root, "experiments", "convert_josh3r.py"),
           f"--config={os.path.join(root, 'experiments', 'configs', 'josh3r.py')}:tiny",
           f"--checkpoint={os.path.join(DATA, 'josh3r_tiny_state_dict.npz')}",
           f"--output={out}"]
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "unmatched 0" in res.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["josh3r_flax.npz"]  # no temp file left
    model, report = pretrained.load_josh3r(out, get_config("tiny").model)
    assert report.ok
    ref_model, _ = loaded
    ref = flax_state.flax_state_dict(ref_model)
    got = flax_state.flax_state_dict(model)
    assert sorted(got) == sorted(ref)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)

    # The README's second command: inference on a clip (with images) from the converted file.
    from experiments.configs import synthetic as synthetic_config
    from josh_jax.clip import save_clip
    from josh_jax.io.result_npz import load_result_npz
    from josh_jax.synthetic import generate_clip

    clip, _ = generate_clip(synthetic_config.get_config("tiny"), 0)
    save_clip(str(tmp_path / "clip.npz"), clip)
    cmd = [sys.executable, "-m", "experiments.infer_josh3r",
           f"--config={os.path.join(root, 'experiments', 'configs', 'josh3r.py')}:tiny",
           f"--checkpoint={out}", f"--clip={tmp_path / 'clip.npz'}", f"--output={tmp_path / 'out'}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    result = load_result_npz(str(tmp_path / "out" / "clip_josh3r.npz"))
    T = np.asarray(result.T_world_cam)
    assert T.shape[1:] == (4, 4) and np.all(np.isfinite(T))
    R = T[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-4)
