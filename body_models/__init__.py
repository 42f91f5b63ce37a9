"""Pure-functional SMPL-family body models (SMPL, SMPL-H, SMPL-X) and a licence-free built-in body.

from body_models import load_model, lbs
model = load_model()                      # None -> the built-in "mannequin"
out = lbs(model, betas, global_orient, body_pose, transl)   # one body
out = pose_bodies(model, betas, global_orient, body_pose, transl)   # [n] or [P, T] bodies, jitted
"""

from body_models import indices, rotations
from body_models.arrays import ModelFormatError, model_from_arrays, to_arrays
from body_models.builtin import mannequin
from body_models.errors import InputError
from body_models.loaders import load_model, save_model_npz
from body_models.model import (
    BodyModel,
    BodyOutput,
    lbs,
    pose_bodies,
    regress_joints,
    rest_joints,
)
from body_models.safe_pickle import UnsafePickleError

__all__ = [
    "BodyModel",
    "BodyOutput",
    "InputError",
    "ModelFormatError",
    "UnsafePickleError",
    "indices",
    "lbs",
    "load_model",
    "mannequin",
    "model_from_arrays",
    "pose_bodies",
    "regress_joints",
    "rest_joints",
    "rotations",
    "save_model_npz",
    "to_arrays",
]
