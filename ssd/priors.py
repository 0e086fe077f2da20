"""Prior (default) boxes of the SSD paper, sec. 2.2, in the notebook's parametrisation.

One order everywhere (DESIGN.md): per source layer, row-major over cells (row, then column),
then the prior shapes of a cell (scale-major, then ratio). The multibox head reshapes its
``[B, H, W, A * C]`` output to ``[B, H * W * A, C]``, which is the same order, so prediction i
and prior i describe the same cell and shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssd.config import PriorConfig


@dataclass(frozen=True)
class PriorLayout:
    """Where each prior comes from.

    Attributes:
        boxes: float32 [P, 4] pixel ``xyxy``.
        layer: int32 [P] index of the source layer.
        row, col: int32 [P] cell of the feature map.
        shape: int32 [P] index of the prior shape within a cell.
        grid: per layer, the feature map size ``(rows, cols)``.
        shapes: per layer, float32 [A, 2] prior ``(w, h)`` in pixels.
    """

    boxes: np.ndarray
    layer: np.ndarray
    row: np.ndarray
    col: np.ndarray
    shape: np.ndarray
    grid: tuple[tuple[int, int], ...]
    shapes: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def feature_size(image_size: int, stride: int) -> int:
    """Feature map side of a layer with ``stride`` ('same' padding): ``ceil(size / stride)``."""
    return math.ceil(image_size / stride)


def cell_pitch(image_size: int, stride: int) -> tuple[float, float]:
    """``(step, offset)`` of a layer's cells in pixels: cell ``k``'s centre is ``offset + k * step``.

    ``(stride, stride // 2)`` where the stride divides the image (the notebook's rule); otherwise
    the ``ceil(image_size / stride)`` cells spread over the image.
    """
    if image_size % stride == 0:
        return float(stride), float(stride // 2)
    step = image_size / feature_size(image_size, stride)
    return step, step / 2


def prior_shapes(scales: tuple[float, ...], ratios: tuple[float, ...]) -> np.ndarray:
    """float32 [len(scales) * len(ratios), 2] ``(w, h)``, rounded to whole pixels as the notebook.

    ``w = scale * sqrt(ratio)``, ``h = scale / sqrt(ratio)``; never below one pixel.
    """
    wh = [(s * math.sqrt(r), s / math.sqrt(r)) for s in scales for r in ratios]
    return np.maximum(np.round(np.asarray(wh, dtype=np.float64)), 1.0).astype(np.float32)


def make_priors(config: PriorConfig, image_size: int) -> PriorLayout:
    """All priors of a square image of ``image_size`` pixels.

    A layer of stride ``s`` has ``n = ceil(image_size / s)`` cells a side. Where ``s`` divides the
    image, centres sit at ``s // 2 + k * s`` (the notebook's rule); otherwise the ``n`` cells
    spread over the image, centres at ``(k + 0.5) * image_size / n`` (as torchvision's
    DefaultBoxGenerator and SSD300's 38, 19, 10, 5, 3, 1 maps), so no centre leaves the image.

    Returns:
        A :class:`PriorLayout`; ``boxes`` is float32 [P, 4] pixel ``xyxy`` with
        ``P = sum(cells_l * priors_per_cell_l)``.
    """
    boxes, layer, row, col, shape, grid, shapes = [], [], [], [], [], [], []
    for index, (stride, scales) in enumerate(zip(config.strides, config.scales, strict=True)):
        n = feature_size(image_size, stride)
        wh = prior_shapes(scales, config.ratios)
        a = wh.shape[0]
        if image_size % stride == 0:
            centres = (stride // 2 + np.arange(n) * stride).astype(np.float32)
        else:  # cell_pitch's spread, computed as (k + 0.5) * size / n to stay exact
            centres = ((np.arange(n) + 0.5) * (image_size / n)).astype(np.float32)
        cy, cx, s = np.meshgrid(centres, centres, np.arange(a), indexing="ij")  # [n, n, a]
        w, h = wh[s, 0], wh[s, 1]
        b = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).reshape(-1, 4)
        boxes.append(b)
        r, c, k = np.meshgrid(np.arange(n), np.arange(n), np.arange(a), indexing="ij")
        row.append(r.ravel())
        col.append(c.ravel())
        shape.append(k.ravel())
        layer.append(np.full(n * n * a, index))
        grid.append((n, n))
        shapes.append(wh)
    return PriorLayout(
        boxes=np.concatenate(boxes).astype(np.float32),
        layer=np.concatenate(layer).astype(np.int32),
        row=np.concatenate(row).astype(np.int32),
        col=np.concatenate(col).astype(np.int32),
        shape=np.concatenate(shape).astype(np.int32),
        grid=tuple(grid),
        shapes=tuple(shapes),
    )
