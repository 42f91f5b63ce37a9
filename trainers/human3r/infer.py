"""Online Human3R over a streamed video -> per-frame summaries (`summary.Human3rRun`).

Spec §3.1, §3.12-3.13, §4.9-4.11.

    params = convert.load_params(path, sizes)            # or convert.random_params(sizes)
    run = run_frames(params, iter_frames(video), InferConfig.from_config(config), body_model)
    result = summary.to_result(run, body_model, fps=30.0, ...)   # every writer works on it

One jitted program (`FrameStep`) runs a whole video: detection, CUT3R with human prompts, the
SMPL-X head, tracking, and the conversion of each person's SMPL-X output to `body_model`'s
parameters (compiled once; `FrameStep.traces` counts traces). Frames are read one at a time and
only small per-frame summaries are kept on the host (cameras, focal, the scene grid at
`scene_stride`, per-person parameters), never the decoded video.

Long videos follow the demo (§3.12): frame i is a reset view when (i + 1) % reset_interval == 0;
after it the same frame is fed again without reset (the overlap view, outputs dropped, state and
tracking memory carried), and cameras are chained chunk to chunk on the host.

Bodies: Human3R predicts SMPL-X (53 rotations: root, 21 body, 15 + 15 hands, jaw; 10 betas; the
HEAD joint in the camera frame). With an SMPL-X body model (55 joints) every rotation and the betas
are used (eyes at identity, no expression in the posed mesh). With any other model (the built-in
mannequin, SMPL) the 22 joints SMPL and SMPL-X share (root + 21 body joints) drive it, the hand
joints stay at identity and the betas are zero (its shape space is not SMPL-X's). In both cases
the smplx `transl` is solved so that the model's head joint (15) lands where Human3R put it:
transl = t_head - R (j_head - j_pelvis) - j_pelvis (posed at identity root, spec §4.9).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

import body_models
from josh_jax.io.frames import FrameSourceError
from trainers.cut3r.geometry import focal_from_pointmap, pose_to_T_world_cam
from trainers.cut3r.recurrent import init_carry
from trainers.human3r import step as step_lib
from trainers.human3r import tracking
from trainers.human3r.convert import Human3rParams
from trainers.human3r.smpl_head import SmplxParams
from trainers.human3r.summary import Human3rRun

SMPLX_JOINTS = 55
HEAD_JOINT = 15  # 'head' in both the SMPL and the SMPL-X joint order
SHARED_JOINTS = 22  # root + 21 body joints, common to SMPL, SMPL-X and the mannequin
PERSON_FIELDS = (
    "global_orient",
    "body_pose",
    "betas",
    "transl",
    "rotmat",
    "expression",
    "T_cam_head",
)


@dataclasses.dataclass(frozen=True)
class InferConfig:
    """The inference settings (every default in experiments/configs/human3r.py)."""

    image_size: int
    reset_interval: int
    ttt3r: bool
    max_people: int
    track_slots: int
    det_threshold: float
    mhmr_img_res: int
    dino_num_heads: int
    scene_stride: int
    conf_threshold: float
    log_every: int

    @classmethod
    def from_config(cls, config) -> InferConfig:
        h = config["human"]
        return cls(
            image_size=int(config["image_size"]),
            reset_interval=int(config["reset_interval"]),
            ttt3r=bool(config["ttt3r"]),
            max_people=int(h["max_people"]),
            track_slots=int(h["track_slots"]),
            det_threshold=float(h["det_threshold"]),
            mhmr_img_res=int(h["mhmr_img_res"]),
            dino_num_heads=int(h["dino_num_heads"]),
            scene_stride=int(config["scene_stride"]),
            conf_threshold=float(config["conf_threshold"]),
            log_every=int(config["log_every"]),
        )


def prepare_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 (h, w, 3) -> float32 (H, W, 3) in [-1, 1] as CUT3R's `load_images` (spec §3.1).

    Long side resized to `size` (LANCZOS when shrinking, BICUBIC when enlarging, new sizes
    rounded), then centre-cropped to multiples of 16 (a square image is cropped to 4:3).
    """
    h, w = rgb.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(rgb))
    scale = size / max(h, w)
    new = tuple(int(round(x * scale)) for x in (w, h))
    if new != (w, h):
        img = img.resize(new, Image.LANCZOS if scale < 1 else Image.BICUBIC)
    W, H = img.size
    cx, cy = W // 2, H // 2
    halfw, halfh = ((2 * cx) // 16) * 8, ((2 * cy) // 16) * 8
    if W == H:
        halfh = int(3 * halfw / 4)
    img = img.crop((cx - halfw, cy - halfh, cx + halfw, cy + halfh))
    return (np.asarray(img, np.float32) / 255.0 - 0.5) / 0.5


def smplx_to_body(body_model: body_models.BodyModel, smplx: SmplxParams):
    """Human3R's per-slot SMPL-X outputs -> `body_model` parameters in the camera frame.

    Returns (global_orient [P,3,3], body_pose [P,J-1,3,3], betas [P,B], transl [P,3]) with smplx
    `transl` semantics (see the module docstring).
    """
    rot = smplx.rotmat
    n = rot.shape[0]
    joints = body_model.num_joints
    eye = jnp.broadcast_to(jnp.eye(3, dtype=rot.dtype), (n, 1, 3, 3))
    if joints == SMPLX_JOINTS:  # body 21, jaw, eyes, left hand 15, right hand 15
        pose = jnp.concatenate(
            [rot[:, 1:22], rot[:, 52:53], eye, eye, rot[:, 22:37], rot[:, 37:52]], axis=1
        )
        nb = body_model.num_betas
        betas = jnp.pad(smplx.betas, ((0, 0), (0, max(0, nb - smplx.betas.shape[1]))))[:, :nb]
    else:
        pose = jnp.concatenate(
            [rot[:, 1:SHARED_JOINTS], jnp.broadcast_to(eye, (n, joints - SHARED_JOINTS, 3, 3))],
            axis=1,
        )
        betas = jnp.zeros((n, body_model.num_betas), rot.dtype)

    def transl(b, p, r, t_head):
        posed = body_models.lbs(body_model, b, jnp.eye(3, dtype=r.dtype), p, jnp.zeros(3, r.dtype))
        pelvis = posed.joints[0]
        return t_head - r @ (posed.joints[HEAD_JOINT] - pelvis) - pelvis

    return rot[:, 0], pose, betas, jax.vmap(transl)(betas, pose, rot[:, 0], smplx.T_cam_head)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FrameOutput:
    """What one view hands to the host (P = max_people slots, h x w = the scene grid).

    T_chunk_cam [4,4] chunk-local camera-to-world; focal [] (Weiszfeld, pixels); pts3d [h,w,3]
    camera-frame points; conf [h,w]; valid [P]; track_id [P]; global_orient [P,3,3];
    body_pose [P,J-1,3,3]; betas [P,B]; transl [P,3] (camera frame, smplx semantics);
    rotmat [P,53,3,3], expression [P,10], T_cam_head [P,3]: Human3R's raw SMPL-X outputs.
    """

    T_chunk_cam: jax.Array
    focal: jax.Array
    pts3d: jax.Array
    conf: jax.Array
    valid: jax.Array
    track_id: jax.Array
    global_orient: jax.Array
    body_pose: jax.Array
    betas: jax.Array
    transl: jax.Array
    rotmat: jax.Array
    expression: jax.Array
    T_cam_head: jax.Array


class FrameStep:
    """The jitted per-view program; `traces` counts how often it was traced (1 per video)."""

    def __init__(self, params: Human3rParams, body_model: body_models.BodyModel, cfg: InferConfig):
        self.params, self.body_model, self.cfg = params, body_model, cfg
        self.graphdef, self.state = nnx.split(params.model)
        self.hcfg = step_lib.HumanConfig(
            res=cfg.mhmr_img_res,
            num_heads=cfg.dino_num_heads,
            threshold=cfg.det_threshold,
            max_people=cfg.max_people,
            ttt3r=cfg.ttt3r,
        )
        self.traces = 0
        self._jitted = jax.jit(self.apply)

    def initial_carry(self, state) -> step_lib.Human3rCarry:
        """The carry before the first view, from the model's NNX state (pure; eval_shape-able)."""
        model = nnx.merge(self.graphdef, state)
        return step_lib.Human3rCarry(
            cut3r=init_carry(model, 1),
            tracks=tracking.init_memory(self.cfg.track_slots, model.cfg.dec_embed_dim),
        )

    def init_carry(self) -> step_lib.Human3rCarry:
        return self.initial_carry(self.state)

    def apply(self, state, backbone, head, body_model, carry, img, reset):
        """The pure per-view function that is jitted: (carry', FrameOutput)."""
        self.traces += 1  # runs only while tracing
        model = nnx.merge(self.graphdef, state)
        carry, frame = step_lib.step(model, backbone, head, carry, img, reset, self.hcfg)
        pts = frame.scene.pts3d_in_self_view[0]
        s = self.cfg.scene_stride
        orient, pose, betas, transl = smplx_to_body(body_model, frame.smplx)
        out = FrameOutput(
            T_chunk_cam=pose_to_T_world_cam(frame.scene.camera_pose[0]),
            focal=focal_from_pointmap(pts),
            pts3d=pts[::s, ::s],
            conf=frame.scene.conf_self[0, ::s, ::s],
            valid=frame.valid,
            track_id=frame.track_id,
            global_orient=orient,
            body_pose=pose,
            betas=betas,
            transl=transl,
            rotmat=frame.smplx.rotmat,
            expression=frame.smplx.expression,
            T_cam_head=frame.smplx.T_cam_head,
        )
        return carry, out

    def __call__(self, carry, img: np.ndarray, reset: bool):
        return self._jitted(
            self.state,
            self.params.backbone,
            self.params.head,
            self.body_model,
            carry,
            jnp.asarray(img),
            jnp.asarray(reset),
        )


def _collect(
    run: Human3rRun, out: FrameOutput, colors: np.ndarray, anchor: np.ndarray, reset: bool
) -> np.ndarray:
    """Adds one fetched view to `run`; returns the chunk anchor for the next kept view."""
    out = jax.tree.map(np.asarray, out)
    T = anchor @ out.T_chunk_cam.astype(np.float64)
    t = run.num_frames
    run.T_world_cam.append(T)
    focal = float(out.focal)
    if not (np.isfinite(focal) and focal > 0):
        focal = float(max(run.image_hw))
        run.fallback_focal += 1
    run.focal.append(focal)
    run.pts3d.append(out.pts3d)
    run.conf.append(out.conf)
    run.colors.append(colors)
    for slot in np.flatnonzero(out.valid):
        person = {k: getattr(out, k)[slot] for k in PERSON_FIELDS}
        run.people.setdefault(int(out.track_id[slot]), {})[t] = person
    return T if reset else anchor


def run_frames(
    params: Human3rParams,
    frames: Iterable[np.ndarray],
    cfg: InferConfig,
    body_model: body_models.BodyModel,
    *,
    step: FrameStep | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Human3rRun:
    """Streams `frames` (uint8 (h, w, 3), same size) through the jitted step.

    The host fetches view i's outputs after dispatching view i + 1, so decoding and device work
    overlap; at most two prepared frames exist at a time. `progress(frames_done, frames_per_s)`
    is called every `cfg.log_every` frames.
    """
    step = step or FrameStep(params, body_model, cfg)
    run = Human3rRun()
    carry = step.init_carry()
    anchor = np.eye(4)
    pending = None
    t_start = None
    for i, rgb in enumerate(frames):
        img = prepare_frame(rgb, cfg.image_size)
        if i == 0:
            run.image_hw = img.shape[:2]
        elif img.shape[:2] != run.image_hw:
            raise FrameSourceError(
                f"frame {i}",
                "(size)",
                f"every frame {run.image_hw} after resizing, as frame 0",
                img.shape[:2],
            )
        reset = (i + 1) % cfg.reset_interval == 0
        if i == 0:
            t0 = time.perf_counter()
            carry, out = step(carry, img, reset)
            jax.block_until_ready(out)
            run.compile_s = time.perf_counter() - t0
            t_start = time.perf_counter()
        else:
            carry, out = step(carry, img, reset)
        if reset:  # the overlap view: state and tracks carried, outputs dropped
            carry, _ = step(carry, img, False)
        colors = np.round((img[:: cfg.scene_stride, :: cfg.scene_stride] * 0.5 + 0.5) * 255)
        if pending is not None:
            anchor = _collect(run, pending[0], pending[1], anchor, pending[2])
        pending = (out, colors.astype(np.uint8), reset)
        del rgb, img
        if progress and (i + 1) % cfg.log_every == 0 and i > 0:
            progress(i + 1, i / max(time.perf_counter() - t_start, 1e-9))
    if pending is None:
        raise FrameSourceError("frames", "(count)", "at least one frame", 0)
    _collect(run, pending[0], pending[1], anchor, pending[2])
    run.run_s = time.perf_counter() - t_start
    run.traces = step.traces
    return run
