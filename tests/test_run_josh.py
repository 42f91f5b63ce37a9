"""Evaluation (`josh_jax.evaluate`), the summary table, and `experiments/run_josh.py` end to end
on a tiny synthetic clip."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import body_models
from experiments.configs import synthetic as synthetic_config
from josh_jax import geometry as geo
from josh_jax import pipeline, synthetic, world
from josh_jax import result as result_lib
from josh_jax.clip import save_clip
from josh_jax.evaluate import evaluate
from josh_jax.io.result_npz import load_result_npz

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny():
    clip, gt = synthetic.generate_clip(synthetic_config.get_config("tiny"), 0)
    return clip, gt, body_models.load_model(None)


def _result_from_gt(clip, gt, model, transl_scale=1.0):
    """A Result built from the ground truth itself (camera-frame parameters by the inverse
    conjugation), placed in a different world: every metric must be ~0."""
    T_wc = jnp.asarray(gt.gt_T_world_cam, jnp.float32)
    betas = jnp.asarray(gt.gt_smpl_betas, jnp.float32)
    pelvis = jax.vmap(jax.vmap(lambda b: body_models.rest_joints(model, b)[0]))(betas)
    T_cw = geo.se3_inverse(T_wc)
    to_cam = jax.vmap(jax.vmap(world.camera_to_world_smpl), in_axes=(None, 0, 0, 0))
    R_cam, t_cam = to_cam(T_cw, jnp.asarray(gt.gt_smpl_global_orient, jnp.float32),
                          jnp.asarray(gt.gt_smpl_transl, jnp.float32), pelvis)
    T, H, W = clip.pointmaps.shape[:3]
    return result_lib.assemble_result(
        keyframe_index=clip.frame_index,
        T_world_cam_key=np.asarray(T_wc),
        K=geo.intrinsics_matrix(float(gt.gt_focal), W / 2, H / 2),
        depth_key=np.ones((T, H, W), np.float32),
        conf_key=np.ones((T, H, W), np.float32),
        scene_mask_key=None,
        images=None,
        smpl_global_orient_cam=np.asarray(R_cam),
        smpl_body_pose=np.asarray(gt.gt_smpl_body_pose),
        smpl_betas=np.asarray(betas),
        smpl_transl_cam=np.asarray(t_cam) * transl_scale,
        smpl_valid=clip.smpl_valid,
        body_model=model,
        fps=float(clip.fps),
        scene_stride=8,
    )


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_evaluate_ground_truth_result_scores_zero(tiny):
    clip, gt, model = tiny
    res = _result_from_gt(clip, gt, model)
    # World = first keyframe camera, not the GT world: metrics must align it away.
    np.testing.assert_allclose(res.T_world_cam[0], np.eye(4), atol=1e-5)
    m = evaluate(res, gt, model)
    assert m["human_keyframes"] == int(clip.smpl_valid[0].sum())
    for key in ("wa_mpjpe_sim3_mm", "w_mpjpe_first_frame_aligned_mm", "pa_mpjpe_mm"):
        assert m[key] < 2.0, (key, m[key])  # mm; float32 chain
    assert m["human_scale_err"] < 1e-3
    assert m["cam_ate_sim3_m"] < 1e-3 and m["focal_err"] < 1e-6
    # Every video frame between keyframes is interpolated: a few mm at most on a smooth walk.
    assert m["all_wa_mpjpe_mm"] < 30.0 and m["all_human_frames"] > m["human_keyframes"]

    # A body 30 % too far from the camera (~50 mm at these depths): the errors see it.
    bad = evaluate(_result_from_gt(clip, gt, model, transl_scale=1.3), gt, model)
    assert bad["w_mpjpe_first_frame_aligned_mm"] > 30.0
    assert bad["wa_mpjpe_sim3_mm"] > 20.0 and bad["human_scale_err"] > 0.02
    assert bad["pa_mpjpe_mm"] < 2.0  # the local pose is untouched


def test_summary_table_lists_clips_and_terms():
    summaries = [
        {"clip": "a", "timings": {"prepare_s": 1.0, "optimize_s": 2.5}, "nan": False,
         "final_losses": {"total": 1.25, "scale": 0.5}, "metrics": {"wa_mpjpe_sim3_mm": 42.0}},
        {"clip": "bb", "timings": {"prepare_s": 1.0, "optimize_s": 1.0}, "nan": True,
         "diverged": True, "final_losses": {"total": 3.0}, "metrics": None,
         "status": "suspect", "problems": ["vertices_world: expected finite vertices, found 3"]},
        pipeline.skipped_entry("c/bad", "c/bad.npz: fps: expected a frame rate in [1, 1000]"),
    ]
    table = pipeline.summary_table(summaries).splitlines()
    assert "L_total" in table[0] and "L_scale" in table[0] and "WA mm" in table[0]
    assert table[0].split()[3:5] == ["nan", "diverged"]  # after "clip", "time s"
    assert table[0].split()[-1] == "status"
    assert table[2].split()[:5] == ["a", "3.5", "no", "no", "1.25"] and table[2].split()[-1] == "ok"
    assert table[3].split()[:4] == ["bb", "2.0", "yes", "yes"] and table[3].split()[-2:] == [
        "-", "suspect"]
    assert table[4].split()[0] == "c/bad" and table[4].split()[-1] == "skipped"
    assert table[5] == "suspect: bb: vertices_world: expected finite vertices, found 3"
    assert table[6] == "skipped: c/bad: c/bad.npz: fps: expected a frame rate in [1, 1000]"


def _run_josh(args, timeout=300):
    cmd = [sys.executable, "-m", "experiments.run_josh", *args]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_PLATFORMS="cpu")
    return subprocess.run(["timeout", "-s", "KILL", str(timeout)] + cmd, cwd=REPO, env=env,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_run_josh_cli_end_to_end(tiny, tmp_path):
    clip, gt, _ = tiny
    clip_path = tmp_path / "tiny_clip.npz"
    save_clip(str(clip_path), clip, gt)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    (out / "tiny_clip.npz").write_bytes(b"a previous result, to be replaced")
    proc = _run_josh([f"--clip={clip_path}", f"--out={out}",
                      f"--config={os.path.join(REPO, 'experiments/configs/josh.py')}:fast",
                      "--config.stage1.iters=6", "--config.stage2.iters=3", "--writers=npz,glb,amass,tum",
                      "--overwrite"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in ("[load]", "[prepare]", "[optimize]", "[result]", "[write]"):
        assert stage in proc.stderr, stage  # absl progress log
    assert "L_total" in proc.stdout and "WA mm" in proc.stdout  # the summary table

    assert (out / "keep.txt").read_text() == "user file"
    assert sorted(os.listdir(out)) == sorted([
        "keep.txt", "tiny_clip.npz", "tiny_clip.glb", "tiny_clip.tum.txt",
        "tiny_clip.person0.amass.npz", "tiny_clip.metrics.json", "tiny_clip.manifest.json",
        "summary.json", ".josh.lock"])
    res = load_result_npz(str(out / "tiny_clip.npz"))
    F = int(clip.frame_index[-1] - clip.frame_index[0] + 1)
    assert res.T_world_cam.shape == (F, 4, 4) and res.joints_world.shape[:2] == (1, F)
    assert np.isfinite(res.joints_world).all() and res.smpl_valid.any()
    curve = res.diagnostics["curve_stage1"]
    assert curve.shape[0] == 6 and np.isfinite(curve).all()
    metrics = json.loads((out / "tiny_clip.metrics.json").read_text())
    assert np.isfinite(metrics["wa_mpjpe_sim3_mm"]) and np.isfinite(metrics["cam_ate_sim3_m"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"][0]["clip"] == "tiny_clip"
    assert summary["clips"][0]["iters_run"] == [6, 3]
    assert summary["clips"][0]["status"] in ("ok", "suspect")
    manifest = json.loads((out / "tiny_clip.manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        f for f in os.listdir(out) if f.startswith("tiny_clip.") and "manifest" not in f)


@pytest.mark.slow
def test_run_josh_bad_clip_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    proc = _run_josh([f"--clip={bad}", f"--out={tmp_path / 'out'}"], timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: (file): expected an .npz archive (np.savez), found unreadable file "
        "(BadZipFile)")
    assert not (tmp_path / "out").exists()
