"""SSD data augmentation (paper, sec. 2.2 "Data augmentation" and 3.6), boxes following every step.

The order is the paper's (and ssd.pytorch's ``SSDAugmentation``): photometric distortion, zoom
out (expand onto a larger canvas), an IoU-constrained random crop, a horizontal flip, and for
images taken straight down (``top_down``) a vertical flip and quarter turns; the caller
then resizes to the network's input (:func:`resize`). NumPy and Pillow only, one image at a time
with an explicit ``np.random.Generator``, so every transform can be checked by hand and any
sample reproduced from its seed.

Images are uint8 ``[H, W, 3]``; boxes float32 ``[K, 4]`` pixel ``xyxy`` with labels int32 ``[K]``.
A negative label ``~c`` (``-1 - c``) marks an ignore region of class ``c`` (a crowd or difficult
region): it follows the transforms like any box, but no crop is chosen for its sake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from ssd.geometry import iou

# Crop modes of the paper: the whole image, a patch whose minimum IoU with the objects is 0.1,
# 0.3, 0.5, 0.7 or 0.9, or any patch (None).
MIN_IOUS: tuple[float | None, ...] = (0.1, 0.3, 0.5, 0.7, 0.9, None)
CROP_TRIALS = 50


@dataclass(frozen=True)
class Augmentation:
    """What :func:`augment` applies; each part with probability 0.5 where the paper says so."""

    photometric: bool = True
    expand: float = 4.0  # largest zoom-out ratio (paper: 16x the area); <= 1 turns it off
    crop: bool = True
    flip: bool = True
    # Images that look straight down (aerial, satellite, microscopy) have no "up": also a
    # vertical flip (p 0.5) and a rotation by 0, 90, 180 or 270 degrees, so with ``flip`` every
    # one of the square's 8 symmetries is drawn equally often.
    top_down: bool = False


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness (+-32), contrast and saturation (x0.5-1.5), hue (+-18 degrees), each with
    probability 0.5, contrast before or after the colour changes (ssd.pytorch's PhotometricDistort).

    Saturation and hue act in YIQ (luma and two chroma axes): saturation scales the chroma,
    hue rotates it — one 3x3 matrix on every pixel instead of a round trip through HSV, ten times
    cheaper and the same for the grey axis (see :func:`colour_matrix`).
    """
    x: np.ndarray = image.astype(np.float32)
    if rng.random() < 0.5:
        x = x + np.float32(rng.uniform(-32, 32))
    contrast_first = rng.random() < 0.5

    def contrast(x: np.ndarray) -> np.ndarray:
        return x * np.float32(rng.uniform(0.5, 1.5)) if rng.random() < 0.5 else x

    if contrast_first:
        x = contrast(x)
    saturation = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else 1.0
    hue = rng.uniform(-18, 18) if rng.random() < 0.5 else 0.0
    if saturation != 1.0 or hue != 0.0:
        x = np.clip(x, 0, 255) @ colour_matrix(saturation, hue).T
    if not contrast_first:
        x = contrast(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])


def colour_matrix(saturation: float, hue_degrees: float) -> np.ndarray:
    """float32 [3, 3] acting on RGB column vectors: chroma scaled by ``saturation`` and rotated by
    ``hue_degrees`` in YIQ, luma (Y) kept. ``(1, 0)`` is the identity; saturation 0 gives grey."""
    angle = np.deg2rad(hue_degrees)
    c, s = np.cos(angle) * saturation, np.sin(angle) * saturation
    chroma = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return (np.linalg.inv(RGB_TO_YIQ) @ chroma @ RGB_TO_YIQ).astype(np.float32)


def expand(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, *, max_ratio: float, fill: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom out: the image at a random place on a canvas ``ratio`` times as wide and high (ratio
    uniform in ``[1, max_ratio]``), filled with ``fill`` (default: the image's mean colour).
    Small objects become more frequent; boxes shift by the image's offset."""
    height, width = image.shape[:2]
    ratio = rng.uniform(1.0, max_ratio)
    new_h, new_w = int(height * ratio), int(width * ratio)
    top, left = int(rng.uniform(0, new_h - height)), int(rng.uniform(0, new_w - width))
    colour = image.reshape(-1, 3).mean(0) if fill is None else fill
    canvas = np.empty((new_h, new_w, 3), np.uint8)
    canvas[:] = np.rint(colour).astype(np.uint8)
    canvas[top : top + height, left : left + width] = image
    return canvas, (boxes + np.array([left, top, left, top], np.float32)).astype(np.float32)


def random_crop(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's IoU-constrained patch: a mode from the whole image, min IoU 0.1-0.9 or any; a
    patch 0.3-1 of each side with aspect ratio 0.5-2, accepted when every object (ignore regions
    aside) overlaps it by at least the mode's IoU and the centre of at least one lies in it; the
    boxes whose centre lies in the patch are kept, clipped to it. :data:`CROP_TRIALS` patches per
    mode, drawn and tested together (the first that passes wins), then another mode (the whole
    image is one, so this ends)."""
    height, width = image.shape[:2]
    objects = labels >= 0
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # [K, 2]
    while True:
        mode = rng.integers(len(MIN_IOUS) + 1)
        if mode == len(MIN_IOUS):  # use the whole image
            return image, boxes, labels
        min_iou = MIN_IOUS[mode]
        w = rng.uniform(0.3 * width, width, CROP_TRIALS)
        h = rng.uniform(0.3 * height, height, CROP_TRIALS)
        left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
        rects = np.stack([left, top, left + w, top + h], 1).astype(np.int64).astype(np.float32)  # [T, 4]
        ok = (h / w >= 0.5) & (h / w <= 2.0)
        # inside[t, k]: box k's centre lies in patch t.
        inside = np.all((centres[None] > rects[:, None, :2]) & (centres[None] < rects[:, None, 2:]), axis=2)
        if objects.any():
            ok &= inside[:, objects].any(axis=1)  # a patch without any object teaches nothing
            if min_iou is not None:
                ok &= iou(rects, boxes[objects]).min(axis=1) >= min_iou
        if not ok.any():
            continue
        t = int(np.argmax(ok))
        rect, keep = rects[t], inside[t]
        x0, y0, x1, y1 = rect.astype(int)
        kept = np.concatenate([np.maximum(boxes[keep, :2], rect[:2]), np.minimum(boxes[keep, 2:], rect[2:])], 1)
        return image[y0:y1, x0:x1].copy(), (kept - np.tile(rect[:2], 2)).astype(np.float32), labels[keep]


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: ``x -> W - x``, so ``[x0, y0, x1, y1] -> [W - x1, y0, W - x0, y1]``."""
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return image[:, ::-1].copy(), flipped


def vflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top-bottom: ``y -> H - y``, so ``[x0, y0, x1, y1] -> [x0, H - y1, x1, H - y0]``."""
    height = image.shape[0]
    flipped = boxes.copy()
    flipped[:, 1], flipped[:, 3] = height - boxes[:, 3], height - boxes[:, 1]
    return image[::-1].copy(), flipped


def rot90(image: np.ndarray, boxes: np.ndarray, turns: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate ``turns`` quarter turns counter-clockwise (``np.rot90``). One turn of a ``W``-wide
    image takes the point ``(x, y)`` to ``(y, W - x)``, so ``[x0, y0, x1, y1] -> [y0, W - x1, y1, W - x0]``."""
    for _ in range(turns % 4):
        width = image.shape[1]
        image = np.rot90(image)
        boxes = np.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], 1).astype(np.float32)
    return np.ascontiguousarray(image), boxes


def resize_geometry(
    width: int, height: int, size: int, mode: Literal["stretch", "letterbox"] = "stretch"
) -> tuple[float, float, int, int, int, int]:
    """How :func:`resize` maps a ``width x height`` image into the ``size`` square: scales
    ``(sx, sy)``, offsets ``(dx, dy)`` and the resized image's ``(new_w, new_h)``."""
    if mode == "stretch":
        return size / width, size / height, 0, 0, size, size
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return new_w / width, new_h / height, (size - new_w) // 2, (size - new_h) // 2, new_w, new_h


def resize_boxes(
    boxes: np.ndarray, width: int, height: int, size: int, mode: Literal["stretch", "letterbox"] = "stretch"
) -> np.ndarray:
    """float32 [K, 4] ``xyxy`` boxes of a ``width x height`` image where :func:`resize` puts them."""
    sx, sy, dx, dy, _, _ = resize_geometry(width, height, size, mode)
    scaled = boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([dx, dy, dx, dy], np.float32)
    return scaled.astype(np.float32)


def resize(
    image: np.ndarray, boxes: np.ndarray, size: int, mode: Literal["stretch", "letterbox"] = "stretch"
) -> tuple[np.ndarray, np.ndarray]:
    """The square network input: ``stretch`` (the paper: each axis scaled on its own) or
    ``letterbox`` (one scale, centred on black). Bilinear, antialiased; boxes scale with it."""
    height, width = image.shape[:2]
    _, _, dx, dy, new_w, new_h = resize_geometry(width, height, size, mode)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0))
    if mode == "stretch":
        out = resized
    else:
        out = np.zeros((size, size, 3), np.uint8)
        out[dy : dy + new_h, dx : dx + new_w] = resized
    return out, resize_boxes(boxes, width, height, size, mode)


def augment(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator, config: Augmentation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's chain on one image (before :func:`resize`)."""
    if config.photometric:
        image = photometric(image, rng)
    if config.expand > 1 and rng.random() < 0.5:
        image, boxes = expand(image, boxes, rng, max_ratio=config.expand)
    if config.crop:
        image, boxes, labels = random_crop(image, boxes, labels, rng)
    if config.flip and rng.random() < 0.5:
        image, boxes = hflip(image, boxes)
    if config.top_down:  # draws nothing otherwise: runs without it reproduce as before
        if rng.random() < 0.5:
            image, boxes = vflip(image, boxes)
        image, boxes = rot90(image, boxes, int(rng.integers(4)))
    return image, boxes, labels
