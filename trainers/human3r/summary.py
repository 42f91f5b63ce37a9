"""The host-side summaries of one Human3R video (`Human3rRun`) -> per-track arrays -> `Result`.

    run = infer.run_frames(params, frames, cfg, body_model)   # fills a Human3rRun
    tracks = track_arrays(run, body_model)                    # [P, T, ...] per person id
    result = to_result(run, body_model, fps=30.0, scene_stride=4, conf_threshold=1.0)

Spec §3.13 (cameras, focal, scene points), §4.9 (bodies).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import body_models
from josh_jax.result import Result, assemble_result


@dataclasses.dataclass
class Human3rRun:
    """Host-side per-frame summaries of one video (T frames).

    T_world_cam: list of float[4,4] chained camera-to-world; focal: list of float; pts3d / conf /
    colors: the scene grid per frame (camera frame); people: track id -> {frame: {field of
    `infer.PERSON_FIELDS`: that person's numpy array}}; image_hw: the CUT3R input size; compile_s /
    run_s: first view (compile) and the other views; fallback_focal: frames whose Weiszfeld
    focal was not positive (replaced by the long side); traces: of the jitted step.
    """

    T_world_cam: list = dataclasses.field(default_factory=list)
    focal: list = dataclasses.field(default_factory=list)
    pts3d: list = dataclasses.field(default_factory=list)
    conf: list = dataclasses.field(default_factory=list)
    colors: list = dataclasses.field(default_factory=list)
    people: dict = dataclasses.field(default_factory=dict)
    image_hw: tuple[int, int] = (0, 0)
    compile_s: float = 0.0
    run_s: float = 0.0
    fallback_focal: int = 0
    traces: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.T_world_cam)



def track_arrays(run: Human3rRun, body_model) -> dict[str, np.ndarray]:
    """Per-track arrays [P, T, ...] (identity / zeros where the person is not visible)."""
    ids = sorted(run.people)
    n_t, n_p = run.num_frames, len(ids)
    nj, nb = body_model.num_joints, body_model.num_betas
    eye = np.eye(3, dtype=np.float32)
    out = {
        "ids": np.asarray(ids, np.int32),
        "valid": np.zeros((n_p, n_t), bool),
        "orient": np.broadcast_to(eye, (n_p, n_t, 3, 3)).copy(),
        "pose": np.broadcast_to(eye, (n_p, n_t, nj - 1, 3, 3)).copy(),
        "betas": np.zeros((n_p, n_t, nb), np.float32),
        "transl": np.zeros((n_p, n_t, 3), np.float32),
        "rotmat": np.broadcast_to(eye, (n_p, n_t, 53, 3, 3)).copy(),
        "expression": np.zeros((n_p, n_t, 10), np.float32),
        "T_cam_head": np.zeros((n_p, n_t, 3), np.float32),
    }
    for p, pid in enumerate(ids):
        for t, o in run.people[pid].items():
            out["valid"][p, t] = True
            out["orient"][p, t], out["pose"][p, t] = o["global_orient"], o["body_pose"]
            out["betas"][p, t], out["transl"][p, t] = o["betas"], o["transl"]
            out["rotmat"][p, t], out["expression"][p, t] = o["rotmat"], o["expression"]
            out["T_cam_head"][p, t] = o["T_cam_head"]
    return out


def to_result(
    run: Human3rRun,
    body_model: body_models.BodyModel,
    *,
    fps: float,
    scene_stride: int,
    conf_threshold: float,
    config: Any = None,
) -> Result:
    """The `Result` of a run: every frame a keyframe, one track per person id, world = frame 0.

    Scene points are the chained camera-to-world applied to `pts3d_in_self_view` (what the demo
    shows), kept where conf_self >= `conf_threshold`; K per frame from the Weiszfeld focal with the
    principal point (W // 2, H // 2) (spec §3.13).
    """
    n_t = run.num_frames
    H, W = run.image_hw
    s = int(scene_stride)
    T_w = np.stack(run.T_world_cam)
    T_w = (np.linalg.inv(T_w[0])[None] @ T_w).astype(np.float32)
    focal = np.asarray(run.focal, np.float32)
    K = np.zeros((n_t, 3, 3), np.float32)
    K[:, 0, 0] = K[:, 1, 1] = focal
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = W // 2, H // 2, 1.0
    K_grid = K.copy()
    K_grid[:, :2] /= s  # the scene grid's pixels: full-resolution pixel = s * grid pixel
    K_grid[:, 2, 2] = 1.0
    pts = np.stack(run.pts3d).astype(np.float32)
    conf = np.stack(run.conf).astype(np.float32)
    tracks = track_arrays(run, body_model)
    diagnostics = {
        "track_ids": tracks["ids"],
        "focal": focal,
        "smplx_rotmat": tracks["rotmat"],
        "smplx_expression": tracks["expression"],
        "smplx_T_cam_head": tracks["T_cam_head"],
        "compile_s": np.float32(run.compile_s),
        "run_s": np.float32(run.run_s),
        "fallback_focal_frames": np.int32(run.fallback_focal),
    }
    result = assemble_result(
        keyframe_index=np.arange(n_t),
        T_world_cam_key=T_w,
        K=K_grid,
        depth_key=pts[..., 2],
        conf_key=conf,
        scene_mask_key=conf >= conf_threshold,
        images=np.stack(run.colors),
        smpl_global_orient_cam=tracks["orient"],
        smpl_body_pose=tracks["pose"],
        smpl_betas=tracks["betas"],
        smpl_transl_cam=tracks["transl"],
        smpl_valid=tracks["valid"],
        body_model=body_model,
        fps=fps,
        scene_stride=1,
        diagnostics=diagnostics,
        config=config,
    )
    h, w = pts.shape[1:3]
    world = np.einsum("tij,tpj->tpi", T_w[:, :3, :3], pts.reshape(n_t, -1, 3)) + T_w[:, None, :3, 3]
    return dataclasses.replace(
        result,
        K=K,
        image_size=(int(H), int(W)),
        scene_stride=s,
        scene_points_world=world.reshape(n_t, h, w, 3).astype(np.float32),
    )
