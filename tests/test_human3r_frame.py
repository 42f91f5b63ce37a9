"""Human3R first frame through CUT3R's decoder with prompts vs the PyTorch vectors (plain_ f0)."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs.cut3r import get_config
from tests.paths import DATA
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.convert import load_cut3r
from trainers.cut3r.recurrent import init_carry
from trainers.human3r import dinov2, humans, smpl_head, step, tracking


def _close(got, want):
    tol = 1e-4 * max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=tol)


def test_first_frame_prompts_in_decoder_and_smplx_head_match_reference():
    ref = dict(np.load(os.path.join(DATA, "human3r_tiny_forward.npz")))
    head = dict(np.load(os.path.join(DATA, "human3r_tiny_state_dict.npz")))
    model, _ = load_cut3r(os.path.join(DATA, "cut3r_tiny_state_dict.npz"),
                          Cut3rConfig.from_config(get_config("tiny").model))
    img = jnp.asarray(ref["plain_in_imgs"][0, 0])

    @nnx.jit  # one compiled program (op by op it compiled ~370 small ones)
    def first_frame(model, backbone, head, img):
        det = humans.detect_humans(backbone, head, img, res=112, num_heads=3, threshold=0.3,
                                   max_people=3)
        feat, pos = model.encode(img.transpose(1, 2, 0)[None])
        fused, ppos = humans.prompts(head, det, feat[0], img.shape[-1] // 16)
        state, mem = model.initial_state(1)
        query = model.pose_query(feat, mem, jnp.array(True))
        dec = model.decode(state, feat, pos, query, extra=fused[None], extra_pos=ppos[None],
                           extra_valid=det.valid[None])
        tokens = dec.img_layers[-1][0, -3:]
        return feat, dec.img_layers, tokens, smpl_head.smplx_head(head, tokens, det.dino_feat)

    feat, img_layers, tokens, out = first_frame(model, dinov2.backbone_from_state_dict(head),
                                                head, img)
    _close(feat[0], ref["plain_enc_feat"][0, 0])
    n = int(ref["plain_n_humans"][0])
    want_layers = ref["plain_f0_dec_img_layers"]
    _close(img_layers[:, 0, :want_layers.shape[2]], want_layers[:, 0])
    _close(np.asarray(tokens)[:n], ref["plain_f0_var_smpl_token"][0])
    _close(np.asarray(out.rotmat)[:n], ref["plain_f0_smpl_rotmat"][0])
    _close(np.asarray(out.T_cam_head)[:n], ref["plain_f0_smpl_transl"][0])
    _close(np.asarray(out.betas)[:n], ref["plain_f0_smpl_shape"][0])
    _close(np.asarray(out.expression)[:n], ref["plain_f0_smpl_expression"][0])


@pytest.mark.parametrize("run,ttt3r", [("plain_", False), pytest.param("ttt3r_", True, marks=pytest.mark.slow),
                                       pytest.param("demo_", True, marks=pytest.mark.slow)])
def test_online_steps_match_reference(run, ttt3r):
    ref = dict(np.load(os.path.join(DATA, "human3r_tiny_forward.npz")))
    head = dict(np.load(os.path.join(DATA, "human3r_tiny_state_dict.npz")))
    model, _ = load_cut3r(os.path.join(DATA, "cut3r_tiny_state_dict.npz"),
                          Cut3rConfig.from_config(get_config("tiny").model))
    cfg = step.HumanConfig(res=112, num_heads=3, threshold=0.3, max_people=3, ttt3r=ttt3r)
    backbone = dinov2.backbone_from_state_dict(head)
    dim = ref[run + "state_init"].shape[-1]
    carry = step.Human3rCarry(cut3r=init_carry(model, 1), tracks=tracking.init_memory(6, dim))
    traces = []

    def one(m, c, img, r):
        traces.append(1)  # runs only while tracing: counts compilations
        return step.step(m, backbone, head, c, img, r, cfg)

    fn = nnx.jit(one)
    for t in range(ref[run + "in_imgs"].shape[0]):
        img = jnp.asarray(ref[run + "in_imgs"][t, 0].transpose(1, 2, 0))
        carry, out = fn(model, carry, img, jnp.asarray(ref[run + "in_reset"][t]))
        n = int(ref[run + "n_humans"][t])
        assert int(out.valid.sum()) == n
        np.testing.assert_array_equal(np.asarray(out.track_id)[:n], ref[f"{run}f{t}_smpl_id"][0])
        _close(out.scene.camera_pose[0], ref[run + "camera_pose"][t, 0])
        _close(out.scene.pts3d_in_self_view[0], ref[run + "pts3d_in_self_view"][t, 0])
        _close(np.asarray(out.smplx.rotmat)[:n], ref[f"{run}f{t}_smpl_rotmat"][0])
        _close(np.asarray(out.smplx.T_cam_head)[:n], ref[f"{run}f{t}_smpl_transl"][0])
        _close(carry.cut3r.state[0], ref[run + "new_state_gated"][t, 0])
    assert len(traces) == 1  # one compilation for the whole sequence (resets included)
