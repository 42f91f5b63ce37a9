"""CUT3R model structure and checkpoint conversion: the released-size manifest (spec §2.2-2.3,
built abstractly), name-by-name error reports, the file formats, scanned stacks, the masked
extra-token hook Human3R uses, and the bf16 option."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs.cut3r import get_config
from josh_jax.errors import InputError
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.convert import (
    CheckpointMismatchError,
    abstract_cut3r,
    convert_state_dict,
    load_checkpoint_file,
    load_cut3r,
    load_params,
    save_params,
)
from trainers.cut3r.recurrent import init_carry, step

DATA = os.path.join(os.path.dirname(__file__), "data")
STATE_DICT = os.path.join(DATA, "cut3r_tiny_state_dict.npz")


def _cfg(preset: str = "tiny", **changes) -> Cut3rConfig:
    cfg = Cut3rConfig.from_config(get_config(preset).model)
    return Cut3rConfig(**{**cfg.__dict__, **changes})


def _shapes(model) -> dict[str, tuple[int, ...]]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(str(p) for p in path): tuple(v.get_value().shape) for path, v in flat}


@pytest.fixture(scope="module")
def state_dict():
    return load_checkpoint_file(STATE_DICT)


@pytest.fixture(scope="module")
def tiny(state_dict):
    return load_cut3r(state_dict, _cfg())[0]


def test_released_manifest():
    """793.3 M parameters, group sizes of §2.2 and the module shapes of §2.3 (abstract build)."""
    model = abstract_cut3r(_cfg("released"))
    shapes = _shapes(model)
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert round(total / 1e6, 1) == 793.3

    def group(prefix):
        return sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(prefix)) / 1e6

    for prefix, millions in (("enc_blocks.", 302.3), ("pose_retriever.", 152.3),
                             ("dec_blocks.", 113.4), ("dec_blocks_state.", 113.4),
                             ("enc_blocks_ray_map.", 25.2), ("downstream_head.dpt_self.", 20.2),
                             ("downstream_head.dpt_cross.", 20.2),
                             ("downstream_head.dpt_rgb.", 20.2),
                             ("downstream_head.final_transform.", 18.9),
                             ("downstream_head.pose_head.", 2.4)):
        assert round(group(prefix), 1) == millions, prefix
    expected = {
        "patch_embed.proj.kernel": (16, 16, 3, 1024),
        "enc_blocks.attn.qkv.kernel": (24, 1024, 3072),
        "enc_blocks.mlp.fc1.kernel": (24, 1024, 4096),
        "enc_norm.scale": (1024,),
        "patch_embed_ray_map.proj.kernel": (16, 16, 6, 1024),
        "enc_blocks_ray_map.attn.qkv.kernel": (2, 1024, 3072),
        "masked_img_token": (1, 1024), "masked_ray_map_token": (1, 1024),
        "register_tokens": (768, 1024),
        "decoder_embed_state.kernel": (1024, 768), "decoder_embed.kernel": (1024, 768),
        "dec_blocks_state.cross_attn.projq.kernel": (12, 768, 768),
        "dec_blocks.mlp.fc1.kernel": (12, 768, 3072),
        "dec_norm_state.scale": (768,), "dec_norm.scale": (768,),
        "pose_token": (1, 1, 768),
        "pose_retriever.proj_q.kernel": (1024, 768),
        "pose_retriever.masked_token": (1, 1, 768), "pose_retriever.mem": (1, 256, 1536),
        "pose_retriever.write_blocks.attn.qkv.kernel": (2, 1536, 4608),
        "pose_retriever.read_blocks.cross_attn.projk.kernel": (2, 1536, 1536),
        "downstream_head.pose_head.mlp.fc1.kernel": (768, 3072),
        "downstream_head.pose_head.mlp.fc2.kernel": (3072, 7),
        "downstream_head.final_transform.norm1.mlp.kernel": (2, 768, 1536),
        "downstream_head.dpt_self.head_out.kernel": (1, 1, 128, 4),
        "downstream_head.dpt_cross.head_out.kernel": (1, 1, 128, 4),
        "downstream_head.dpt_rgb.head_out.kernel": (1, 1, 128, 3),
        "downstream_head.dpt_self.act_postprocess.0.resample.kernel": (96, 4, 4, 96),
        "downstream_head.dpt_self.layer_rn.3.kernel": (3, 3, 768, 256),
    }
    for name, shape in expected.items():
        assert shapes[name] == shape, name
    heads = {"enc": model.enc_blocks.attn.num_heads, "ray": model.enc_blocks_ray_map.attn.num_heads,
             "state": model.dec_blocks_state.attn.num_heads, "img": model.dec_blocks.attn.num_heads,
             "mem": model.pose_retriever.read_blocks.attn.num_heads}
    assert heads == {"enc": 16, "ray": 16, "state": 16, "img": 12, "mem": 12}
    assert model.pose_retriever.read_blocks.attn.rope_base is None


def test_every_entry_loads(state_dict):
    _, report = convert_state_dict(abstract_cut3r(_cfg()), state_dict)
    assert report.ok
    assert len(report.loaded) + len(report.aliases) == len(state_dict) == 600
    assert len(report.aliases) == 12  # scratch.layer_rn.{0..3} of the three DPT heads


def test_bad_entries_are_named(state_dict):
    sd = dict(state_dict)
    del sd["dec_blocks.2.norm_y.bias"]
    sd["enc_blocks.1.attn.qkv.weight"] = np.zeros((5, 64), np.float32)
    sd["not_a_module.weight"] = np.zeros(3, np.float32)
    sd["enc_blocks.7.norm1.weight"] = np.zeros(64, np.float32)  # layer beyond the depth
    alias = "downstream_head.dpt_rgb.scratch.layer_rn.1.weight"
    sd[alias] = sd[alias] + 1.0
    with pytest.raises(CheckpointMismatchError) as info:
        load_cut3r(sd, _cfg(), source="bad.pth")
    assert isinstance(info.value, InputError)
    message = str(info.value)
    assert message.startswith("bad.pth: (entries): expected ")
    for name in ("dec_blocks.norm_y.bias layer 2", "enc_blocks.1.attn.qkv.weight",
                 "not_a_module.weight", "enc_blocks.7.norm1.weight", alias):
        assert name in message, name
    assert "\n" not in message


def test_file_formats_and_params_round_trip(tmp_path, state_dict, tiny):
    img = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 32, 48, 3)), jnp.float32)
    ref = np.asarray(tiny.encode(img)[0])
    torch = pytest.importorskip("torch")
    pth = tmp_path / "cut3r.pth"
    torch.save({"model": {k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()},
                "args": {"model": "ARCroco3DStereo(...)"}}, pth)
    from_pth = load_cut3r(pth, _cfg())[0]
    np.testing.assert_array_equal(np.asarray(from_pth.encode(img)[0]), ref)
    out = tmp_path / "params" / "cut3r_flax.npz"
    save_params(out, tiny)
    assert [p.name for p in out.parent.iterdir()] == ["cut3r_flax.npz"]
    again = load_params(out, _cfg())
    np.testing.assert_array_equal(np.asarray(again.encode(img)[0]), ref)
    with pytest.raises(CheckpointMismatchError):
        load_params(out, _cfg(enc_depth=3))
    with pytest.raises(InputError, match="missing.npz"):
        load_checkpoint_file(tmp_path / "missing.npz")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    st = tmp_path / "cut3r.safetensors"
    safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()},
                                str(st))
    assert set(load_checkpoint_file(st)) == set(state_dict)


def test_stacks_are_scanned(tiny):
    """One block in the program, whatever the depth: the encoder is a scan of length depth."""
    img = jnp.zeros((1, 32, 32, 3), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda x: tiny.encode(x)[0])(img)
    lengths = [e.params["length"] for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    assert lengths == [tiny.cfg.enc_depth]


def test_masked_extra_tokens_change_nothing(tiny):
    """Human3R's hook: extra image-stream tokens marked invalid leave every output unchanged;
    valid ones change the state."""
    rng = np.random.default_rng(1)
    img = jnp.asarray(rng.uniform(-1, 1, (1, 32, 48, 3)), jnp.float32)
    feat, pos = tiny.encode(img)
    state, mem = tiny.initial_state(1)
    query = tiny.pose_query(feat, mem, True)
    graphdef, params = nnx.split(tiny)

    @jax.jit
    def decode(params, *extra_args):
        return nnx.merge(graphdef, params).decode(state, feat, pos, query, *extra_args)

    base = decode(params)
    extra = jnp.asarray(rng.normal(size=(1, 2, tiny.cfg.dec_embed_dim)), jnp.float32)
    extra_pos = jnp.asarray([[[0, 1], [1, 2]]], jnp.int32)
    masked = decode(params, extra, extra_pos, jnp.zeros((1, 2), bool))
    n = feat.shape[1]
    np.testing.assert_allclose(masked.new_state, base.new_state, atol=1e-5)
    np.testing.assert_allclose(masked.img_layers[:, :, :1 + n], base.img_layers, atol=1e-5)
    np.testing.assert_allclose(masked.gate_logit, base.gate_logit, atol=1e-5)
    live = decode(params, extra, extra_pos, jnp.ones((1, 2), bool))
    assert live.img_layers.shape[2] == 1 + n + 2
    assert float(jnp.max(jnp.abs(live.new_state - base.new_state))) > 1e-3


def _jit_step(model, **kw):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda s, c, img: step(nnx.merge(graphdef, s), c, img, False, **kw)), state


def test_ttt3r_gate_and_bf16(state_dict, tiny):
    """TTT3R: the first view updates plainly, later views by the sigmoid gate in (0, 1); bf16
    compute stays close to fp32 on the tiny model (the same TTT3R step in both dtypes: two
    compiled programs, not three)."""
    rng = np.random.default_rng(2)
    imgs = jnp.asarray(rng.uniform(-1, 1, (2, 1, 32, 48, 3)), jnp.float32)
    kw = dict(loop="human3r", ttt3r=True, return_intermediates=True)
    run, params = _jit_step(tiny, **kw)
    carry, frame32, inter0 = run(params, init_carry(tiny, 1), imgs[0])
    _, _, inter1 = run(params, carry, imgs[1])
    np.testing.assert_array_equal(inter0["update_weight"], 1.0)
    w = np.asarray(inter1["update_weight"])
    assert 0.0 < w.min() and w.max() < 1.0 and w.std() > 0
    bf16 = load_cut3r(state_dict, _cfg(compute_dtype="bfloat16"))[0]
    run16, params16 = _jit_step(bf16, **kw)
    _, frame16, _ = run16(params16, init_carry(bf16, 1), imgs[0])
    ref = np.asarray(frame32.pts3d_in_self_view)
    err = np.max(np.abs(np.asarray(frame16.pts3d_in_self_view) - ref)) / np.max(np.abs(ref))
    assert 0 < err < 0.1


@pytest.mark.slow
def test_convert_binary(tmp_path):
    """The binary writes a file load_params reads; a checkpoint of the wrong size gives one line."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = tmp_path / "cut3r_flax.npz"

    def run(preset, output):
        return subprocess.run(
            [sys.executable, "-m", "experiments.convert_cut3r",
             f"--config=experiments/configs/cut3r.py:{preset}", f"--checkpoint={STATE_DICT}",
             f"--output={output}"], cwd=root, env=env, capture_output=True, text=True,
            timeout=600)

    ok = run("tiny", out)
    assert ok.returncode == 0, ok.stderr
    load_params(out, _cfg())
    bad = run("small", tmp_path / "never.npz")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "never.npz").exists()
