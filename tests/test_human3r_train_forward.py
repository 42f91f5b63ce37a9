"""Human3R's training forward (spec §7.3) against the `train_` PyTorch vectors: GT head cells,
learned mask tokens in empty slots (they attend), raw scores, the CUT3R outputs.
Tolerance: per array max |jax - torch| <= 1e-4 x max |torch|."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs.human3r import get_config
from tests.paths import DATA
from trainers.human3r import convert
from trainers.human3r.train_forward import train_forward


def _close(got, want, name):
    want = np.asarray(want)
    tol = 1e-4 * max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(
        np.asarray(got).reshape(want.shape), want, rtol=0, atol=tol, err_msg=name
    )


@pytest.mark.slow
def test_train_forward_matches_reference():
    ref = np.load(os.path.join(DATA, "human3r_tiny_forward.npz"))
    sd = dict(np.load(os.path.join(DATA, "cut3r_tiny_state_dict.npz")))
    sd.update(np.load(os.path.join(DATA, "human3r_tiny_state_dict.npz")))
    params, _ = convert.load_human3r(sd, convert.Human3rSizes.from_config(get_config("tiny")))
    imgs = jnp.asarray(ref["plain_in_imgs"][:, 0].transpose(0, 2, 3, 1))
    cells = jnp.asarray(ref["train_smpl_uv"][:, 0], jnp.int32)
    valid = jnp.asarray(ref["train_smpl_mask"][:, 0])
    graphdef, state = nnx.split(params.model)

    @jax.jit
    def run(state, backbone, head):
        return train_forward(
            nnx.merge(graphdef, state), backbone, head, imgs, cells, valid, res=112, num_heads=3
        )

    out = run(state, params.backbone, params.head)
    ok = np.asarray(valid)
    for key in (
        "enc_feat",
        "dino_tokens",
        "fuse_in",
        "fuse_out",
        "pose_in",
        "state_in",
        "dec_img_last",
        "pts3d_in_self_view",
        "conf_self",
        "rgb",
        "camera_pose",
        "pts3d_in_other_view",
        "conf",
        "smpl_scores",
        "smpl_loc",
        "msk",
        "smpl_rotmat",
        "smpl_shape",
        "smpl_transl",
        "smpl_expression",
    ):
        _close(out[key], ref["train_" + key], key)
    np.testing.assert_array_equal(np.asarray(out["smpl_pos_in"]), ref["train_smpl_pos_in"][:, 0])
    np.testing.assert_allclose(
        np.asarray(out["smpl_loc"])[ok].reshape(-1, 2),
        ref["train_unpad_uv_in"],
        atol=1e-4 * np.abs(ref["train_unpad_uv_in"]).max(),
    )
