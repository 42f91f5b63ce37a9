"""Named joint and vertex index sets for SMPL and the built-in mannequin.

Vertex ids differ between bodies (the mannequin is not SMPL's mesh), so vertex sets are looked up
by model name: names starting with "smpl" use SMPL's ids, "mannequin" the built-in body's.
"""

from __future__ import annotations

import numpy as np

from body_models.builtin import mannequin_arrays

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip

# smplx's extra SMPL joints (joints[:, 24:45]) are these vertices, in this order.
SMPL_EXTRA_VERTEX_NAMES = (
    "nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel", "left_thumb", "left_index",
    "left_middle", "left_ring", "left_pinky", "right_thumb", "right_index", "right_middle",
    "right_ring", "right_pinky",
)  # fmt: skip
SMPL_EXTRA_VERTEX_IDS = np.array(
    [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787,
     2746, 2319, 2445, 2556, 2673, 6191, 5782, 5905, 6016, 6133], np.int32,
)  # fmt: skip

# Foot vertices of JOSH's foot-sliding metric: left big toe, left heel, right big toe, right heel.
SMPL_FOOT_VERTEX_IDS = np.array([3216, 3387, 6617, 6787], np.int32)

FOOT_JOINTS = (10, 11, 7, 8)  # left foot, right foot, left ankle, right ankle (JOSH3R's order)


def _kind(model_name: str) -> str:
    if model_name == "mannequin":
        return "mannequin"
    if model_name.startswith("smpl"):
        return "smpl"
    raise ValueError(
        f"no vertex index sets for model {model_name!r}: expected 'smpl_*' or 'mannequin'"
    )


def foot_vertices(model_name: str) -> np.ndarray:
    """int32[4]: left toe, left heel, right toe, right heel vertex ids (contact, foot sliding)."""
    if _kind(model_name) == "smpl":
        return SMPL_FOOT_VERTEX_IDS.copy()
    return mannequin_arrays()["foot_ids"].copy()


def sole_vertices(model) -> np.ndarray:
    """int32[N] ids of the vertices on the soles of both feet, sorted.

    Args:
      model: "mannequin", or a loaded `BodyModel` of any SMPL-topology body. For SMPL the set is
        computed from the model's own geometry (see `sole_vertices_from_geometry`), since the
        licensed mesh is not shipped; a bare "smpl_*" name is refused with that explanation.
    """
    if isinstance(model, str):
        if _kind(model) == "mannequin":
            return mannequin_arrays()["sole_ids"].copy()
        raise ValueError(
            f"sole_vertices({model!r}): SMPL sole ids are derived from the model file; pass the "
            "loaded BodyModel (body_models.load_model(path)) instead of its name"
        )
    if model.name == "mannequin":
        return sole_vertices("mannequin")
    return sole_vertices_from_geometry(model)


def sole_vertices_from_geometry(
    model, height: float = 0.015, foot_joints=(7, 8, 10, 11)
) -> np.ndarray:
    """Sole vertices from a model's rest template: on the feet and within `height` m of the lowest.

    A vertex is on a foot when its largest skinning weight belongs to an ankle or foot joint; the
    rest pose is y-up with the soles lowest (true for SMPL and the mannequin).
    """
    v = np.asarray(model.v_template, np.float64)
    w = np.asarray(model.lbs_weights)
    on_foot = np.isin(np.argmax(w, axis=1), foot_joints)
    y = v[:, 1]
    floor = y[on_foot].min()
    return np.nonzero(on_foot & (y <= floor + height))[0].astype(np.int32)
