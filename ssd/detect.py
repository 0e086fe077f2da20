"""Inference: model output -> per-image detections (SSD paper, sec. 3 "Inference").

Post-processing, per image: softmax the class logits (background last); decode the offsets
against the priors into pixel ``xyxy`` boxes and clip them to the image; for each foreground
class separately take the ``pre_nms_top_k`` highest-scoring priors, drop those whose score does
not exceed ``score_threshold`` and run greedy NMS at ``nms_iou``; finally keep the
``max_detections`` highest-scoring survivors over all classes. Defaults are the paper's
(:class:`ssd.config.DetectConfig`: 0.01, 0.45, 100 per image, top 400 per class before NMS).

The steps are graph functions (:func:`decode_boxes`, :func:`batched_nms`) that
:mod:`ssd.export` traces into SavedModel and ONNX files, so an export detects what
:class:`Detector` does; :func:`non_max_suppression` is the NMS step alone, for outputs that
carry decoded boxes and class scores (a TFLite export's).

Box format everywhere: float32 pixel ``xyxy`` = (x1, y1, x2, y2), as in :mod:`ssd.boxes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from ssd.boxes import Variances, decode
from ssd.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_config, weights_path
from ssd.config import Config, DetectConfig
from ssd.geometry import ImageSize, image_hw, xyxy_to_xywh
from ssd.model import build_ssd
from ssd.priors import make_priors

__all__ = [
    "CONFIG_FILE",  # re-exported from ssd.checkpoint
    "WEIGHTS_FILE",  # re-exported from ssd.checkpoint
    "Detections",
    "Detector",
    "NmsResult",
    "batched_nms",
    "decode_boxes",
    "non_max_suppression",
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


class NmsResult(NamedTuple):
    """Padded detections of a batch, as graph tensors (:func:`batched_nms`).

    Attributes:
        boxes: float32 [B, K, 4] pixel ``xyxy``, K = ``max_detections``; zeros past ``num_detections``.
        scores: float32 [B, K] descending per image; zeros past ``num_detections``.
        classes: int32 [B, K] foreground class index (as :attr:`Detections.labels`); zeros past the end.
        num_detections: int32 [B] valid entries per image.
    """

    boxes: tf.Tensor
    scores: tf.Tensor
    classes: tf.Tensor
    num_detections: tf.Tensor


def decode_boxes(
    offsets: Any, priors: Any, *, variances: Variances = None, image_size: ImageSize | None = None
) -> tf.Tensor:
    """Offsets -> pixel boxes: :func:`ssd.boxes.decode` against the priors, clipped to the image.

    Args:
        offsets: float [B, P, 4] predicted offsets (prior order of :mod:`ssd.priors`).
        priors: float32 [P, 4] pixel ``xyxy`` priors.
        variances: the ``(centre, size)`` offset variances the model was trained with, or None.
        image_size: ``S`` or ``(H, W)``: boxes are clipped to ``[0, W] x [0, H]``; None: not clipped.

    Returns:
        float32 [B, P, 4] pixel ``xyxy``.
    """
    boxes = decode(offsets, tf.convert_to_tensor(priors, tf.float32)[None], variances)
    if image_size is None:
        return boxes
    h, w = image_hw(image_size)
    return tf.clip_by_value(boxes, 0.0, tf.constant([w, h, w, h], tf.float32))


def batched_nms(boxes: Any, scores: Any, *, config: DetectConfig = DEFAULT_DETECT) -> NmsResult:
    """Per-class NMS of a batch, as TensorFlow ops only (traceable into a SavedModel or ONNX).

    Boxes with zero width or height (clipped away) are dropped. For each image and foreground
    class, the ``pre_nms_top_k`` highest-scoring priors are the candidates; those whose score
    does not exceed ``score_threshold`` are dropped and greedy NMS at ``nms_iou`` runs on the
    rest; the ``max_detections`` best survivors over all classes are kept, by descending score.

    The NMS is ``tf.image.combined_non_max_suppression`` with every (image, class) pair as its
    own batch entry and one box set (``q = 1``): the op then only compares boxes of one class,
    and it stays the form that tf2onnx turns into ONNX's ``NonMaxSuppression`` (it converts
    the op only for ``q = 1``). Boxes go in ``xyxy`` order rather than the op's ``yxyx``: IoU is
    invariant under swapping the axes and ``clip_boxes=False`` returns the coordinates untouched.

    Args:
        boxes: float32 [B, P, 4] pixel ``xyxy`` (:func:`decode_boxes`).
        scores: float32 [B, P, C] foreground class probabilities (background dropped).
        config: thresholds; a score must be strictly greater than ``score_threshold``.

    Returns:
        :class:`NmsResult`, padded to K = ``config.max_detections``.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    num_priors, num_classes = int(boxes.shape[1]), int(scores.shape[2])
    batch = tf.shape(boxes)[0]
    valid = tf.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1])  # [B, P]
    cls_scores = tf.where(valid[:, None, :], tf.transpose(scores, [0, 2, 1]), -1.0)  # [B, C, P]

    k = min(config.pre_nms_top_k, num_priors)
    per_class = min(config.max_detections, k)
    top_scores, top_idx = tf.math.top_k(cls_scores, k=k, sorted=False)  # [B, C, k]
    top_boxes = tf.gather(boxes, top_idx, batch_dims=1)  # [B, C, k, 4]
    nms = tf.image.combined_non_max_suppression(
        tf.reshape(top_boxes, [-1, k, 1, 4]),  # [B * C, k, q = 1, 4]
        tf.reshape(top_scores, [-1, k, 1]),  # [B * C, k, 1]
        max_output_size_per_class=per_class,
        max_total_size=per_class,
        iou_threshold=config.nms_iou,
        score_threshold=config.score_threshold,
        pad_per_class=False,
        clip_boxes=False,
    )
    # The survivors of every class of an image, then the best max_detections of them.
    kept = tf.reshape(tf.sequence_mask(nms.valid_detections, per_class), [batch, num_classes * per_class])
    cand_scores = tf.where(kept, tf.reshape(nms.nmsed_scores, [batch, num_classes * per_class]), -1.0)
    cand_boxes = tf.reshape(nms.nmsed_boxes, [batch, num_classes * per_class, 4])
    total = min(config.max_detections, num_classes * per_class)
    best_scores, best = tf.math.top_k(cand_scores, k=total)  # [B, total], sorted
    num = tf.minimum(tf.reduce_sum(tf.cast(kept, tf.int32), axis=1), total)
    used = tf.sequence_mask(num, total)
    pad = [[0, 0], [0, config.max_detections - total]]
    out_boxes = tf.where(used[..., None], tf.gather(cand_boxes, best, batch_dims=1), 0.0)
    return NmsResult(
        boxes=tf.pad(out_boxes, [*pad, [0, 0]]),
        scores=tf.pad(tf.where(used, best_scores, 0.0), pad),
        classes=tf.pad(tf.where(used, best // per_class, 0), pad),
        num_detections=num,
    )


def non_max_suppression(boxes: Any, scores: Any, *, config: DetectConfig = DEFAULT_DETECT) -> list[Detections]:
    """The NMS step of :func:`postprocess`, for decoded boxes and class scores (e.g. a TFLite export's).

    Args:
        boxes: float32 [B, P, 4] pixel ``xyxy``, clipped to the image.
        scores: float32 [B, P, C] foreground class probabilities (softmax over the C + 1 classes,
            background channel dropped).
        config: thresholds (see :func:`batched_nms`).

    Returns:
        One :class:`Detections` per image, at most ``config.max_detections`` each, sorted by
        descending score.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    if boxes.shape.rank != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [B, P, 4], got {tuple(boxes.shape)}")
    if scores.shape.rank != 3 or tuple(scores.shape[:2]) != tuple(boxes.shape[:2]):
        raise ValueError(f"scores must be [B, P, C] with B, P = {tuple(boxes.shape[:2])}, got {tuple(scores.shape)}")
    if int(boxes.shape[0]) == 0:
        return []
    return unpad(batched_nms(boxes, scores, config=config))


def unpad(nms: NmsResult) -> list[Detections]:
    """One :class:`Detections` per image of a padded :func:`batched_nms` result."""
    out_boxes, out_scores = nms.boxes.numpy(), nms.scores.numpy()
    out_labels, counts = nms.classes.numpy().astype(np.int32), nms.num_detections.numpy()
    return [
        Detections(
            boxes=np.ascontiguousarray(out_boxes[i, :n], dtype=np.float32),
            scores=np.ascontiguousarray(out_scores[i, :n], dtype=np.float32),
            labels=np.ascontiguousarray(out_labels[i, :n]),
        )
        for i, n in enumerate(counts.tolist())
    ]


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

    :func:`split_predictions`, then :func:`decode_boxes` and :func:`non_max_suppression`
    (vectorised over the batch, :func:`batched_nms`).

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
    num_priors, channels = (int(d) for d in scores.shape[1:])
    if channels != num_classes + 1:
        raise ValueError(f"y_pred has {channels} class channels, expected num_classes + 1 = {num_classes + 1}")
    if priors_t.shape.rank != 2 or priors_t.shape[-1] != 4 or int(priors_t.shape[0]) != num_priors:
        raise ValueError(f"priors must be [P, 4] with P = {num_priors} (from y_pred), got {tuple(priors_t.shape)}")
    boxes = decode_boxes(offsets, priors_t, variances=variances, image_size=image_size)
    return non_max_suppression(boxes, scores[..., :num_classes], config=config)


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
        self.weights_path: Path | None = None  # the file from_checkpoint loaded
        self._priors: dict[int, np.ndarray] = {}
        self._graphs: dict[int, Any] = {}

    @classmethod
    def from_checkpoint(cls, directory: str | Path, weights: str = "best") -> Detector:
        """Load ``directory/config.json`` (``Config.to_dict()``) and the weights: for ``"best"``
        ``best.weights.h5`` (the evaluation with the highest mAP@.5) when it exists, else the
        last, ``model.weights.h5``; for ``"last"`` the last (:func:`ssd.checkpoint.weights_path`).

        The file names are :mod:`ssd.checkpoint`'s; the config is read first. The file loaded is
        :attr:`weights_path`.

        Raises:
            FileNotFoundError: either file is missing (the message names it).
            ValueError: either file is unreadable or does not fit (the message names it), or
                ``weights`` is neither ``"best"`` nor ``"last"``;
                :class:`ssd.config.ConfigError` for an invalid config.
        """
        path = weights_path(directory, weights)
        config = read_config(directory)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint weights not found: {path}")
        model = build_ssd(config.model, config.priors, None, pretrained=False)
        try:
            model.load_weights(str(path))
        except Exception as exc:  # h5py/keras raise many types for a bad file
            raise ValueError(f"checkpoint weights {path} could not be loaded: {exc}") from exc
        detector = cls(model, config)
        detector.weights_path = path
        return detector

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
        graph = self._graph(height)
        out: list[Detections] = []
        for start in range(0, n, batch_size):
            out.extend(unpad(graph(tf.convert_to_tensor(images[start : start + batch_size], tf.float32))))
        return out

    def _graph(self, size: int) -> Any:
        """The model, decoding and NMS of :func:`postprocess` as one graph for ``size`` px images
        (traced once per size; any batch). Eagerly, op by op, they took 92.7 ms an image one at a
        time against the SavedModel export's 17.5 (docs/guide/export.md): the same ops."""
        if size not in self._graphs:
            priors = tf.constant(self.priors(size))
            config, model = self.config, self.model

            @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
            def detect(images: tf.Tensor) -> NmsResult:
                scores, offsets = split_predictions(model(images, training=False))
                boxes = decode_boxes(offsets, priors, variances=config.matching.variances, image_size=size)
                return batched_nms(boxes, scores[..., : config.model.num_classes], config=config.detect)

            self._graphs[size] = detect
        return self._graphs[size]
