"""The optimizer's input: `Problem`, the fixed-shape arrays of one clip, nested by what they describe.

Sizes (every variable-size set is padded to a bucket, `josh_jax.prepare.batch`):
N keyframes, A anchors per image, E image pairs, M matches per pair, P tracks, B shape
coefficients, C contact entries per track, S static pairs per track, U body vertices used.
Padding is masked: `cameras.frame_valid`, `matches.conf == 0`, `tracks.valid`,
`contacts.conf == 0`, `static.weight == 0`.

    Problem
      cameras   CameraData    per keyframe: chain, focal, principal point, anchor depths
      matches   MatchData     per pair and match: pixels, anchor depths, offsets, weights
      tracks    TrackInit     per track and keyframe: the HMR's SMPL parameters
      contacts  ContactData   per track: contact-scale entries (scene depth under a vertex)
      static    StaticPairs   per track: vertices that stay put between consecutive frames
      body      BodyModel     restricted to the U used vertices + 24 virtual rest-joint vertices
"""

from __future__ import annotations

import dataclasses

import jax

from body_models.model import BodyModel


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CameraData:
    """Per-keyframe camera data (docs/method.md §2.3, §2.4).

    Attributes:
      frame_valid: bool[N] real keyframes.
      frame_index: float32[N] video frame index of each keyframe (smoothness gaps).
      chain_parent: int32[N] parent of each camera in the spanning tree (-1: root and padding).
      median_depth: float32[N] median anchor depth m_i (pointmap units).
      core_depth: float32[N, A] absolute anchor depths (pointmap z at the block centres).
      base_focal: float32[N] f0_i used in the depth reparametrisation (= focal_init, as JOSH).
      weiszfeld_focal: float32[N] per-image Weiszfeld focal of the pointmap.
      focal_init: float32[] initial shared focal (pixels).
      focal_bounds: float32[2] clip range of the focal ([0.25, 10] x image diagonal).
      pp: float32[2] principal point (cx, cy) = (W/2, H/2).
    """

    frame_valid: jax.Array
    frame_index: jax.Array
    chain_parent: jax.Array
    median_depth: jax.Array
    core_depth: jax.Array
    base_focal: jax.Array
    weiszfeld_focal: jax.Array
    focal_init: jax.Array
    focal_bounds: jax.Array
    pp: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MatchData:
    """Matches of every image pair (docs/method.md §2.5). Unordered pairs are used once.

    Attributes:
      pair_index: int32[E, 2] images (i, j) of each pair (padding: (0, 0)).
      uv: float32[4, E, M] integer pixels of match m: rows (u_i, v_i, u_j, v_j) (component-major
        so the per-iteration loops stream contiguous rows).
      depth: float32[2, E, M] anchor depth d[a] of the match's pixel in image i / j.
      offset: float32[2, E, M] block-relative depth offset of that pixel in image i / j.
      conf: float32[E, M] match weight (0 = padding).
    """

    pair_index: jax.Array
    uv: jax.Array
    depth: jax.Array
    offset: jax.Array
    conf: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrackInit:
    """The HMR's SMPL parameters of every track at every keyframe (docs/method.md §2.1).

    Attributes:
      valid: bool[P, N] SMPL frame present (track visible at this keyframe).
      global_orient: float32[P, N, 3, 3] root rotation.
      body_pose: float32[P, N, 23, 3, 3] body pose.
      transl: float32[P, N, 3] transl, z rescaled by focal_init / hmr_focal.
      betas: float32[P, B] mean betas over the track's frames.
    """

    valid: jax.Array
    global_orient: jax.Array
    body_pose: jax.Array
    transl: jax.Array
    betas: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ContactData:
    """Contact-scale entries of every track (docs/method.md §2.8, §2.9).

    Attributes:
      image: int32[P, C] image of each entry.
      frame: int32[P, C] SMPL frame (keyframe slot) whose vertex is used.
      vertex: int32[P, C] index into the used vertices.
      depth: float32[P, C] anchor depth d[a] at the entry's scene pixel.
      offset: float32[P, C] depth offset of the entry's surface point relative to `depth` (the
        scene depth there is depth * offset, pointmap units).
      uv: float32[P, C, 2] pixel where that offset holds.
      slope: float32[P, C, 2] relative inverse-depth slope of the local surface per pixel (the
        depth at uv + (du, dv) is the depth there / (1 + a du + b dv)).
      conf: float32[P, C] entry weight cconf (0 = padding).
      radius: float32[] radius (pixels) of the surface windows.
    """

    image: jax.Array
    frame: jax.Array
    vertex: jax.Array
    depth: jax.Array
    offset: jax.Array
    uv: jax.Array
    slope: jax.Array
    conf: jax.Array
    radius: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StaticPairs:
    """Contact vertices that should not move in the world between two frames of a track.

    Attributes:
      frame: int32[P, S] SMPL frame b of each pair.
      prev: int32[P, S] the previous SMPL frame of the track.
      vertex: int32[P, S] index into the used vertices.
      weight: float32[P, S] 1 for real pairs, 0 for padding.
    """

    frame: jax.Array
    prev: jax.Array
    vertex: jax.Array
    weight: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Problem:
    """Fixed-shape optimizer inputs of ONE clip (stack with `stack_problems` for a batch).

    Attributes:
      cameras: CameraData.
      matches: MatchData.
      tracks: TrackInit.
      contacts: ContactData.
      static: StaticPairs.
      body: BodyModel restricted to U used vertices + 24 virtual rest-joint vertices.
      body_vertex_ids: int32[U] original vertex id of each used vertex.
    """

    cameras: CameraData
    matches: MatchData
    tracks: TrackInit
    contacts: ContactData
    static: StaticPairs
    body: BodyModel
    body_vertex_ids: jax.Array

    @property
    def num_frames(self) -> int:
        return int(self.cameras.frame_valid.shape[-1])

    @property
    def num_tracks(self) -> int:
        return int(self.tracks.valid.shape[-2])
