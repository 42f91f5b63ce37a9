"""JOSH3R pair datasets: frames stored once, labels per pair, and one training example.

`make_pair_dataset` turns `FrameSequence`s (`trainers.labels`) into a `PairDataset`;
`build_dataset` makes the one `config.data` names (synthetic ground truth, JOSH pseudo-labels of
synthetic clips, or a saved `.npz`). `make_example` is one augmented model input + labels
(random crop-zoom per view, brightness/contrast jitter; `trainers.image_ops`), `collate` stacks
examples into a batch. Host numpy throughout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

import body_models
from josh_jax.errors import InputError
from josh_jax.io.atomic import atomic_write
from trainers.image_ops import crop_window, map_bbox, resample, to_model_image
from trainers.labels import (
    FrameSequence,
    frames_from_result,
    frames_from_synthetic,
    pair_labels,
    sample_pairs,
)

LABEL_KEYS = ("trans", "rot", "trans1", "trans2", "rot1", "rot2", "pose", "beta", "depth_points",
              "depth_mask")


class DatasetFormatError(InputError):
    """A saved `PairDataset` file that cannot be read (missing keys)."""


@dataclasses.dataclass(frozen=True)
class PairDataset:
    """Frames (stored once) and per-pair labels; all host numpy.

    Attributes:
      images: uint8[F, H, W, 3] every frame used by some pair (all clips, same size).
      bbox: float32[F, 4] xyxy body box per frame (pixels of `images`).
      pair_frames: int32[E, 2] rows of `images` of each pair.
      labels: dict of float32/bool[E, ...]: `trans`, `rot`, `trans1`, `trans2`, `rot1`, `rot2`,
        `pose`, `beta`, `depth_points` [E, 2, H, W, 3], `depth_mask` [E, 2].
      sources: one string per pair ("<sequence source>:<frame i>-<frame j>").
    """

    images: np.ndarray
    bbox: np.ndarray
    pair_frames: np.ndarray
    labels: dict[str, np.ndarray]
    sources: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.pair_frames.shape[0])

    def save(self, path: str) -> str:
        """Write an `.npz` atomically (`josh_jax.io.atomic`); returns `path`."""
        arrays = {"images": self.images, "bbox": self.bbox, "pair_frames": self.pair_frames,
                  "sources": np.asarray(self.sources, dtype=str)}
        arrays.update({f"label_{k}": v for k, v in self.labels.items()})
        with atomic_write(path) as tmp:
            np.savez_compressed(tmp, **arrays)
        return path

    @classmethod
    def load(cls, path: str) -> PairDataset:
        with np.load(path, allow_pickle=False) as z:
            need = ["images", "bbox", "pair_frames"] + [f"label_{k}" for k in LABEL_KEYS]
            missing = [k for k in need if k not in z.files]
            if missing:
                raise DatasetFormatError(path, "keys", "a PairDataset .npz with "
                                         + ", ".join(need), f"{missing} missing")
            return cls(
                images=z["images"], bbox=z["bbox"], pair_frames=z["pair_frames"],
                labels={k: z[f"label_{k}"] for k in LABEL_KEYS},
                sources=tuple(str(s) for s in z["sources"]) if "sources" in z.files else (),
            )


def make_pair_dataset(sequences: Sequence[FrameSequence], body: body_models.BodyModel, *,
                      min_gap: int = 3, max_gap: int | None = None,
                      view2_depth_frame: str = "cam2") -> PairDataset:
    """Pairs and labels from several sequences (all with the same image size)."""
    images, boxes, frames, sources = [], [], [], []
    labels: dict[str, list] = {k: [] for k in LABEL_KEYS}
    offset = 0
    for seq in sequences:
        if images and seq.image_size != images[0].shape[1:3]:
            raise ValueError(f"make_pair_dataset: {seq.source}: image size {seq.image_size}, "
                             f"expected {images[0].shape[1:3]} like the first sequence")
        J0 = np.asarray(body_models.rest_joints(body, jnp.asarray(seq.betas))[0], np.float64)
        pairs = sample_pairs(seq.frame_index, min_gap=min_gap, max_gap=max_gap, valid=seq.valid)
        for i, j in pairs:
            lab = pair_labels(seq, int(i), int(j), J0, view2_depth_frame=view2_depth_frame)
            for k in LABEL_KEYS:
                labels[k].append(lab[k])
            sources.append(f"{seq.source}:{int(seq.frame_index[i])}-{int(seq.frame_index[j])}")
        frames.append(pairs + offset)
        images.append(seq.images)
        boxes.append(seq.bbox)
        offset += seq.num_frames
    if not sources:
        raise ValueError("make_pair_dataset: no pairs (sequences too short or no valid frames)")
    return PairDataset(
        images=np.concatenate(images),
        bbox=np.concatenate(boxes).astype(np.float32),
        pair_frames=np.concatenate(frames).astype(np.int32),
        labels={k: np.stack(v) for k, v in labels.items()},
        sources=tuple(sources),
    )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Per-view augmentation.

    Attributes:
      enabled: off -> a centre crop of `crop_scale_max` (deterministic).
      crop_scale_min, crop_scale_max: side of the crop window relative to the image (aspect
        kept), drawn uniformly; the window's position is uniform inside the image. The reference
        infers on a 0.5 centre crop (spec 3.4), which this range covers.
      brightness, contrast: maximum relative change (uniform in [-x, x]).
    """

    enabled: bool = True
    crop_scale_min: float = 0.5
    crop_scale_max: float = 1.0
    brightness: float = 0.1
    contrast: float = 0.1


def make_example(ds: PairDataset, index: int, image_hw: tuple[int, int], aug: AugmentConfig,
                 rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """Model inputs + labels of pair `index` (unbatched)."""
    H, W = ds.images.shape[1:3]
    imgs, boxes, depth = [], [], []
    for v in range(2):
        f = int(ds.pair_frames[index, v])
        if aug.enabled and rng is not None:
            s = rng.uniform(aug.crop_scale_min, aug.crop_scale_max)
            window = crop_window(H, W, s, rng.uniform(), rng.uniform())
            gain = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
            bias = 255.0 * rng.uniform(-aug.brightness, aug.brightness)
        else:
            window = crop_window(H, W, aug.crop_scale_max, 0.5, 0.5)
            gain, bias = 1.0, 0.0
        rgb = resample(ds.images[f], window, image_hw)
        rgb = np.clip((rgb - 127.5) * gain + 127.5 + bias, 0, 255)
        imgs.append(to_model_image(rgb))
        boxes.append(map_bbox(ds.bbox[f], window, image_hw))
        depth.append(resample(ds.labels["depth_points"][index, v], window, image_hw, nearest=True))
    lab = {k: ds.labels[k][index] for k in LABEL_KEYS if k != "depth_points"}
    return {
        "imgs": np.stack(imgs).astype(np.float32),
        "img_shapes": np.array([image_hw, image_hw], np.int32),
        "bbox": np.stack(boxes),
        "depth": np.stack(depth).astype(np.float32),
        **lab,
    }


def collate(examples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack a list of examples along a new leading batch axis."""
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def build_dataset(data_config: Any, body: body_models.BodyModel) -> PairDataset:
    """The `PairDataset` named by `config.data`.

    `data_config.source`:
      * `"pairs_npz"`: a saved `PairDataset` at `data_config.path`;
      * `"synthetic_gt"`: `data_config.num_clips` synthetic clips from
        `josh_jax.synthetic.generate_clip(data_config.clip, seed)` (seeds `seed, seed+1, ...`;
        `data_config.clip` is an `experiments/configs/synthetic.py` config), labels from their
        ground truth (fast, exact; a stand-in teacher);
      * `"synthetic_josh"`: the same clips reconstructed by the JAX JOSH optimizer
        (`josh_jax.pipeline.reconstruct_many` with `data_config.josh`, an
        `experiments/configs/josh.py` config), labels from its `Result` (the paper's recipe).
    """
    source = data_config.source
    if source == "pairs_npz":
        return PairDataset.load(data_config.path)
    if source not in ("synthetic_gt", "synthetic_josh"):
        raise ValueError(f"config.data.source: expected 'pairs_npz', 'synthetic_gt' or "
                         f"'synthetic_josh', found {source!r}")
    from josh_jax import synthetic  # noqa: PLC0415 (heavy; only for these sources)

    seeds = [int(data_config.seed) + k for k in range(int(data_config.num_clips))]
    clips = [synthetic.generate_clip(data_config.clip, seed) for seed in seeds]
    if source == "synthetic_gt":
        sequences = [frames_from_synthetic(clip, gt, body, source=f"synthetic_gt:{seed}")
                     for (clip, gt), seed in zip(clips, seeds, strict=True)]
    else:
        from josh_jax import pipeline  # noqa: PLC0415

        outs = pipeline.reconstruct_many([c for c, _ in clips], data_config.josh, body)
        sequences = [frames_from_result(result, clip, body, source=f"josh:{seed}")
                     for (result, _), (clip, _), seed in zip(outs, clips, seeds, strict=True)]
    return make_pair_dataset(sequences, body, min_gap=data_config.min_gap,
                             max_gap=data_config.max_gap or None,
                             view2_depth_frame=data_config.view2_depth_frame)
