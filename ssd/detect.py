"""Inference: model output -> per-image detections (SSD paper, sec. 3 "Inference").

Post-processing, per image: softmax the class logits (background last); decode the offsets
against the priors into pixel ``xyxy`` boxes and clip them to the image; for each foreground
class separately take the ``pre_nms_top_k`` highest-scoring priors, drop those whose score does
not exceed ``score_threshold`` and run greedy NMS at ``nms_iou``; finally keep the
``max_detections`` highest-scoring survivors over all classes. Defaults are the paper's
(:class:`ssd.config.DetectConfig`: 0.01, 0.45, 100 per image, top 400 per class before NMS).

Box format everywhere: float32 pixel ``xyxy`` = (x1, y1, x2, y2), as in :mod:`ssd.boxes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ssd.boxes import Variances, decode
from ssd.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_config
from ssd.config import Config, DetectConfig
from ssd.geometry import ImageSize, image_hw, xyxy_to_xywh
from ssd.model import build_ssd
from ssd.priors import make_priors

__all__ = [
    "CONFIG_FILE",  # re-exported from ssd.checkpoint
    "WEIGHTS_FILE",  # re-exported from ssd.checkpoint
    "Detections",
    "Detector",
    "postprocess",
    "split_predictions",
    "to_coco_results",
]

DEFAULT_DETECT = DetectConfig()  # the paper's settings; frozen, so safe as a shared default


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one image, sorted by descending score.

    Attributes:
        boxes: float32 [N, 4] pixel ``xyxy`` (clipped to the image when its size is known).
        scores: float32 [N] class probabilities in (score_threshold, 1].
        labels: int32 [N] foreground class in ``0..num_classes - 1`` (background is never reported).

    ``eq=False``: array fields make a generated ``__eq__``/``__hash__`` useless.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32))


def split_predictions(y_pred: Any, *, from_logits: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """Split the model output into class probabilities and box offsets.

    Args:
        y_pred: float [B, P, C + 4], C = num_classes + 1 class channels (background last), then
            the 4 offsets (see :mod:`ssd.model`).
        from_logits: the class channels are logits (the model's output) and get a softmax; if
            False they are taken as probabilities as they are.

    Returns:
        ``(scores, offsets)``: float32 [B, P, C] probabilities (background last) and float32
        [B, P, 4] offsets.
    """
    y_pred = tf.cast(tf.convert_to_tensor(y_pred), tf.float32)
    if y_pred.shape.rank != 3 or (y_pred.shape[-1] is not None and y_pred.shape[-1] < 6):
        raise ValueError(f"y_pred must be [B, P, num_classes + 1 + 4] with num_classes >= 1, got {y_pred.shape}")
    classes, offsets = y_pred[..., :-4], y_pred[..., -4:]
    scores = tf.nn.softmax(classes, axis=-1) if from_logits else classes
    return scores, offsets


def postprocess(
    y_pred: Any,
    priors: Any,
    *,
    num_classes: int,
    variances: Variances = None,
    config: DetectConfig = DEFAULT_DETECT,
    image_size: ImageSize | None = None,
    from_logits: bool = True,
) -> list[Detections]:
    """Decode a batch of model outputs and run per-class NMS (see module docstring).

    Implemented with ``tf.image.combined_non_max_suppression``, vectorised over the batch: the
    top-k candidates of every class are gathered into a [B, K, num_classes, 4] box tensor (one
    box set per class, ``q = num_classes``), so NMS only ever compares boxes of the same class.
    Boxes are fed in ``xyxy`` order rather than the op's ``yxyx``: IoU is invariant under
    swapping the axes and ``clip_boxes=False`` returns the coordinates untouched.

    Args:
        y_pred: float [B, P, num_classes + 1 + 4] model output (class logits, background last,
            then offsets).
        priors: float32 [P, 4] pixel ``xyxy`` priors of the image size the output is for
            (``make_priors(config.priors, image_size).boxes``).
        num_classes: foreground classes.
        variances: the ``(centre, size)`` offset variances the model was trained with, or None.
        config: thresholds; a score must be strictly greater than ``score_threshold``.
        image_size: ``S`` or ``(H, W)``: boxes are clipped to ``[0, W] x [0, H]`` before NMS and
            boxes left with zero width or height are dropped. None: no clipping.
        from_logits: see :func:`split_predictions`.

    Returns:
        One :class:`Detections` per image, at most ``config.max_detections`` each, sorted by
        descending score.
    """
    scores, offsets = split_predictions(y_pred, from_logits=from_logits)
    priors_t = tf.convert_to_tensor(np.asarray(priors, dtype=np.float32))
    batch, num_priors, channels = (int(d) for d in scores.shape)
    if channels != num_classes + 1:
        raise ValueError(f"y_pred has {channels} class channels, expected num_classes + 1 = {num_classes + 1}")
    if priors_t.shape.rank != 2 or priors_t.shape[-1] != 4 or int(priors_t.shape[0]) != num_priors:
        raise ValueError(f"priors must be [P, 4] with P = {num_priors} (from y_pred), got {tuple(priors_t.shape)}")
    if batch == 0:
        return []

    boxes = decode(offsets, priors_t[None], variances)  # [B, P, 4]
    cls_scores = tf.transpose(scores[..., :num_classes], [0, 2, 1])  # [B, C, P]
    if image_size is not None:
        h, w = image_hw(image_size)
        limit = tf.constant([w, h, w, h], tf.float32)
        boxes = tf.clip_by_value(boxes, 0.0, limit)
        valid = tf.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1])  # [B, P]
        cls_scores = tf.where(valid[:, None, :], cls_scores, -1.0)

    k = min(config.pre_nms_top_k, num_priors)
    top_scores, top_idx = tf.math.top_k(cls_scores, k=k, sorted=False)  # [B, C, K]
    top_boxes = tf.gather(boxes, top_idx, batch_dims=1)  # [B, C, K, 4]
    nms = tf.image.combined_non_max_suppression(
        tf.transpose(top_boxes, [0, 2, 1, 3]),  # [B, K, C, 4]: q = num_classes box sets
        tf.transpose(top_scores, [0, 2, 1]),  # [B, K, C]
        max_output_size_per_class=min(config.max_detections, k),
        max_total_size=config.max_detections,
        iou_threshold=config.nms_iou,
        score_threshold=config.score_threshold,
        pad_per_class=False,
        clip_boxes=False,
    )
    out_boxes = nms.nmsed_boxes.numpy()
    out_scores = nms.nmsed_scores.numpy()
    out_labels = nms.nmsed_classes.numpy().astype(np.int32)
    counts = nms.valid_detections.numpy()
    return [
        Detections(
            boxes=np.ascontiguousarray(out_boxes[i, :n], dtype=np.float32),
            scores=np.ascontiguousarray(out_scores[i, :n], dtype=np.float32),
            labels=np.ascontiguousarray(out_labels[i, :n]),
        )
        for i, n in enumerate(counts.tolist())
    ]


def to_coco_results(detections: Sequence[Detections]) -> list[dict[str, Any]]:
    """COCO "results" list (the output contract of ``ssdboard detect``).

    One entry per detection: ``image_id`` = index of the image in ``detections``,
    ``category_id`` = class index (int), ``bbox`` = ``[x, y, w, h]`` pixel floats, ``score``.
    """
    results: list[dict[str, Any]] = []
    for image_id, det in enumerate(detections):
        xywh = xyxy_to_xywh(det.boxes).tolist()
        for bbox, score, label in zip(xywh, det.scores.tolist(), det.labels.tolist(), strict=True):
            results.append({"image_id": image_id, "category_id": int(label), "bbox": bbox, "score": float(score)})
    return results


class Detector:
    """A trained SSD model with its config: uint8 images in, :class:`Detections` out."""

    def __init__(self, model: keras.Model, config: Config) -> None:
        """Wrap ``model`` (built by :func:`ssd.model.build_ssd` from ``config``)."""
        self.model = model
        self.config = config
        self._priors: dict[int, np.ndarray] = {}

    @classmethod
    def from_checkpoint(cls, directory: str | Path) -> Detector:
        """Load ``directory/config.json`` (``Config.to_dict()``) and ``directory/model.weights.h5``.

        The file names are :mod:`ssd.checkpoint`'s; the config is read first.

        Raises:
            FileNotFoundError: either file is missing (the message names it).
            ValueError: either file is unreadable or does not fit (the message names it);
                :class:`ssd.config.ConfigError` for an invalid config.
        """
        config = read_config(directory)
        weights_path = Path(directory) / WEIGHTS_FILE
        if not weights_path.is_file():
            raise FileNotFoundError(f"checkpoint weights not found: {weights_path}")
        model = build_ssd(config.model, config.priors, None)
        try:
            model.load_weights(str(weights_path))
        except Exception as exc:  # h5py/keras raise many types for a bad file
            raise ValueError(f"checkpoint weights {weights_path} could not be loaded: {exc}") from exc
        return cls(model, config)

    def priors(self, image_size: int) -> np.ndarray:
        """float32 [P, 4] pixel ``xyxy`` priors for square images of ``image_size`` (cached)."""
        if image_size not in self._priors:
            self._priors[image_size] = make_priors(self.config.priors, image_size).boxes
        return self._priors[image_size]

    def check_image_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless images of ``height x width`` can be detected on.

        Allowed: the config's ``data.image_size``, or any square size divisible by the largest
        prior stride (so every feature map cell has its prior centre inside the image).
        """
        stride = max(self.config.priors.strides)
        if height != width or (height != self.config.data.image_size and height % stride != 0):
            raise ValueError(
                f"images must be square, {self.config.data.image_size} px or a multiple of {stride} px, "
                f"got {height}x{width}"
            )

    def predict(self, images: np.ndarray, batch_size: int = 32) -> list[Detections]:
        """Detect on uint8 [N, S, S, 3] RGB images (see :meth:`check_image_size`).

        Returns:
            N :class:`Detections`, boxes in pixel ``xyxy`` clipped to the image.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got {images.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n, height, width = images.shape[:3]
        self.check_image_size(height, width)
        priors = self.priors(height)
        out: list[Detections] = []
        for start in range(0, n, batch_size):
            batch = tf.convert_to_tensor(images[start : start + batch_size], tf.float32)
            y_pred = self.model(batch, training=False)
            out.extend(
                postprocess(
                    y_pred,
                    priors,
                    num_classes=self.config.model.num_classes,
                    variances=self.config.matching.variances,
                    config=self.config.detect,
                    image_size=height,
                )
            )
        return out
