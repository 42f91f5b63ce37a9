"""Human3R streaming inference: input preparation, SMPL-X -> body parameters, the bounded
reader, results with and without people, the demo's camera chaining against the PyTorch vectors
(`demo_post_*`), and the run binary end to end."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import body_models
from experiments.configs.human3r import get_config
from josh_jax.io.outputs import write_all
from tests.paths import DATA, ROOT
from trainers.human3r import convert, infer, summary
from trainers.human3r.smpl_head import SmplxParams

_to_body = jax.jit(infer.smplx_to_body)


def _cfg(**changes):
    config = get_config("tiny")
    with config.unlocked():
        config.update(changes)
    return config


@pytest.fixture(scope="module")
def mannequin():
    return body_models.load_model(None)


def _rotations(rng, n):
    q, _ = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    return (q * np.sign(np.linalg.det(q))[:, None, None]).astype(np.float32)


def test_prepare_frame_sizes_and_range():
    rng = np.random.default_rng(0)
    wide = infer.prepare_frame(rng.integers(0, 256, (100, 200, 3), dtype=np.uint8), 128)
    assert wide.shape == (64, 128, 3) and wide.dtype == np.float32
    assert -1.0 <= wide.min() and wide.max() <= 1.0
    odd = infer.prepare_frame(rng.integers(0, 256, (90, 170, 3), dtype=np.uint8), 512)
    assert odd.shape[0] % 16 == 0 and odd.shape[1] % 16 == 0 and odd.shape[1] == 512
    square = infer.prepare_frame(np.full((50, 50, 3), 255, np.uint8), 128)
    assert square.shape == (96, 128, 3)  # a square image is cropped to 4:3 (spec §3.1)
    np.testing.assert_allclose(square, 1.0)


def test_smplx_to_body_puts_the_head_where_predicted(mannequin):
    rng = np.random.default_rng(1)
    rot = _rotations(rng, 2 * 53).reshape(2, 53, 3, 3)
    smplx = SmplxParams(
        rotmat=jnp.asarray(rot),
        betas=jnp.asarray(rng.standard_normal((2, 10)), jnp.float32),
        expression=jnp.zeros((2, 10)),
        T_cam_head=jnp.asarray([[0.3, -0.2, 4.0], [-1.0, 0.5, 6.0]], jnp.float32),
    )
    orient, pose, betas, transl = _to_body(mannequin, smplx)
    assert pose.shape == (2, mannequin.num_joints - 1, 3, 3)
    np.testing.assert_allclose(np.asarray(pose[:, :21]), rot[:, 1:22])  # the 22 shared joints
    np.testing.assert_allclose(np.asarray(pose[:, 21:]), np.broadcast_to(np.eye(3), (2, 2, 3, 3)))
    assert not np.asarray(betas).any()  # the built-in body's shape space is not SMPL-X's
    posed = jax.jit(jax.vmap(body_models.lbs, in_axes=(None, 0, 0, 0, 0)))(
        mannequin, betas, orient, pose, transl
    )
    np.testing.assert_allclose(
        np.asarray(posed.joints[:, infer.HEAD_JOINT]), np.asarray(smplx.T_cam_head), atol=1e-5
    )


class FakeStep:
    """Stands in for the jitted step: a moving camera, one person (id 5) on frames 1 and 2, and
    a count of the frames alive whenever it is called (the reader must not hoard them)."""

    traces = 1

    def __init__(self, cfg, body_model, refs, people=True):
        self.cfg, self.body_model, self.refs, self.people = cfg, body_model, refs, people
        self.max_alive = 0
        self.calls = 0

    def init_carry(self):
        return 0

    def __call__(self, carry, img, reset):
        gc.collect()
        self.max_alive = max(self.max_alive, sum(r() is not None for r in self.refs))
        self.calls += 1
        s, p = self.cfg.scene_stride, self.cfg.max_people
        h, w = img[::s, ::s].shape[:2]
        T = np.eye(4, dtype=np.float32)
        T[0, 3] = 0.1 * carry
        rot = np.broadcast_to(np.eye(3, dtype=np.float32), (p, 53, 3, 3)).copy()
        head = np.tile(np.array([0.0, 0.0, 3.0], np.float32), (p, 1))
        smplx = SmplxParams(
            rotmat=jnp.asarray(rot),
            betas=jnp.zeros((p, 10)),
            expression=jnp.zeros((p, 10)),
            T_cam_head=jnp.asarray(head),
        )
        orient, pose, betas, transl = (np.asarray(a) for a in _to_body(self.body_model, smplx))
        valid = np.zeros(p, bool)
        valid[0] = self.people and carry in (1, 2)
        pts = np.concatenate([np.zeros((h, w, 2)), np.full((h, w, 1), 2.0)], -1).astype(np.float32)
        out = infer.FrameOutput(
            T_chunk_cam=T,
            focal=np.float32(50.0),
            pts3d=pts,
            conf=np.full((h, w), 3.0, np.float32),
            valid=valid,
            track_id=np.where(valid, 5, -1).astype(np.int32),
            global_orient=orient,
            body_pose=pose,
            betas=betas,
            transl=transl,
            rotmat=rot,
            expression=np.zeros((p, 10), np.float32),
            T_cam_head=head,
        )
        return carry + 1, out


def _frames(n, refs):
    rng = np.random.default_rng(0)
    for _ in range(n):
        frame = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
        refs.append(weakref.ref(frame))
        yield frame
        del frame


@pytest.mark.parametrize("people", [True, False])
def test_streaming_result_and_writers(tmp_path, mannequin, people):
    """The reader holds a bounded number of frames; one track per person id with smpl_valid
    where visible (or none: cameras and scene only); every default writer works."""
    config = _cfg(image_size=64, scene_stride=2)
    cfg = infer.InferConfig.from_config(config)
    refs = []
    fake = FakeStep(cfg, mannequin, refs, people)
    run = infer.run_frames(None, _frames(6, refs), cfg, mannequin, step=fake)
    assert fake.max_alive <= 2 and len(refs) == 6
    assert run.num_frames == 6 and fake.calls == 6  # reset_interval 100: no overlap views
    result = summary.to_result(
        run,
        mannequin,
        fps=10.0,
        scene_stride=cfg.scene_stride,
        conf_threshold=cfg.conf_threshold,
        config=config,
    )
    assert result.T_world_cam.shape == (6, 4, 4) and result.image_size == (32, 64)
    np.testing.assert_allclose(result.T_world_cam[:, 0, 3], 0.1 * np.arange(6), atol=1e-6)
    np.testing.assert_allclose(result.K[:, 0, 0], 50.0)
    np.testing.assert_allclose(result.scene_points_world[..., 2], 2.0)
    if people:
        np.testing.assert_array_equal(result.smpl_valid, [[False, True, True, False, False, False]])
        np.testing.assert_array_equal(result.diagnostics["track_ids"], [5])
        head = result.joints_world[0, 1, infer.HEAD_JOINT]
        np.testing.assert_allclose(head, [0.1, 0.0, 3.0], atol=1e-5)
    else:
        assert result.smpl_valid.shape == (0, 6)
    written = write_all(
        str(tmp_path), "clip", result, writers=config.writers, body_model=mannequin
    )
    assert all(os.path.getsize(p) > 0 for p in written.values())
    assert ("clip.person0.amass.npz" in os.listdir(tmp_path)) == people


def test_released_step_traces_abstractly(mannequin):
    """The whole per-view program at released sizes, 288 x 512 (DINOv2 at 896), shape-checked with
    jax.eval_shape: nothing of the 1.2 B parameters is allocated."""
    config = get_config("released")
    params = convert.abstract_params(convert.Human3rSizes.from_config(config))
    cfg = infer.InferConfig.from_config(config)
    step = infer.FrameStep(params, mannequin, cfg)
    carry = jax.eval_shape(step.initial_carry, step.state)
    img = jax.ShapeDtypeStruct((288, 512, 3), jnp.float32)
    new_carry, out = jax.eval_shape(
        step.apply,
        step.state,
        params.backbone,
        params.head,
        mannequin,
        carry,
        img,
        jax.ShapeDtypeStruct((), bool),
    )
    assert jax.tree.map(lambda a: a.shape, new_carry) == jax.tree.map(lambda a: a.shape, carry)
    assert out.pts3d.shape == (288 // cfg.scene_stride, 512 // cfg.scene_stride, 3)
    assert out.rotmat.shape == (cfg.max_people, 53, 3, 3)
    assert out.body_pose.shape == (cfg.max_people, mannequin.num_joints - 1, 3, 3)
    assert carry.cut3r.state.shape == (1, 768, 768) and step.traces == 1


def test_reset_interval_feeds_the_overlap_view(mannequin):
    cfg = infer.InferConfig.from_config(_cfg(image_size=64, reset_interval=2))
    fake = FakeStep(cfg, mannequin, [])
    run = infer.run_frames(None, _frames(5, []), cfg, mannequin, step=fake)
    assert run.num_frames == 5 and fake.calls == 7  # frames 1 and 3 are reset views, each repeated


@pytest.mark.slow
def test_demo_camera_chaining_matches_reference(mannequin):
    """The `demo_` run (reset_interval 2, TTT3R): chained cameras `post_c2w`, world head positions
    `post_f{j}_smpl_transl_world` and ids; one trace for the whole video. Tolerance 1e-4 x max."""
    ref = np.load(os.path.join(DATA, "human3r_tiny_forward.npz"))
    config = _cfg(image_size=128, reset_interval=2, ttt3r=True, scene_stride=1)
    sd = dict(np.load(os.path.join(DATA, "cut3r_tiny_state_dict.npz")))
    sd.update(np.load(os.path.join(DATA, "human3r_tiny_state_dict.npz")))
    params, _ = convert.load_human3r(sd, convert.Human3rSizes.from_config(config))
    views = ref["demo_in_imgs"][:, 0].transpose(0, 2, 3, 1)
    frames = [np.round((views[v] * 0.5 + 0.5) * 255).astype(np.uint8) for v in (0, 1, 3)]
    run = infer.run_frames(params, iter(frames), infer.InferConfig.from_config(config), mannequin)
    assert run.traces == 1
    T = np.stack(run.T_world_cam)
    want = ref["demo_post_c2w"]
    np.testing.assert_allclose(T, want, rtol=0, atol=1e-4 * np.abs(want).max())
    assert {k: sorted(v) for k, v in run.people.items()} == {0: [0, 1, 2], 1: [0], 2: [2]}
    ids_per_frame = [[0, 1], [0], [2, 0]]  # slot order, as the reference stores them
    for j in ref["demo_post_frames_with_humans"]:
        want = ref[f"demo_post_f{j}_smpl_transl_world"]
        got = [
            T[j, :3, :3] @ run.people[i][j]["T_cam_head"] + T[j, :3, 3] for i in ids_per_frame[j]
        ]
        np.testing.assert_allclose(np.stack(got), want, rtol=0, atol=1e-4 * np.abs(want).max())
    assert run.fallback_focal == 3  # the random pointmaps are not pinhole: post_focal is 0


def _run_binary(*args, timeout=300):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JOSH_JAX_CACHE_DIR": "off"}
    return subprocess.run(
        [sys.executable, "-m", "experiments.run_human3r", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_binary_random_init_end_to_end(tmp_path):
    """A rendered 4-frame video through --random_init: one result set, one trace, a summary."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 120, 3), dtype=np.uint8)
    video = tmp_path / "walk.mp4"
    iio.imwrite(
        video,
        np.stack([np.roll(base, 4 * i, axis=1)[:48, :96] for i in range(4)]),
        fps=10,
        codec="libx264",
        plugin="FFMPEG",
    )
    out = tmp_path / "out"
    args = [
        f"--video={video}",
        "--random_init",
        "--size=64",
        "--reset_interval=3",
        "--config=experiments/configs/human3r.py:small",
        "--config.human.max_people=2",
        f"--out={out}",
    ]
    done = _run_binary(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "walk: 4 frames" in done.stdout and (
        "track 0:" in done.stdout or "no person detected" in done.stdout
    )
    names = sorted(os.listdir(out))
    person = "track 0:" in done.stdout
    assert ("walk.person0.amass.npz" in names) == person
    assert [n for n in names if not n.endswith(".amass.npz")] == [
        ".josh.lock",
        "walk.glb",
        "walk.manifest.json",
        "walk.mp4",
        "walk.npz",
        "walk.tum.txt",
    ]
    with np.load(out / "walk.npz") as data:
        assert data["T_world_cam"].shape == (4, 4, 4)
    again = _run_binary(*args, timeout=60)  # refuses to replace without --overwrite, before work
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_binary_bad_inputs_one_line(tmp_path):
    """A corrupt video and a missing checkpoint: one line each, exit status 2."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    done = _run_binary(f"--video={bad}", "--random_init", f"--out={tmp_path / 'o'}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: (file): expected")
    frames = tmp_path / "frames"
    frames.mkdir()
    iio.imwrite(frames / "0.png", np.zeros((32, 32, 3), np.uint8))
    done = _run_binary(f"--frames={frames}", f"--out={tmp_path / 'o'}")
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert "github.com/fanegg/Human3R" in line and "convert_human3r" in line
