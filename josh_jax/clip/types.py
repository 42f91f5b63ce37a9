"""The Clip: raw inputs of one window of a video, and its ground truth.

A `Clip` holds what a front end produced for one window of a video (pointmaps, confidences, human
masks, pixel matches between frame pairs, per-frame SMPL estimates and per-vertex contacts); a
`GroundTruth` holds what a synthetic generator or an evaluation dataset knows for sure. Both are
frozen pytree dataclasses of host numpy arrays, saved together in one `.npz` (ground truth under
`gt_*` keys; `josh_jax.clip.io`) and validated against the key table of `josh_jax.clip.schema`.

Every key, dtype, shape, unit and convention is documented in `docs/clip_format.md`; keep it true.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

FORMAT_VERSION = "1"

# Matches at or below this confidence are dropped by JOSH (`load_corres(min_conf_thr=1e-3)`).
MIN_MATCH_CONFIDENCE = 1e-3


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)  # arrays: no elementwise ==
class Clip:
    """Raw inputs of one window of a video (see `docs/clip_format.md`).

    T frames, image H x W, P human tracks, E image pairs, M matches per pair (padded), J-1 body
    joints, B shape coefficients, V body vertices. Cameras are OpenCV (x right, y down, z forward);
    pixel (u, v) = (x, y) with (0, 0) the centre of the top-left pixel; principal point (W/2, H/2).

    Attributes:
      frame_index: int32[T] index of each frame in the source video (strictly increasing).
      fps: float32[] source video frame rate.
      pointmaps: float32[T, H, W, 3] camera-frame pointmap of each frame, unknown global scale.
      confidence: float32[T, H, W] pointmap confidence (>= 0), raw (MASt3R: >= 1).
      human_mask: bool[T, H, W] True on pixels covered by people.
      pairs: int32[E, 2] frame pairs (i, j), i != j, indices into the T frames.
      matches: float32[E, M, 2, 2] pixel (x, y) of match m in frame i ([:, :, 0]) and j ([:, :, 1]).
      match_confidence: float32[E, M] match confidence (>= 0); 0 marks padding.
      smpl_global_orient: float32[P, T, 3, 3] root rotation in the camera frame (HMR).
      smpl_body_pose: float32[P, T, J-1, 3, 3] body joint rotations.
      smpl_betas: float32[P, T, B] shape coefficients per frame.
      smpl_transl: float32[P, T, 3] SMPL `transl` in the camera frame, metres under `hmr_focal`.
      hmr_focal: float32[] focal (pixels, at H x W) that the HMR assumed.
      smpl_valid: bool[P, T] track visible (and estimated) in this frame.
      contact: float32[P, T, V] per-vertex contact probability in [0, 1].
      images: optional uint8[T, H, W, 3] RGB frames.
      focal_init: optional float32[] initial focal in pixels (else estimated from the pointmaps).
      pair_scores: optional float32[E] pair weights for the camera spanning tree (JOSH: the match
        count of the pair); absent means "number of matches with confidence > 1e-3".
      track_id: optional int32[P] the front end's id of each track (e.g. TRAM `hps_track_{id}`).
      body_model: name of the body the SMPL parameters belong to (static).
      format_version: format version string (static).
    """

    frame_index: np.ndarray
    fps: np.ndarray
    pointmaps: np.ndarray
    confidence: np.ndarray
    human_mask: np.ndarray
    pairs: np.ndarray
    matches: np.ndarray
    match_confidence: np.ndarray
    smpl_global_orient: np.ndarray
    smpl_body_pose: np.ndarray
    smpl_betas: np.ndarray
    smpl_transl: np.ndarray
    hmr_focal: np.ndarray
    smpl_valid: np.ndarray
    contact: np.ndarray
    images: np.ndarray | None = None
    focal_init: np.ndarray | None = None
    pair_scores: np.ndarray | None = None
    track_id: np.ndarray | None = None
    body_model: str = jax.tree.static()
    format_version: str = jax.tree.static(default=FORMAT_VERSION)

    @property
    def num_frames(self) -> int:
        return int(self.pointmaps.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.pointmaps.shape[1]), int(self.pointmaps.shape[2])

    @property
    def num_people(self) -> int:
        return int(self.smpl_transl.shape[0])

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def replace(self, **changes: Any) -> Clip:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line: frames, size, pairs, matches and people (or 'scene only')."""
        H, W = self.image_size
        n_valid = int(np.sum(np.asarray(self.match_confidence) > MIN_MATCH_CONFIDENCE))
        if self.num_people == 0:
            people = "scene only (no people)"
        else:
            vis = np.asarray(self.smpl_valid).sum(axis=1).tolist()
            people = f"{self.num_people} people (frames visible per track: {vis})"
        return (
            f"clip v{self.format_version}: {self.num_frames} frames {H}x{W} "
            f"(video frames {int(self.frame_index[0])}..{int(self.frame_index[-1])} "
            f"at {float(self.fps):g} fps), {self.num_pairs} pairs, {n_valid} matches, {people}, "
            f"body '{self.body_model}'"
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)  # arrays: no elementwise ==
class GroundTruth:
    """Optional ground truth of a clip (synthetic clips, evaluation); every field is optional.

    World frame: metres; SMPL in smplx semantics (`transl` added after posing about the root joint).
    Track p of the ground truth is track p of the clip. F = number of source-video frames covered
    by the `*_all` arrays (the clip may be a subsample of them).

    Attributes:
      gt_T_world_cam: float64[T, 4, 4] camera-to-world of each clip frame (OpenCV camera).
      gt_focal: float64[] true focal in pixels (principal point (W/2, H/2)).
      gt_pointmap_scale: float64[] metres per pointmap unit (metric = pointmap * scale).
      gt_smpl_global_orient: float64[P, T, 3, 3] root rotation in the world frame.
      gt_smpl_body_pose: float64[P, T, J-1, 3, 3] body joint rotations.
      gt_smpl_betas: float64[P, T, B] shape coefficients ([P, B] is accepted on load and broadcast).
      gt_smpl_transl: float64[P, T, 3] SMPL `transl` in the world frame.
      gt_contact: bool[P, T, V] true contact vertices.
      gt_scene_vertices: float64[S, 3] scene mesh vertices in the world frame.
      gt_scene_faces: int32[NF, 3] scene mesh triangles (indices into gt_scene_vertices).
      gt_human_mask: bool[T, H, W] true human silhouettes.
      gt_depth: float32[T, H, W] noise-free metric camera-frame depth (z), scene and people.
      gt_frame_index: int32[F] source-video frame of each row of the `*_all` arrays.
      gt_T_world_cam_all: float64[F, 4, 4] camera-to-world at every listed video frame.
      gt_joints_world_all: float64[P, F, J, 3] world kinematic joints at every listed video frame.
    """

    gt_T_world_cam: np.ndarray | None = None
    gt_focal: np.ndarray | None = None
    gt_pointmap_scale: np.ndarray | None = None
    gt_smpl_global_orient: np.ndarray | None = None
    gt_smpl_body_pose: np.ndarray | None = None
    gt_smpl_betas: np.ndarray | None = None
    gt_smpl_transl: np.ndarray | None = None
    gt_contact: np.ndarray | None = None
    gt_scene_vertices: np.ndarray | None = None
    gt_scene_faces: np.ndarray | None = None
    gt_human_mask: np.ndarray | None = None
    gt_depth: np.ndarray | None = None
    gt_frame_index: np.ndarray | None = None
    gt_T_world_cam_all: np.ndarray | None = None
    gt_joints_world_all: np.ndarray | None = None

    def replace(self, **changes: Any) -> GroundTruth:
        return dataclasses.replace(self, **changes)

    def present(self) -> list[str]:
        """Names of the fields that are set."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


def default_pair_scores(clip: Clip, min_confidence: float = MIN_MATCH_CONFIDENCE) -> np.ndarray:
    """Pair weights for the spanning tree: `clip.pair_scores`, else the count of real matches.

    Returns:
      float32[E].
    """
    if clip.pair_scores is not None:
        return np.asarray(clip.pair_scores, np.float32)
    return np.sum(np.asarray(clip.match_confidence) > min_confidence, axis=1).astype(np.float32)
