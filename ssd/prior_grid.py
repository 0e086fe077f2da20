"""How a box meets a source layer's grid of priors: its best IoU with each prior shape, in O(1).

A layer's priors sit on a grid of cell centres (:func:`ssd.priors.make_priors`: ``s // 2 + k * s``
for a stride ``s`` that divides the image; :func:`layer_centres` reads them off). For one prior
shape, the best IoU of a box over all the layer's priors of that shape is its IoU with the prior
at the grid centre nearest its own centre: the overlap of two intervals shrinks as their centres
part, along x and along y, and IoU grows with the overlap (the image border only limits which
centres exist). So a (layer, shape) pair is judged by one IoU per box instead of one per prior
of the image, which is what makes :mod:`ssd.suggest` fast enough for a click. A test proves the
equality against IoU over every prior of :func:`ssd.priors.make_priors`.

Boxes are pixel ``xyxy`` in the square network input; shapes ``(w, h)`` in pixels. NumPy only.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ssd.config import PriorConfig
from ssd.priors import make_priors

__all__ = ["covers", "full_cover_size", "grid_iou", "layer_centres", "nearest_offsets"]


def full_cover_size(stride: int, iou_threshold: float) -> float:
    """Smallest side of a square box that a same-size prior of a layer of ``stride`` reaches at IoU
    >= ``iou_threshold`` wherever the box lies: both centres up to ``stride / 2`` apart in x and y.

    ``(a - d)^2 / (2 a^2 - (a - d)^2) >= t`` with ``d = stride / 2`` gives
    ``a >= d / (1 - sqrt(2t / (1 + t)))``; e.g. 10.9 px for stride 4 at t = 0.5.
    """
    q = 1.0 - math.sqrt(2.0 * iou_threshold / (1.0 + iou_threshold))
    return math.inf if q <= 0 else stride / 2.0 / q


@functools.lru_cache(maxsize=64)
def layer_centres(stride: int, image_size: int) -> np.ndarray:
    """float64 [n] the centres of a layer's cells along x (and y), read off
    :func:`ssd.priors.make_priors` so that this module follows its rule wherever it goes."""
    layout = make_priors(PriorConfig(strides=(stride,), scales=((1.0,),), ratios=(1.0,)), image_size)
    first_row = layout.boxes[layout.row == 0].astype(np.float64)
    centres = np.sort((first_row[:, 0] + first_row[:, 2]) / 2)
    centres.setflags(write=False)
    return centres


def nearest_offsets(boxes: np.ndarray, stride: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 [G] ``|dx|``, ``|dy|`` from each box's centre ([G, 4] ``xyxy``) to the nearest prior
    centre of a layer of ``stride`` (:func:`layer_centres`)."""
    grid = layer_centres(stride, image_size)
    out = []
    for axis in (0, 1):
        centre = (boxes[:, axis] + boxes[:, axis + 2]) / 2.0
        right = np.clip(np.searchsorted(grid, centre), 0, len(grid) - 1)
        left = np.clip(right - 1, 0, len(grid) - 1)
        out.append(np.minimum(np.abs(centre - grid[left]), np.abs(centre - grid[right])))
    return out[0], out[1]


def grid_iou(boxes: np.ndarray, shapes: np.ndarray, stride: int, image_size: int) -> np.ndarray:
    """Best IoU of each box with the priors of each shape on one layer: float32 [A, G].

    Args:
        boxes: [G, 4] pixel ``xyxy``.
        shapes: [A, 2] prior ``(w, h)``.

    The best prior of a shape is the one at the grid centre nearest the box's centre (see the
    module docstring), so this equals the maximum of :func:`ssd.geometry.iou` over the layer's
    priors of :func:`ssd.priors.make_priors` (a test proves it) at a fraction of the cost.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ax, ay = nearest_offsets(b, stride, image_size)
    gw, gh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    pw, ph = np.asarray(shapes, np.float64)[:, 0:1], np.asarray(shapes, np.float64)[:, 1:2]
    # Overlap of intervals of lengths u, v whose centres are d apart: min(u, v, (u + v) / 2 - d), >= 0.
    ix = np.clip(np.minimum(np.minimum(gw, pw), (gw + pw) / 2 - ax), 0, None)
    iy = np.clip(np.minimum(np.minimum(gh, ph), (gh + ph) / 2 - ay), 0, None)
    inter = ix * iy
    union = gw * gh + pw * ph - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0).astype(np.float32)


def covers(
    boxes: np.ndarray, shapes: np.ndarray, stride: int, image_size: int, thresholds: tuple[float, ...]
) -> list[np.ndarray]:
    """Per threshold, bool [A, G]: :func:`grid_iou` >= it, without the division (float32: the
    search's bit sets take about 10 million of these per layer)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ax, ay = (v.astype(np.float32) for v in nearest_offsets(b, stride, image_size))
    gw, gh = (b[:, 2] - b[:, 0]).astype(np.float32), (b[:, 3] - b[:, 1]).astype(np.float32)
    pw, ph = (np.asarray(shapes, np.float32)[:, k : k + 1] for k in (0, 1))
    inter = np.minimum(np.minimum(gw, pw), (gw + pw) / 2 - ax)
    np.maximum(inter, 0, out=inter)
    iy = np.minimum(np.minimum(gh, ph), (gh + ph) / 2 - ay)
    np.maximum(iy, 0, out=iy)
    inter *= iy
    areas = gw * gh + pw * ph  # IoU >= t  <=>  inter >= t (areas - inter)  <=>  inter (1 + t) >= t areas
    return [inter * (1 + t) >= t * areas for t in thresholds]
