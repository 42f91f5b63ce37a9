"""Keyframe quantities to the world frame at every video frame (pure, jittable pieces).

`josh_jax.result.assemble_result` runs these: the keyframe cameras are re-based on the first one
and interpolated to every video frame (`cameras_and_scene`), each keyframe's depth becomes world
points, and each track's camera-frame SMPL parameters move to the world frame by pelvis-offset
conjugation before they are interpolated and posed (`tracks_to_world`; `docs/method.md` (9.2)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

import body_models
from josh_jax import geometry as geo
from josh_jax import interpolation


def camera_to_world_smpl(
    T_world_cam: Float[Array, "4 4"],
    global_orient_cam: Float[Array, "3 3"],
    transl_cam: Float[Array, " 3"],
    pelvis_rest: Float[Array, " 3"],
) -> tuple[Float[Array, "3 3"], Float[Array, " 3"]]:
    """SMPL root parameters from camera frame to world (pelvis-offset conjugation).

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


def track_to_world(body_model, T_world_cam_key, lo, hi, alpha, R_cam, pose, betas, t_cam, valid):
    """One track: keyframe camera-frame SMPL -> world -> every video frame, posed.

    Args:
      body_model: the body model.
      T_world_cam_key: float[T, 4, 4] keyframe cameras.
      lo, hi, alpha: `interpolation.brackets(keyframe_index, frame_index)` (F queries).
      R_cam: float[T, 3, 3] root rotations (camera frame); pose: float[T, J-1, 3, 3];
      betas: float[T, B]; t_cam: float[T, 3] camera-frame transl; valid: bool[T].

    Returns:
      (global_orient [F,3,3], body_pose [F,J-1,3,3], betas [F,B], transl [F,3], valid [F],
      joints [F,J,3], vertices [F,V,3]), world frame; identity / zeros where invalid.
    """
    pelvis = jax.vmap(lambda b: body_models.rest_joints(body_model, b)[0])(betas)
    R_w, t_w = jax.vmap(camera_to_world_smpl)(T_world_cam_key, R_cam, t_cam, pelvis)
    R_f = interpolation.slerp_rotations(R_w, lo, hi, alpha)
    pose_f = interpolation.slerp_rotations(pose, lo, hi, alpha)
    t_f = interpolation.lerp(t_w, lo, hi, alpha)
    betas_f = interpolation.lerp(betas, lo, hi, alpha)
    valid_f = interpolation.interpolated_valid(valid, lo, hi, alpha)
    # Invalid frames: identity / zero parameters, so that the body is finite but flagged.
    eye = jnp.eye(3, dtype=R_f.dtype)
    R_f = jnp.where(valid_f[:, None, None], R_f, eye)
    pose_f = jnp.where(valid_f[:, None, None, None], pose_f, eye)
    t_f = jnp.where(valid_f[:, None], t_f, 0.0)
    betas_f = jnp.where(valid_f[:, None], betas_f, 0.0)
    out = body_models.pose_bodies(body_model, betas_f, R_f, pose_f, t_f)
    joints = jnp.where(valid_f[:, None, None], out.joints, 0.0)
    verts = jnp.where(valid_f[:, None, None], out.vertices, 0.0)
    return R_f, pose_f, betas_f, t_f, valid_f, joints, verts


@functools.partial(jax.jit, static_argnames=("stride", "normalize_world"))
def cameras_and_scene(T_world_cam_key, K, depth_key, t_keys, t_frames, *, stride: int,
                      normalize_world: bool):
    """Keyframe cameras (re-based on the first one), cameras at every frame, dense points.

    One jitted program (eager op-by-op dispatch of these small ops costs seconds on CPU).

    Args:
      T_world_cam_key: float32[T, 4, 4] keyframe camera-to-world.
      K: float32[T, 3, 3] keyframe intrinsics.
      depth_key: float32[T, H, W] keyframe camera z.
      t_keys: float32[T] keyframe video frame numbers; t_frames: float32[F] every video frame.
      stride: pixel step of the scene grid.
      normalize_world: re-base the world on the first keyframe camera.

    Returns:
      (T_world_cam_key [T,4,4], T_world_cam [F,4,4], K [F,3,3], points [T,h,w,3], lo, hi, alpha),
      lo / hi / alpha the brackets of every video frame between the keyframes.
    """
    if normalize_world:
        T_world_cam_key = geo.se3_inverse(T_world_cam_key[0])[None] @ T_world_cam_key
    lo, hi, alpha = interpolation.brackets(t_keys, t_frames)
    T_world_cam = geo.se3_interpolate(T_world_cam_key, t_keys, t_frames)
    K_frames = interpolation.lerp(K, lo, hi, alpha)
    points = jax.vmap(lambda T_, K_, d: dense_scene_points(T_, K_, d, stride))(
        T_world_cam_key, K, depth_key)
    return T_world_cam_key, T_world_cam, K_frames, points, lo, hi, alpha


# Module level, so that clips of the same shapes reuse one compiled program.
tracks_to_world = jax.jit(jax.vmap(track_to_world, in_axes=(None,) * 5 + (0,) * 5))
