"""JOSH3R inference on a clip: chain pairwise predictions into world cameras and a body (spec 3.4).

Steps (one human track, as the reference):

1. Pairs: from frame 0 of the track, the next frame at least `min_gap` video frames later, and
   so on (`trainers.data.sample_pairs`, the reference rule).
2. Inputs: each frame resized to the model size through a centre crop of `center_crop_scale`
   (the reference zooms 2x: scale 0.5), colours to [-1, 1]; the ROI box per view is
   * `reference_compat=True`: the whole image (the reference never finds its `'bbox'` key, so
     after the zoom the box is normalised +-2 and border-clamped: spec 6.20);
   * `reference_compat=False`: the track's body box, from projecting the clip's HMR mesh with
     `hmr_focal` (the same construction as the training labels' boxes).
3. Chaining, in the SMPL frame of the first pair frame's body (identity root, zero `transl`):
   * compat: the SMPL parameters are composed as rigid transforms about the origin,
     `T_{k+1} = T_k [R_rel | t_rel]`, and cameras are `c2w = T_f [R_cam | t_cam]^-1`, which
     ignores the pelvis offset J0 (spec 3.4 step 8, 6.20);
   * fixed: bodies are the affine maps smplx applies, `x -> R x + (transl + J0 - R J0)`; the
     relative prediction is composed as such a map and the camera is
     `c2w = M_world N_cam^-1` with both maps including J0 (so the body seen from the camera is
     exactly the HMR body, and the chain matches the labels' semantics in `trainers/data.py`).
4. Interpolation of the chained root pose from the pair frames to every track frame (linear
   translation, slerp rotation), then the `Result` of `josh_jax.result.assemble_result`: the
   cameras, the track's HMR body moved to world with them, and the scaled pointmaps `s1 * X11`
   of the head frame of every pair as the scene (depth of the zoomed virtual camera, whose
   intrinsics are the Result's `K`, at the model's resolution).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import body_models
from josh_jax import geometry as geo
from josh_jax import result as result_lib
from trainers import data as data_lib


@dataclasses.dataclass(frozen=True)
class InferConfig:
    """Options of `infer_clip`.

    Attributes:
      image_hw: model input size (h, w), multiples of 16.
      center_crop_scale: side of the centre crop fed to the model (reference: 0.5).
      min_gap: video frames between the two frames of a pair (reference: 3).
      reference_compat: reproduce the reference's whole-image ROI and J0-free chaining.
      batch_size: pairs per forward call and frames per encoder call (the last batch is
        padded; one compiled program each).
      head_chunk: pairs per DPT-head chunk inside a call (0: the whole batch at once).
      track: which human track of the clip.
    """

    image_hw: tuple[int, int] = (48, 80)
    center_crop_scale: float = 0.5
    min_gap: int = 3
    reference_compat: bool = False
    batch_size: int = 8
    head_chunk: int = 4
    track: int = 0


def chain_rigid(R_rel: np.ndarray, t_rel: np.ndarray) -> np.ndarray:
    """Reference chaining: T_0 = I, T_{k+1} = T_k [R_rel_k | t_rel_k]; float64[E+1, 4, 4]."""
    T = [np.eye(4)]
    for R, t in zip(R_rel, t_rel, strict=True):
        step = np.eye(4)
        step[:3, :3], step[:3, 3] = R, t
        T.append(T[-1] @ step)
    return np.stack(T)


def smpl_affine(R: np.ndarray, transl: np.ndarray, J0: np.ndarray) -> np.ndarray:
    """The 4x4 affine map smplx applies to rest vertices: x -> R x + (transl + J0 - R J0)."""
    A = np.zeros(R.shape[:-2] + (4, 4))
    A[..., :3, :3] = R
    A[..., :3, 3] = transl + J0 - np.einsum("...ij,j->...i", R, J0)
    A[..., 3, 3] = 1.0
    return A


def affine_to_smpl(A: np.ndarray, J0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `smpl_affine`: (R [..., 3, 3], transl [..., 3])."""
    R = A[..., :3, :3]
    return R, A[..., :3, 3] - J0 + np.einsum("...ij,j->...i", R, J0)


def chain_smpl(R_rel: np.ndarray, t_rel: np.ndarray, J0: np.ndarray) -> np.ndarray:
    """J0-aware chaining: body affine maps M_0 = I, M_{k+1} = M_k A(R_rel_k, t_rel_k).

    Returns float64[E+1, 4, 4] body-to-world affine maps (world = body 0's SMPL frame).
    """
    M = [np.eye(4)]
    for R, t in zip(R_rel, t_rel, strict=True):
        M.append(M[-1] @ smpl_affine(R, t, J0))
    return np.stack(M)


def model_inputs(image: np.ndarray, box: np.ndarray, image_hw: tuple[int, int],
                 crop_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(image float32[h, w, 3] in [-1, 1], box float32[4]) of one frame after the centre crop."""
    H, W = image.shape[:2]
    window = data_lib.crop_window(H, W, crop_scale, 0.5, 0.5)
    rgb = data_lib.resample(image, window, image_hw)
    return data_lib.to_model_image(rgb), data_lib.map_bbox(box, window, image_hw)


class Forward:
    """Jitted eval-mode inference programs of a model, with a per-frame encoder cache.

    * `encode_frames(frames, batch_size)`: every frame through the encoder once, `batch_size`
      frames per call (the last call padded): the cache (feat [T, n, E], pos [T, n, 2]).
    * `pairs(cache, idx1, idx2, img_shapes, bbox)`: B pairs of cached frames through the
      decoder, head 1's DPT and the human branch: what chaining reads (`rel_trans`, `rel_rot`,
      `trans1`, `scale1`, `X11`), nothing else (`JOSH3R.predict_from_features`).

    `frames_encoded` counts the frames that went through the encoder. `with_model(other)` swaps
    in another model of the same structure (e.g. a restored checkpoint) and reuses the compiled
    programs.
    """

    def __init__(self, model: nnx.Module, *, head_chunk: int = 0, _fns=None):
        model.eval()
        graphdef, self.state = nnx.split(model)
        self.head_chunk = head_chunk
        self.frames_encoded = 0

        def encode(state, imgs):
            return nnx.merge(graphdef, state, copy=True).encode(imgs)

        def pairs(state, feat1, pos1, feat2, pos2, img_shapes, bbox, image_hw):
            m = nnx.merge(graphdef, state, copy=True)
            return m.predict_from_features(feat1, pos1, feat2, pos2, img_shapes, bbox, image_hw,
                                           head_chunk=head_chunk)

        def gather(feat, pos, idx1, idx2):
            return feat[idx1], pos[idx1], feat[idx2], pos[idx2]

        self._fns = _fns or (jax.jit(encode), jax.jit(pairs, static_argnames="image_hw"),
                             jax.jit(gather))

    def with_model(self, model: nnx.Module) -> Forward:
        return Forward(model, head_chunk=self.head_chunk, _fns=self._fns)

    def encode_frames(self, frames: np.ndarray, batch_size: int):
        """frames: float32[T, h, w, 3] in [-1, 1] -> cache (feat [T, n, E], pos [T, n, 2])."""
        encode = self._fns[0]
        feats, poss = [], []
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            pad = batch_size - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
            feat, pos = encode(self.state, chunk)
            feats.append(feat[:batch_size - pad])
            poss.append(pos[:batch_size - pad])
        self.frames_encoded += len(frames)
        return jnp.concatenate(feats), jnp.concatenate(poss), tuple(frames.shape[1:3])

    def pairs(self, cache, idx1: np.ndarray, idx2: np.ndarray, img_shapes: np.ndarray,
              bbox: np.ndarray) -> dict[str, jax.Array]:
        """B pairs (rows idx1[b], idx2[b] of the cache) -> the chaining predictions."""
        feat, pos, image_hw = cache
        f1, p1, f2, p2 = self._fns[2](feat, pos, np.asarray(idx1, np.int32),
                                      np.asarray(idx2, np.int32))
        return self._fns[1](self.state, f1, p1, f2, p2, img_shapes, bbox, image_hw=image_hw)


def make_forward(model: nnx.Module, *, head_chunk: int = 0) -> Forward:
    """The jitted eval-mode inference programs of `model` (see `Forward`)."""
    return Forward(model, head_chunk=head_chunk)


def predict_pairs(forward, images: np.ndarray, boxes: np.ndarray, pairs: np.ndarray,
                  cfg: InferConfig) -> dict[str, np.ndarray]:
    """Run the model on every pair (rows of `images`); numpy predictions with leading axis E.

    Each frame used by a pair goes through the encoder once (`forward.encode_frames`); the
    pairs then read the cached features (`forward.pairs`), `cfg.batch_size` at a time.
    """
    h, w = cfg.image_hw
    used = np.unique(pairs)
    slot = {int(f): k for k, f in enumerate(used)}
    prepared = {int(f): model_inputs(images[f], boxes[f], cfg.image_hw, cfg.center_crop_scale)
                for f in used}
    frames = np.stack([prepared[int(f)][0] for f in used]).astype(np.float32)
    cache = forward.encode_frames(frames, cfg.batch_size)
    outs = []
    bs = cfg.batch_size
    for start in range(0, len(pairs), bs):
        chunk = pairs[start:start + bs]
        pad = bs - len(chunk)
        idx = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
        bbox = np.stack([[prepared[int(i)][1], prepared[int(j)][1]] for i, j in idx])
        shapes = np.tile(np.array([h, w], np.int32), (len(idx), 2, 1))
        pred = jax.device_get(forward.pairs(
            cache, np.array([slot[int(i)] for i in idx[:, 0]]),
            np.array([slot[int(j)] for j in idx[:, 1]]),
            shapes, bbox.astype(np.float32)))
        outs.append({k: np.asarray(v)[:len(chunk)] for k, v in pred.items()})
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


@dataclasses.dataclass(frozen=True)
class _Track:
    """One person's valid frames of a clip (N rows) and their SMPL parameters (camera frame)."""

    rows: np.ndarray         # int[N] clip rows
    frame_index: np.ndarray  # int[N] video frames
    images: np.ndarray       # uint8[N, H, W, 3]
    R_cam: np.ndarray        # float64[N, 3, 3] global_orient
    pose: np.ndarray         # float32[N, J-1, 3, 3]
    betas: np.ndarray        # float32[B] mean over the frames
    t_cam: np.ndarray        # float64[N, 3] transl
    J0: np.ndarray           # float64[J, 3] rest joints of `betas`


def _track(clip: Any, p: int, body: body_models.BodyModel) -> _Track:
    """Track `p`'s valid frames; raises ValueError unless there are at least 2."""
    if clip.images is None:
        raise ValueError("infer_clip: clip key 'images': expected uint8[T,H,W,3], found None")
    if not 0 <= p < clip.num_people:
        raise ValueError(f"infer_clip: track {p}: expected 0 <= track < {clip.num_people}")
    rows = np.nonzero(np.asarray(clip.smpl_valid[p], bool))[0]
    if rows.size < 2:
        raise ValueError(f"infer_clip: track {p} has {rows.size} valid frames; expected >= 2")
    betas = np.asarray(clip.smpl_betas[p], np.float32)[rows].mean(0)
    return _Track(
        rows=rows,
        frame_index=np.asarray(clip.frame_index)[rows],
        images=np.asarray(clip.images)[rows],
        R_cam=np.asarray(clip.smpl_global_orient[p], np.float64)[rows],
        pose=np.asarray(clip.smpl_body_pose[p], np.float32)[rows],
        betas=betas,
        t_cam=np.asarray(clip.smpl_transl[p], np.float64)[rows],
        J0=np.asarray(body_models.rest_joints(body, jnp.asarray(betas))[0], np.float64))


def _person_boxes(track: _Track, clip: Any, body: body_models.BodyModel,
                  cfg: InferConfig) -> np.ndarray:
    """float32[N, 4] the person's boxes (the whole image with `reference_compat`)."""
    H, W = track.images.shape[1:3]
    if cfg.reference_compat:
        return np.tile(np.array([0, 0, W, H], np.float32), (len(track.rows), 1))
    f = float(clip.hmr_focal)
    K_hmr = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], np.float32)
    return data_lib.body_bboxes(body, K_hmr, track.R_cam.astype(np.float32), track.pose,
                                track.betas, track.t_cam.astype(np.float32))


def _cameras(track: _Track, pairs: np.ndarray, pred: dict[str, np.ndarray],
             cfg: InferConfig) -> np.ndarray:
    """float64[N, 4, 4] T_world_cam from the pairs' relative root motions."""
    R_rel = np.asarray(geo.rot6d_to_matrix(jnp.asarray(pred["rel_rot"])), np.float64)
    t_rel = pred["rel_trans"].astype(np.float64)
    # Root pose (body-to-world) at the pair frames, then interpolated to every track frame.
    key_rows = np.concatenate([pairs[:, 0], pairs[-1:, 1]])
    if cfg.reference_compat:
        T_key = chain_rigid(R_rel, t_rel)
    else:
        T_key = chain_smpl(R_rel, t_rel, track.J0)
    T_all = np.asarray(geo.se3_interpolate(
        jnp.asarray(T_key, jnp.float32), jnp.asarray(track.frame_index[key_rows], jnp.float32),
        jnp.asarray(track.frame_index, jnp.float32)), np.float64)

    # Cameras: world-from-camera = world-from-body @ body-from-camera.
    if cfg.reference_compat:
        N = np.tile(np.eye(4), (len(track.rows), 1, 1))
        N[:, :3, :3], N[:, :3, 3] = track.R_cam, track.t_cam
    else:
        N = smpl_affine(track.R_cam, track.t_cam, track.J0)
    return T_all @ np.linalg.inv(N)


def _scene(track: _Track, pairs: np.ndarray, pred: dict[str, np.ndarray], cfg: InferConfig
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s1 * X11 of every pair's head frame (zoomed virtual camera at model resolution).

    Returns:
      (K float32[3, 3], depth float32[N, h, w] (0 where no pair starts), colors float[N, h, w, 3]).
    """
    H, W = track.images.shape[1:3]
    h, w = cfg.image_hw
    f_proc = float(np.hypot(W, H)) * (w / W) / cfg.center_crop_scale
    K = np.array([[f_proc, 0, w / 2], [0, f_proc, h / 2], [0, 0, 1]], np.float32)
    depth = np.zeros((len(track.rows), h, w), np.float32)
    pts = pred["X11"].reshape(len(pairs), h, w, 3) * pred["scale1"][:, None, None, :]
    depth[pairs[:, 0]] = np.maximum(pts[..., 2], 0.0)
    colors = np.stack([data_lib.resample(track.images[k], data_lib.crop_window(
        H, W, cfg.center_crop_scale, 0.5, 0.5), cfg.image_hw) for k in range(len(track.rows))])
    return K, depth, colors


def infer_clip(model: nnx.Module, clip: Any, body: body_models.BodyModel,
               cfg: InferConfig = InferConfig(), *, forward=None) -> result_lib.Result:
    """JOSH3R on one clip -> `josh_jax.result.Result` (world = first track frame's camera).

    Args:
      model: a JOSH3R-compatible NNX module (`model(imgs, img_shapes, bbox)`).
      clip: a `josh_jax.clip.Clip` with `images` and at least 2 valid frames of `cfg.track`.
      body: the body model of the clip's SMPL parameters.
      cfg: `InferConfig`.
      forward: optional precompiled `make_forward(model)` (reuse across clips).

    Returns:
      The Result; `diagnostics` holds the pairs (`pairs`, clip rows) and the raw predictions
      (`pred_rel_trans`, `pred_rel_rot`, `pred_scale1`, `pred_trans1`).
    """
    track = _track(clip, cfg.track, body)
    boxes = _person_boxes(track, clip, body, cfg)
    pairs = data_lib.sample_pairs(track.frame_index, min_gap=cfg.min_gap)
    forward = forward or make_forward(model, head_chunk=cfg.head_chunk)
    pred = predict_pairs(forward, track.images, boxes, pairs, cfg)
    T_world_cam = _cameras(track, pairs, pred, cfg)
    K, depth, colors = _scene(track, pairs, pred, cfg)
    diagnostics = {"pairs": track.rows[pairs].astype(np.int32),
                   "pred_rel_trans": pred["rel_trans"], "pred_rel_rot": pred["rel_rot"],
                   "pred_scale1": pred["scale1"], "pred_trans1": pred["trans1"], "bbox": boxes}
    n = len(track.rows)
    return result_lib.assemble_result(
        keyframe_index=track.frame_index,
        T_world_cam_key=T_world_cam.astype(np.float32),
        K=K,
        depth_key=depth,
        conf_key=np.ones_like(depth),
        scene_mask_key=depth > 0,
        images=np.clip(colors, 0, 255).astype(np.uint8),
        smpl_global_orient_cam=track.R_cam[None].astype(np.float32),
        smpl_body_pose=track.pose[None],
        smpl_betas=track.betas[None],
        smpl_transl_cam=track.t_cam[None].astype(np.float32),
        smpl_valid=np.ones((1, n), bool),
        body_model=body,
        fps=float(clip.fps),
        diagnostics=diagnostics,
        config=dataclasses.asdict(cfg),
    )
