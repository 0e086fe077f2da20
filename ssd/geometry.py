"""Box geometry in NumPy: areas, sizes, pairwise intersection and IoU, COCO boxes, image sizes.

The NumPy counterpart of :mod:`ssd.boxes` (which works on TensorFlow tensors), for the code
that must not load TensorFlow: the data generator, prior coverage, the metrics, and the web
server that imports them. Small arrays are its use: one image's IoU against a few thousand
priors takes microseconds in NumPy but about a millisecond of TensorFlow eager dispatch per op.

Formats: ``xyxy`` = (x1, y1, x2, y2) with x1 <= x2, y1 <= y2 (a box with x2 < x1 or y2 < y1 has
area 0); COCO ``xywh`` = (x1, y1, width, height); both in pixels. Results are float32 unless a
function takes a ``dtype``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["ImageSize", "box_area", "box_size", "image_hw", "intersection", "iou", "xyxy_to_xywh"]

ImageSize = int | tuple[int, int]


def image_hw(image_size: ImageSize) -> tuple[int, int]:
    """``(height, width)`` of an image size given as ``S`` (a square) or ``(H, W)``."""
    if isinstance(image_size, int | np.integer):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def box_area(boxes: ArrayLike, *, dtype: DTypeLike = np.float32) -> np.ndarray:
    """[..., 4] ``xyxy`` -> [...] area, computed in ``dtype`` (0 for degenerate boxes)."""
    b = np.asarray(boxes, dtype)
    return np.maximum(b[..., 2] - b[..., 0], 0.0) * np.maximum(b[..., 3] - b[..., 1], 0.0)


def box_size(boxes: ArrayLike) -> np.ndarray:
    """[..., 4] ``xyxy`` -> float32 [...] ``sqrt(area)``: the side of the square of equal area."""
    return np.sqrt(box_area(boxes)).astype(np.float32)


def intersection(boxes1: ArrayLike, boxes2: ArrayLike, *, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Pairwise intersection areas.

    Args:
        boxes1: [..., N, 4] ``xyxy``.
        boxes2: [M, 4] ``xyxy``.
        dtype: the float type computed in.

    Returns:
        ``dtype`` [..., N, M]; 0 for boxes that do not overlap (or only touch).
    """
    b1 = np.asarray(boxes1, dtype)[..., :, None, :]
    b2 = np.asarray(boxes2, dtype)[None, :, :]
    w = np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0])
    h = np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1])
    return np.maximum(w, 0.0) * np.maximum(h, 0.0)


def iou(boxes1: ArrayLike, boxes2: ArrayLike, *, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Pairwise IoU, as :func:`ssd.boxes.box_iou` (which it equals in float32).

    Args:
        boxes1: [..., N, 4] ``xyxy``.
        boxes2: [M, 4] ``xyxy``.
        dtype: the float type computed in: float32 (the default, as the model and the matching
            rule) or float64 (the metrics, as pycocotools).

    Returns:
        ``dtype`` [..., N, M]; 0 where the union is empty.
    """
    b1 = np.asarray(boxes1, dtype)
    b2 = np.asarray(boxes2, dtype)
    inter = intersection(b1, b2, dtype=dtype)
    union = box_area(b1, dtype=dtype)[..., :, None] + box_area(b2, dtype=dtype)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0).astype(dtype, copy=False)


def xyxy_to_xywh(boxes: ArrayLike) -> np.ndarray:
    """[..., 4] ``xyxy`` -> float64 [..., 4] COCO ``xywh`` (float64: JSON and pycocotools use it)."""
    b = np.asarray(boxes, np.float64)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)
