"""Box geometry: format conversions, IoU and the SSD offset coding.

Knows nothing of the detector. Works on TensorFlow tensors (NumPy arrays are accepted and
converted). Formats: ``xyxy`` = (x1, y1, x2, y2) with x1 <= x2, y1 <= y2; ``cxcywh`` = (centre x,
centre y, width, height); both in pixels, float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

Variances = Sequence[float] | None


def xyxy_to_cxcywh(boxes: tf.Tensor) -> tf.Tensor:
    """[..., 4] ``xyxy`` -> [..., 4] ``cxcywh``."""
    x1, y1, x2, y2 = tf.unstack(tf.convert_to_tensor(boxes, tf.float32), axis=-1)
    return tf.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def cxcywh_to_xyxy(boxes: tf.Tensor) -> tf.Tensor:
    """[..., 4] ``cxcywh`` -> [..., 4] ``xyxy``."""
    cx, cy, w, h = tf.unstack(tf.convert_to_tensor(boxes, tf.float32), axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def box_area(boxes: tf.Tensor) -> tf.Tensor:
    """[..., 4] ``xyxy`` -> [...] area (0 for degenerate boxes)."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    return tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def box_iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Pairwise IoU.

    Args:
        boxes1: float32 [..., N, 4] ``xyxy``.
        boxes2: float32 [M, 4] ``xyxy`` (or [..., M, 4] with the same leading dims).

    Returns:
        float32 [..., N, M]; 0 where the union is empty.
    """
    b1 = tf.convert_to_tensor(boxes1, tf.float32)[..., :, None, :]
    b2 = tf.convert_to_tensor(boxes2, tf.float32)[..., None, :, :]
    lt = tf.maximum(b1[..., :2], b2[..., :2])
    rb = tf.minimum(b1[..., 2:], b2[..., 2:])
    wh = tf.maximum(rb - lt, 0.0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(b1) + box_area(b2) - inter
    return tf.math.divide_no_nan(inter, union)


def encode(boxes: tf.Tensor, priors: tf.Tensor, variances: Variances = None) -> tf.Tensor:
    """Centre-size offsets of ``boxes`` relative to ``priors`` (SSD paper, eq. 2).

    ``(g_cx - p_cx) / p_w, (g_cy - p_cy) / p_h, log(g_w / p_w), log(g_h / p_h)``, each divided by
    the paper's variances ``(v_centre, v_size)`` when given (the notebook uses none).

    Args:
        boxes: float32 [..., 4] ``xyxy`` with positive width and height.
        priors: float32 [..., 4] ``xyxy``, broadcastable to ``boxes``.

    Returns:
        float32 [..., 4] offsets.
    """
    g = xyxy_to_cxcywh(boxes)
    p = xyxy_to_cxcywh(priors)
    centre = (g[..., :2] - p[..., :2]) / p[..., 2:]
    size = tf.math.log(tf.maximum(g[..., 2:], 1e-6) / p[..., 2:])
    if variances is not None:
        centre = centre / variances[0]
        size = size / variances[1]
    return tf.concat([centre, size], axis=-1)


def decode(offsets: tf.Tensor, priors: tf.Tensor, variances: Variances = None) -> tf.Tensor:
    """Inverse of :func:`encode`: float32 [..., 4] offsets -> [..., 4] ``xyxy`` pixels."""
    offsets = tf.convert_to_tensor(offsets, tf.float32)
    p = xyxy_to_cxcywh(priors)
    centre, size = offsets[..., :2], offsets[..., 2:]
    if variances is not None:
        centre = centre * variances[0]
        size = size * variances[1]
    # exp of a wild prediction would overflow to inf; 10 = e^10 times the prior is already absurd.
    size = tf.minimum(size, 10.0)
    cxcy = p[..., :2] + centre * p[..., 2:]
    wh = p[..., 2:] * tf.exp(size)
    return cxcywh_to_xyxy(tf.concat([cxcy, wh], axis=-1))
