"""JOSH3R training: loss parity, labels, iterator, jit-mesh vs pmap, loss decrease, exact resume.

The real tiny JOSH3R (trainers/josh3r.py) takes minutes to compile a train step on this 2-core
CPU, so the training infrastructure is tested with `StandInJOSH3R` below: a small NNX model with
the same call signature and outputs, and with the parts that matter to the trainer (BatchNorm
with running statistics, Dropout with an RNG stream, zero-initialised heads). The real model is
trained by `benchmarks/josh3r.py` (and on GPU). The loss itself is checked against the PyTorch
reference values (tests/data/josh3r_tiny_loss.npz, extracted from josh3r_tiny_forward.npz).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

import body_models
from body_models import rotations
from trainers import data as data_lib
from trainers import losses, train

DATA = os.path.join(os.path.dirname(__file__), "data")
HW = (32, 48)


@pytest.fixture(scope="module")
def body():
    return body_models.load_model(os.path.join(DATA, "synthetic_smpl_neutral.npz"))


class StandInJOSH3R(nnx.Module):
    """Tiny JOSH3R-shaped model: `model(imgs [B,2,H,W,3], img_shapes, bbox [B,2,4])`."""

    def __init__(self, width: int = 16, *, rngs: nnx.Rngs):
        # No bias before a BatchNorm: its gradient is zero up to rounding, and Adam would turn
        # that rounding noise into full-size steps that differ between any two summation orders.
        self.patch = nnx.Conv(3, width, (16, 16), strides=(16, 16), padding="VALID",
                              use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(width, rngs=rngs)
        self.pts = nnx.Linear(width, 16 * 16 * 3, rngs=rngs)
        self.box = nnx.Linear(4, width, rngs=rngs)
        self.hidden = nnx.Linear(width, width, use_bias=False, rngs=rngs)
        self.hbn = nnx.BatchNorm(width, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        zeros = nnx.initializers.zeros
        self.trans = nnx.Linear(2 * width, 6, rngs=rngs)
        self.rel = nnx.Linear(4 * width, 9, kernel_init=zeros, rngs=rngs)
        self.scale = nnx.Linear(2 * width, 2, kernel_init=zeros, use_bias=False, rngs=rngs)

    def __call__(self, imgs, img_shapes, bbox):
        b, _, h, w, _ = imgs.shape
        # [2B, hp, wp, C], view-major (all view-1 images, then all view-2 images).
        x = self.patch(imgs.transpose(1, 0, 2, 3, 4).reshape((2 * b, h, w, 3)))
        x = jax.nn.relu(self.bn(x))
        hp, wp = x.shape[1:3]
        p = self.pts(x).reshape(2 * b, hp, wp, 16, 16, 3).transpose(0, 1, 3, 2, 4, 5)
        p = p.reshape(2, b, h * w, 3) * 0.1 + jnp.array([0.0, 0.0, 3.0])
        scale = jnp.asarray(img_shapes, jnp.float32)[:, :, ::-1].repeat(2, -1)  # (w, h, w, h)
        boxf = jax.nn.relu(self.box(bbox / scale * 2 - 1))  # [B, 2, C]
        pooled = x.reshape(2, b, -1, x.shape[-1]).mean(2).transpose(1, 0, 2)  # [B, 2, C]
        hfeat = self.dropout(jax.nn.relu(self.hbn(self.hidden(pooled.reshape(2 * b, -1)))))
        # The box enters after the BatchNorm (a bias-like input before it gets no gradient).
        hfeat = jnp.concatenate([hfeat.reshape(b, 2, -1), boxf], -1)
        t = self.trans(hfeat.mean(1))
        r = self.rel(hfeat.reshape(b, -1))
        s = jnp.exp(self.scale(hfeat.mean(1)))
        eye6 = jnp.array([1.0, 0, 0, 0, 1, 0])
        z3 = jnp.array([0, 0, 3.0])
        return dict(rel_trans=r[:, :3], rel_rot=r[:, 3:] + eye6, trans1=t[:, :3] + z3,
                    trans2=t[:, 3:] + z3, X11=p[0], X21=p[1],
                    scale1=s[:, :1], scale2=s[:, 1:])


def make_sequence(body, seed: int, T: int = 8, H: int = 48, W: int = 72) -> data_lib.FrameSequence:
    """A small hand-made sequence: walking body, moving camera, a slanted plane as the scene."""
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=np.float32)
    yaw = 0.1 * t + rng.uniform(-0.5, 0.5)
    R_w = np.asarray(rotations.axis_angle_to_matrix(
        jnp.asarray(np.stack([np.pi + 0 * yaw, yaw, 0 * yaw], -1), jnp.float32)))
    transl = np.stack([0.2 * t, 0.0 * t, 4.0 + 0.1 * t], -1).astype(np.float32)
    pose = np.asarray(rotations.axis_angle_to_matrix(
        jnp.asarray(rng.normal(0, 0.1, (T, 23, 3)), jnp.float32)))
    T_wc = np.tile(np.eye(4, dtype=np.float32), (T, 1, 1))
    T_wc[:, 0, 3] = 0.15 * t
    T_wc[:, :3, :3] = np.asarray(rotations.axis_angle_to_matrix(
        jnp.asarray(np.stack([0 * t, 0.02 * t, 0 * t], -1), jnp.float32)))
    K = np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]], np.float32)
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    depth = 5.0 + 0.01 * u + 0.02 * v + rng.uniform(0, 0.5, (T, 1, 1))
    points = np.stack([(u - W / 2) / 60.0 * depth, (v - H / 2) / 60.0 * depth, depth], -1)
    images = rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8)
    betas = rng.normal(0, 0.5, 10).astype(np.float32)
    R_c, t_c = data_lib.camera_smpl_params(body, T_wc, R_w, betas, transl)
    return data_lib.FrameSequence(
        frame_index=(3 * np.arange(T)).astype(np.int32), images=images, K=K, T_world_cam=T_wc,
        points_cam=points.astype(np.float32), points_valid=np.ones(T, bool),
        global_orient_world=R_w, body_pose=pose, betas=betas, transl_world=transl,
        valid=np.ones(T, bool), bbox=data_lib.body_bboxes(body, K, R_c, pose, betas, t_c),
        source=f"test:{seed}")


@pytest.fixture(scope="module")
def dataset(body):
    return data_lib.make_pair_dataset([make_sequence(body, 0), make_sequence(body, 1)], body,
                                      min_gap=3, max_gap=6)


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------


def test_loss_matches_pytorch_reference(body):
    ref = np.load(os.path.join(DATA, "josh3r_tiny_loss.npz"))
    pred = {k: jnp.asarray(ref["out_" + k]) for k in losses.PRED_FIELDS}
    lab = {k: jnp.asarray(ref["lbl_" + k]) for k in losses.LABEL_FIELDS}
    loss_fn = jax.jit(lambda p, lb: losses.reduce_losses(p, lb, body))
    loss, terms = loss_fn(pred, lab)
    for name in losses.TERM_NAMES:
        np.testing.assert_allclose(float(terms[name]), float(ref[name]), rtol=2e-6, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(float(loss), float(ref["loss"]), rtol=2e-6)
    lab["depth_mask"] = jnp.zeros_like(lab["depth_mask"])
    loss0, terms0 = loss_fn(pred, lab)
    assert float(terms0["loss_depth"]) == 0.0
    np.testing.assert_allclose(float(loss0), float(ref["loss_nodepth_loss"]), rtol=2e-6)


def test_loss_gradients_finite_and_pointmap_stopped_in_contact(body):
    ref = np.load(os.path.join(DATA, "josh3r_tiny_loss.npz"))
    pred = {k: jnp.asarray(ref["out_" + k]) for k in losses.PRED_FIELDS}
    lab = {k: jnp.asarray(ref["lbl_" + k]) for k in losses.LABEL_FIELDS}
    lab["depth_mask"] = jnp.zeros_like(lab["depth_mask"])  # depth off: X only via contact term
    # Exact zero prediction error makes the norms hit 0: gradients must stay finite there.
    pred["rel_trans"] = lab["trans"]
    grads = jax.jit(jax.grad(lambda p, lb: losses.reduce_losses(p, lb, body)[0]))(pred, lab)
    for k, g in grads.items():
        assert np.all(np.isfinite(np.asarray(g))), k
    assert float(jnp.abs(grads["X11"]).max()) == 0.0  # stop-gradient in loss_contact_scale
    assert float(jnp.abs(grads["scale1"]).max()) > 0.0
    assert float(jnp.abs(grads["trans1"]).max()) > 0.0


# ---------------------------------------------------------------------------------------------
# Labels and data
# ---------------------------------------------------------------------------------------------


def test_relative_label_moves_body1_frame_onto_body2(body):
    seq = make_sequence(body, 3)
    J0 = np.asarray(body_models.rest_joints(body, jnp.asarray(seq.betas))[0])
    lab = data_lib.pair_labels(seq, 1, 4, J0)
    pose = lambda k: seq.body_pose[k]
    joints = jax.jit(lambda b, R, p, t: body_models.lbs(body, b, R, p, t).joints)
    joints_w = [np.asarray(joints(seq.betas, seq.global_orient_world[k], pose(k),
                                  seq.transl_world[k])) for k in (1, 4)]
    # Body 1's SMPL frame: world points x -> A1^{-1}(x), A1(x) = R1 x + t1 + J0 - R1 J0.
    R1, t1 = seq.global_orient_world[1], seq.transl_world[1]
    c1 = t1 + J0 - R1 @ J0
    local2 = (joints_w[1] - c1) @ R1  # R1^T (x - c1)
    posed = joints(seq.betas, rotations.rot6d_to_matrix(jnp.asarray(lab["rot"])), pose(4),
                   jnp.asarray(lab["trans"]))
    np.testing.assert_allclose(np.asarray(posed), local2, atol=2e-5)
    local1 = (joints_w[0] - c1) @ R1
    posed1 = joints(seq.betas, jnp.eye(3), pose(1), jnp.zeros(3))
    np.testing.assert_allclose(np.asarray(posed1), local1, atol=2e-5)
    # Camera-frame labels: the body posed with (rot1, trans1) is the world body seen from camera 1.
    cam1 = joints(seq.betas, rotations.rot6d_to_matrix(jnp.asarray(lab["rot1"])), pose(1),
                  jnp.asarray(lab["trans1"]))
    T_cw = np.linalg.inv(seq.T_world_cam[1])
    np.testing.assert_allclose(np.asarray(cam1), joints_w[0] @ T_cw[:3, :3].T + T_cw[:3, 3],
                               atol=2e-5)


def test_sample_pairs_follows_reference_chain():
    frames = np.array([0, 1, 2, 5, 6, 7, 12, 13])
    np.testing.assert_array_equal(data_lib.sample_pairs(frames, min_gap=3),
                                  [[0, 3], [3, 6], [6, 7]])
    allp = data_lib.sample_pairs(frames, min_gap=3, max_gap=5)
    gaps = frames[allp[:, 1]] - frames[allp[:, 0]]
    np.testing.assert_array_equal(
        allp, [[0, 3], [1, 3], [1, 4], [2, 3], [2, 4], [2, 5], [5, 6]])
    assert gaps.min() >= 3 and gaps.max() <= 5


def test_iterator_resumes_and_shards_exactly(dataset):
    kw = dict(global_batch_size=4, seed=7, image_hw=HW)
    it = data_lib.PairIterator(dataset, **kw)
    batches = [it.next() for _ in range(7)]  # crosses an epoch boundary
    assert it.steps_per_epoch == len(dataset) // 4 and it.get_state()["epoch"] >= 1
    it2 = data_lib.PairIterator(dataset, **kw)
    it2.set_state({"epoch": 0, "step": 3})
    for b in batches[3:]:
        b2 = it2.next()
        for k in b:
            np.testing.assert_array_equal(b[k], b2[k], err_msg=k)
    halves = [data_lib.PairIterator(dataset, **kw, process_index=p, process_count=2).next()
              for p in range(2)]
    for k in batches[0]:
        np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), batches[0][k])
    b = batches[0]
    assert b["imgs"].shape == (4, 2) + HW + (3,) and b["depth"].shape == (4, 2) + HW + (3,)
    assert b["imgs"].min() >= -1.0 and b["imgs"].max() <= 1.0
    # Different epochs see different orders / crops.
    assert not np.array_equal(batches[0]["imgs"], batches[it.steps_per_epoch]["imgs"])


def test_crop_keeps_box_and_points_aligned(dataset):
    aug = data_lib.AugmentConfig(crop_scale_min=0.5, crop_scale_max=0.5)
    ex = data_lib.make_example(dataset, 0, HW, aug, np.random.default_rng(0))
    full = data_lib.make_example(dataset, 0, HW, data_lib.AugmentConfig(enabled=False), None)
    # Metric points are not rescaled by a crop (same camera); a 0.5 crop zooms 2x.
    z_label = dataset.labels["depth_points"][0, 0, ..., 2].mean()
    np.testing.assert_allclose(full["depth"][0, ..., 2].mean(), z_label, rtol=0.02)
    w_full = full["bbox"][0, 2] - full["bbox"][0, 0]
    w_crop = ex["bbox"][0, 2] - ex["bbox"][0, 0]
    np.testing.assert_allclose(w_crop, 2 * w_full, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _fns_and_state(body, *, use_dropout, lr=3e-3, steps=50):
    model = StandInJOSH3R(rngs=nnx.Rngs(0))
    tx, schedule = train.make_optimizer(learning_rate=lr, total_steps=steps, warmup_steps=2)
    fns = train.make_step_fns(model, tx, schedule, body, use_dropout=use_dropout)
    return fns, train.init_train_state(model, tx, seed=0)


def test_jit_mesh_and_pmap_paths_agree(body, dataset):
    n = jax.device_count()
    assert n == 8, "conftest forces 8 CPU devices"
    fns, state0 = _fns_and_state(body, use_dropout=False)
    state0 = jax.device_get(state0)  # host copy: the jitted step donates its input buffers
    it = data_lib.PairIterator(dataset, global_batch_size=n, seed=0, image_hw=HW,
                               augment=data_lib.AugmentConfig(enabled=False))
    batches = [it.next() for _ in range(3)]

    mesh = train.make_mesh()
    jit_step = train.make_jit_step(fns, mesh)
    s_jit = train.replicate(mesh, state0)
    jit_losses = []
    for b in batches:
        s_jit, m = jit_step(s_jit, train.shard_batch(mesh, b))
        jit_losses.append(float(jax.block_until_ready(m["loss"])))  # block: CPU hang hazard
    assert s_jit.params["patch"]["kernel"].sharding.is_fully_replicated

    pmap_step = train.make_pmap_step(fns)
    s_pmap = train.pmap_replicate(state0, n)
    pmap_losses = []
    for b in batches:
        s_pmap, m = pmap_step(s_pmap, train.pmap_split_batch(b, n))
        pmap_losses.append(float(jax.block_until_ready(m["loss"])[0]))
    s_pmap = train.pmap_unreplicate(s_pmap)

    # Same global-batch loss at every step, same parameters and BatchNorm statistics after 3
    # AdamW steps. Tolerance: float32 reduction order differs (psum of per-device partial sums
    # vs XLA's all-reduce of the global sum), amplified by Adam's normalisation early on.
    np.testing.assert_allclose(pmap_losses, jit_losses, rtol=1e-5)
    flat_j = jax.tree.leaves(jax.device_get(s_jit))
    flat_p = jax.tree.leaves(jax.device_get(s_pmap))
    assert len(flat_j) == len(flat_p)
    for a, b in zip(flat_j, flat_p, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    # The parameters did move (the comparison is not between two untouched states).
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), s_jit.params, state0.params)
    assert max(jax.tree.leaves(moved)) > 1e-3


def test_loss_falls_by_half(body, dataset):
    fns, state = _fns_and_state(body, use_dropout=True, lr=1e-2, steps=40)
    assert fns.rng_tags == ("default",)  # the dropout stream is re-seeded every step
    mesh = train.make_mesh()
    step = train.make_jit_step(fns, mesh)
    it = data_lib.PairIterator(dataset, global_batch_size=8, seed=1, image_hw=HW)
    # Dropout masks depend on the step number only: same step -> same loss, other step -> not.
    host = jax.device_get(state)
    b0 = train.shard_batch(mesh, it.next())
    probe = [float(step(train.replicate(mesh, dataclasses.replace(host, step=jnp.int32(k))),
                        b0)[1]["loss"]) for k in (5, 5, 6)]
    assert probe[0] == probe[1] and probe[0] != probe[2], probe
    state = train.replicate(mesh, host)
    curve = []
    for _ in range(40):
        state, m = step(state, train.shard_batch(mesh, it.next()))
        curve.append(float(jax.block_until_ready(m["loss"])))
        assert float(m["nonfinite"]) == 0.0
    first, last = np.mean(curve[:3]), np.mean(curve[-3:])
    assert last < 0.5 * first, (first, last, curve)


def _config(workdir_steps: int, checkpoint_every: int) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.image_size = HW
    c.training = dict(seed=0, batch_size=8, num_steps=workdir_steps, learning_rate=3e-3,
                      warmup_steps=2, end_lr_factor=0.1, weight_decay=1e-4, grad_clip_norm=1.0,
                      use_dropout=True, parallel="jit", checkpoint_every=checkpoint_every,
                      checkpoint_keep=2, log_every=100,
                      body_model_path=os.path.join(DATA, "synthetic_smpl_neutral.npz"))
    c.data = dict(augment=dict(enabled=True, crop_scale_min=0.5, crop_scale_max=1.0,
                               brightness=0.1, contrast=0.1))
    return c


@pytest.fixture
def compilation_cache(tmp_path):
    """A persistent compilation cache for this test only: the three `run` calls compile the same
    step, and the cache turns two of the three compiles into loads (test time, nothing else)."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    old = {k: getattr(jax.config, k) for k in keys}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for k, v in old.items():
        jax.config.update(k, v)


def test_kill_and_resume_equals_uninterrupted_run(tmp_path, dataset, compilation_cache):
    model_fn = lambda cfg: StandInJOSH3R(rngs=nnx.Rngs(0))
    cfg = _config(6, checkpoint_every=2)
    full = train.run(cfg, str(tmp_path / "full"), model_fn=model_fn, dataset=dataset)
    # "Killed" after 3 steps: the last checkpoint is step 2, step 3 is lost and redone.
    train.run(cfg, str(tmp_path / "resumed"), model_fn=model_fn, dataset=dataset, stop_after=3)
    steps = sorted(int(s) for s in os.listdir(tmp_path / "resumed" / "checkpoints") if s.isdigit())
    assert steps == [2]
    resumed = train.run(cfg, str(tmp_path / "resumed"), model_fn=model_fn, dataset=dataset)
    assert int(resumed.step) == 6
    for a, b in zip(jax.tree.leaves(jax.device_get(full)), jax.tree.leaves(jax.device_get(resumed)),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # Keep K=2 newest checkpoints; metrics.jsonl has exactly one record per step.
    steps = sorted(int(s) for s in os.listdir(tmp_path / "resumed" / "checkpoints") if s.isdigit())
    assert steps == [4, 6]
    recs = train.read_metrics(str(tmp_path / "resumed"))
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6]
    ref = train.read_metrics(str(tmp_path / "full"))
    np.testing.assert_allclose([r["loss"] for r in recs], [r["loss"] for r in ref], rtol=1e-6)
