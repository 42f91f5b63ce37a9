"""Human3R checkpoint conversion: the released-size manifest (built abstractly, 1,167.5 M),
every entry of the tiny vectors' state dict, name-by-name error reports, and the parameter-file
round trip."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs.human3r import get_config
from josh_jax.errors import InputError
from tests.paths import DATA, ROOT
from trainers.cut3r.convert import CheckpointMismatchError
from trainers.human3r import convert, humans

CUT3R_SD = os.path.join(DATA, "cut3r_tiny_state_dict.npz")
HUMAN_SD = os.path.join(DATA, "human3r_tiny_state_dict.npz")


def _sizes(preset="tiny"):
    return convert.Human3rSizes.from_config(get_config(preset))


@pytest.fixture(scope="module")
def state_dict():
    sd = dict(np.load(CUT3R_SD))
    sd.update(np.load(HUMAN_SD))
    return sd


def test_released_manifest_abstract():
    """1,167.5 M parameters and the group sizes of spec §2.2 with nothing allocated."""
    sizes = _sizes("released")
    counts = convert.abstract_parameter_count(sizes)
    assert round(sum(counts.values()) / 1e6, 1) == 1167.5
    for group, millions in (
        ("backbone", 304.4),
        ("enc_blocks", 302.3),
        ("pose_retriever", 152.3),
        ("downstream_head.mlp_fuse", 23.1),
        ("downstream_head.decpose", 15.1),
        ("downstream_head.decshape", 12.9),
        ("downstream_head.deccam", 2.4),
        ("downstream_head.mlp_msk", 1.25),
        ("downstream_head.mlp_classif", 1.05),
    ):
        assert round(counts[group] / 1e6, 2 if millions < 2 else 1) == millions, group
    shapes = convert.human_entry_shapes(sizes)
    assert len(shapes) == 1631 - 1248  # Human3R entries minus CUT3R's (spec §2.2)
    assert shapes["backbone.encoder.pos_embed"] == (1, 1 + 37 * 37, 1024)
    assert shapes["downstream_head.mlp_fuse.mlp.layers.0.weight"] == (8192, 2048)
    assert shapes["downstream_head.decpose.mlp.layers.2.weight"] == (318, 7168)


def test_every_tiny_entry_loads(state_dict):
    _, human, report = convert.convert_state_dict(_sizes(), state_dict)
    assert report.ok, report.summary()
    assert len(report.loaded) + len(report.aliases) == len(state_dict) == 675
    assert set(human) == set(np.load(HUMAN_SD).files)


def test_bad_entries_are_named(state_dict):
    sd = dict(state_dict)
    del sd["downstream_head.decshape.mlp.layers.2.bias"]
    del sd["dec_blocks.1.norm1.weight"]
    sd["downstream_head.mlp_offset.2.weight"] = np.zeros((3, 48), np.float32)
    sd["backbone.encoder.blocks.5.ls1.gamma"] = np.zeros(48, np.float32)  # beyond the depth
    sd["downstream_head.mystery.weight"] = np.zeros(2, np.float32)
    with pytest.raises(CheckpointMismatchError) as info:
        convert.load_human3r(sd, _sizes(), source="bad.pth")
    assert isinstance(info.value, InputError)
    message = str(info.value)
    assert message.startswith("bad.pth: (entries): expected ") and "\n" not in message
    for name in (
        "downstream_head.decshape.mlp.layers.2.bias",
        "dec_blocks.norm1.scale layer 1",
        "downstream_head.mlp_offset.2.weight: expected (2, 48), found (3, 48)",
        "backbone.encoder.blocks.5.ls1.gamma",
        "downstream_head.mystery.weight",
    ):
        assert name in message, name


@pytest.mark.slow
def test_params_round_trip_and_wiring(tmp_path, state_dict):
    """Loaded weights reproduce the reference detections; the .npz file reads back identically."""
    ref = np.load(os.path.join(DATA, "human3r_tiny_forward.npz"))
    params, _ = convert.load_human3r(state_dict, _sizes())
    img = jnp.asarray(ref["plain_in_imgs"][0, 0])

    @jax.jit
    def _scores(backbone, head):
        return humans.detect_humans(
            backbone, head, img, res=112, num_heads=3, threshold=0.3, max_people=3
        ).scores

    def scores(p):
        return np.asarray(_scores(p.backbone, p.head))

    want = ref["plain_det_scores_nms"][0, 0, 0]
    got = scores(params)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    out = tmp_path / "p" / "human3r_flax.npz"
    convert.save_params(out, params)
    assert os.listdir(out.parent) == ["human3r_flax.npz"] and convert.is_converted_file(out)
    again = convert.load_params(out, _sizes())
    np.testing.assert_array_equal(scores(again), got)
    for a, b in zip(
        jax.tree.leaves(nnx.state(again.model, nnx.Param)),
        jax.tree.leaves(nnx.state(params.model, nnx.Param)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(CheckpointMismatchError, match="backbone.encoder.pos_embed"):
        convert.load_params(out, _sizes("small"))


@pytest.mark.slow
def test_convert_binary(tmp_path, state_dict):
    """A union .npz state dict converts through the binary into a file load_params reads."""
    sd_path = tmp_path / "human3r_tiny.npz"
    np.savez(sd_path, **state_dict)

    def run(preset, output):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "experiments.convert_human3r",
                f"--config=experiments/configs/human3r.py:{preset}",
                f"--checkpoint={sd_path}",
                f"--output={output}",
            ],
            cwd=ROOT,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
            capture_output=True,
            text=True,
            timeout=300,
        )

    ok = run("tiny", tmp_path / "out.npz")
    assert ok.returncode == 0, ok.stderr
    convert.load_params(tmp_path / "out.npz", _sizes())
