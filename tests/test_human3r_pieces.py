"""Human3R pieces against the PyTorch reference vectors (tests/data/human3r_tiny_forward.npz).

Tolerance: per array max |jax - torch| <= 1e-4 x max |torch|; detections exactly equal.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.paths import DATA
from trainers.human3r import detect, dinov2, humans, postprocess, tracking

VECTORS = os.path.join(DATA, "human3r_tiny_forward.npz")


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(VECTORS))


def _close(got, want):
    want = np.asarray(want)
    tol = 1e-4 * max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=tol)


def _config(ref):
    return json.loads(str(ref["config_json"]))


@pytest.mark.parametrize("run", ["plain_", "demo_"])
def test_pad_image_matches_reference(ref, run):
    imgs, want = ref[run + "in_imgs"], ref[run + "in_img_mhmr"]
    res = want.shape[-1]
    for t in range(imgs.shape[0]):
        _close(detect.pad_image(jnp.asarray(imgs[t, 0]), res), want[t, 0])


@pytest.mark.parametrize("run", ["plain_", "ttt3r_", "demo_"])
def test_nms_and_detections_match_reference(ref, run):
    logits = ref[run + "det_logits"]
    views, g = logits.shape[0], ref[run + "det_scores_nms"].shape[-1]
    for t in range(views):
        scores = detect.nms_scores(jnp.asarray(logits[t, 0, :, 0]).reshape(g, g))
        _close(scores, ref[run + "det_scores_nms"][t, 0, 0])
        cells, valid = detect.detect_heads(scores, 0.3, max_people=4)
        n = int(ref[run + "n_humans"][t])
        assert int(valid.sum()) == n
        want = np.stack([ref[f"{run}f{t}_var_h_id"], ref[f"{run}f{t}_var_w_id"]], -1) if n else \
            np.zeros((0, 2))
        np.testing.assert_array_equal(np.asarray(cells)[:n], want)
        assert not np.asarray(valid)[n:].any()


def test_detect_heads_caps_at_max_people():
    scores = jnp.zeros((4, 4)).at[0, 1].set(0.9).at[2, 0].set(0.5).at[3, 3].set(0.4)
    cells, valid = detect.detect_heads(scores, 0.3, max_people=2)
    np.testing.assert_array_equal(np.asarray(cells), [[0, 1], [2, 0]])
    assert np.asarray(valid).all()


@pytest.mark.parametrize("run", ["plain_", "demo_"])
def test_head_location_and_cut3r_cell_match_reference(ref, run):
    h, w = ref[run + "in_imgs"].shape[-2:]
    res = ref[run + "in_img_mhmr"].shape[-1]
    for t in range(ref[run + "n_humans"].shape[0]):
        if ref[run + "n_humans"][t] == 0:
            continue
        cells = jnp.stack([ref[f"{run}f{t}_var_h_id"], ref[f"{run}f{t}_var_w_id"]], -1)
        loc = detect.head_locations(cells, jnp.asarray(ref[f"{run}f{t}_var_offset"]), 14)
        _close(loc, ref[f"{run}f{t}_var_loc"])
        uv = detect.unpad_uv(jnp.asarray(ref[f"{run}f{t}_var_loc"]), res, h, w)
        _close(uv, ref[f"{run}f{t}_var_loc_cut3r"])
        np.testing.assert_array_equal(detect.cut3r_cells(uv), ref[f"{run}f{t}_var_smpl_uv_cut3r"])


@pytest.mark.parametrize("run", ["plain_", "ttt3r_", "demo_"])
def test_sinkhorn_matches_reference_with_padding(ref, run):
    j = 0
    while f"{run}sinkhorn{j}_scores" in ref:
        scores = ref[f"{run}sinkhorn{j}_scores"][0]
        alpha = float(ref[f"{run}sinkhorn{j}_alpha"])
        m, n = scores.shape
        fn = jax.jit(tracking.log_optimal_transport, static_argnums=(1, 2))
        z = fn(jnp.asarray(scores), alpha, 20, jnp.ones(m, bool), jnp.ones(n, bool))
        _close(z, ref[f"{run}sinkhorn{j}_Z"][0])
        padded = jnp.zeros((m + 2, n + 3)).at[:m, :n].set(scores)
        zp = fn(padded, alpha, 20, jnp.arange(m + 2) < m, jnp.arange(n + 3) < n)
        zp = np.asarray(zp)
        block = np.concatenate([np.concatenate([zp[:m, :n], zp[:m, -1:]], 1),
                                np.concatenate([zp[-1:, :n], zp[-1:, -1:]], 1)], 0)
        _close(block, ref[f"{run}sinkhorn{j}_Z"][0])
        j += 1
    assert j > 0


@pytest.mark.parametrize("run", ["plain_", "ttt3r_", "demo_"])
def test_tracking_ids_and_memory_match_reference(ref, run):
    step = jax.jit(tracking.track_step)
    memory = tracking.init_memory(slots=6, dim=ref[f"{run}f0_var_smpl_token"].shape[-1])
    people = 4
    for t in range(ref[run + "n_humans"].shape[0]):
        tok = ref[f"{run}f{t}_var_smpl_token"][0]
        n = tok.shape[0]
        padded = jnp.zeros((people, tok.shape[1])).at[:n].set(tok)
        memory, ids = step(memory, padded, jnp.arange(people) < n)
        np.testing.assert_array_equal(np.asarray(ids)[:n], ref[f"{run}f{t}_smpl_id"][0])
        assert (np.asarray(ids)[n:] == -1).all()
        want_ids = ref[f"{run}f{t}_var_last_smpl_id"][0]
        k = want_ids.shape[0]
        np.testing.assert_array_equal(np.asarray(memory.ids)[:k], want_ids)
        assert int(memory.valid.sum()) == k
        assert int(memory.max_id) == int(ref[f"{run}f{t}_var_max_smpl_id"])
        _close(np.asarray(memory.tokens)[:k], ref[f"{run}f{t}_var_last_smpl_tk"][0])


def test_tracking_empty_frame_keeps_memory(ref):
    tok = ref["plain_f0_var_smpl_token"][0]
    memory = tracking.init_memory(slots=4, dim=tok.shape[1])
    memory, _ = tracking.track_step(memory, jnp.asarray(tok), jnp.ones(tok.shape[0], bool))
    after, ids = tracking.track_step(memory, jnp.zeros_like(tok), jnp.zeros(tok.shape[0], bool))
    assert (np.asarray(ids) == -1).all()
    for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(memory), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def weights():
    return dict(np.load(os.path.join(DATA, "human3r_tiny_state_dict.npz")))


def test_dino_pos_embed_interpolation_matches_reference(ref, weights):
    grid = int(np.sqrt(ref["plain_dino_pos_embed"].shape[1] - 1))
    got = postprocess.interpolate_pos_embed(jnp.asarray(weights["backbone.encoder.pos_embed"]), grid)
    _close(got, ref["plain_dino_pos_embed"])


@pytest.mark.parametrize("run", ["plain_", "demo_"])
def test_smpl_head_outputs_match_reference(ref, weights, run):
    for t in range(ref[run + "n_humans"].shape[0]):
        if ref[run + "n_humans"][t] == 0:
            continue
        pose6 = ref[f"{run}f{t}_decpose_raw"] + weights["downstream_head.init_body_pose"]
        _close(postprocess.rotmat_from_6d_rows(jnp.asarray(pose6)), ref[f"{run}f{t}_smpl_rotmat"])
        _close(postprocess.head_translation(jnp.asarray(ref[f"{run}f{t}_deccam_raw"])),
               ref[f"{run}f{t}_smpl_transl"])
        _close(ref[f"{run}f{t}_decshape_raw"] + weights["downstream_head.init_betas"],
               ref[f"{run}f{t}_smpl_shape"])


def test_mask_head_pixel_shuffle_matches_reference(ref):
    logits, want = ref["plain_msk_logits"], ref["plain_msk"]
    grid = int(np.sqrt(logits.shape[2]))
    patch = int(np.sqrt(logits.shape[3]))
    for t in range(logits.shape[0]):
        _close(postprocess.mask_from_logits(jnp.asarray(logits[t, 0]), grid, patch), want[t, 0, ..., 0])


def test_dino_backbone_and_heads_match_reference(ref, weights):
    heads = int(_config(ref)["tiny"]["dino_num_heads"])
    params = dinov2.backbone_from_state_dict(weights)
    fn = jax.jit(lambda p, x: dinov2.backbone_tokens(p, dinov2.normalize_for_dino(x), heads))
    for t in range(ref["plain_in_img_mhmr"].shape[0]):
        _close(dinov2.normalize_for_dino(jnp.asarray(ref["plain_in_img_mhmr"][t, 0])), ref["plain_dino_in"][t, 0])
        tokens = fn(params, jnp.asarray(ref["plain_in_img_mhmr"][t, 0]))
        _close(tokens, ref["plain_dino_tokens"][t, 0])
        tok_ref = jnp.asarray(ref["plain_dino_tokens"][t, 0])
        _close(dinov2.mlp(weights, tok_ref, "downstream_head.mlp_classif.", "relu"), ref["plain_det_logits"][t, 0])
        _close(dinov2.mlp(weights, tok_ref, "downstream_head.mlp_msk.mlp.layers."), ref["plain_msk_logits"][t, 0])
        cat = jnp.asarray(ref[f"plain_f{t}_var_smpl_token_cat"][0])
        _close(dinov2.mlp(weights, cat, "downstream_head.decpose.mlp.layers."), ref[f"plain_f{t}_decpose_raw"][0])
        d = ref[f"plain_f{t}_var_smpl_token"].shape[-1]
        _close(dinov2.mlp(weights, cat[:, :d], "downstream_head.deccam.mlp.layers."), ref[f"plain_f{t}_deccam_raw"][0])
        fuse_in = jnp.concatenate([ref[f"plain_f{t}_var_feat_central_mhmr"], ref[f"plain_f{t}_var_feat_central_cut3r"]], -1)
        _close(dinov2.mlp(weights, fuse_in, "downstream_head.mlp_fuse.mlp.layers."), ref[f"plain_f{t}_var_fused_tk"][0])
        cells = jnp.stack([ref[f"plain_f{t}_var_h_id"], ref[f"plain_f{t}_var_w_id"]], -1)
        g = int(np.sqrt(tok_ref.shape[0]))
        feat = tok_ref[cells[:, 0] * g + cells[:, 1]]
        _close(dinov2.mlp(weights, feat, "downstream_head.mlp_offset.", "relu"), ref[f"plain_f{t}_var_offset"])


@pytest.mark.parametrize("run", ["plain_", "demo_"])
def test_detect_humans_end_to_end_matches_reference(ref, weights, run):
    tiny = _config(ref)["tiny"]
    backbone = dinov2.backbone_from_state_dict(weights)
    fn = jax.jit(lambda img: humans.detect_humans(
        backbone, weights, img, res=tiny["mhmr_img_res"], num_heads=tiny["dino_num_heads"],
        threshold=tiny["det_threshold"], max_people=3))
    for t in range(ref[run + "in_imgs"].shape[0]):
        det = fn(jnp.asarray(ref[run + "in_imgs"][t, 0]))
        n = int(ref[run + "n_humans"][t])
        assert int(det.valid.sum()) == n
        _close(det.scores, ref[run + "det_scores_nms"][t, 0, 0])
        _close(det.mask, ref[run + "msk"][t, 0, ..., 0])
        np.testing.assert_array_equal(np.asarray(det.cut3r_uv)[:n], ref[f"{run}f{t}_var_smpl_uv_cut3r"])
        _close(np.asarray(det.loc_xy)[:n], ref[f"{run}f{t}_smpl_loc"][0])
        grid_w = ref[run + "in_imgs"].shape[-1] // 16
        fused, pos = humans.prompts(weights, det, jnp.asarray(ref[run + "enc_feat"][t, 0]), grid_w)
        _close(np.asarray(fused)[:n], ref[f"{run}f{t}_var_fused_tk"][0])
        np.testing.assert_array_equal(np.asarray(pos)[:n], ref[f"{run}f{t}_var_pos_central_cut3r"])
