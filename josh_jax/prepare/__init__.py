"""Host-side preparation of one clip for the optimizer: `prepare(clip, config) -> Problem`.

The modules follow the data flow:

  anchors.py       canonical views: block-relative depths, anchor depths, the scene mask
  focal.py         per-image Weiszfeld focals and the clip's initial focal
  camera_graph.py  the camera kinematic chain (maximum spanning tree of the match graph)
  contacts.py      contact-scale entries and static pairs of one track
  body.py          the body restricted to the vertices the losses use
  problem.py       `Problem` and its parts (CameraData, MatchData, TrackInit, ContactData,
                   StaticPairs)
  build.py         `prepare`: one builder per part of the Problem
  batch.py         buckets, padding, `stack_problems` for batches of clips
"""

from josh_jax.prepare.anchors import CanonicalViews, anchor_offsets, canonical_views
from josh_jax.prepare.batch import bucket_size, dummy_problem, pad, stack_problems
from josh_jax.prepare.body import subset_body_model
from josh_jax.prepare.build import PrepareInfo, cap_matches, prepare
from josh_jax.prepare.problem import (
    CameraData,
    ContactData,
    MatchData,
    Problem,
    StaticPairs,
    TrackInit,
)

__all__ = [
    "CameraData",
    "CanonicalViews",
    "ContactData",
    "MatchData",
    "PrepareInfo",
    "Problem",
    "StaticPairs",
    "TrackInit",
    "anchor_offsets",
    "bucket_size",
    "canonical_views",
    "cap_matches",
    "dummy_problem",
    "pad",
    "prepare",
    "stack_problems",
    "subset_body_model",
]
