"""The SMPL-family body model as a pytree, and linear blend skinning for one body.

One `BodyModel` holds SMPL (24 joints), SMPL-H (52) and SMPL-X (55): the joint count comes from
`parents`, and SMPL-X expression directions are stored after the shape directions in `shapedirs`
(`num_betas` shape + `num_expression` expression columns, both static).

`lbs` follows smplx semantics exactly (smplx.lbs.lbs with pose2rot=False):

    v_shaped = v_template + shapedirs @ [betas, expression]
    J        = J_regressor @ v_shaped                      (rest joints)
    v_posed  = v_shaped + posedirs^T @ vec(R[1:] - I)      (pose correctives)
    G_j      = G_parent(j) @ [R_j | J_j - J_parent(j)]     (kinematic chain, root: [R_0 | J_0])
    v        = sum_j w_vj (G_j applied to v_posed - J_j) + transl
    joints   = translation of G_j + transl

so `transl` is added after posing about the root joint: v = R_root (v_rest - J0) + J0 + transl.

It is written for ONE body; `pose_bodies` poses [n] or [P, T] batches (`lbs` vmapped, jitted).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from body_models import rotations, skinning


@functools.partial(jax.tree_util.register_dataclass)
@dataclasses.dataclass(frozen=True)
class BodyModel:
    """A SMPL-family body model (SMPL, SMPL-H, SMPL-X, or the built-in mannequin).

    Attributes:
      v_template: float[V, 3] rest-pose template vertices (metres).
      shapedirs: float[V, 3, num_betas + num_expression] shape, then expression, directions.
      posedirs: float[(J-1)*9, V*3] pose-corrective directions (smplx's transposed layout).
      J_regressor: float[J, V] dense joint regressor.
      lbs_weights: float[V, J] skinning weights (rows sum to 1).
      faces: int32[F, 3] triangles (not used by `lbs`; kept for export).
      parents: static tuple of J ints, parents[0] == -1.
      name: static model name, e.g. "smpl_neutral", "smplx_female", "mannequin".
      num_betas: static number of shape coefficients.
      num_expression: static number of expression coefficients (0 except SMPL-X).
    """

    v_template: Float[Array, "V 3"]
    shapedirs: Float[Array, "V 3 S"]
    posedirs: Float[Array, "P V3"]
    J_regressor: Float[Array, "J V"]
    lbs_weights: Float[Array, "V J"]
    faces: Int[Array, "F 3"]
    parents: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))
    name: str = dataclasses.field(metadata=dict(static=True))
    num_betas: int = dataclasses.field(metadata=dict(static=True))
    num_expression: int = dataclasses.field(default=0, metadata=dict(static=True))

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def astype(self, dtype) -> BodyModel:
        """Returns a copy with every float array cast to `dtype` (faces stay int32)."""
        cast = lambda x: jnp.asarray(x, dtype) if not isinstance(x, np.ndarray) else x.astype(dtype)
        return dataclasses.replace(
            self,
            v_template=cast(self.v_template),
            shapedirs=cast(self.shapedirs),
            posedirs=cast(self.posedirs),
            J_regressor=cast(self.J_regressor),
            lbs_weights=cast(self.lbs_weights),
        )


class BodyOutput(NamedTuple):
    """Posed body. vertices: float[V, 3]; joints: float[J, 3] posed skinning joints (+ transl)."""

    vertices: Float[Array, "V 3"]
    joints: Float[Array, "J 3"]


@functools.lru_cache(maxsize=64)
def _levels(parents: tuple[int, ...]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Groups joints by tree depth so the chain runs one batched matmul per level, not per joint."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(
                f"parents must be topologically sorted, found parents[{j}]={parents[j]}"
            )
        depth[j] = depth[parents[j]] + 1
    levels = []
    for d in range(1, max(depth) + 1):
        idx = np.array([j for j in range(len(parents)) if depth[j] == d], np.int32)
        levels.append((idx, np.array([parents[j] for j in idx], np.int32)))
    return tuple(levels)


def _shape_coeffs(model: BodyModel, betas, expression):
    betas = jnp.asarray(betas)
    if betas.shape != (model.num_betas,):
        raise ValueError(f"betas: expected shape ({model.num_betas},), found {betas.shape}")
    if model.num_expression == 0:
        if expression is not None:
            raise ValueError(f"expression given but model {model.name!r} has no expression dirs")
        return betas
    if expression is None:
        expression = jnp.zeros((model.num_expression,), betas.dtype)
    expression = jnp.asarray(expression, betas.dtype)
    if expression.shape != (model.num_expression,):
        raise ValueError(
            f"expression: expected shape ({model.num_expression},), found {expression.shape}"
        )
    return jnp.concatenate([betas, expression])


def rest_joints(
    model: BodyModel, betas: Float[Array, " B"], expression: Float[Array, " E"] | None = None
) -> Float[Array, "J 3"]:
    """Rest-pose joints J(betas) = J_regressor @ v_shaped; the pelvis J0 is row 0.

    Computed without forming v_shaped: J_regressor is folded into the template and the shape dirs
    (both unbatched under vmap, so XLA evaluates that contraction once per call, not per body).
    """
    return _rest_joints(model, _shape_coeffs(model, betas, expression))


def _rest_joints(model: BodyModel, coeffs):
    J_template = model.J_regressor @ model.v_template
    J_dirs = jnp.einsum("jv,vcs->jcs", model.J_regressor, model.shapedirs)
    return J_template + J_dirs @ coeffs


def regress_joints(model: BodyModel, vertices: Float[Array, "V 3"]) -> Float[Array, "J 3"]:
    """Applies the joint regressor to (posed) vertices: float[V, 3] -> float[J, 3]."""
    return model.J_regressor @ vertices


def _to_matrix(x, n: int, rep: str, what: str):
    x = jnp.asarray(x)
    tail = {"matrix": (3, 3), "axis_angle": (3,), "6d": (6,)}
    if rep not in tail:
        raise ValueError(f"rep must be 'matrix', 'axis_angle' or '6d', found {rep!r}")
    expected = ((n,) if n else ()) + tail[rep]
    if x.shape != expected:
        raise ValueError(f"{what}: expected shape {expected} for rep={rep!r}, found {x.shape}")
    if rep == "axis_angle":
        return rotations.axis_angle_to_matrix(x)
    if rep == "6d":
        return rotations.rot6d_to_matrix(x)
    return x


def lbs(
    model: BodyModel,
    betas: Float[Array, " B"],
    global_orient: Float[Array, "3 3"],
    body_pose: Float[Array, "Jm1 3 3"],
    transl: Float[Array, " 3"] | None = None,
    *,
    expression: Float[Array, " E"] | None = None,
    rep: str = "matrix",
) -> BodyOutput:
    """Poses ONE body with linear blend skinning (smplx semantics).

    Args:
      model: the body model.
      betas: float[num_betas] shape coefficients.
      global_orient: root rotation, float[3, 3] (rep="matrix"), float[3] ("axis_angle") or
        float[6] ("6d", first two rows).
      body_pose: rotations of joints 1..J-1 relative to their parents, float[J-1, 3, 3] (or
        [J-1, 3] / [J-1, 6]). SMPL-H/SMPL-X order: body (21), [jaw, left eye, right eye,]
        left hand (15), right hand (15).
      transl: float[3] added after posing about the root joint; None means zero.
      expression: float[num_expression] (SMPL-X only); None means zero.
      rep: rotation representation of `global_orient` and `body_pose`.

    Returns:
      BodyOutput(vertices float[V, 3], joints float[J, 3]); joints are the posed kinematic
      joints (smplx `joints[:, :J]`), both including `transl`.
    """
    J = model.num_joints
    R_root = _to_matrix(global_orient, 0, rep, "global_orient")
    R_body = _to_matrix(body_pose, J - 1, rep, "body_pose")
    dtype = model.v_template.dtype
    R_local = jnp.concatenate([R_root[None], R_body], axis=0).astype(dtype)  # [J, 3, 3]
    coeffs = _shape_coeffs(model, betas, expression).astype(dtype)

    # Rest joints from the folded regressor (no [J, V] x [V, 3] per body).
    J_rest = _rest_joints(model, coeffs)

    # Blend shapes: one [S] x [S, V*3] and one [(J-1)*9] x [(J-1)*9, V*3] product; under vmap both
    # become plain GEMMs with the batch as the M dimension.
    V = model.num_vertices
    shape_offsets = jnp.einsum("s,vcs->vc", coeffs, model.shapedirs)
    pose_feature = (R_local[1:] - jnp.eye(3, dtype=dtype)).reshape(-1)
    pose_offsets = (pose_feature @ model.posedirs).reshape(V, 3)
    v_posed = model.v_template + shape_offsets + pose_offsets

    # Kinematic chain, one level of the tree at a time (R, t kept apart: no 4x4 padding work).
    parents = np.asarray(model.parents)
    J_rel = J_rest - jnp.concatenate([jnp.zeros((1, 3), dtype), J_rest[parents[1:]]], axis=0)
    R_world = [None] * J
    t_world = [None] * J
    R_world[0], t_world[0] = R_local[0], J_rest[0]
    for idx, par in _levels(model.parents):
        Rp = jnp.stack([R_world[p] for p in par])
        tp = jnp.stack([t_world[p] for p in par])
        Rw = Rp @ R_local[idx]
        tw = tp + jnp.einsum("nij,nj->ni", Rp, J_rel[idx])
        for k, j in enumerate(idx):
            R_world[j], t_world[j] = Rw[k], tw[k]
    R_world = jnp.stack(R_world)  # [J, 3, 3]
    joints = jnp.stack(t_world)  # [J, 3]

    # Skinning: A_j maps rest-pose points to posed points: x -> R_j (x - J_j) + G_j.t, stored as
    # [J, 4, 3] = (columns of R_j, translation); `skinning.skin` has a hand-written VJP.
    t_skin = joints - jnp.einsum("jab,jb->ja", R_world, J_rest)
    A = jnp.concatenate([jnp.swapaxes(R_world, 1, 2), t_skin[:, None, :]], axis=1)  # [J, 4, 3]
    verts = skinning.skin(model.lbs_weights, A, v_posed)

    if transl is not None:
        transl = jnp.asarray(transl, dtype)
        if transl.shape != (3,):
            raise ValueError(f"transl: expected shape (3,), found {transl.shape}")
        verts = verts + transl
        joints = joints + transl
    return BodyOutput(vertices=verts, joints=joints)


@functools.partial(jax.jit, static_argnames=("rep",))
def pose_bodies(
    model: BodyModel,
    betas: Float[Array, "*lead B"] | Float[Array, " B"],
    global_orient: Float[Array, "*lead 3 3"],
    body_pose: Float[Array, "*lead Jm1 3 3"],
    transl: Float[Array, "*lead 3"],
    *,
    rep: str = "matrix",
) -> BodyOutput:
    """Poses a batch of bodies: `lbs` vmapped over the leading axes `lead` ([n] or [P, T]).

    One jitted program per model and shapes (the model is an argument, not baked-in constants);
    the same numbers as `lbs` called body by body.

    Args:
      model: the body model (shared by every body).
      betas: float[*lead, B], or float[B] shared by every body.
      global_orient: float[*lead, 3, 3] (rep="matrix"; [*lead, 3] "axis_angle", [*lead, 6] "6d").
      body_pose: float[*lead, J-1, 3, 3] (or [*lead, J-1, 3] / [*lead, J-1, 6]).
      transl: float[*lead, 3]; its leading axes define `lead`.
      rep: rotation representation of `global_orient` and `body_pose` (static).

    Returns:
      BodyOutput(vertices float[*lead, V, 3], joints float[*lead, J, 3]).
    """
    betas_axis = None if jnp.ndim(betas) == 1 else 0
    posed = functools.partial(lbs, rep=rep)
    for _ in range(jnp.ndim(transl) - 1):
        posed = jax.vmap(posed, in_axes=(None, betas_axis, 0, 0, 0))
    return posed(model, betas, global_orient, body_pose, transl)
