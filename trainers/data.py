"""The JOSH3R data pipeline under its former single-module name (kept for existing imports).

The pieces live in one module per concept: `trainers.labels` (frame sequences, pair sampling,
labels), `trainers.image_ops` (crops and resizes shared with inference), `trainers.dataset`
(`PairDataset`, examples, `build_dataset`) and `trainers.pair_iterator` (`PairIterator`,
`Prefetcher`). New code imports those directly.
"""

from trainers.dataset import (
    LABEL_KEYS,
    AugmentConfig,
    DatasetFormatError,
    PairDataset,
    build_dataset,
    collate,
    make_example,
    make_pair_dataset,
)
from trainers.image_ops import crop_window, map_bbox, resample, to_model_image
from trainers.labels import (
    FrameSequence,
    body_bboxes,
    camera_smpl_params,
    frames_from_result,
    frames_from_synthetic,
    pair_labels,
    relative_smpl_transform,
    sample_pairs,
)
from trainers.pair_iterator import PairIterator, Prefetcher

__all__ = [
    "LABEL_KEYS", "AugmentConfig", "DatasetFormatError", "FrameSequence", "PairDataset",
    "PairIterator", "Prefetcher", "body_bboxes", "build_dataset", "camera_smpl_params", "collate",
    "crop_window", "frames_from_result", "frames_from_synthetic", "make_example",
    "make_pair_dataset", "map_bbox", "pair_labels", "relative_smpl_transform", "resample",
    "sample_pairs", "to_model_image",
]
