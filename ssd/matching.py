"""Assign ground truth to priors and build the notebook's ``y_true`` (SSD paper, sec. 2.2).

Vectorised TensorFlow: one call handles a whole padded batch, so it runs inside a ``tf.data``
map (in parallel) or a compiled step, never as a Python loop over images.

``y_true`` layout (the notebook's): [..., P, num_classes + 1 + 4] = one-hot class scores with
**background as the last class**, then the 4 encoded offsets (zeros for unmatched priors). A
prior that only an ignore region (a COCO crowd, a VOC difficult object) claims gets all-zero class
scores: neither a positive nor a background prior, so the loss leaves it out.
"""

from __future__ import annotations

import tensorflow as tf

from ssd.boxes import Variances, box_iou, encode

IGNORE = -2  # the label of an ignore region in ``gt_labels`` (-1 is padding)


def match(
    gt_boxes: tf.Tensor,
    gt_labels: tf.Tensor,
    priors: tf.Tensor,
    *,
    num_classes: int,
    iou_threshold: float = 0.5,
    force_best: bool = False,
    variances: Variances = None,
    neg_iou: float | None = None,
) -> tf.Tensor:
    """Targets for a batch of images.

    A prior is positive when its IoU with some ground truth is ``>= iou_threshold`` and then
    belongs to the ground truth with the highest IoU (the notebook let the last one win). With
    ``force_best`` each ground truth also takes its best prior, as in the paper, so that no
    object goes unlearned; where two ground truths share a best prior, the one it overlaps
    most keeps it.

    Args:
        gt_boxes: float32 [B, K, 4] pixel ``xyxy``, zero padded.
        gt_labels: int32 [B, K] class in ``0..num_classes-1``, ``-1`` for padding, :data:`IGNORE`
            for an ignore region: a prior it overlaps by ``iou_threshold`` that no object claims
            is ignored.
        priors: float32 [P, 4] pixel ``xyxy``.
        num_classes: number of object classes (background is extra).
        neg_iou: a prior that is no positive but overlaps an object by at least this IoU is
            ignored (all-zero class scores), as RetinaNet ignores its 0.4-0.5 band: it looks too
            much like the object to teach background. None: every unmatched prior is a negative
            (SSD, the notebook).

    Returns:
        float32 [B, P, num_classes + 1 + 4] ``y_true``.
    """
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    gt_labels = tf.convert_to_tensor(gt_labels, tf.int32)
    priors = tf.convert_to_tensor(priors, tf.float32)
    valid = gt_labels >= 0  # [B, K]
    overlap = box_iou(gt_boxes, priors)  # [B, K, P]
    iou = tf.where(valid[..., None], overlap, -1.0)
    best_gt = tf.argmax(iou, axis=1, output_type=tf.int32)  # [B, P]
    best_iou = tf.reduce_max(iou, axis=1)  # [B, P]
    positive = best_iou >= iou_threshold
    if force_best:
        num_priors = tf.shape(priors)[0]
        best_prior = tf.argmax(iou, axis=2, output_type=tf.int32)  # [B, K]
        # forced[b, k, p]: prior p is ground truth k's best one. A ground truth overlapping no
        # prior at all (e.g. a zero-area COCO box) forces nothing: argmax would pick prior 0.
        overlaps = tf.logical_and(valid, tf.reduce_max(iou, axis=2) > 0.0)
        forced = tf.logical_and(tf.one_hot(best_prior, num_priors, on_value=True, off_value=False), overlaps[..., None])
        # Among the ground truths forcing prior p, keep the one with the highest IoU.
        forced_iou = tf.where(forced, iou, -2.0)
        forced_gt = tf.argmax(forced_iou, axis=1, output_type=tf.int32)
        is_forced = tf.reduce_any(forced, axis=1)
        best_gt = tf.where(is_forced, forced_gt, best_gt)
        positive = tf.logical_or(positive, is_forced)
    labels = tf.gather(gt_labels, best_gt, batch_dims=1)  # [B, P]
    labels = tf.where(positive, labels, num_classes)
    boxes = tf.gather(gt_boxes, best_gt, batch_dims=1)  # [B, P, 4]
    offsets = encode(boxes, priors, variances)
    offsets = tf.where(positive[..., None], offsets, 0.0)
    scores = tf.one_hot(labels, num_classes + 1, dtype=tf.float32)
    # Background priors an ignore region claims lose their background score too.
    ignore_iou = tf.reduce_max(tf.where((gt_labels == IGNORE)[..., None], overlap, -1.0), axis=1)  # [B, P]
    ignored = tf.logical_and(tf.logical_not(positive), ignore_iou >= iou_threshold)  # [B, P]
    if neg_iou is not None:  # the band between a negative and a positive
        ignored = tf.logical_or(ignored, tf.logical_and(tf.logical_not(positive), best_iou >= neg_iou))
    scores = tf.where(ignored[..., None], 0.0, scores)
    return tf.concat([scores, offsets], axis=-1)


def best_prior_iou(gt_boxes: tf.Tensor, priors: tf.Tensor) -> tf.Tensor:
    """float32 [K] best IoU of each ground truth ([K, 4] ``xyxy``) over priors ([P, 4])."""
    return tf.reduce_max(box_iou(gt_boxes, priors), axis=-1)
