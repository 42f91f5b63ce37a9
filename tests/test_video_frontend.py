"""The video front end (`trainers/video_frontend.py`): keyframe streaming, geometric matches,
the batched MASt3R matcher, and `run_josh --video` end to end with random weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from flax import nnx

from experiments.configs import frontend as frontend_configs
from experiments.configs import synthetic as synthetic_configs
from josh_jax import geometry, synthetic
from josh_jax.clip import load_clip
from josh_jax.io.result_npz import load_result_npz
from josh_jax.video import geometric_matches, sampling
from tests.paths import ROOT
from trainers import matching, video_frontend
from trainers.mast3r import MASt3R
from trainers.mast3r_matcher import PairMatcher


@pytest.fixture(scope="module")
def tiny():
    return synthetic.generate_clip(synthetic_configs.get_config("tiny"), 0)


@pytest.mark.parametrize("n", [1, 2, 6, 11, 150, 200])
@pytest.mark.parametrize("interval", [1, 5])
def test_keyframes_are_josh_sampling_while_streaming(n, interval):
    taken = []
    frames = (np.full((2, 2, 3), i, np.uint8) for i in range(n))
    out = list(video_frontend.keyframes(frames, interval, taken))
    # JOSH's window over the whole stream (max_num large enough to take the remainder).
    want = sampling.keyframe_indices(n, 0, interval, max_num=n + 1)
    assert taken == want
    assert [int(f[0, 0, 0]) for f in out] == want  # the yielded frames are those frames


def test_geometric_matches_are_true_correspondences(tiny):
    clip, gt = tiny
    focal = float(gt.gt_focal)
    pointmaps = geometry.pointmaps_from_depth(gt.gt_depth, focal)
    T, H, W = pointmaps.shape[:3]
    conf = np.full((T, H, W), 3.0, np.float32)
    mask = np.asarray(gt.gt_human_mask)
    pairs = np.asarray(sampling.window_pairs(T, 3, symmetrize=False))
    kw = dict(subsample=4, min_confidence=1.1, depth_tolerance=0.02)
    matches, mconf = geometric_matches.geometric_matches(
        pointmaps, conf, mask, gt.gt_T_world_cam, np.full(T, focal), pairs, **kw)
    assert matches.shape[:2] == mconf.shape == (len(pairs), matches.shape[1])
    real = mconf > 0
    assert real.sum(axis=1).min() > 20
    # Each real match: the true world point of pixel i seen from camera j lands on pixel j.
    K = geometry.centred_intrinsics(focal, H, W)
    for e, (i, j) in enumerate(pairs):
        xy_i, xy_j = matches[e, real[e], 0], matches[e, real[e], 1]
        u, v = xy_i[:, 0].astype(int), xy_i[:, 1].astype(int)
        assert not mask[i, v, u].any()
        x_world = pointmaps[i, v, u] @ gt.gt_T_world_cam[i, :3, :3].T + gt.gt_T_world_cam[i, :3, 3]
        T_cw = np.linalg.inv(gt.gt_T_world_cam[j])
        x_j = x_world @ T_cw[:3, :3].T + T_cw[:3, 3]
        uv = x_j[:, :2] / x_j[:, 2:] * focal + K[:2, 2]
        np.testing.assert_allclose(uv, xy_j, atol=1e-3)
        # ... and is visible there: the true depth at that pixel is the point's depth.
        z_seen = gt.gt_depth[j, np.round(xy_j[:, 1]).astype(int), np.round(xy_j[:, 0]).astype(int)]
        assert np.all(np.abs(z_seen - x_j[:, 2]) <= 0.02 * x_j[:, 2])
    # A wrong camera (frame 0 turned by 90 degrees): the depth test rejects almost every match of
    # the pairs with frame 0.
    turned = np.array(gt.gt_T_world_cam)
    turned[0, :3, :3] = turned[0, :3, :3] @ geometry.axis_angle_to_matrix_host(
        np.array([0.0, np.pi / 2, 0.0]))
    _, wrong = geometric_matches.geometric_matches(
        pointmaps, conf, mask, turned, np.full(T, focal), pairs, **kw)
    with_0 = pairs[:, 0] == 0
    assert (wrong[with_0] > 0).sum() < 0.1 * real[with_0].sum()
    assert (wrong[~with_0] > 0).sum() == real[~with_0].sum()

def test_batched_mast3r_matcher_equals_per_pair_matching():
    """One compiled program for every batch (the last padded); the same matches as
    `extract_correspondences` on each pair's own symmetric forward."""
    config = frontend_configs.get_config("tiny")
    model = MASt3R(config.mast3r, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    matcher = PairMatcher(model, subsample=8, batch_size=2)
    matches, conf = matcher(images, pairs)
    assert matcher.traces == 1
    frames = images.astype(np.float32) / 255.0 * 2.0 - 1.0
    graphdef, state = nnx.split(model)
    symmetric = jax.jit(lambda s, a, b: nnx.merge(graphdef, s).symmetric(a, b))  # batch of 1
    for e, (i, j) in enumerate(pairs):
        res = symmetric(state, frames[i:i + 1], frames[j:j + 1])
        order = (0, 1, 2, 3)
        xy1, xy2, c = matching.extract_correspondences(
            tuple(np.asarray(res[k].desc[0]) for k in order),
            tuple(np.asarray(res[k].desc_conf[0]) for k in order))
        n = len(c)
        assert n > 0 and (conf[e] > 0).sum() == n
        np.testing.assert_array_equal(matches[e, :n, 0], xy1)
        np.testing.assert_array_equal(matches[e, :n, 1], xy2)
        np.testing.assert_allclose(conf[e, :n], c, rtol=1e-5)


def _run_josh(args, timeout=600):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JOSH_JAX_CACHE_DIR": "off"}
    return subprocess.run([sys.executable, "-m", "experiments.run_josh", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_video_without_human3r_checkpoint_is_one_line(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"never read")
    done = _run_josh([f"--video={video}", f"--out={tmp_path / 'out'}"], timeout=120)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --human3r: (flag): expected ") and "fanegg/Human3R" in line


def _video(clip, tmp_path):
    video = tmp_path / "walk.mp4"
    iio.imwrite(video, clip.images, fps=6, codec="libx264", plugin="FFMPEG")
    return video


@pytest.mark.slow
def test_run_josh_video_end_to_end_random_weights(tiny, tmp_path):
    """A rendered synthetic video through Human3R (tiny, random) and MASt3R (micro, random):
    a valid Clip (saved, reloaded through the schema), JOSH on it, the result set; each network
    traced once."""
    clip, _ = tiny
    video = _video(clip, tmp_path)
    out, saved = tmp_path / "out", tmp_path / "walk_clip.npz"
    done = _run_josh([
        f"--video={video}", "--random_init", f"--out={out}", f"--save_clip={saved}",
        f"--frontend_config={os.path.join(ROOT, 'experiments/configs/frontend.py')}:tiny",
        "--frontend_config.interval=1", "--frontend_config.matcher=mast3r",
        f"--config={os.path.join(ROOT, 'experiments/configs/josh.py')}:fast",
        "--config.stage1.iters=6", "--config.stage2.iters=3", "--writers=npz,tum"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stage in ("[frontend] human3r", "[frontend] masks", "[frontend] matches (mast3r)",
                  "[frontend] contacts", "traces: human3r 1, mast3r 1", "[optimize]", "[write]"):
        assert stage in done.stderr, stage
    front, gt = load_clip(str(saved))
    n = len(clip.images)
    assert gt is None and front.num_frames == n and front.frame_index.tolist() == list(range(n))
    assert front.images.shape[0] == n and front.pointmaps.shape[1:3] == front.images.shape[1:3]
    assert (front.match_confidence > 0).any() and front.num_pairs == n * (n - 1) // 2
    res = load_result_npz(str(out / "walk.npz"))
    assert res.T_world_cam.shape == (n, 4, 4) and np.isfinite(res.T_world_cam).all()
    assert res.smpl_valid.shape[0] == front.num_people
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"][0]["status"] in ("ok", "suspect")


@pytest.mark.slow
def test_run_josh_long_video_goes_through_chunks(tiny, tmp_path):
    """More keyframes than `long_video_keyframes`: chunks, alignment, one result set."""
    clip, _ = tiny
    out = tmp_path / "out"
    done = _run_josh([
        f"--video={_video(clip, tmp_path)}", "--random_init", f"--out={out}",
        f"--frontend_config={os.path.join(ROOT, 'experiments/configs/frontend.py')}:tiny",
        "--frontend_config.interval=1", "--frontend_config.long_video_keyframes=4",
        f"--long_video_config={os.path.join(ROOT, 'experiments/configs/long_video.py')}:tiny",
        "--long_video_config.chunk_keyframes=4", "--long_video_config.overlap_keyframes=2",
        f"--config={os.path.join(ROOT, 'experiments/configs/josh.py')}:fast",
        "--config.stage1.iters=6", "--config.stage2.iters=3", "--writers=npz"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    n = len(clip.images)
    assert f"walk: {n} keyframes in 2 chunks" in done.stdout
    res = load_result_npz(str(out / "walk.npz"))
    assert res.T_world_cam.shape == (n, 4, 4) and np.isfinite(res.T_world_cam).all()
