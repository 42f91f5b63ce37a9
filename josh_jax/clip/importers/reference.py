"""Importers: other on-disk layouts to a `Clip` (and its `GroundTruth`).

Two layouts are read besides our own clip `.npz` (`josh_jax.clip.load_clip`):

1. The reference synthetic clip (`../shared/reference/josh_synthetic_clip.npz`, documented in
   `../shared/reference/CLIP_FORMAT.md`): the clip on which the reference PyTorch JOSH was measured.
   `import_reference_clip` rebuilds exactly the inputs JOSH consumed.
2. JOSH's preprocessing folder (`tram/hps_track_*.npy`, `deco/hps_track_*.npy`, `mask/%06d.png`)
   plus an `.npz` written by the user's own front end with pointmaps and matches
   (`import_josh_folder`; keys in `docs/clip_format.md`). The TRAM files are pickles of torch
   tensors: they are read only with `allow_pickle=True` (unpickling runs code from the file) and
   need torch (`pip install 'josh-jax[torch]'`).

`load_any(path)` picks the right reader.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging

from josh_jax import clip as clip_lib
from josh_jax.clip import ClipFormatError

# Keys whose presence identifies the reference synthetic layout.
REFERENCE_LAYOUT_KEYS = ("pred_depth", "pred_focal", "mast3r_conf", "corr_offsets", "hmr_rotmat")
REFERENCE_BODY_MODEL = "synthetic_smpl_neutral"

# ---------------------------------------------------------------------------------------------
# Shared helpers


def pointmaps_from_depth(depth: np.ndarray, focal: float) -> np.ndarray:
    """Camera-frame pointmaps from depth maps, principal point (W/2, H/2), computed in float64.

    `X = ((u - W/2) z / f, (v - H/2) z / f, z)` at integer pixel centres (u, v), exactly as the
    reference `synthetic_clip.pred_points_from_clip`.

    Args:
      depth: float[T, H, W] camera-frame z.
      focal: focal length in pixels.

    Returns:
      float32[T, H, W, 3].
    """
    z = np.asarray(depth, np.float64)
    _, H, W = z.shape
    f = float(focal)
    u = np.arange(W, dtype=np.float64)[None, None, :]
    v = np.arange(H, dtype=np.float64)[None, :, None]
    x = (u - W / 2) * z / f
    y = (v - H / 2) * z / f
    return np.stack([x, y, z], axis=-1).astype(np.float32)


def pad_matches(
    offsets: np.ndarray, xy_i: np.ndarray, xy_j: np.ndarray, conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat match list with per-pair offsets -> padded `matches` and `match_confidence`.

    Args:
      offsets: int[E + 1]; matches of pair e are rows `offsets[e]:offsets[e+1]`.
      xy_i: int or float[N, 2] pixel (x, y) in image i.
      xy_j: int or float[N, 2] pixel (x, y) in image j.
      conf: float[N] match confidence.

    Returns:
      matches float32[E, M, 2, 2] and match_confidence float32[E, M], M = the most matches of any
      pair; padding rows hold pixel (0, 0) with confidence 0.
    """
    offsets = np.asarray(offsets, np.int64)
    counts = np.diff(offsets)
    E, N = len(counts), int(offsets[-1])
    M = int(counts.max()) if E else 0
    pair = np.repeat(np.arange(E), counts)
    slot = np.arange(N) - np.repeat(offsets[:-1], counts)
    matches = np.zeros((E, M, 2, 2), np.float32)
    match_confidence = np.zeros((E, M), np.float32)
    matches[pair, slot, 0] = xy_i[offsets[0]:offsets[-1]]
    matches[pair, slot, 1] = xy_j[offsets[0]:offsets[-1]]
    match_confidence[pair, slot] = conf[offsets[0]:offsets[-1]]
    return matches, match_confidence


def scene_mesh_from_boxes(room: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the reference scene: the room (faces inwards) and boxes (faces outwards).

    Args:
      room: float[6] `(xmin, xmax, ymin=0, ymax, zmin, zmax)`.
      boxes: float[B, 6] `(x_center, z_center, size_x, size_y, size_z, yaw)`, standing on y = 0,
        rotated by `yaw` about +y (`josh_jax.synthetic.meshes.yaw_matrix`).

    Returns:
      vertices float64[S, 3], faces int32[NF, 3] in the world frame (metres, y up).
    """
    from josh_jax.synthetic import meshes  # deferred: scipy's ConvexHull only when needed

    room = np.asarray(room, np.float64)
    if room[2] != 0.0:
        raise ValueError(f"gt_room: expected ymin = 0 (floor at y = 0); found {room[2]}")
    grey = (0.5, 0.5, 0.5)
    solids = [meshes.room(room[0], room[1], room[3], room[4], room[5], grey)]
    for x, z, sx, sy, sz, yaw in np.asarray(boxes, np.float64).reshape(-1, 6):
        solids.append(meshes.ground_box(x, z, (sx, sy, sz), grey, yaw=yaw))
    vertices, faces, _ = meshes.merge_meshes(solids)
    return vertices, faces


def _rows_at(frames: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each wanted frame, the row of `frames` holding it: (row int64[T], found bool[T])."""
    frames = np.asarray(frames).reshape(-1)
    lookup = {int(f): r for r, f in enumerate(frames)}
    rows = np.array([lookup.get(int(f), -1) for f in wanted], np.int64)
    return np.maximum(rows, 0), rows >= 0


# ---------------------------------------------------------------------------------------------
# 1. The reference synthetic layout


def is_reference_layout(keys) -> bool:
    """True when the keys are those of the reference synthetic clip (CLIP_FORMAT.md)."""
    return all(k in keys for k in REFERENCE_LAYOUT_KEYS)


def import_reference_arrays(
    d: Mapping[str, np.ndarray], source: Any = "<reference arrays>"
) -> tuple[clip_lib.Clip, clip_lib.GroundTruth]:
    """Builds the Clip and GroundTruth from the reference synthetic layout (see module docs).

    JOSH's inputs, exactly: pointmaps from `pred_depth` and `pred_focal` (float64, then float32);
    raw `mast3r_conf` as confidence and `human_mask = mast3r_conf == 1.0` (JOSH's canonical
    confidence is `conf - 0.999`, masked below 0.1: `prepare` derives it); the flat match list
    padded per pair; HMR and DECO rows taken at the keyframes' video frames (`img_idx`);
    `pair_scores` = the MASt3R valid-match count `corr_scores[:, 2]` that JOSH's MST uses;
    `focal_init` absent (JOSH estimates it from the pointmaps). The pointmaps' own focal
    `pred_focal` is recoverable from them exactly: `f = (u - W/2) z / x`.

    Args:
      d: key -> array mapping of the reference layout.
      source: name used in error messages.

    Returns:
      (clip, gt) validated.
    """
    for key in REFERENCE_LAYOUT_KEYS + ("img_idx", "corr_pairs", "corr_xy_i", "corr_xy_j",
                                         "corr_conf", "hmr_shape", "hmr_trans", "hmr_frame",
                                         "hmr_focal", "deco_contact", "fps"):
        if key not in d:
            raise ClipFormatError(source, key, "a key of the reference layout", "no such key")
    img_idx = np.asarray(d["img_idx"]).astype(np.int64)
    depth = np.asarray(d["pred_depth"])
    conf = np.asarray(d["mast3r_conf"], np.float32)
    T = depth.shape[0]
    if img_idx.shape != (T,):
        raise ClipFormatError(source, "img_idx", f"shape ({T},)", f"shape {img_idx.shape}")

    matches, match_confidence = pad_matches(
        d["corr_offsets"], d["corr_xy_i"], d["corr_xy_j"], np.asarray(d["corr_conf"])
    )
    pair_scores = None
    if "corr_scores" in d:
        pair_scores = np.asarray(d["corr_scores"])[:, 2].astype(np.float32)

    # HMR and DECO rows are per video frame; JOSH uses the rows of its keyframes.
    rows, found = _rows_at(d["hmr_frame"], img_idx)
    if not found.all():
        missing = img_idx[~found].tolist()
        raise ClipFormatError(source, "hmr_frame", f"every keyframe of img_idx {img_idx.tolist()}",
                              f"frames {missing} missing")
    rotmat = np.asarray(d["hmr_rotmat"], np.float32)[rows]
    deco = np.asarray(d["deco_contact"])[rows]

    arrays = dict(
        format_version=clip_lib.FORMAT_VERSION,
        body_model=REFERENCE_BODY_MODEL,
        frame_index=img_idx.astype(np.int32),
        fps=np.float32(d["fps"]),
        pointmaps=pointmaps_from_depth(depth, float(d["pred_focal"])),
        confidence=conf,
        human_mask=conf == 1.0,
        pairs=np.asarray(d["corr_pairs"]).astype(np.int32),
        matches=matches,
        match_confidence=match_confidence,
        smpl_global_orient=rotmat[None, :, 0],
        smpl_body_pose=rotmat[None, :, 1:],
        smpl_betas=np.asarray(d["hmr_shape"], np.float32)[rows][None],
        smpl_transl=np.asarray(d["hmr_trans"], np.float32)[rows][None],
        hmr_focal=np.float32(d["hmr_focal"]),
        smpl_valid=np.ones((1, T), bool),
        contact=deco.astype(np.float32)[None],
        track_id=np.zeros((1,), np.int32),
    )
    if "rgb" in d:
        arrays["images"] = np.asarray(d["rgb"])
    if pair_scores is not None:
        arrays["pair_scores"] = pair_scores
    arrays.update(_reference_ground_truth(d, img_idx))
    clip, gt = clip_lib.validate_arrays(arrays, source)
    return clip, gt


def _reference_ground_truth(d: Mapping[str, np.ndarray], img_idx: np.ndarray) -> dict:
    """The reference's ground truth in our `gt_*` keys (only what the file holds)."""
    import jax

    from body_models.rotations import axis_angle_to_matrix

    def rotmats(aa: np.ndarray) -> np.ndarray:
        with jax.enable_x64(True):  # ground truth keeps float64 precision
            return np.asarray(axis_angle_to_matrix(np.asarray(aa, np.float64)), np.float64)

    gt: dict[str, np.ndarray] = {}
    if "gt_cam2w" in d:
        gt["gt_T_world_cam"] = np.asarray(d["gt_cam2w"], np.float64)
    if "gt_K" in d:
        gt["gt_focal"] = np.float64(np.asarray(d["gt_K"])[0, 0])
    if "gt_model_scale" in d:
        # pred_depth = metric depth * model_scale (* per-frame jitter): metres per unit = 1/scale.
        gt["gt_pointmap_scale"] = np.float64(1.0 / float(d["gt_model_scale"]))
    n_video = int(d["n_video_frames"]) if "n_video_frames" in d else None
    if "gt_global_orient" in d:
        n_video = len(d["gt_global_orient"])
        gt["gt_smpl_global_orient"] = rotmats(np.asarray(d["gt_global_orient"])[img_idx])[None]
    if "gt_body_pose" in d:
        aa = np.asarray(d["gt_body_pose"])[img_idx].reshape(len(img_idx), -1, 3)
        gt["gt_smpl_body_pose"] = rotmats(aa)[None]
    if "gt_transl" in d:
        gt["gt_smpl_transl"] = np.asarray(d["gt_transl"], np.float64)[img_idx][None]
    if "gt_betas" in d:
        betas = np.asarray(d["gt_betas"], np.float64)
        gt["gt_smpl_betas"] = np.broadcast_to(betas, (len(img_idx), len(betas)))[None].copy()
    if "gt_contact" in d:
        gt["gt_contact"] = np.asarray(d["gt_contact"]).astype(bool)[img_idx][None]
    if "gt_human_mask" in d:
        gt["gt_human_mask"] = np.asarray(d["gt_human_mask"]).astype(bool)
    if "gt_room" in d:
        boxes = d["gt_boxes"] if "gt_boxes" in d else np.zeros((0, 6))
        gt["gt_scene_vertices"], gt["gt_scene_faces"] = scene_mesh_from_boxes(d["gt_room"], boxes)
    if "gt_cam2w_all" in d:
        gt["gt_T_world_cam_all"] = np.asarray(d["gt_cam2w_all"], np.float64)
        n_video = len(gt["gt_T_world_cam_all"])
    if "gt_joints24_world" in d:
        gt["gt_joints_world_all"] = np.asarray(d["gt_joints24_world"], np.float64)[None]
        n_video = gt["gt_joints_world_all"].shape[1]
    if n_video is not None and ("gt_T_world_cam_all" in gt or "gt_joints_world_all" in gt):
        gt["gt_frame_index"] = np.arange(n_video, dtype=np.int32)
    return gt


def import_reference_clip(path: str | os.PathLike) -> tuple[clip_lib.Clip, clip_lib.GroundTruth]:
    """Reads the reference synthetic clip (`josh_synthetic_clip.npz` layout); see
    `import_reference_arrays`."""
    path = os.fspath(path)
    clip, gt = import_reference_arrays(clip_lib.read_npz(path), source=path)
    logging.info("Imported reference clip %s: %s", path, clip.describe())
    return clip, gt


# ---------------------------------------------------------------------------------------------
# 2. JOSH's preprocessing folder + the user's front-end npz

FRONTEND_REQUIRED = ("frame_index", "pointmaps", "confidence", "pairs", "matches",
                     "match_confidence")
FRONTEND_OPTIONAL = ("images", "fps", "human_mask", "focal_init", "pair_scores", "hmr_focal",
                     "original_size")

TORCH_MISSING = (
    "reading JOSH's tram/*.npy needs torch (they are pickled torch tensors): "
    "pip install 'josh-jax[torch]'"
)


class PickleRefusedError(ValueError):
    """A file needs unpickling and the caller did not opt in with `allow_pickle=True`."""


def _to_numpy(x: Any) -> np.ndarray:
    """A torch tensor (duck-typed, so torch is never imported here) or array-like -> ndarray."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _load_pickled_npy(path: str, allow_pickle: bool) -> Any:
    """`np.load` of a `.npy` that may be a pickle, only with the caller's explicit consent."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        pass  # object array / pickle: needs consent
    if not allow_pickle:
        raise PickleRefusedError(
            f"{path}: holds a pickle (JOSH writes torch tensors with np.save); unpickling runs "
            "code from the file, so it is refused by default: pass allow_pickle=True "
            "(--allow_pickle) if you trust this folder"
        )
    try:
        obj = np.load(path, allow_pickle=True)
    except ImportError as e:
        if (e.name or "").split(".")[0] == "torch" or "torch" in str(e):
            raise ImportError(f"{path}: {TORCH_MISSING}") from None
        raise
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0:
        obj = obj.item()
    return obj


def read_tram_track(path: str, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """One `tram/hps_track_{id}.npy`: `pred_rotmat` [N,24,3,3], `pred_shape` [N,B],
    `pred_trans` [N,3] (squeezed from [N,1,3]), `frame` [N] as numpy arrays.

    Raises:
      PickleRefusedError: `allow_pickle` is False.
      ImportError: torch is needed and missing.
      ClipFormatError: a key is missing or has the wrong shape.
    """
    obj = _load_pickled_npy(path, allow_pickle)
    if not isinstance(obj, Mapping):
        raise ClipFormatError(path, "(file)", "a pickled dict (TRAM hps_track)",
                              f"{type(obj).__name__}")
    out = {}
    for key in ("pred_rotmat", "pred_shape", "pred_trans", "frame"):
        if key not in obj:
            raise ClipFormatError(path, key, "a TRAM track key", "no such key")
        out[key] = _to_numpy(obj[key])
    n = len(out["frame"])
    out["frame"] = out["frame"].reshape(-1).astype(np.int64)
    if out["pred_trans"].size != 3 * n:
        raise ClipFormatError(path, "pred_trans", f"shape (N={n}, 1, 3)",
                              f"shape {out['pred_trans'].shape}")
    out["pred_trans"] = out["pred_trans"].reshape(n, 3)
    expect = {"pred_rotmat": (n, None, 3, 3), "pred_shape": (n, None)}
    for key, shape in expect.items():
        s = out[key].shape
        mismatch = len(s) != len(shape) or any(
            w is not None and w != g for w, g in zip(shape, s, strict=True))
        if mismatch:
            raise ClipFormatError(path, key, f"shape {shape} (N={n} from 'frame')", f"shape {s}")
    return out


def read_deco_track(path: str, num_rows: int, allow_pickle: bool = False) -> np.ndarray:
    """One `deco/hps_track_{id}.npy`: float32[N, V] contact labels in [0, 1]."""
    arr = _to_numpy(_load_pickled_npy(path, allow_pickle))
    if arr.ndim != 2 or arr.shape[0] != num_rows:
        raise ClipFormatError(path, "(array)", f"shape (N={num_rows}, V) rows aligned with TRAM",
                              f"shape {arr.shape}")
    return arr.astype(np.float32)


def read_union_masks(
    mask_dir: str, frame_index: np.ndarray, size_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """SAM3 union masks `mask/%06d.png` (nonzero = person), resized with nearest to (H, W).

    Nearest sampling takes the source pixel `floor((i + 0.5) * src / dst)` (PIL's NEAREST).

    Returns:
      bool[T, H, W] and the original size (H_og, W_og) of the first mask.
    """
    import imageio.v3 as iio

    H, W = size_hw
    masks, original = [], None
    for f in frame_index:
        path = os.path.join(mask_dir, f"{int(f):06d}.png")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: mask of video frame {int(f)} is missing")
        m = np.asarray(iio.imread(path))
        if m.ndim == 3:
            m = m[..., 0]
        if original is None:
            original = m.shape
        elif m.shape != original:
            raise ClipFormatError(path, "(image)", f"size {original} like the first mask",
                                  f"size {m.shape}")
        rows = np.minimum(((np.arange(H) + 0.5) * m.shape[0] / H).astype(np.int64), m.shape[0] - 1)
        cols = np.minimum(((np.arange(W) + 0.5) * m.shape[1] / W).astype(np.int64), m.shape[1] - 1)
        masks.append(m[rows][:, cols] > 0)
    return np.stack(masks), original


def _track_id(path: str) -> int:
    m = re.search(r"(\d+)\.npy$", os.path.basename(path))
    return int(m.group(1)) if m else -1


def import_josh_folder(
    folder: str | os.PathLike,
    frontend: str | os.PathLike | Mapping[str, np.ndarray],
    *,
    allow_pickle: bool = False,
    body_model: str = "smpl_neutral",
) -> clip_lib.Clip:
    """JOSH's preprocessing folder plus the user's front-end npz -> a validated Clip.

    Reads `folder/tram/hps_track_*.npy` (sorted, one track each; pickles of torch tensors:
    needs `allow_pickle=True` and torch), `folder/deco/hps_track_*.npy` (same names, rows aligned
    with the TRAM frames) and, unless the front end gives `human_mask`, `folder/mask/%06d.png`
    at the clip's video frames. The HMR focal is TRAM's image diagonal at the clip's resolution,
    `sqrt(W_og^2 + H_og^2) * W / W_og` with the original size from the masks (or the front end's
    `original_size`), unless the front end gives `hmr_focal`.

    Args:
      folder: the JOSH input folder.
      frontend: path of the front-end `.npz` (or its arrays); keys in `docs/clip_format.md`.
      allow_pickle: opt in to unpickling the TRAM files (only for folders you trust).
      body_model: the body the TRAM parameters belong to.

    Returns:
      The clip (no ground truth). Frames where a track has no TRAM row have `smpl_valid` False,
      identity rotations, zero betas/translation and zero contact.

    Raises:
      PickleRefusedError: a TRAM/DECO file is a pickle and `allow_pickle` is False.
      ImportError: torch is needed and missing.
      ClipFormatError / FileNotFoundError: bad or missing input.
    """
    folder = os.fspath(folder)
    if isinstance(frontend, Mapping):
        fe, fe_source = dict(frontend), "<front-end arrays>"
    else:
        fe_source = os.fspath(frontend)
        fe = clip_lib.read_npz(fe_source)
    for key in FRONTEND_REQUIRED:
        if key not in fe:
            raise ClipFormatError(fe_source, key, "a required front-end key", "no such key")
    unknown = sorted(set(fe) - set(FRONTEND_REQUIRED) - set(FRONTEND_OPTIONAL))
    if unknown:
        raise ClipFormatError(fe_source, unknown[0], "only front-end keys (docs/clip_format.md)",
                              f"unknown key(s) {unknown}")
    pointmaps = np.asarray(fe["pointmaps"])
    if pointmaps.ndim != 4:
        raise ClipFormatError(fe_source, "pointmaps", "shape [T, H, W, 3]",
                              f"shape {pointmaps.shape}")
    T, H, W = pointmaps.shape[:3]
    frame_index = np.asarray(fe["frame_index"]).reshape(-1)

    if "human_mask" in fe:
        human_mask, original = np.asarray(fe["human_mask"]), None
    else:
        human_mask, original = read_union_masks(os.path.join(folder, "mask"), frame_index, (H, W))
    if "original_size" in fe:
        original = tuple(int(x) for x in np.asarray(fe["original_size"]).reshape(-1)[:2])
    if "hmr_focal" in fe:
        hmr_focal = float(fe["hmr_focal"])
    elif original is not None:
        H_og, W_og = original
        hmr_focal = float(np.sqrt(W_og**2 + H_og**2) * W / W_og)
    else:
        raise ClipFormatError(fe_source, "hmr_focal", "hmr_focal or original_size (or the masks)",
                              "none of them")

    tram_files = sorted(glob.glob(os.path.join(folder, "tram", "*.npy")))
    n_people = len(tram_files)
    V = None
    orient, pose, betas, transl, valid, contact, ids = [], [], [], [], [], [], []
    for tram_path in tram_files:
        track = read_tram_track(tram_path, allow_pickle)
        deco_path = os.path.join(folder, "deco", os.path.basename(tram_path))
        if not os.path.exists(deco_path):
            raise FileNotFoundError(f"{deco_path}: DECO contacts for {tram_path} are missing")
        deco = read_deco_track(deco_path, len(track["frame"]), allow_pickle)
        rows, found = _rows_at(track["frame"], frame_index)
        J1 = track["pred_rotmat"].shape[1] - 1
        # Frames without a TRAM row get finite dummies (identity, zeros), masked by smpl_valid.
        rot = np.where(found[:, None, None, None], track["pred_rotmat"][rows], np.eye(3))
        orient.append(rot[:, 0])
        pose.append(rot[:, 1:].reshape(T, J1, 3, 3))
        betas.append(np.where(found[:, None], track["pred_shape"][rows], 0.0))
        transl.append(np.where(found[:, None], track["pred_trans"][rows], 0.0))
        contact.append(np.where(found[:, None], deco[rows], 0.0))
        valid.append(found)
        ids.append(_track_id(tram_path))
        V = deco.shape[1]
    if n_people == 0:
        logging.info("%s: no tram/*.npy tracks: scene-only clip", folder)

    def stack(xs, empty_shape):
        return np.stack(xs).astype(np.float32) if xs else np.zeros(empty_shape, np.float32)

    arrays = dict(
        format_version=clip_lib.FORMAT_VERSION,
        body_model=body_model,
        frame_index=frame_index,
        fps=np.float32(fe["fps"]) if "fps" in fe else np.float32(30.0),
        pointmaps=pointmaps,
        confidence=fe["confidence"],
        human_mask=human_mask,
        pairs=fe["pairs"],
        matches=fe["matches"],
        match_confidence=fe["match_confidence"],
        smpl_global_orient=stack(orient, (0, T, 3, 3)),
        smpl_body_pose=stack(pose, (0, T, 23, 3, 3)),
        smpl_betas=stack(betas, (0, T, 10)),
        smpl_transl=stack(transl, (0, T, 3)),
        hmr_focal=np.float32(hmr_focal),
        smpl_valid=np.stack(valid) if valid else np.zeros((0, T), bool),
        contact=stack(contact, (0, T, V or 6890)),
        track_id=np.asarray(ids, np.int32),
    )
    for key in ("images", "focal_init", "pair_scores"):
        if key in fe:
            arrays[key] = fe[key]
    clip, _ = clip_lib.validate_arrays(arrays, source=f"{folder} + {fe_source}")
    logging.info("Imported JOSH folder %s: %s", folder, clip.describe())
    return clip


# ---------------------------------------------------------------------------------------------


def load_any(
    path: str | os.PathLike,
    *,
    frontend: str | os.PathLike | None = None,
    allow_pickle: bool = False,
) -> tuple[clip_lib.Clip, clip_lib.GroundTruth | None]:
    """Loads a clip from any supported layout, detected automatically.

    - a `.npz` with `format_version`: our clip format (`load_clip`);
    - a `.npz` with the reference synthetic keys (`pred_depth`, `corr_offsets`, ...):
      `import_reference_clip`;
    - a folder: JOSH's preprocessing folder, with the front-end npz `frontend`
      (default `folder/frontend.npz`); `allow_pickle` as in `import_josh_folder`.

    Returns:
      (clip, gt): gt is None when the source has no ground truth.

    Raises:
      ClipFormatError: the layout is not recognised, or the file is invalid.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        fe = os.fspath(frontend) if frontend is not None else os.path.join(path, "frontend.npz")
        return import_josh_folder(path, fe, allow_pickle=allow_pickle), None
    arrays = clip_lib.read_npz(path)
    if "format_version" in arrays:
        clip, gt = clip_lib.validate_arrays(arrays, source=path)
        logging.info("Loaded %s: %s", path, clip.describe())
        return clip, gt
    if is_reference_layout(arrays):
        clip, gt = import_reference_arrays(arrays, source=path)
        logging.info("Imported reference clip %s: %s", path, clip.describe())
        return clip, gt
    raise ClipFormatError(
        path, "format_version",
        f"a josh-jax clip (key 'format_version') or the reference layout (keys "
        f"{list(REFERENCE_LAYOUT_KEYS)})", f"neither (keys {sorted(arrays)[:8]}...)",
    )
