"""The JAX front end: a video -> one Clip (docs/video.md, "From your video").

    frontend = VideoFrontend(human3r_params, body_model, config, matcher=None)  # config:
    clip, info = frontend(frames_lib.iter_frames(video), fps)    # experiments/configs/frontend.py

Stages (each logged with its time):

1. **Keyframes** (`keyframes`): frames 0, k, 2k, ... and the last frame of the stream, read one
   at a time (one extra frame held back until the stream ends); for a video shorter than
   `1 + 2 k (M - 1)` frames these are exactly JOSH's `sampling.keyframe_indices` (spec §1.5.2).
2. **Human3R** (`trainers.human3r.infer.run_frames`, one jitted step for the whole video) on the
   keyframes only: per keyframe the camera-frame pointmap and confidence (at the clip's pixel
   step `human3r.scene_stride`), the chained camera, the Weiszfeld focal, and every tracked
   person's body (`body_model` parameters in the camera frame, one track per Human3R id).
3. **Pairs**: `sampling.window_pairs(T, window, symmetrize=False)` (JOSH: each pair once).
4. **Masks** (`josh_jax.video.masks`): the bodies' silhouettes rendered with Human3R's cameras
   and focal, dilated.
5. **Matches**: MASt3R on the keyframe images when a matcher is given
   (`trainers.mast3r_matcher.PairMatcher`: batched pairs under jit), else from Human3R's own
   pointmaps and cameras (`josh_jax.video.geometric_matches`).
6. **Contacts** (`josh_jax.video.contacts`): candidate vertices (soles, pelvis, hands) that are
   still in the world and near the scene points of neighbouring keyframes.
7. **Clip**: validated by the clip schema (`josh_jax.clip.validate_arrays`). `hmr_focal` is the
   median Weiszfeld focal of the clip's pointmaps (`josh_jax.prepare.focal`; the bodies and the
   pointmaps share Human3R's camera), `focal_init` is left out (JOSH estimates it from the
   pointmaps with the same estimator).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from absl import logging
from flax import nnx

import body_models
from josh_jax import geometry
from josh_jax.clip import Clip, validate_arrays
from josh_jax.errors import InputError
from josh_jax.prepare.focal import weiszfeld_focal
from josh_jax.video import contacts as contacts_lib
from josh_jax.video import geometric_matches, masks, sampling
from trainers import convert as trainers_convert
from trainers import pretrained
from trainers.human3r import convert as human3r_convert
from trainers.human3r import infer as human3r_infer
from trainers.human3r import summary as human3r_summary
from trainers.human3r.convert import Human3rParams
from trainers.mast3r import MASt3R
from trainers.mast3r_matcher import PairMatcher


def keyframes(frames: Iterable[np.ndarray], interval: int, taken: list[int]) -> Iterator[np.ndarray]:
    """Frames 0, k, 2k, ... and the stream's last frame; appends each one's video index to `taken`.

    At most one frame that is not a keyframe is held (the latest), in case it is the last.
    """
    held = None
    for i, rgb in enumerate(frames):
        if i % interval == 0:
            held = None
            taken.append(i)
            yield rgb
        else:
            held = (i, rgb)
        del rgb
    if held is not None:
        taken.append(held[0])
        yield held[1]


@dataclasses.dataclass(frozen=True)
class Stages:
    """What the front end produced besides the Clip (info for logs, tests and the binary).

    frame_index: int[T] video frames of the keyframes; T_world_cam: float[T, 4, 4] Human3R's
    chained cameras (world = first keyframe); focal: float[T] Human3R's focal in clip pixels;
    track_ids: int[P] Human3R ids; seconds: stage -> wall time; traces: program -> trace count;
    matcher: "mast3r" or "geometry".
    """

    frame_index: np.ndarray
    T_world_cam: np.ndarray
    focal: np.ndarray
    track_ids: np.ndarray
    seconds: dict[str, float]
    traces: dict[str, int]
    matcher: str


class VideoFrontend:
    """Human3R (and optionally MASt3R) on a video -> a Clip; see the module docstring."""

    def __init__(self, human3r_params: Human3rParams, body_model: body_models.BodyModel, config,
                 *, matcher: PairMatcher | None = None):
        self.params, self.body_model, self.config = human3r_params, body_model, config
        self.infer_config = human3r_infer.InferConfig.from_config(config.human3r)
        self.step = human3r_infer.FrameStep(human3r_params, body_model, self.infer_config)
        self.matcher = matcher

    def __call__(self, frames: Iterable[np.ndarray], fps: float, *,
                 progress: Callable[[str], None] | None = None) -> tuple[Clip, Stages]:
        """The Clip of a video.

        Args:
          frames: uint8 (h, w, 3) video frames in order (streamed; `josh_jax.io.frames`).
          fps: the video's frame rate.
          progress: called with one line per stage (default: absl logging).

        Returns:
          (clip, stages).
        """
        say = progress or (lambda line: logging.info("%s", line))
        seconds: dict[str, float] = {}
        run, frame_index = self._human3r(frames, say, seconds)
        pointmaps = np.stack(run.pts3d).astype(np.float32)
        confidence = np.stack(run.conf).astype(np.float32)
        images = np.stack(run.colors)
        T_world_cam = np.stack(run.T_world_cam)
        T_world_cam = np.linalg.inv(T_world_cam[0])[None] @ T_world_cam
        # Human3R's per-view focal (`run.focal`) is the same Weiszfeld estimate on the full
        # pointmap; JOSH's clipped estimator keeps it sane when the network is not (random init).
        focal = np.asarray([weiszfeld_focal(p) for p in pointmaps])
        hmr_focal = float(np.median(focal))
        tracks = human3r_summary.track_arrays(run, self.body_model)
        verts_world, human_mask = self._human_masks(tracks, T_world_cam, hmr_focal,
                                                    pointmaps.shape[1:3], say, seconds)
        pairs, matches, match_conf, matcher_name = self._matches(
            images, pointmaps, confidence, human_mask, T_world_cam, focal, say, seconds)

        t = time.perf_counter()
        contact = self._contacts(verts_world, frame_index / float(fps), pointmaps, confidence,
                                 human_mask, T_world_cam)
        seconds["contacts_s"] = time.perf_counter() - t
        say(f"[frontend] contacts: {int((contact > 0.5).sum())} vertex-frames > 0.5 "
            f"({seconds['contacts_s']:.1f} s)")

        arrays = dict(
            format_version="1", body_model=self.body_model.name, frame_index=frame_index,
            fps=np.float32(fps), pointmaps=pointmaps, confidence=confidence,
            human_mask=human_mask, pairs=pairs, matches=matches, match_confidence=match_conf,
            smpl_global_orient=tracks["orient"], smpl_body_pose=tracks["pose"],
            smpl_betas=tracks["betas"], smpl_transl=tracks["transl"],
            hmr_focal=np.float32(hmr_focal), smpl_valid=tracks["valid"], contact=contact,
            images=images, track_id=tracks["ids"])
        clip, _ = validate_arrays(arrays, "front end")
        traces = {"human3r": self.step.traces}
        if matcher_name == "mast3r":
            traces["mast3r"] = self.matcher.traces
        say(f"[frontend] {clip.describe()}; traces: "
            + ", ".join(f"{k} {v}" for k, v in traces.items()))
        return clip, Stages(frame_index=frame_index, T_world_cam=T_world_cam.astype(np.float32),
                            focal=focal.astype(np.float32), track_ids=tracks["ids"],
                            seconds=seconds, traces=traces, matcher=matcher_name)

    def _human3r(self, frames: Iterable[np.ndarray], say: Callable[[str], None],
                 seconds: dict[str, float]):
        """Human3R on the keyframes: (its `summary.Human3rRun`, int32[T] video frame indices)."""
        t = time.perf_counter()
        taken: list[int] = []
        run = human3r_infer.run_frames(
            self.params, keyframes(frames, int(self.config.interval), taken), self.infer_config,
            self.body_model, step=self.step,
            progress=lambda n, rate: say(f"[frontend] human3r: {n} keyframes, {rate:.2f}/s"))
        seconds["human3r_s"] = time.perf_counter() - t
        if run.num_frames < 2:
            raise InputError("video", "(frames)", "at least 2 keyframes (a video of more than "
                             "one frame)", f"{run.num_frames}")
        say(f"[frontend] human3r: {run.num_frames} keyframes (video frames 0..{taken[-1]}), "
            f"{len(run.people)} track(s), compile + first {run.compile_s:.1f} s, "
            f"{seconds['human3r_s']:.1f} s in all")
        return run, np.asarray(taken, np.int32)

    def _human_masks(self, tracks: dict[str, np.ndarray], T_world_cam: np.ndarray,
                     hmr_focal: float, hw: tuple[int, int], say: Callable[[str], None],
                     seconds: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """The posed bodies in the world (NaN where not visible) and the human masks.

        Returns:
          (verts_world float[P, T, V, 3], human_mask bool[T, H, W]).
        """
        t = time.perf_counter()
        (H, W), T, P = hw, T_world_cam.shape[0], len(tracks["ids"])
        verts_cam = np.zeros((P, T, self.body_model.v_template.shape[0], 3), np.float32)
        if P:
            verts_cam = np.asarray(body_models.pose_bodies(  # float[P, T, V, 3] camera frame
                self.body_model, tracks["betas"], tracks["orient"], tracks["pose"],
                tracks["transl"]).vertices)
        verts_world = np.einsum("tij,ptvj->ptvi", T_world_cam[:, :3, :3], verts_cam)
        verts_world = verts_world + T_world_cam[None, :, None, :3, 3]
        verts_world = np.where(tracks["valid"][..., None, None], verts_world, np.nan)
        K = geometry.centred_intrinsics(hmr_focal, H, W)
        human_mask = masks.human_masks(verts_world, np.asarray(self.body_model.faces), K,
                                       T_world_cam, H, W, int(self.config.mask_radius_px))
        seconds["masks_s"] = time.perf_counter() - t
        say(f"[frontend] masks: {float(human_mask.mean()):.1%} of the pixels are people "
            f"({seconds['masks_s']:.1f} s)")
        return verts_world, human_mask

    def _matches(self, images, pointmaps, confidence, human_mask, T_world_cam, focal,
                 say: Callable[[str], None], seconds: dict[str, float]):
        """Pairs in the window and their matches, by MASt3R or from the geometry.

        Returns:
          (pairs int32[E, 2], matches float32[E, M, 2, 2], match_conf float[E, M], matcher name).
        """
        t = time.perf_counter()
        T, H, W = pointmaps.shape[:3]
        pairs = np.asarray(sampling.window_pairs(T, int(self.config.window), symmetrize=False),
                           np.int32)
        matcher_name = self._matcher_name()
        if matcher_name == "mast3r":
            if H % 16 or W % 16:
                raise InputError("frontend config", "human3r.scene_stride", "a clip size in "
                                 "multiples of 16 (MASt3R's patches)", f"{H}x{W}")
            matches, match_conf = self.matcher(
                images, pairs, progress=lambda n, e: say(f"[frontend] mast3r: {n}/{e} pairs"))
            matches = matches.astype(np.float32)
        else:
            g = self.config.geometry
            matches, match_conf = geometric_matches.geometric_matches(
                pointmaps, confidence, human_mask, T_world_cam, focal, pairs,
                subsample=int(g.subsample), min_confidence=float(g.min_confidence),
                depth_tolerance=float(g.depth_tolerance))
        seconds["matches_s"] = time.perf_counter() - t
        say(f"[frontend] matches ({matcher_name}): {len(pairs)} pairs, "
            f"{int((match_conf > 0).sum())} matches ({seconds['matches_s']:.1f} s)")
        return pairs, matches, match_conf, matcher_name

    def _matcher_name(self) -> str:
        choice = str(self.config.matcher)
        if choice not in ("auto", "mast3r", "geometry"):
            raise InputError("frontend config", "matcher", "auto, mast3r or geometry", choice)
        if choice == "mast3r" and self.matcher is None:
            raise InputError("frontend config", "matcher", "a MASt3R model (--mast3r=...)", "none")
        if choice == "geometry" or self.matcher is None:
            return "geometry"
        return "mast3r"

    def _contacts(self, verts_world: np.ndarray, times_s: np.ndarray, pointmaps: np.ndarray,
                  confidence: np.ndarray, human_mask: np.ndarray,
                  T_world_cam: np.ndarray) -> np.ndarray:
        """float32[P, T, V]: `contacts.estimate_contacts` per person against the confident scene
        points of the neighbouring keyframes (mapped to the world with Human3R's cameras)."""
        cc = self.config.contacts
        P, T, V = verts_world.shape[:3]
        if P == 0:
            return np.zeros((0, T, V), np.float32)
        s = int(cc.scene_stride)
        keep = ((confidence > float(self.config.geometry.min_confidence)) & ~human_mask)[:, ::s, ::s]
        pts = pointmaps[:, ::s, ::s]
        per_frame = [pts[t][keep[t]].astype(np.float64) @ T_world_cam[t, :3, :3].T
                     + T_world_cam[t, :3, 3] for t in range(T)]
        n = int(cc.neighbours)
        scene = [np.concatenate(per_frame[max(0, t - n):t + n + 1]) for t in range(T)]
        settings = contacts_lib.ContactSettings.from_config(cc)
        regions = contacts_lib.region_vertices(self.body_model.lbs_weights, cc.regions,
                                               settings.anchor_vertices)
        return np.stack([contacts_lib.estimate_contacts(
            verts_world[p], times_s, scene, regions, settings)
            for p in range(P)]).astype(np.float32)


def load_human3r(path: str | None, config, *, random_init: bool,
                 missing_message: str) -> Human3rParams:
    """Human3R weights: a converted `.npz` or an official state dict, or random (`random_init`).

    No path and no `random_init`: InputError whose `expected` is `missing_message` (where the
    official checkpoint is published and how to convert it).
    """
    sizes = human3r_convert.Human3rSizes.from_config(config.human3r)
    if random_init:
        logging.info("[frontend] Human3R: random weights (--random_init, seed %d)", config.seed)
        return human3r_convert.random_params(sizes, int(config.seed))
    if not path:
        raise InputError("--human3r", "(flag)", missing_message, "none")
    if not os.path.exists(path):
        raise InputError(path, "(file)", "an existing Human3R checkpoint", "no such file")
    if human3r_convert.is_converted_file(path):
        return human3r_convert.load_params(path, sizes)
    return human3r_convert.load_human3r(path, sizes)[0]


def load_matcher(path: str | None, config, *, random_init: bool) -> PairMatcher | None:
    """The MASt3R matcher: from a checkpoint (`.pth`/`.safetensors`/`.npz`, a MASt3R or JOSH3R
    state dict, or a converted Flax `.npz`); random weights with `random_init` unless
    `config.matcher == "geometry"` (a random Human3R's geometry rarely yields a single match);
    else None (geometric matches)."""
    if path:
        if not os.path.exists(path):
            raise InputError(path, "(file)", "an existing MASt3R checkpoint", "no such file")
        try:
            model, _ = pretrained.load_mast3r(path, config.mast3r)
        except trainers_convert.ConversionError as e:
            raise InputError(path, "(checkpoint)", "a MASt3R state dict for config.mast3r",
                             " ".join(str(e).splitlines())[:300]) from e
    elif random_init and config.matcher != "geometry":
        logging.info("[frontend] MASt3R: random weights (--random_init, seed %d)", config.seed)
        model = MASt3R(config.mast3r, rngs=nnx.Rngs(int(config.seed)))
    else:
        return None
    return PairMatcher(model, subsample=int(config.match_subsample),
                       batch_size=int(config.match_batch))
