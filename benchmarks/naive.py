"""The notebook's naive Keras way of training an SSD, the baseline of :mod:`benchmarks.train`.

What the notebook did, under Keras 3: the same architecture and priors in float32 (it had no
mixed precision) with a softmax on the class channels (:func:`build_naive_model`), its loss
verbatim (:func:`notebook_loss`: a Keras loss function with a dynamic ``tf.nn.top_k``), and targets
built per image in a Python loop with NumPy (:func:`naive_targets`, served by
:class:`NaiveBatches`, a :class:`keras.utils.PyDataset` like its ``DetectionGenerator``).
:class:`benchmarks.train.NaiveRun` compiles it with ``Adam(1e-3)`` and times ``model.fit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ssd.config import Config
from ssd.data import DetectionDataset
from ssd.model import build_ssd

EPSILON = 1e-7  # keras.backend.epsilon(), the notebook's eps


def naive_iou(gt: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """float32 [K, P] IoU of ground truths [K, 4] and priors [P, 4], both pixel ``xyxy``."""
    lt = np.maximum(gt[:, None, :2], priors[None, :, :2])
    rb = np.minimum(gt[:, None, 2:], priors[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_g = np.clip(gt[:, 2] - gt[:, 0], 0.0, None) * np.clip(gt[:, 3] - gt[:, 1], 0.0, None)
    area_p = np.clip(priors[:, 2] - priors[:, 0], 0.0, None) * np.clip(priors[:, 3] - priors[:, 1], 0.0, None)
    union = area_g[:, None] + area_p[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float32)


def naive_targets(
    boxes: np.ndarray, labels: np.ndarray, priors: np.ndarray, num_classes: int, iou_threshold: float = 0.5
) -> np.ndarray:
    """The notebook's ``DetectionGenerator`` targets, one image at a time in a Python loop.

    Threshold matching only (no forced best prior, no variances): a prior is positive when its
    best IoU is ``>= iou_threshold`` and takes that ground truth (highest IoU wins, as in
    :func:`ssd.matching.match`; the notebook let the last one win). Unmatched priors are
    one-hot background (last class) with zero offsets.

    Args:
        boxes: float32 [B, K, 4] pixel ``xyxy``; labels: int32 [B, K], -1 for padding.
        priors: float32 [P, 4] pixel ``xyxy``.

    Returns:
        float32 [B, P, num_classes + 1 + 4] ``y_true``.
    """
    priors = np.asarray(priors, np.float32)
    p_wh = priors[:, 2:] - priors[:, :2]
    p_c = (priors[:, :2] + priors[:, 2:]) / 2
    y = np.zeros((len(boxes), len(priors), num_classes + 1 + 4), np.float32)
    for b in range(len(boxes)):  # the naive part: a Python loop over images
        y[b, :, num_classes] = 1.0
        valid = labels[b] >= 0
        gt, gt_labels = np.asarray(boxes[b][valid], np.float32), labels[b][valid]
        if len(gt) == 0:
            continue
        iou = naive_iou(gt, priors)
        best = iou.argmax(axis=0)
        positive = np.flatnonzero(iou.max(axis=0) >= iou_threshold)
        if positive.size == 0:
            continue
        g = gt[best[positive]]
        g_wh = g[:, 2:] - g[:, :2]
        g_c = (g[:, :2] + g[:, 2:]) / 2
        y[b, positive, num_classes] = 0.0
        y[b, positive, gt_labels[best[positive]]] = 1.0
        y[b, positive, num_classes + 1 : num_classes + 3] = (g_c - p_c[positive]) / p_wh[positive]
        y[b, positive, num_classes + 3 :] = np.log(np.maximum(g_wh, 1e-6) / p_wh[positive])
    return y


def notebook_loss(alpha: float = 1.0, pos_neg_ratio: float = 3.0) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The notebook's ``SSDLoss`` as written (TF1 names updated): probabilities in, dynamic ``top_k``.

    ``tf.nn.top_k`` with a tensor ``k`` has a data-dependent output shape, so this loss cannot
    be compiled with XLA; :mod:`ssd.loss` replaces it with a sort and a rank mask.
    """

    def ssd_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        num_classes = tf.shape(y_true)[2] - 4
        y_true = tf.reshape(y_true, [-1, num_classes + 4])
        y_pred = tf.reshape(y_pred, [-1, num_classes + 4])
        eps = EPSILON

        y_true_clf, y_true_loc = tf.split(y_true, [num_classes, 4], axis=-1)
        y_pred_clf, y_pred_loc = tf.split(y_pred, [num_classes, 4], axis=-1)

        neg_mask = y_true_clf[:, -1]
        pos_mask = 1 - neg_mask
        num_pos = tf.reduce_sum(pos_mask)
        num_neg = tf.reduce_sum(neg_mask)
        num_neg = tf.minimum(pos_neg_ratio * num_pos, num_neg)

        y_pred_clf = tf.clip_by_value(y_pred_clf, eps, 1.0 - eps)
        clf_loss = -tf.reduce_sum(y_true_clf * tf.math.log(y_pred_clf), axis=-1)
        pos_clf_loss = tf.reduce_sum(clf_loss * pos_mask) / (num_pos + eps)
        neg_clf_loss = clf_loss * neg_mask
        values, _ = tf.nn.top_k(neg_clf_loss, k=tf.cast(num_neg, tf.int32))
        neg_clf_loss = tf.reduce_sum(values) / (num_neg + eps)
        clf_loss = pos_clf_loss + neg_clf_loss

        l1_loss = tf.abs(y_true_loc - y_pred_loc)
        l2_loss = 0.5 * (y_true_loc - y_pred_loc) ** 2
        loc_loss = tf.where(tf.less(l1_loss, 1.0), l2_loss, l1_loss - 0.5)
        loc_loss = tf.reduce_sum(loc_loss, axis=-1)
        loc_loss = tf.reduce_sum(loc_loss * pos_mask) / (num_pos + eps)
        return clf_loss + alpha * loc_loss

    return ssd_loss


class ClassSoftmax(keras.layers.Layer):
    """Softmax over the first ``num_scores`` channels (classes + background); offsets pass through."""

    def __init__(self, num_scores: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_scores = num_scores

    def call(self, x: Any) -> Any:
        scores = keras.ops.softmax(x[..., : self.num_scores], axis=-1)
        return keras.ops.concatenate([scores, x[..., self.num_scores :]], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_scores": self.num_scores}


def build_naive_model(config: Config, fused_batchnorm: bool = False) -> keras.Model:
    """The config's architecture in float32 with softmax probabilities out (the notebook's head).

    By default with Keras' own BatchNormalization, as the notebook's code builds it;
    ``fused_batchnorm`` swaps in ssdboard's fused layer to isolate what else the trainer gains.
    """
    logits = build_ssd(config.model, config.priors, config.data.image_size, None, fused_batchnorm)
    probs = ClassSoftmax(config.model.num_classes + 1, name="softmax", dtype="float32")(logits.output)
    return keras.Model(logits.input, probs, name="ssd_naive")


class NaiveBatches(keras.utils.PyDataset):
    """Batches ``(images, y_true)``: images from the dataset, targets by :func:`naive_targets`."""

    def __init__(
        self, dataset: DetectionDataset, priors: np.ndarray, num_classes: int, first: int, steps: int, batch: int
    ) -> None:
        super().__init__()  # Keras defaults: workers=1, no multiprocessing
        self.dataset, self.priors, self.num_classes = dataset, priors, num_classes
        self.first, self.steps, self.batch_size = first, steps, batch

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        images, boxes, labels, _ = self.dataset.batch((self.first + index) * self.batch_size, self.batch_size)
        return images, naive_targets(boxes, labels, self.priors, self.num_classes)
