"""The `Result` of one clip: world-frame cameras, scene points and bodies at every video frame.

A `Result` is what the writers (`josh_jax.io`) and the evaluator (`josh_jax.evaluate`) consume;
nothing downstream reads optimizer internals. It is assembled on the host from keyframe
quantities by `assemble_result` (arrays only; JOSH3R's inference uses it too), and
`make_result(clip, problem, solution, body_model, config, ...)` is the one adapter that reads the
optimizer's `Problem` / `Solution` (duck-typed: this module imports nothing of the optimizer).

World frame: the camera of the first keyframe (`T_world_cam[keyframe 0] = I`), as in the reference
(`docs/method.md`, section 9). Lengths are in the optimizer's units, which the human terms make
metric. The metrics align prediction and ground truth (rigid or similarity), so they do not
depend on it.

Interpolation to every video frame (keyframes are hit exactly):
- cameras: linear translation + slerp rotation (`geometry.se3_interpolate`);
- bodies: the keyframe SMPL parameters are first moved to world (pelvis-offset conjugation,
  `world.camera_to_world_smpl`), then interpolated in world: slerp of the root and of each body
  joint, linear `transl` and `betas`. A video frame of a track is valid iff both bracketing keyframes are
  (or it is a valid keyframe itself). The reference interpolates the camera-frame root instead;
  both agree at the keyframes, and world-frame interpolation does not mix camera motion into the
  body's motion.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from josh_jax import geometry as geo
from josh_jax import quality, world
from josh_jax.errors import format_message

WORLD_CONVENTION = "first_keyframe_camera"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Result:
    """Reconstruction of one clip (F video frames, T keyframes, P tracks, V body vertices).

    Attributes:
      frame_index: int32[F] video frame numbers covered (keyframe 0 .. last keyframe, step 1).
      keyframe_index: int32[T] video frame number of each keyframe (the clip's `frame_index`).
      fps: float32[] video frame rate.
      T_world_cam: float32[F, 4, 4] camera-to-world of every video frame (OpenCV camera).
      K: float32[F, 3, 3] intrinsics of every video frame (pixels of `image_size`).
      scene_points_world: float32[T, h, w, 3] dense points of each keyframe (pixel grid with step
        `scene_stride`), world frame.
      scene_colors: uint8[T, h, w, 3] RGB of those pixels (grey when the clip has no images).
      scene_conf: float32[T, h, w] confidence of those points.
      scene_mask: bool[T, h, w] points to keep (confident scene pixels, positive depth).
      smpl_global_orient: float32[P, F, 3, 3] root rotation in world.
      smpl_body_pose: float32[P, F, J-1, 3, 3] body joint rotations.
      smpl_betas: float32[P, F, B] shape coefficients.
      smpl_transl: float32[P, F, 3] world `transl` (smplx semantics).
      smpl_valid: bool[P, F] the track exists at this frame (all body arrays are zero elsewhere).
      joints_world: float32[P, F, J, 3] posed kinematic joints (the 24 SMPL joints), world.
      vertices_world: float32[P, F, V, 3] posed vertices, world.
      faces: int32[Nf, 3] body mesh faces.
      diagnostics: dict of arrays from the optimizer (loss curves per term, NaN flag, ...).
      image_size: (H, W) of the images the intrinsics refer to (static).
      scene_stride: pixel step of the scene grid (static).
      body_model: name of the body model (static).
      world_convention: how the world frame was chosen (static).
      config_json: the run's configuration as JSON (static; "{}" when unknown).
    """

    frame_index: Array
    keyframe_index: Array
    fps: Array
    T_world_cam: Array
    K: Array
    scene_points_world: Array
    scene_colors: Array
    scene_conf: Array
    scene_mask: Array
    smpl_global_orient: Array
    smpl_body_pose: Array
    smpl_betas: Array
    smpl_transl: Array
    smpl_valid: Array
    joints_world: Array
    vertices_world: Array
    faces: Array
    diagnostics: dict[str, Array]
    image_size: tuple[int, int] = dataclasses.field(metadata=dict(static=True))
    scene_stride: int = dataclasses.field(default=1, metadata=dict(static=True))
    body_model: str = dataclasses.field(default="", metadata=dict(static=True))
    world_convention: str = dataclasses.field(default=WORLD_CONVENTION, metadata=dict(static=True))
    config_json: str = dataclasses.field(default="{}", metadata=dict(static=True))

    @property
    def num_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def num_tracks(self) -> int:
        return int(self.smpl_valid.shape[0])

    @property
    def keyframe_positions(self) -> np.ndarray:
        """int[T] row of each keyframe in the per-frame arrays."""
        return np.asarray(self.keyframe_index) - int(np.asarray(self.frame_index)[0])


# ---------------------------------------------------------------------------------------------
# Assembly (host side: the number of video frames is data dependent)
# ---------------------------------------------------------------------------------------------


def assemble_result(
    *,
    keyframe_index: np.ndarray,
    T_world_cam_key: np.ndarray,
    K: np.ndarray,
    depth_key: np.ndarray,
    conf_key: np.ndarray,
    scene_mask_key: np.ndarray | None,
    images: np.ndarray | None,
    smpl_global_orient_cam: np.ndarray,
    smpl_body_pose: np.ndarray,
    smpl_betas: np.ndarray,
    smpl_transl_cam: np.ndarray,
    smpl_valid: np.ndarray,
    body_model: Any,
    fps: float = 30.0,
    scene_stride: int = 1,
    normalize_world: bool = True,
    diagnostics: dict[str, Any] | None = None,
    config: Any = None,
) -> Result:
    """Build a `Result` from keyframe quantities (T keyframes, P tracks).

    Args:
      keyframe_index: int[T] strictly increasing video frame numbers of the keyframes.
      T_world_cam_key: float[T, 4, 4] keyframe camera-to-world (any world frame).
      K: float[3, 3] shared or float[T, 3, 3] per-keyframe intrinsics.
      depth_key: float[T, H, W] camera-frame z of every pixel, in the same units as the cameras.
      conf_key: float[T, H, W] point confidence.
      scene_mask_key: bool[T, H, W] pixels that belong to the scene, or None for `depth > 0`.
      images: uint8[T, H, W, 3] keyframe colours or None.
      smpl_global_orient_cam: float[P, T, 3, 3] root rotation in each keyframe's camera frame.
      smpl_body_pose: float[P, T, J-1, 3, 3] body joint rotations.
      smpl_betas: float[P, T, B] or float[P, B] shape coefficients.
      smpl_transl_cam: float[P, T, 3] smplx `transl` in each keyframe's camera frame.
      smpl_valid: bool[P, T] the track is optimized at that keyframe.
      body_model: `body_models.BodyModel` the parameters belong to.
      fps: video frame rate.
      scene_stride: pixel step of the stored scene grid.
      normalize_world: re-express everything so that the first keyframe camera is the world.
      diagnostics: optimizer diagnostics (arrays), stored as they are.
      config: the run configuration (ConfigDict / dict), stored as JSON.

    Returns:
      The `Result`; all body arrays are zero where `smpl_valid` is False.
    """
    # Long only by its keyword signature, this docstring and the Result's fields: the body is
    # three named steps (_checked, world.cameras_and_scene + _scene_pixels, _tracks).
    keyframe_index, T_world_cam_key, K, depth_key, smpl_valid, smpl_betas = _checked(
        keyframe_index, T_world_cam_key, K, depth_key, smpl_valid, smpl_betas)
    H, W = depth_key.shape[1:]
    stride = int(scene_stride)

    # Cameras at every video frame and the dense scene, world = first keyframe camera.
    frame_index = np.arange(keyframe_index[0], keyframe_index[-1] + 1, dtype=np.int32)
    T_world_cam_key, T_world_cam, K_frames, points, lo, hi, alpha = world.cameras_and_scene(
        *jax.device_put((T_world_cam_key, K, depth_key)),  # not jnp.asarray: no eager compiles
        np.asarray(keyframe_index, np.float32), np.asarray(frame_index, np.float32),
        stride=stride, normalize_world=bool(normalize_world))
    conf, mask, colors = _scene_pixels(depth_key, conf_key, scene_mask_key, images, stride)

    # Bodies: keyframe params to world, then interpolated to every video frame.
    R_f, pose_f, betas_f, t_f, valid_f, joints, verts = _tracks(
        body_model, T_world_cam_key, lo, hi, alpha, smpl_global_orient_cam, smpl_body_pose,
        smpl_betas, smpl_transl_cam, smpl_valid, num_frames=frame_index.shape[0])

    return Result(
        frame_index=frame_index,
        keyframe_index=keyframe_index.astype(np.int32),
        fps=np.float32(fps),
        T_world_cam=np.asarray(T_world_cam, np.float32),
        K=np.asarray(K_frames, np.float32),
        scene_points_world=np.asarray(points, np.float32),
        scene_colors=colors,
        scene_conf=conf,
        scene_mask=mask,
        smpl_global_orient=R_f,
        smpl_body_pose=pose_f,
        smpl_betas=betas_f,
        smpl_transl=t_f,
        smpl_valid=valid_f,
        joints_world=joints,
        vertices_world=verts,
        faces=np.asarray(body_model.faces, np.int32),
        diagnostics={k: np.asarray(v) for k, v in (diagnostics or {}).items()},
        image_size=(int(H), int(W)),
        scene_stride=stride,
        body_model=str(getattr(body_model, "name", "")),
        world_convention=WORLD_CONVENTION if normalize_world else "optimizer_world",
        config_json=config_to_json(config),
    )


def _check(cond: bool, field: str, expected: str, found: Any) -> None:
    if not cond:
        raise ValueError(format_message("assemble_result", field, expected, found))


def _checked(keyframe_index, T_world_cam_key, K, depth_key, smpl_valid, smpl_betas):
    """The keyframe inputs as numpy arrays of checked shapes (K and betas broadcast over T)."""
    keyframe_index = np.asarray(keyframe_index, np.int64)
    T = keyframe_index.shape[0]
    _check(keyframe_index.ndim == 1 and T >= 1, "keyframe_index", "int[T], T >= 1",
           keyframe_index.shape)
    _check(bool(np.all(np.diff(keyframe_index) > 0)), "keyframe_index", "strictly increasing",
           keyframe_index.tolist())
    T_world_cam_key = np.asarray(T_world_cam_key, np.float32)
    _check(T_world_cam_key.shape == (T, 4, 4), "T_world_cam_key", f"({T}, 4, 4)",
           T_world_cam_key.shape)
    K = np.asarray(K, np.float32)
    if K.ndim == 2:
        K = np.broadcast_to(K, (T, 3, 3))
    _check(K.shape == (T, 3, 3), "K", f"(3, 3) or ({T}, 3, 3)", K.shape)
    depth_key = np.asarray(depth_key, np.float32)
    _check(depth_key.ndim == 3 and depth_key.shape[0] == T, "depth_key", f"({T}, H, W)",
           depth_key.shape)
    P = int(np.asarray(smpl_valid).shape[0])
    smpl_valid = np.asarray(smpl_valid, bool)
    _check(smpl_valid.shape == (P, T), "smpl_valid", f"({P}, {T})", smpl_valid.shape)
    smpl_betas = np.asarray(smpl_betas, np.float32)
    if smpl_betas.ndim == 2:
        smpl_betas = np.broadcast_to(smpl_betas[:, None], (P, T, smpl_betas.shape[-1]))
    _check(smpl_betas.shape[:2] == (P, T), "smpl_betas", f"({P}, {T}, B) or ({P}, B)",
           smpl_betas.shape)
    return keyframe_index, T_world_cam_key, K, depth_key, smpl_valid, smpl_betas


def _scene_pixels(depth_key, conf_key, scene_mask_key, images, stride: int):
    """(conf float32[T,h,w], mask bool[T,h,w], colours uint8[T,h,w,3]) on the scene grid."""
    conf = np.asarray(conf_key, np.float32)[:, ::stride, ::stride]
    depth_sub = depth_key[:, ::stride, ::stride]
    mask = depth_sub > 0
    if scene_mask_key is not None:
        mask &= np.asarray(scene_mask_key, bool)[:, ::stride, ::stride]
    if images is None:
        colors = np.full(depth_sub.shape + (3,), 160, np.uint8)
    else:
        colors = np.asarray(images, np.uint8)[:, ::stride, ::stride]
    return conf, mask, colors


def _tracks(body_model, T_world_cam_key, lo, hi, alpha, R_cam, pose, betas, t_cam, valid, *,
            num_frames: int):
    """Every track at every video frame, world frame (`world.tracks_to_world`), as numpy."""
    P, F = valid.shape[0], num_frames
    if P > 0:
        outs = world.tracks_to_world(
            body_model, T_world_cam_key, lo, hi, alpha,
            np.asarray(R_cam, np.float32), np.asarray(pose, np.float32),
            jax.device_put(betas), np.asarray(t_cam, np.float32), jax.device_put(valid))
        return tuple(np.asarray(o) for o in outs)
    V = int(np.asarray(body_model.v_template).shape[0])
    J = int(np.asarray(body_model.J_regressor).shape[0])
    B = int(betas.shape[-1]) if betas.ndim == 3 else 10
    return (np.zeros((0, F, 3, 3), np.float32), np.zeros((0, F, J - 1, 3, 3), np.float32),
            np.zeros((0, F, B), np.float32), np.zeros((0, F, 3), np.float32),
            np.zeros((0, F), bool), np.zeros((0, F, J, 3), np.float32),
            np.zeros((0, F, V, 3), np.float32))


def config_to_json(config: Any) -> str:
    """The configuration as a JSON string ("{}" for None)."""
    if config is None:
        return "{}"
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return json.dumps(config, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------
# The adapter from the optimizer (the only code that reads Problem / Solution internals)
# ---------------------------------------------------------------------------------------------


def dense_depth(anchor_depth: np.ndarray, canon2: np.ndarray, f_w: np.ndarray, focal: float,
                subsample: int) -> np.ndarray:
    """Dense camera-frame z of every pixel from the optimized anchor depths (`docs/method.md` (9.1)).

    z_q = D[a(q)] * (1 + (canon2_q - 1) * f_w / f), a(q) = (y // s) * (W / s) + x // s.

    Args:
      anchor_depth: float[T, A] optimized anchor (block centre) depths.
      canon2: float[T, H, W] block-relative depth of every pixel (1 at the block centres).
      f_w: float[T] per-image focal the relative depths refer to.
      focal: final focal.
      subsample: anchor grid step s.

    Returns:
      float32[T, H, W].
    """
    T, H, W = canon2.shape
    s = int(subsample)
    D = np.asarray(anchor_depth, np.float32)[:T].reshape(T, H // s, W // s)
    D = np.repeat(np.repeat(D, s, axis=1), s, axis=2)
    ratio = np.asarray(f_w, np.float32)[:T, None, None] / np.float32(focal)
    return (D * (1 + (np.asarray(canon2, np.float32) - 1) * ratio)).astype(np.float32)


def make_result(clip, problem, solution, body_model, config, *, info,
                curve_columns: Sequence[str]) -> Result:
    """Result of one clip from the optimizer's `Problem` and `Solution` (unbatched).

    Args:
      clip: the `Clip` that was optimized (frame numbers, images, sizes).
      problem: its `Problem` (reads the principal point and the per-image Weiszfeld focals).
      solution: the optimizer's `Solution` of that problem (no leading clip axis).
      body_model: the full body model of the clip's SMPL parameters.
      config: the JOSH config (`reference_compat`, `output_scene_stride`; stored in the result).
      info: the `PrepareInfo` of `prepare(..., return_info=True)` (its canonical views).
      curve_columns: names of the loss-curve columns (`josh_jax.optimize.CURVE_COLUMNS`), stored
        with the curves.

    Returns:
      The Result (world = first keyframe camera).
    """
    T, P = clip.num_frames, clip.num_people
    sol = jax.tree.map(np.asarray, solution)
    focal = float(sol.focal)
    pp = problem.cameras.pp
    cx, cy = (float(c) for c in np.asarray(pp))
    K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], np.float32)  # host: no jit
    views = info.views
    # The relief refers to the per-image Weiszfeld focals (JOSH) or follows the focal unchanged
    # (focal_depth_model "proportional": f_w = f).
    f_w = np.asarray(problem.cameras.weiszfeld_focal)
    if config.focal_depth_model == "proportional":
        f_w = np.full_like(f_w, focal)
    depth = dense_depth(sol.anchor_depth, views.canon2, f_w, focal, views.subsample)
    body_pose = sol.smpl_body_pose[:P, :T]
    if config.reference_compat:
        # The reference optimizes raw 3x3 matrices; outputs are proper rotations.
        body_pose = np.asarray(geo.project_to_so3(jnp.asarray(body_pose)))
    diagnostics = {
        "curve_stage1": sol.diagnostics.curve_stage1,
        "curve_stage2": sol.diagnostics.curve_stage2,
        "final_terms": sol.diagnostics.final_terms,
        "nan": sol.diagnostics.nan,
        "diverged": sol.diagnostics.diverged,
        "iters_run": sol.diagnostics.iters_run,
        "focal": np.float32(focal),
        "curve_columns": np.asarray(curve_columns),
    }
    diagnostics.update(quality.result_diagnostics(clip, sol.diagnostics, config))
    return assemble_result(
        keyframe_index=np.asarray(clip.frame_index),
        T_world_cam_key=sol.T_world_cam[:T],
        K=K,
        depth_key=depth,
        conf_key=views.cconf,
        scene_mask_key=views.scene_mask,
        images=clip.images,
        smpl_global_orient_cam=sol.smpl_global_orient[:P, :T],
        smpl_body_pose=body_pose,
        smpl_betas=sol.smpl_betas[:P],
        smpl_transl_cam=sol.smpl_transl[:P, :T],
        smpl_valid=np.asarray(sol.smpl_valid[:P, :T], bool) & np.asarray(clip.smpl_valid, bool),
        body_model=body_model,
        fps=float(clip.fps),
        scene_stride=int(config.output_scene_stride),
        diagnostics=diagnostics,
        config=config,
    )
