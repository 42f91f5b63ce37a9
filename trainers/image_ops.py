"""Image operations shared by training (augmentation) and inference (the centre crop).

A crop *window* is `(x0, y0, w, h)` in pixel-edge coordinates of the source image;
`resample` crops and resizes it, `map_bbox` moves a box into the resampled pixels, and
`to_model_image` maps RGB in [0, 255] to the model's [-1, 1]. Host numpy.
"""

from __future__ import annotations

import numpy as np


def crop_window(H: int, W: int, scale: float, cx: float, cy: float) -> tuple[float, ...]:
    """(x0, y0, w, h) in pixel-edge coordinates of a crop of relative size `scale` centred at
    fraction (cx, cy) of the free range."""
    w, h = W * scale, H * scale
    return (W - w) * cx, (H - h) * cy, w, h


def resample(image: np.ndarray, window: tuple[float, ...], out_hw: tuple[int, int], *,
             nearest: bool = False) -> np.ndarray:
    """Crop `window` (x0, y0, w, h; pixel edges) of an [H, W, C] array and resize to `out_hw`.

    Bilinear (edge-clamped) or nearest; output pixel centres map to
    `x0 + (x + 0.5) * w / out_w - 0.5` in source pixel-centre coordinates.
    """
    H, W = image.shape[:2]
    x0, y0, w, h = window
    oh, ow = out_hw
    xs = x0 + (np.arange(ow) + 0.5) * w / ow - 0.5
    ys = y0 + (np.arange(oh) + 0.5) * h / oh - 0.5
    if nearest:
        xi = np.clip(np.rint(xs).astype(int), 0, W - 1)
        yi = np.clip(np.rint(ys).astype(int), 0, H - 1)
        return image[yi][:, xi]
    xs, ys = np.clip(xs, 0, W - 1), np.clip(ys, 0, H - 1)
    x0i, y0i = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1i, y1i = np.minimum(x0i + 1, W - 1), np.minimum(y0i + 1, H - 1)
    ax, ay = (xs - x0i)[None, :, None], (ys - y0i)[:, None, None]
    img = image.astype(np.float32)
    top = img[y0i][:, x0i] * (1 - ax) + img[y0i][:, x1i] * ax
    bot = img[y1i][:, x0i] * (1 - ax) + img[y1i][:, x1i] * ax
    return top * (1 - ay) + bot * ay


def to_model_image(rgb: np.ndarray) -> np.ndarray:
    """uint8/float [h, w, 3] RGB in [0, 255] -> float32 [h, w, 3] in [-1, 1]."""
    return (np.asarray(rgb, np.float32) / 255.0 - 0.5) / 0.5


def map_bbox(bbox: np.ndarray, window: tuple[float, ...], out_hw: tuple[int, int]) -> np.ndarray:
    """xyxy box from source pixels to the pixels of the resampled window."""
    x0, y0, w, h = window
    oh, ow = out_hw
    sx, sy = ow / w, oh / h
    return np.array([(bbox[0] - x0) * sx, (bbox[1] - y0) * sy, (bbox[2] - x0) * sx,
                     (bbox[3] - y0) * sy], np.float32)

