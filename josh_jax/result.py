"""The `Result` of one clip: world-frame cameras, scene points and bodies at every video frame.

A `Result` is what the writers (`josh_jax.export`) and the evaluator (`josh_jax.pipeline.evaluate`)
consume; nothing downstream reads optimizer internals. It is assembled on the host from keyframe
quantities by `assemble_result` (arrays only; the contract tested in `tests/test_result.py`), and
`make_result(clip, problem, solution, body_model)` is the one adapter that reads the optimizer's
`Problem` / `Solution`.

World frame: the camera of the first keyframe (`T_world_cam[keyframe 0] = I`), as in the reference
(spec section 2.13). Lengths are in the optimizer's units, which the human terms make metric. The
metrics align prediction and ground truth (rigid or similarity), so they do not depend on it.

Interpolation to every video frame (keyframes are hit exactly):
- cameras: linear translation + slerp rotation (`geometry.se3_interpolate`);
- bodies: the keyframe SMPL parameters are first moved to world (pelvis-offset conjugation,
  `camera_to_world_smpl`), then interpolated in world: slerp of the root and of each body joint,
  linear `transl` and `betas`. A video frame of a track is valid iff both bracketing keyframes are
  (or it is a valid keyframe itself). The reference interpolates the camera-frame root instead;
  both agree at the keyframes, and world-frame interpolation does not mix camera motion into the
  body's motion.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import body_models
from josh_jax import geometry as geo

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
# Pieces (pure, jittable, one clip / one body; tested one by one)
# ---------------------------------------------------------------------------------------------


def interpolation_brackets(
    t_keys: Float[Array, " K"], t_query: Float[Array, " Q"]
) -> tuple[Array, Array, Array]:
    """Bracketing keys and weights for piecewise-linear interpolation (clamped at the ends).

    Args:
      t_keys: float[K] strictly increasing key times.
      t_query: float[Q] query times.

    Returns:
      (lo int[Q], hi int[Q], alpha float[Q]) with value = (1 - alpha) key[lo] + alpha key[hi];
      alpha == 0 exactly at a key (lo = that key) and at the clamped left end.
    """
    t_keys = jnp.asarray(t_keys, jnp.float32)
    t_query = jnp.clip(jnp.asarray(t_query, jnp.float32), t_keys[0], t_keys[-1])
    num_keys = t_keys.shape[0]
    if num_keys == 1:
        zeros = jnp.zeros(t_query.shape, jnp.int32)
        return zeros, zeros, jnp.zeros(t_query.shape, jnp.float32)
    hi = jnp.clip(jnp.searchsorted(t_keys, t_query, side="right"), 1, num_keys - 1)
    lo = hi - 1
    alpha = (t_query - t_keys[lo]) / (t_keys[hi] - t_keys[lo])
    return lo, hi, alpha


def slerp_rotations(
    R_keys: Float[Array, "K ... 3 3"], lo: Array, hi: Array, alpha: Float[Array, " Q"]
) -> Float[Array, "Q ... 3 3"]:
    """Slerp between rotation matrices R_keys[lo] and R_keys[hi]; exact at alpha in {0, 1}."""
    q = geo.matrix_to_quat(R_keys)
    extra = (1,) * (R_keys.ndim - 3)
    a = alpha.reshape(alpha.shape + extra)
    R = geo.quat_to_matrix(geo.quat_slerp(q[lo], q[hi], a))
    a = a[..., None, None]
    R = jnp.where(a == 0, R_keys[lo], R)
    return jnp.where(a == 1, R_keys[hi], R)


def lerp(x_keys: Float[Array, "K ..."], lo: Array, hi: Array, alpha: Float[Array, " Q"]) -> Array:
    """Linear interpolation between x_keys[lo] and x_keys[hi]."""
    a = alpha.reshape(alpha.shape + (1,) * (x_keys.ndim - 1))
    return (1 - a) * x_keys[lo] + a * x_keys[hi]


def interpolated_valid(valid_keys: Array, lo: Array, hi: Array, alpha: Array) -> Array:
    """bool[Q]: a query is valid iff the keys it depends on are (both inside a gap)."""
    both = valid_keys[lo] & valid_keys[hi]
    return jnp.where(alpha == 0, valid_keys[lo], jnp.where(alpha == 1, valid_keys[hi], both))


def camera_to_world_smpl(
    T_world_cam: Float[Array, "4 4"],
    global_orient_cam: Float[Array, "3 3"],
    transl_cam: Float[Array, " 3"],
    pelvis_rest: Float[Array, " 3"],
) -> tuple[Float[Array, "3 3"], Float[Array, " 3"]]:
    """SMPL root parameters from camera frame to world (pelvis-offset conjugation, spec 2.13).

    smplx poses about the rest pelvis J0: v = R (v_rest - J0) + J0 + transl. Moving a camera-frame
    body by T_world_cam = [R_wc | t_wc] is the conjugated transform C' = T_off^-1 T_world_cam T_off
    (T_off = [I | J0]) applied to the root pose [R | transl]:
      R_world = R_wc R,   transl_world = R_wc (transl + J0) + t_wc - J0.

    Args:
      T_world_cam: float[4, 4] camera-to-world.
      global_orient_cam: float[3, 3] root rotation in the camera frame.
      transl_cam: float[3] smplx `transl` in the camera frame.
      pelvis_rest: float[3] J0(betas), the rest-pose pelvis of the shaped body.

    Returns:
      (global_orient_world float[3, 3], transl_world float[3]).
    """
    R_wc, t_wc = T_world_cam[:3, :3], T_world_cam[:3, 3]
    return R_wc @ global_orient_cam, R_wc @ (transl_cam + pelvis_rest) + t_wc - pelvis_rest


def dense_scene_points(
    T_world_cam: Float[Array, "4 4"],
    K: Float[Array, "3 3"],
    depth: Float[Array, "H W"],
    stride: int = 1,
) -> Float[Array, "h w 3"]:
    """World points of the pixel grid [::stride, ::stride] of one depth map (camera z)."""
    H, W = depth.shape
    uv = geo.pixel_grid(H, W)[::stride, ::stride]
    x_cam = geo.unproject(K, uv, depth[::stride, ::stride])
    h, w = x_cam.shape[:2]
    return geo.se3_apply(T_world_cam, x_cam.reshape(h * w, 3)).reshape(h, w, 3)


# ---------------------------------------------------------------------------------------------
# Assembly (host side: the number of video frames is data dependent)
# ---------------------------------------------------------------------------------------------


def track_to_world(body_model, T_world_cam_key, lo, hi, alpha, R_cam, pose, betas, t_cam, valid):
    """One track: keyframe camera-frame SMPL -> world -> every video frame, posed.

    Args:
      body_model: the body model.
      T_world_cam_key: float[T, 4, 4] keyframe cameras.
      lo, hi, alpha: `interpolation_brackets(keyframe_index, frame_index)` (F queries).
      R_cam: float[T, 3, 3] root rotations (camera frame); pose: float[T, J-1, 3, 3];
      betas: float[T, B]; t_cam: float[T, 3] camera-frame transl; valid: bool[T].

    Returns:
      (global_orient [F,3,3], body_pose [F,J-1,3,3], betas [F,B], transl [F,3], valid [F],
      joints [F,J,3], vertices [F,V,3]), world frame; identity / zeros where invalid.
    """
    pelvis = jax.vmap(lambda b: body_models.rest_joints(body_model, b)[0])(betas)
    R_w, t_w = jax.vmap(camera_to_world_smpl)(T_world_cam_key, R_cam, t_cam, pelvis)
    R_f = slerp_rotations(R_w, lo, hi, alpha)
    pose_f = slerp_rotations(pose, lo, hi, alpha)
    t_f = lerp(t_w, lo, hi, alpha)
    betas_f = lerp(betas, lo, hi, alpha)
    valid_f = interpolated_valid(valid, lo, hi, alpha)
    # Invalid frames: identity / zero parameters, so that the body is finite but flagged.
    eye = jnp.eye(3, dtype=R_f.dtype)
    R_f = jnp.where(valid_f[:, None, None], R_f, eye)
    pose_f = jnp.where(valid_f[:, None, None, None], pose_f, eye)
    t_f = jnp.where(valid_f[:, None], t_f, 0.0)
    betas_f = jnp.where(valid_f[:, None], betas_f, 0.0)
    out = jax.vmap(lambda b, R, p, t: body_models.lbs(body_model, b, R, p, t))(
        betas_f, R_f, pose_f, t_f)
    joints = jnp.where(valid_f[:, None, None], out.joints, 0.0)
    verts = jnp.where(valid_f[:, None, None], out.vertices, 0.0)
    return R_f, pose_f, betas_f, t_f, valid_f, joints, verts


@functools.partial(jax.jit, static_argnames=("stride", "normalize_world"))
def _cameras_and_scene(T_world_cam_key, K, depth_key, t_keys, t_frames, *, stride: int,
                       normalize_world: bool):
    """Keyframe cameras (re-based on the first one), cameras at every frame, dense points.

    One jitted program (eager op-by-op dispatch of these small ops costs seconds on CPU).
    """
    if normalize_world:
        T_world_cam_key = geo.se3_inverse(T_world_cam_key[0])[None] @ T_world_cam_key
    lo, hi, alpha = interpolation_brackets(t_keys, t_frames)
    T_world_cam = geo.se3_interpolate(T_world_cam_key, t_keys, t_frames)
    K_frames = lerp(K, lo, hi, alpha)
    points = jax.vmap(lambda T_, K_, d: dense_scene_points(T_, K_, d, stride))(
        T_world_cam_key, K, depth_key)
    return T_world_cam_key, T_world_cam, K_frames, points, lo, hi, alpha


# Module level, so that clips of the same shapes reuse one compiled program.
_tracks_to_world = jax.jit(jax.vmap(track_to_world, in_axes=(None,) * 5 + (0,) * 5))


def _check(cond: bool, field: str, expected: str, found: Any) -> None:
    if not cond:
        raise ValueError(f"assemble_result: field '{field}': expected {expected}, found {found}")


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
    H, W = depth_key.shape[1:]
    P = int(np.asarray(smpl_valid).shape[0])
    smpl_valid = np.asarray(smpl_valid, bool)
    _check(smpl_valid.shape == (P, T), "smpl_valid", f"({P}, {T})", smpl_valid.shape)
    smpl_betas = np.asarray(smpl_betas, np.float32)
    if smpl_betas.ndim == 2:
        smpl_betas = np.broadcast_to(smpl_betas[:, None], (P, T, smpl_betas.shape[-1]))
    _check(smpl_betas.shape[:2] == (P, T), "smpl_betas", f"({P}, {T}, B) or ({P}, B)",
           smpl_betas.shape)

    # World = first keyframe camera.
    frame_index = np.arange(keyframe_index[0], keyframe_index[-1] + 1, dtype=np.int32)
    F = frame_index.shape[0]
    stride = int(scene_stride)
    T_world_cam_key, T_world_cam, K_frames, points, lo, hi, alpha = _cameras_and_scene(
        jnp.asarray(T_world_cam_key), jnp.asarray(K), jnp.asarray(depth_key),
        jnp.asarray(keyframe_index, jnp.float32), jnp.asarray(frame_index, jnp.float32),
        stride=stride, normalize_world=bool(normalize_world))
    conf = np.asarray(conf_key, np.float32)[:, ::stride, ::stride]
    depth_sub = depth_key[:, ::stride, ::stride]
    mask = depth_sub > 0
    if scene_mask_key is not None:
        mask &= np.asarray(scene_mask_key, bool)[:, ::stride, ::stride]
    if images is None:
        colors = np.full(depth_sub.shape + (3,), 160, np.uint8)
    else:
        colors = np.asarray(images, np.uint8)[:, ::stride, ::stride]

    # Bodies: keyframe params to world, then interpolate to every video frame.
    if P > 0:
        outs = _tracks_to_world(
            body_model, T_world_cam_key, lo, hi, alpha,
            jnp.asarray(smpl_global_orient_cam, jnp.float32),
            jnp.asarray(smpl_body_pose, jnp.float32), jnp.asarray(smpl_betas),
            jnp.asarray(smpl_transl_cam, jnp.float32), jnp.asarray(smpl_valid))
        R_f, pose_f, betas_f, t_f, valid_f, joints, verts = (np.asarray(o) for o in outs)
    else:
        V = int(np.asarray(body_model.v_template).shape[0])
        J = int(np.asarray(body_model.J_regressor).shape[0])
        B = int(smpl_betas.shape[-1]) if smpl_betas.ndim == 3 else 10
        R_f = np.zeros((0, F, 3, 3), np.float32)
        pose_f = np.zeros((0, F, J - 1, 3, 3), np.float32)
        betas_f = np.zeros((0, F, B), np.float32)
        t_f = np.zeros((0, F, 3), np.float32)
        valid_f = np.zeros((0, F), bool)
        joints = np.zeros((0, F, J, 3), np.float32)
        verts = np.zeros((0, F, V, 3), np.float32)

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
    """Dense camera-frame z of every pixel from the optimized anchor depths (spec 2.12).

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


def make_result(clip, problem, solution, body_model, config=None, *, info=None,
                scene_stride: int | None = None) -> Result:
    """Result of one clip from the optimizer's `Problem` and `Solution` (unbatched).

    Args:
      clip: the `Clip` that was optimized (frame numbers, images, sizes).
      problem: its `josh_jax.prepare.Problem`.
      solution: the `josh_jax.optimize.Solution` of that problem (no leading clip axis).
      body_model: the full body model of the clip's SMPL parameters.
      config: the JOSH config (stored in the result; `output_scene_stride` read when present).
      info: the `PrepareInfo` of `prepare(..., return_info=True)`; recomputed when None.
      scene_stride: pixel step of the stored scene grid (default: config or 2).

    Returns:
      The Result (world = first keyframe camera).
    """
    from josh_jax.prepare import anchors  # noqa: PLC0415

    T = clip.num_frames
    P = clip.num_people
    H, W = clip.image_size
    sol = jax.tree.map(np.asarray, solution)
    prob_pp = np.asarray(problem.cameras.pp, np.float32)
    focal = float(sol.focal)
    K = np.array([[focal, 0, prob_pp[0]], [0, focal, prob_pp[1]], [0, 0, 1]], np.float32)

    if info is not None:
        views = info.views
    else:
        views = anchors.canonical_views(
            clip.pointmaps, clip.confidence, clip.human_mask,
            subsample=int(_cfg(config, "subsample", 8)),
            conf_offset=float(_cfg(config, "conf_offset", 0.999)),
            conf_thres=float(_cfg(config, "conf_thres", 0.1)))
    depth = dense_depth(sol.anchor_depth, views.canon2, np.asarray(problem.cameras.weiszfeld_focal),
                        focal, views.subsample)

    body_pose = sol.smpl_body_pose[:P, :T]
    if bool(_cfg(config, "reference_compat", False)):
        # The reference optimizes raw 3x3 matrices; outputs are proper rotations.
        body_pose = np.asarray(geo.project_to_so3(jnp.asarray(body_pose)))
    if scene_stride is None:
        scene_stride = int(_cfg(config, "output_scene_stride", 2))
    diagnostics = {
        "curve_stage1": sol.diagnostics.curve_stage1,
        "curve_stage2": sol.diagnostics.curve_stage2,
        "final_terms": sol.diagnostics.final_terms,
        "nan": sol.diagnostics.nan,
        "diverged": sol.diagnostics.diverged,
        "iters_run": sol.diagnostics.iters_run,
        "focal": np.float32(focal),
    }
    try:
        from josh_jax.optimize import CURVE_COLUMNS  # noqa: PLC0415

        diagnostics["curve_columns"] = np.asarray(CURVE_COLUMNS)
    except ImportError:  # pragma: no cover
        pass
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
        scene_stride=scene_stride,
        diagnostics=diagnostics,
        config=config,
    )


def _cfg(config, name: str, default):
    if config is None:
        return default
    try:
        return config[name] if name in config else default
    except TypeError:
        return getattr(config, name, default)
