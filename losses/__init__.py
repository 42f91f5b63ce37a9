"""JOSH loss terms as pure JAX functions, written for one clip / one track (imports only jax).

See docs/losses.md for formulas, shapes, conventions and a usage example.
"""

from losses.human import (
    contact_scale_loss,
    contact_static_loss,
    joint_smoothness_loss,
    prior_loss,
    prior_terms,
    track_weighted_mean,
)
from losses.robust import (
    gamma_constant,
    gamma_loss,
    masked_mean,
    safe_norm,
    safe_norm_components,
    weighted_sum,
)
from losses.scene import match_3d_loss, project_points, reprojection_loss

__all__ = [
    "contact_scale_loss",
    "contact_static_loss",
    "gamma_constant",
    "gamma_loss",
    "joint_smoothness_loss",
    "masked_mean",
    "match_3d_loss",
    "prior_loss",
    "prior_terms",
    "project_points",
    "reprojection_loss",
    "safe_norm",
    "safe_norm_components",
    "track_weighted_mean",
    "weighted_sum",
]
