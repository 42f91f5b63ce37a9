"""The Human3R SMPL-X head on the refined prompt tokens (spec `human3r_spec.md` §4.7).

translation is the HEAD joint in the camera frame (expm1 depth); rotations from 6D rows.
"""

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from trainers.human3r import dinov2, postprocess


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SmplxParams:
    """Per-person SMPL-X outputs (P slots): rotmat [P,53,3,3] (global, 21 body, 15+15 hands, jaw),
    betas [P,10], expression [P,10], T_cam_head [P,3] head joint in the camera frame."""

    rotmat: jax.Array
    betas: jax.Array
    expression: jax.Array
    T_cam_head: jax.Array


def smplx_head(head: dict, smpl_token: Float[Array, "P D"], dino_feat: Float[Array, "P C"]) -> SmplxParams:
    """decpose/decshape/decexpression on [token ; DINOv2 token], deccam on the token alone."""
    z = jnp.concatenate([smpl_token, dino_feat], -1)
    pre = "downstream_head."
    pose6 = dinov2.mlp(head, z, pre + "decpose.mlp.layers.") + head[pre + "init_body_pose"][0]
    betas = dinov2.mlp(head, z, pre + "decshape.mlp.layers.") + head[pre + "init_betas"][0]
    expr = dinov2.mlp(head, z, pre + "decexpression.mlp.layers.") + head[pre + "init_expression"][0]
    cam = dinov2.mlp(head, smpl_token, pre + "deccam.mlp.layers.")
    return SmplxParams(rotmat=postprocess.rotmat_from_6d_rows(pose6), betas=betas, expression=expr,
                       T_cam_head=postprocess.head_translation(cam))
