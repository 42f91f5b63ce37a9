"""JOSH3R training loss (spec 3.3, `JOSH3R.get_loss`), written for one image pair.

The seven terms of the reference, all with weight 1:

| term | per pair |
|---|---|
| `loss_rel_tran` | `|trans - rel_trans|` |
| `loss_rel_rot` | mean over the 6 entries of `(rot - rel_rot)^2` (not geodesic) |
| `loss_trans1/2` | `|trans_v^gt - trans_v| / (|trans_v^gt| + 1e-3)` |
| `loss_contact_scale` | sum over views of the mean over 4 foot joints of the distance to the |
| | nearest point of `s_v * stopgrad(X_v1)` |
| `loss_contact_static` | mean over two joints of `min(right foot drift, left foot drift)` |
| `loss_depth` | per available view, mean over pixels of `|s_v X_v1 - X^gt_v| / (|X^gt_v| + 1e-3)` |

Reduction. The reference averages every term over the batch, and `loss_depth` over the
available (pair, view) entries. Here each term is a *sum over pairs* divided by a *count*
(`PairLoss` holds both), so that a data-parallel step can add sums and counts across devices
(`reduce_losses(..., axis_name=...)`) and get exactly the global-batch mean whatever the
per-device split. With `axis_name=None` (the `jax.jit` + mesh path) nothing is exchanged.

Frame of `X21` (spec 3.3 and 6.20): by MASt3R's convention `X21` is view 2 expressed in
camera 1, while `loss_contact_scale` poses the view-2 feet in camera 2. The terms are kept as
the reference writes them; `trainers/labels.py` stores the view-2 depth label in camera 2 by
default (`view2_depth_frame="cam2"`), which makes the two terms agree (fine-tuning then moves
`X21` to camera 2); `"cam1"` keeps MASt3R's convention instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

import body_models
from body_models import rotations

# smplx joint indices used by the reference: left foot, right foot, left ankle, right ankle.
FOOT_JOINTS = (10, 11, 7, 8)
RIGHT_FOOT_JOINTS = (11, 8)
LEFT_FOOT_JOINTS = (10, 7)
TERM_NAMES = (
    "loss_rel_tran",
    "loss_rel_rot",
    "loss_trans1",
    "loss_trans2",
    "loss_contact_scale",
    "loss_contact_static",
    "loss_depth",
)
PRED_FIELDS = ("rel_trans", "rel_rot", "trans1", "trans2", "X11", "X21", "scale1", "scale2")
LABEL_FIELDS = (
    "trans", "rot", "trans1", "trans2", "rot1", "rot2", "pose", "beta", "depth", "depth_mask",
)


def _safe_norm(x: Float[Array, "... n"], axis: int = -1) -> Float[Array, " ..."]:
    """Euclidean norm with a finite gradient at 0 (the where hides the sqrt's infinite slope)."""
    sq = jnp.sum(x * x, axis=axis)
    positive = sq > 0.0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _get(obj: Any, name: str):
    """Field `name` of a prediction/label container (attribute or mapping)."""
    if isinstance(obj, Mapping):
        return obj[name]
    return getattr(obj, name)


def predictions_as_dict(pred: Any) -> dict[str, jax.Array]:
    """The 8 JOSH3R outputs as a plain dict (works on the model's output dataclass or a dict)."""
    return {k: _get(pred, k) for k in PRED_FIELDS}


def smpl_joints(
    body: body_models.BodyModel,
    betas: Float[Array, " B"],
    R_root: Float[Array, "3 3"],
    body_pose_aa: Float[Array, "23 3"],
    transl: Float[Array, " 3"],
) -> Float[Array, "24 3"]:
    """Posed skinning joints of one body (smplx `SMPLLayer` joints[:24] semantics).

    Only the joints are used: under `jit`, XLA drops the unused vertex computation.
    """
    out = body_models.lbs(
        body,
        betas[: body.num_betas],
        R_root,
        rotations.axis_angle_to_matrix(body_pose_aa),
        transl,
    )
    return out.joints


def move_root(
    joints_id: Float[Array, "J 3"], pelvis: Float[Array, " 3"], R_root: Float[Array, "3 3"],
    transl: Float[Array, " 3"],
) -> Float[Array, "J 3"]:
    """Joints of the same body with root rotation `R_root` and `transl`, from its joints posed
    with identity root and zero `transl` (smplx rotates the whole chain about the rest pelvis J0:
    `J = R (J_id - J0) + J0 + transl`). Exact, and keeps the skinning out of the gradient path."""
    return (joints_id - pelvis) @ R_root.T + pelvis + transl


def pair_losses(
    pred: Mapping[str, jax.Array],
    label: Mapping[str, jax.Array],
    body: body_models.BodyModel,
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Loss terms of ONE image pair as (value summed over this pair, count) per term.

    Args:
      pred: one pair's predictions: `rel_trans` float32[3], `rel_rot` float32[6] (6D rows),
        `trans1`, `trans2` float32[3], `X11`, `X21` float32[N, 3] (N = h*w pixels),
        `scale1`, `scale2` float32[1].
      label: one pair's labels (spec 3.3): `trans` float32[3], `rot` float32[6], `trans1`,
        `trans2` float32[3], `rot1`, `rot2` float32[6], `pose` float32[2, 23, 3] axis-angle,
        `beta` float32[B], `depth` float32[2, h, w, 3] metric pointmaps in each view's camera,
        `depth_mask` bool[2].
      body: the SMPL body model.

    Returns:
      `{term: (sum, count)}` with scalar float32 entries; `term = sum / count` for one pair.
    """
    f32 = jnp.float32
    one = jnp.ones((), f32)
    beta = label["beta"]
    out: dict[str, tuple[jax.Array, jax.Array]] = {}

    out["loss_rel_tran"] = (_safe_norm(label["trans"] - pred["rel_trans"]), one)
    out["loss_rel_rot"] = (jnp.mean((label["rot"] - pred["rel_rot"]) ** 2), one)
    for v in (1, 2):
        gt = label[f"trans{v}"]
        err = _safe_norm(gt - pred[f"trans{v}"]) / (_safe_norm(gt) + 1e-3)
        out[f"loss_trans{v}"] = (err, one)

    # Both frames' bodies posed once with identity root and zero transl (labels only, no
    # gradient); every body the loss needs is a rigid motion of one of them about J0.
    eye = jnp.eye(3, dtype=f32)
    zero = jnp.zeros(3, f32)
    joints_id = [smpl_joints(body, beta, eye, label["pose"][k], zero) for k in (0, 1)]
    pelvis = jax.lax.stop_gradient(body_models.rest_joints(body, beta[: body.num_betas])[0])
    joints_id = [jax.lax.stop_gradient(j) for j in joints_id]

    # Contact scale: feet of the body posed with the *predicted* translation must touch the
    # scaled (stop-gradient) pointmap of the same view.
    scale_term = jnp.zeros((), f32)
    for v, x_name in ((1, "X11"), (2, "X21")):
        R_root = rotations.rot6d_to_matrix(label[f"rot{v}"])
        joints = move_root(joints_id[v - 1], pelvis, R_root, pred[f"trans{v}"])
        feet = joints[jnp.array(FOOT_JOINTS)]  # [4, 3]
        points = pred[f"scale{v}"][0] * jax.lax.stop_gradient(pred[x_name])  # [N, 3]
        dist = _safe_norm(feet[:, None, :] - points[None, :, :])  # [4, N]
        scale_term = scale_term + jnp.mean(jnp.min(dist, axis=1))
    out["loss_contact_scale"] = (scale_term, one)

    # Contact static: body 1 at the origin, body 2 moved by the predicted relative transform;
    # at least one foot should not move between the frames.
    joints_a = joints_id[0]
    joints_b = move_root(joints_id[1], pelvis, rotations.rot6d_to_matrix(pred["rel_rot"]),
                         pred["rel_trans"])
    right_idx, left_idx = jnp.array(RIGHT_FOOT_JOINTS), jnp.array(LEFT_FOOT_JOINTS)
    right = _safe_norm(joints_a[right_idx] - joints_b[right_idx])
    left = _safe_norm(joints_a[left_idx] - joints_b[left_idx])
    out["loss_contact_static"] = (jnp.mean(jnp.minimum(right, left)), one)

    # Depth: relative point error of the scaled pointmap, per available view.
    depth_sum = jnp.zeros((), f32)
    mask = label["depth_mask"].astype(f32)
    for v, x_name in ((1, "X11"), (2, "X21")):
        gt = label["depth"][v - 1].reshape(-1, 3)
        err = _safe_norm(pred[f"scale{v}"][0] * pred[x_name] - gt) / (_safe_norm(gt) + 1e-3)
        depth_sum = depth_sum + mask[v - 1] * jnp.mean(err)
    out["loss_depth"] = (depth_sum, jnp.sum(mask))
    return out


def reduce_losses(
    pred: Any,
    labels: Mapping[str, jax.Array],
    body: body_models.BodyModel,
    *,
    axis_name: str | None = None,
    example_mask: Float[Array, " B"] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Batch loss: the reference's batch means, optionally across a named (pmap) axis.

    Args:
      pred: the model output for a batch (attributes or keys `PRED_FIELDS`, leading axis B).
      labels: the labels for the batch (keys `LABEL_FIELDS`, leading axis B).
      body: the SMPL body model.
      axis_name: if given (inside `pmap`/`shard_map`), counts are `psum`-ed over this axis and
        each device returns *its share* `local sum / global count`: the shares add up (over
        the axis) to the global-batch mean. Differentiate the share, then `psum` the gradients
        and the logged values. Summing explicitly avoids relying on how `psum` transposes.
      example_mask: optional float32[B], 0 for padding examples.

    Returns:
      `(loss, terms)`: the total (sum of the seven terms) and each term, float32 scalars
      (per-device shares when `axis_name` is given).
      A term with zero count (e.g. no depth available) is 0, as in the reference.
    """
    pred_d = predictions_as_dict(pred)
    pred_d = {k: v.astype(jnp.float32) for k, v in pred_d.items()}
    labels_d = {k: labels[k] for k in LABEL_FIELDS}
    per_pair = jax.vmap(pair_losses, in_axes=(0, 0, None))(pred_d, labels_d, body)
    terms = {}
    for name in TERM_NAMES:
        s, c = per_pair[name]
        if example_mask is not None:
            s, c = s * example_mask, c * example_mask
        s, c = jnp.sum(s), jnp.sum(c)
        if axis_name is not None:
            c = jax.lax.psum(jax.lax.stop_gradient(c), axis_name)
        terms[name] = jnp.where(c > 0, s / jnp.maximum(c, 1e-12), 0.0)
    loss = sum(terms[name] for name in TERM_NAMES)
    return loss, terms
