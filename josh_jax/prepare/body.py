"""The body model as the optimizer sees it: only the vertices the losses touch, plus the joints.

The losses read a few dozen contact vertices and the 24 joints, so `prepare` restricts the body to
those vertices (`subset_body_model`) and each iteration skins tens of vertices, not 6890.
`smpl_forward` is the full-mesh pass `prepare` runs once to select contacts.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from body_models.model import BodyModel, pose_bodies, regress_joints


def subset_body_model(model: BodyModel, vertex_ids: np.ndarray) -> BodyModel:
    """The body restricted to `vertex_ids`, plus the J rest joints as J extra virtual vertices.

    Skinning only the vertices the losses use is exact for those vertices; the virtual vertices
    (template = J_regressor @ v_template, shape dirs = J_regressor @ shapedirs, no pose blend
    shapes) keep `rest_joints` exact through a one-hot regressor.

    Args:
      model: body_models.BodyModel.
      vertex_ids: int[U] vertex ids to keep.

    Returns:
      BodyModel with U + J vertices.
    """
    ids = np.asarray(vertex_ids, np.int64)
    J = len(model.parents)
    Jreg = np.asarray(model.J_regressor, np.float32)
    vt = np.asarray(model.v_template, np.float32)
    sd = np.asarray(model.shapedirs, np.float32)
    pd = np.asarray(model.posedirs, np.float32)
    V = vt.shape[0]
    pd = pd.reshape(pd.shape[0], V, 3)[:, ids].reshape(pd.shape[0], -1)
    v_template = np.concatenate([vt[ids], Jreg @ vt], 0)
    shapedirs = np.concatenate([sd[ids], np.einsum("jv,vcs->jcs", Jreg, sd)], 0)
    posedirs = np.concatenate([pd, np.zeros((pd.shape[0], J * 3), np.float32)], 1)
    J_regressor = np.concatenate(
        [np.zeros((J, len(ids)), np.float32), np.eye(J, dtype=np.float32)], 1
    )
    w = np.asarray(model.lbs_weights, np.float32)
    lbs_weights = np.concatenate([w[ids], np.eye(J, dtype=np.float32)], 0)
    return dataclasses.replace(
        model,
        # device_put: jnp.asarray of a numpy array compiles a tiny program per shape.
        v_template=jax.device_put(v_template),
        shapedirs=jax.device_put(shapedirs),
        posedirs=jax.device_put(posedirs),
        J_regressor=jax.device_put(J_regressor),
        lbs_weights=jax.device_put(lbs_weights),
        faces=jax.device_put(np.zeros((0, 3), np.int32)),
    )


def smpl_forward(model: BodyModel, betas, global_orient, body_pose, transl):
    """Full-mesh SMPL of n frames (camera frame), on the host.

    Args:
      model: the full body model.
      betas: float[n, B]; global_orient: float[n, 3, 3]; body_pose: float[n, J-1, 3, 3];
      transl: float[n, 3].

    Returns:
      (vertices float32[n, V, 3], joints regressed from them float32[n, J, 3]) as numpy.
    """
    vertices, joints = _smpl_forward(model, *jax.device_put((betas, global_orient, body_pose, transl)))
    return np.asarray(vertices), np.asarray(joints)


@jax.jit  # module level, the model an argument: one compiled program per shapes
def _smpl_forward(model, betas, global_orient, body_pose, transl):
    vertices = pose_bodies(model, betas, global_orient, body_pose, transl).vertices
    return vertices, jax.vmap(regress_joints, in_axes=(None, 0))(model, vertices)
