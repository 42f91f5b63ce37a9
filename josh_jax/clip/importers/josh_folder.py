"""JOSH's preprocessing folder plus the user's front-end `.npz` -> a `Clip`.

JOSH's folder holds `tram/hps_track_*.npy`, `deco/hps_track_*.npy` and `mask/%06d.png`; the
user's own front end adds an `.npz` with pointmaps and matches (keys in `docs/clip_format.md`).
The TRAM files are pickles of torch tensors: they are read only with `allow_pickle=True`
(unpickling runs code from the file) and need torch (`pip install 'josh-jax[torch]'`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from typing import Any

import imageio.v3 as iio
import numpy as np
from absl import logging

from josh_jax.clip.importers.common import rows_at
from josh_jax.clip.io import read_npz
from josh_jax.clip.schema import ClipFormatError, validate_arrays
from josh_jax.clip.types import FORMAT_VERSION, Clip
from josh_jax.errors import InputError

FRONTEND_REQUIRED = ("frame_index", "pointmaps", "confidence", "pairs", "matches",
                     "match_confidence")
FRONTEND_OPTIONAL = ("images", "fps", "human_mask", "focal_init", "pair_scores", "hmr_focal",
                     "original_size")

TORCH_MISSING = (
    "reading JOSH's tram/*.npy needs torch (they are pickled torch tensors): "
    "pip install 'josh-jax[torch]'"
)


class PickleRefusedError(InputError):
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
            path, "(file)",
            "plain arrays, or allow_pickle=True (--allow_pickle) if you trust this folder",
            "a pickle (JOSH writes torch tensors with np.save; unpickling runs code from the file)",
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
    limits=None,
) -> Clip:
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
      limits: `config.limits` bounding the front-end `.npz` before it is inflated, or None.

    Returns:
      The clip (no ground truth). Frames where a track has no TRAM row have `smpl_valid` False,
      identity rotations, zero betas/translation and zero contact.

    Raises:
      PickleRefusedError: a TRAM/DECO file is a pickle and `allow_pickle` is False.
      ImportError: torch is needed and missing.
      ClipFormatError / FileNotFoundError: bad or missing input.
    """
    folder = os.fspath(folder)
    fe, fe_source = _read_frontend(frontend, limits)
    pointmaps = np.asarray(fe["pointmaps"])
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

    arrays = dict(
        format_version=FORMAT_VERSION,
        body_model=body_model,
        frame_index=frame_index,
        fps=np.float32(fe["fps"]) if "fps" in fe else np.float32(30.0),
        pointmaps=pointmaps,
        confidence=fe["confidence"],
        human_mask=human_mask,
        pairs=fe["pairs"],
        matches=fe["matches"],
        match_confidence=fe["match_confidence"],
        hmr_focal=np.float32(hmr_focal),
        **_read_tracks(folder, frame_index, allow_pickle),
    )
    for key in ("images", "focal_init", "pair_scores"):
        if key in fe:
            arrays[key] = fe[key]
    clip, _ = validate_arrays(arrays, source=f"{folder} + {fe_source}")
    logging.info("Imported JOSH folder %s: %s", folder, clip.describe())
    return clip


def _read_frontend(frontend, limits=None) -> tuple[dict[str, np.ndarray], str]:
    """The front end's arrays and their source name, with the required keys checked."""
    if isinstance(frontend, Mapping):
        fe, fe_source = dict(frontend), "<front-end arrays>"
    else:
        fe_source = os.fspath(frontend)
        fe = read_npz(fe_source, limits)
    for key in FRONTEND_REQUIRED:
        if key not in fe:
            raise ClipFormatError(fe_source, key, "a required front-end key", "no such key")
    unknown = sorted(set(fe) - set(FRONTEND_REQUIRED) - set(FRONTEND_OPTIONAL))
    if unknown:
        raise ClipFormatError(fe_source, unknown[0], "only front-end keys (docs/clip_format.md)",
                              f"unknown key(s) {unknown}")
    if np.ndim(fe["pointmaps"]) != 4:
        raise ClipFormatError(fe_source, "pointmaps", "shape [T, H, W, 3]",
                              f"shape {np.shape(fe['pointmaps'])}")
    return fe, fe_source


def _read_tracks(folder: str, frame_index: np.ndarray, allow_pickle: bool) -> dict[str, np.ndarray]:
    """The clip's `smpl_*`, `contact` and `track_id` arrays from `tram/` and `deco/` (sorted)."""
    T = len(frame_index)
    V = None
    orient, pose, betas, transl, valid, contact, ids = [], [], [], [], [], [], []
    for tram_path in sorted(glob.glob(os.path.join(folder, "tram", "*.npy"))):
        track = read_tram_track(tram_path, allow_pickle)
        deco_path = os.path.join(folder, "deco", os.path.basename(tram_path))
        if not os.path.exists(deco_path):
            raise FileNotFoundError(f"{deco_path}: DECO contacts for {tram_path} are missing")
        deco = read_deco_track(deco_path, len(track["frame"]), allow_pickle)
        rows, found = rows_at(track["frame"], frame_index)
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
    if not ids:
        logging.info("%s: no tram/*.npy tracks: scene-only clip", folder)

    def stack(xs, empty_shape):
        return np.stack(xs).astype(np.float32) if xs else np.zeros(empty_shape, np.float32)

    return dict(
        smpl_global_orient=stack(orient, (0, T, 3, 3)),
        smpl_body_pose=stack(pose, (0, T, 23, 3, 3)),
        smpl_betas=stack(betas, (0, T, 10)),
        smpl_transl=stack(transl, (0, T, 3)),
        smpl_valid=np.stack(valid) if valid else np.zeros((0, T), bool),
        contact=stack(contact, (0, T, V or 6890)),
        track_id=np.asarray(ids, np.int32),
    )
