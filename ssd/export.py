"""Export a trained detector for deployment: SavedModel, ONNX or TFLite.

Every format takes uint8 RGB images ``[N, S, S, 3]`` at the training size ``S =
config.data.image_size`` (N free) and runs the same TensorFlow graph as
:meth:`ssd.detect.Detector.predict`: the model, a softmax, :func:`ssd.detect.decode_boxes`
(offsets against the priors, with ``config.matching.variances``, clipped to the image) and,
where the format can hold it, :func:`ssd.detect.batched_nms` with ``config.detect``'s thresholds.

- ``savedmodel`` (a directory): signature ``serving_default``, input ``images``, outputs
  ``boxes`` float32 [N, K, 4] pixel ``xyxy``, ``scores`` float32 [N, K], ``classes`` int32
  [N, K] (class index, as :attr:`ssd.detect.Detections.labels`), ``num_detections`` int32 [N];
  K = ``config.detect.max_detections``, entries past ``num_detections`` are zeros.
- ``onnx`` (a file, opset :data:`ONNX_OPSET`, by tf2onnx): the same input and four outputs. The
  NMS is ONNX's ``NonMaxSuppression``, run with each (image, class) pair as a batch entry on
  that class's ``pre_nms_top_k`` best priors, so candidates, per-class NMS, thresholds and the
  final cut are those of ``ssdboard detect``. What differs is the runtime's arithmetic: its IoU
  and suppression order for boxes whose IoU or scores tie to float precision, and the model's
  float32 convolutions (scores differ in the 6th-7th digit).
- ``tflite`` (a file, builtin ops only): outputs ``boxes`` float32 [N, P, 4] (every prior's
  decoded, clipped pixel ``xyxy`` box) and ``scores`` float32 [N, P, C] (foreground class
  probabilities: softmax over the C + 1 classes, background dropped), P = priors. No NMS in
  the file: TensorFlow's combined NMS is a Flex op that stock LiteRT runtimes lack. Run
  :func:`ssd.detect.non_max_suppression` (or any per-class NMS) on the two outputs.

ONNX export needs tf2onnx and onnx, optional packages (``pip install 'ssdboard[export]'``, which
also brings onnxruntime and ai-edge-litert to run the files); a missing one is a
:class:`MissingPackageError` naming it. SavedModel and TFLite need TensorFlow only.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tensorflow as tf

from ssd.detect import Detections, Detector, NmsResult, batched_nms, decode_boxes, split_predictions

__all__ = [
    "FORMATS",
    "ONNX_OPSET",
    "ExportFormat",
    "MissingPackageError",
    "Parity",
    "compare",
    "export",
    "serving_function",
]

ExportFormat = Literal["savedmodel", "onnx", "tflite"]
FORMATS: tuple[ExportFormat, ...] = ("savedmodel", "onnx", "tflite")
ONNX_OPSET = 17
INPUT_NAME = "images"
NMS_OUTPUTS: tuple[str, ...] = NmsResult._fields  # boxes, scores, classes, num_detections
INSTALL_HINT = "pip install 'ssdboard[export]'"


class MissingPackageError(ImportError):
    """An optional package an export format needs is not installed; the message says how to get it."""

    def __init__(self, package: str, fmt: str) -> None:
        super().__init__(f"{fmt} export needs the package {package}, which is not installed: {INSTALL_HINT}")
        self.package = package


def require(module: str, package: str, fmt: str) -> None:
    """Raise :class:`MissingPackageError` unless ``module`` (of ``package``) can be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(package, fmt)


def serving_function(detector: Detector, *, nms: bool = True) -> tf.types.experimental.GenericFunction:
    """A ``tf.function`` from uint8 images [N, S, S, 3] to the export's outputs (see module docstring).

    Args:
        detector: the trained model and its config; S = ``detector.config.data.image_size``.
        nms: True: ``boxes``/``scores``/``classes``/``num_detections`` after NMS (padded to
            ``max_detections``); False: every prior's decoded ``boxes`` [N, P, 4] and foreground
            ``scores`` [N, P, C].
    """
    config = detector.config
    size = config.data.image_size
    num_classes = config.model.num_classes
    priors = detector.priors(size)  # NumPy: a constant of the graph, not a captured input
    model = detector.model

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name=INPUT_NAME)])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        y_pred = model(tf.cast(images, tf.float32), training=False)
        scores, offsets = split_predictions(y_pred)
        boxes = decode_boxes(offsets, priors, variances=config.matching.variances, image_size=size)
        scores = scores[..., :num_classes]
        if not nms:
            return {"boxes": boxes, "scores": scores}
        return batched_nms(boxes, scores, config=config.detect)._asdict()

    return serve


def _save_savedmodel(detector: Detector, out: Path) -> None:
    module = tf.Module()
    module.model = detector.model  # tracked: its variables are saved with the graph
    module.serve = serving_function(detector)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})


def _save_onnx(detector: Detector, out: Path) -> None:
    require("tf2onnx", "tf2onnx", "onnx")
    require("onnx", "onnx", "onnx")
    import onnx
    import tf2onnx

    serve = serving_function(detector)
    # tf2onnx names the graph's input and outputs after the signature's name and dict keys.
    model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=ONNX_OPSET)
    names = ([i.name for i in model_proto.graph.input], sorted(o.name for o in model_proto.graph.output))
    if names != ([INPUT_NAME], sorted(NMS_OUTPUTS)):  # a tf2onnx that names them otherwise: say so
        raise RuntimeError(f"tf2onnx named the inputs and outputs {names}, expected {INPUT_NAME} and {NMS_OUTPUTS}")
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(out))


def _save_tflite(detector: Detector, out: Path) -> None:
    # The weights are frozen into constants first: converted as they are, Keras 3's variables
    # become TFLite resource variables that the interpreter never initialises (measured: every
    # output NaN). The frozen function loses its output names; the wrapper gives them back.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    serve = serving_function(detector, nms=False)
    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())

    @tf.function(input_signature=serve.input_signature)
    def named(images: tf.Tensor) -> dict[str, tf.Tensor]:
        boxes, scores = frozen(images)  # the outputs in sorted key order
        return {"boxes": boxes, "scores": scores}

    # A trackable object (holding nothing) makes the converter write the serving_default signature.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([named.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    out.write_bytes(converter.convert())


SAVERS: dict[str, Callable[[Detector, Path], None]] = {
    "savedmodel": _save_savedmodel,
    "onnx": _save_onnx,
    "tflite": _save_tflite,
}


def export(checkpoint: str | Path, fmt: str, out: str | Path, *, weights: str = "best") -> Path:
    """Export the checkpoint in ``checkpoint`` (``config.json`` + its best weights, else the last;
    ``weights="last"``: the last, ``model.weights.h5``) as ``fmt``.

    ``out`` is a directory for ``savedmodel`` (it must not exist or be empty) and a file for
    ``onnx`` and ``tflite`` (replaced). It is written in a temporary sibling first and moved
    into place, so ``out`` never holds half an export.

    Raises:
        ValueError: unknown ``fmt``, or ``out`` is a non-empty directory; from
            :meth:`Detector.from_checkpoint` for a missing or unreadable checkpoint
            (``FileNotFoundError`` / ``ValueError``).
        MissingPackageError: ``fmt`` needs an optional package that is not installed.
    """
    if fmt not in SAVERS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "onnx":  # fail before loading a model
        require("tf2onnx", "tf2onnx", "onnx")
    out = Path(out)
    if out.is_dir() and (fmt != "savedmodel" or any(out.iterdir())):
        raise ValueError(f"{out} is a directory that is not empty" if fmt == "savedmodel" else f"{out} is a directory")
    detector = Detector.from_checkpoint(checkpoint, weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        SAVERS[fmt](detector, staged)
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(staged, out)
    return out


@dataclass(frozen=True)
class Parity:
    """How an export's detections compare with :meth:`Detector.predict`'s (:func:`compare`).

    Attributes:
        same: every image has as many detections as the reference, each paired one to one
            with a reference detection of the same class within the tolerances.
        max_box_diff: the largest coordinate difference in pixels over the paired detections.
        max_score_diff: the largest score difference over the paired detections.
        detections: the reference's detections, over all images.
        unpaired: detections (of either side) left without a partner.
    """

    same: bool
    max_box_diff: float
    max_score_diff: float
    detections: int
    unpaired: int


def compare(
    reference: Sequence[Detections], candidate: Sequence[Detections], *, box_tol: float = 0.5, score_tol: float = 1e-3
) -> Parity:
    """Pair each image's detections one to one: same class, boxes within ``box_tol`` px, scores within ``score_tol``.

    Pairing is greedy in the reference's order (descending score), to the closest candidate
    box; it ignores order, so two detections whose scores tie to float precision may come out
    of NMS in either order and still pair.
    """
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference images but {len(candidate)} candidate images")
    box_diff = score_diff = 0.0
    unpaired = total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        total += len(ref)
        free = np.ones(len(cand), bool)
        for box, score, label in zip(ref.boxes, ref.scores, ref.labels, strict=True):
            diffs = np.abs(cand.boxes - box).max(axis=1) if len(cand) else np.zeros(0)
            ok = free & (cand.labels == label) & (diffs <= box_tol) & (np.abs(cand.scores - score) <= score_tol)
            if not ok.any():
                unpaired += 1
                continue
            j = int(np.argmin(np.where(ok, diffs, np.inf)))
            free[j] = False
            box_diff = max(box_diff, float(diffs[j]))
            score_diff = max(score_diff, float(abs(cand.scores[j] - score)))
        unpaired += int(free.sum())
    return Parity(unpaired == 0, box_diff, score_diff, total, unpaired)
