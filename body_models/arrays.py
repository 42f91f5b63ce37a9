"""The smplx array layout of a body model <-> a validated `BodyModel` (no file access).

Supported layouts (the keys smplx reads):

| key | shape | notes |
|---|---|---|
| `v_template` | [V, 3] | |
| `shapedirs` | [V, 3, S] | SMPL-X: first 300 columns shape, then expression (smplx's split) |
| `posedirs` | [V, 3, (J-1)*9] or [V*3, (J-1)*9] | |
| `J_regressor` | [J, V] | dense, or scipy sparse csc/csr in `.pkl` files |
| `weights` | [V, J] | |
| `kintree_table` | [2, J] | row 0: parents (root's is any value not in 0..J-1) |
| `f` | [F, 3] | |

J = 24 is SMPL, 52 SMPL-H, 55 SMPL-X. Any other key is ignored.
"""

from __future__ import annotations

import os
import re

import numpy as np

from body_models.errors import InputError
from body_models.model import BodyModel

SMPLX_SHAPE_SPACE_DIM = 300  # smplx: columns beyond this in SMPL-X shapedirs are expression dirs
_KINDS = {24: "smpl", 52: "smplh", 55: "smplx"}


class ModelFormatError(InputError):
    """A body model file has a missing key or a wrong shape; names file, key, expected, found."""


def _model_name(path: str, kind: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    for gender in ("female", "male", "neutral"):  # "female" first: it contains "male"
        if re.search(gender, stem):
            return f"{kind}_{gender}"
    return kind


def _check(path, key, arr, expected_shape):
    """expected_shape: tuple with None for any size."""
    ok = arr.ndim == len(expected_shape) and all(
        e is None or e == n for e, n in zip(expected_shape, arr.shape, strict=False)
    )
    if not ok:
        exp = "(" + ", ".join("*" if e is None else str(e) for e in expected_shape) + ")"
        raise ModelFormatError(path, key, f"shape {exp}", f"shape {tuple(arr.shape)}")


def model_from_arrays(
    data: dict,
    path: str = "<arrays>",
    *,
    num_betas: int = 10,
    num_expression: int | None = None,
    name: str | None = None,
    dtype=np.float32,
) -> BodyModel:
    """Builds a validated `BodyModel` from a dict of smplx-layout arrays (see module docstring).

    Args:
      data: mapping with the keys in the module docstring (numpy arrays).
      path: file name used in error messages.
      num_betas: number of shape coefficients kept (first columns of the shape space).
      num_expression: SMPL-X expression coefficients kept; None -> 10 for SMPL-X, 0 otherwise.
      name: model name; None -> "<kind>_<gender>" guessed from `path` (e.g. "smpl_neutral").
      dtype: float dtype of the arrays.

    Raises:
      ModelFormatError: a key is missing or has the wrong shape.
    """
    arrays = {}
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table",
                "f"):
        if key not in data:
            raise ModelFormatError(path, key, "present", f"missing (keys: {sorted(data)})")
        arrays[key] = np.asarray(data[key])
    v_template = arrays["v_template"]
    _check(path, "v_template", v_template, (None, 3))
    V = v_template.shape[0]
    parents = _parents(path, arrays["kintree_table"])
    J = len(parents)
    kind = _KINDS[J]
    shapedirs, num_expression = _shape_and_expression_dirs(
        path, arrays["shapedirs"], V, kind, num_betas, num_expression)

    P = (J - 1) * 9
    posedirs = arrays["posedirs"]
    if posedirs.ndim == 3:
        _check(path, "posedirs", posedirs, (V, 3, P))
    else:
        _check(path, "posedirs", posedirs, (V * 3, P))
    posedirs = posedirs.reshape(V * 3, P).T  # smplx: reshape(-1, P).T

    J_regressor = arrays["J_regressor"]
    _check(path, "J_regressor", J_regressor, (J, V))
    weights = arrays["weights"]
    _check(path, "weights", weights, (V, J))
    faces = arrays["f"]
    _check(path, "f", faces, (None, 3))
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise ModelFormatError(
            path, "f", f"vertex indices in [0, {V})", f"range [{faces.min()}, {faces.max()}]"
        )
    for key, arr in (
        ("v_template", v_template),
        ("shapedirs", shapedirs),
        ("posedirs", posedirs),
        ("J_regressor", J_regressor),
        ("weights", weights),
    ):
        if not np.all(np.isfinite(arr)):
            raise ModelFormatError(path, key, "finite values", "NaN or Inf")

    return BodyModel(
        v_template=v_template.astype(dtype),
        shapedirs=shapedirs.astype(dtype),
        posedirs=np.ascontiguousarray(posedirs, dtype=dtype),
        J_regressor=J_regressor.astype(dtype),
        lbs_weights=weights.astype(dtype),
        faces=faces.astype(np.int32),
        parents=parents,
        name=name or _model_name(path, kind),
        num_betas=num_betas,
        num_expression=num_expression,
    )


def to_arrays(model: BodyModel) -> dict[str, np.ndarray]:
    """The model as smplx-layout numpy arrays (posedirs as [V, 3, (J-1)*9])."""
    V, J = model.num_vertices, model.num_joints
    parents = np.array(model.parents, np.int64)
    parents[0] = 2**32 - 1  # what the official files store for the root
    return {
        "v_template": np.asarray(model.v_template),
        "shapedirs": np.asarray(model.shapedirs),
        "posedirs": np.asarray(model.posedirs).T.reshape(V, 3, (J - 1) * 9),
        "J_regressor": np.asarray(model.J_regressor),
        "weights": np.asarray(model.lbs_weights),
        "kintree_table": np.stack([parents, np.arange(J)]).astype(np.uint32),
        "f": np.asarray(model.faces).astype(np.uint32),
    }


def _parents(path: str, kintree: np.ndarray) -> tuple[int, ...]:
    """The parent of every joint (-1 for the root) from a checked `kintree_table` [2, J]."""
    _check(path, "kintree_table", kintree, (2, None))
    J = kintree.shape[1]
    if J not in _KINDS:
        raise ModelFormatError(
            path, "kintree_table", "2 x 24 (SMPL), 52 (SMPL-H) or 55 (SMPL-X)", f"2 x {J}"
        )
    parents = kintree[0].astype(np.int64)
    parents = tuple([-1] + [int(p) for p in parents[1:]])
    for j in range(1, J):
        if not 0 <= parents[j] < j:
            raise ModelFormatError(
                path, "kintree_table", f"parent of joint {j} in [0, {j})", str(parents[j])
            )
    return parents


def _shape_and_expression_dirs(path: str, shapedirs: np.ndarray, V: int, kind: str,
                               num_betas: int, num_expression: int | None):
    """[V, 3, num_betas + num_expression] kept shape (then expression) columns, num_expression.

    SMPL-X files hold the shape space in the first 300 columns, expression after (smplx's split).
    """
    _check(path, "shapedirs", shapedirs, (V, 3, None))
    S = shapedirs.shape[2]
    if kind == "smplx" and S > SMPLX_SHAPE_SPACE_DIM:
        shape_space, expr_space = (
            shapedirs[..., :SMPLX_SHAPE_SPACE_DIM],
            shapedirs[..., SMPLX_SHAPE_SPACE_DIM:],
        )
    else:
        shape_space, expr_space = shapedirs, shapedirs[..., :0]
    if num_expression is None:
        num_expression = min(10, expr_space.shape[2]) if kind == "smplx" else 0
    if num_betas > shape_space.shape[2]:
        raise ModelFormatError(
            path, "shapedirs", f"at least {num_betas} shape columns", f"{shape_space.shape[2]}"
        )
    if num_expression > expr_space.shape[2]:
        raise ModelFormatError(
            path,
            "shapedirs",
            f"at least {num_expression} expression columns",
            f"{expr_space.shape[2]}",
        )
    kept = np.concatenate([shape_space[..., :num_betas], expr_space[..., :num_expression]], axis=2)
    return kept, num_expression
