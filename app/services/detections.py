"""The detections viewer's service: a job's latest checkpoint run on validation images,
evaluated with pycocotools, and on uploaded images.

TensorFlow is imported only when a detector is first loaded (``load_detector``), never when the
app is imported. The viewer runs the job's best weights (``best.weights.h5``, the evaluation with
the highest mAP@.5) where training kept them, else the last (:func:`ssd.checkpoint.weights_path`).
Loaded detectors are cached per (job id, the loaded weights file's name, mtime and size) in a small
LRU, so a running job's newer checkpoint is picked up by the next request; one lock serialises
inference (two CPU cores: parallel model calls would only contend). Every method blocks: routes
call them in a worker thread.

What a model run computes is cached by what determines it: one image's ground truth and
detections by (checkpoint, split, image index), so an evaluation of ``n`` images after one of
``n - 1`` predicts one image, and a page of detections reuses an evaluation's. Work that does
compute holds a slot of :class:`app.services.heavy.HeavyWork` (loading a checkpoint, predicting
uncached images, an upload): beyond its limit a request is :class:`~app.domain.Busy` at once.
A ``stop`` event, set by the route when its client disconnects, ends a model run between batches
(:class:`~app.domain.ClientGone`); the images predicted so far stay cached.

Errors are the domain errors of :mod:`app.domain`: no checkpoint (:class:`NotFound`, or
:class:`Conflict` while the job trains), a checkpoint that does not load (:class:`Broken`), a
job whose imported dataset was deleted (:class:`Conflict`), a rejected upload (:class:`TooLarge`,
:class:`UnsupportedMedia`, :class:`Undecodable`).

Boxes are pixel ``xyxy`` throughout, as in :mod:`ssd`. Matching of detections to ground truth
is :func:`ssd.evaluate.match_detections` (COCO's greedy rule at IoU 0.5); the page repeats it in
``static/js/lib/match.js`` to move the score cut without a round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from app.domain import ACTIVE, Broken, Conflict, Invalid, Job, NotFound
from app.figures.detections import confusion_figure, image_figure, pr_figure
from app.services.heavy import HeavyWork, check_stop
from app.services.images import MAX_UPLOAD_PIXELS, data_url, decode_upload, letterbox
from app.services.lru import LRU
from ssd.checkpoint import BEST_WEIGHTS_FILE, read_best, weights_path
from ssd.config import Config, ConfigError
from ssd.datasets.resolve import resolve
from ssd.datasets.source import DataSource, SplitData
from ssd.evaluate import coco_evaluate, confusion_matrix, match_detections

if TYPE_CHECKING:
    from ssd.detect import Detections

Split = Literal["val", "train"]
IOU_THRESHOLD = 0.5  # the viewer's and the confusion matrix's match threshold (COCO's AP50)
# Ground truth (boxes, labels) per image, detections, ignore regions per image.
Predicted = tuple[list[tuple[np.ndarray, np.ndarray]], list["Detections"], list[tuple[np.ndarray, np.ndarray]]]
# One image's ground truth boxes and labels, detections and ignore regions (None: the generator).
ImageResult = tuple[np.ndarray, np.ndarray, "Detections", tuple[np.ndarray, np.ndarray]]
# Images whose results are kept: a few KB each (at most max_detections boxes), so about 20 MB.
IMAGE_CACHE_SIZE = 5000


class Predictor(Protocol):
    """What the viewer needs of :class:`ssd.detect.Detector` (tests pass a stub)."""

    config: Config

    def predict(self, images: np.ndarray, batch_size: int = 32) -> Sequence[Detections]: ...


# Images per model call: the default recipe's training batch (32 at 128 px) in pixels. Activation
# memory grows with pixels per call, so a 1024 px model predicts one image at a time instead of
# 32 (which took 21 GiB) and the server's peak stays that of one batch whatever ``n`` asks for.
BATCH_PIXELS = 32 * 128 * 128


def batch_size(pixels_per_image: int) -> int:
    """Images per model call for images of ``pixels_per_image`` pixels: 1..32."""
    return max(1, min(32, BATCH_PIXELS // max(1, pixels_per_image)))


def load_detector(directory: Path, weights: str = "best") -> Predictor:
    """The detector of a checkpoint directory with its ``best`` or ``last`` weights (imports
    TensorFlow on first use)."""
    from ssd.detect import Detector

    return Detector.from_checkpoint(directory, weights)


def split_size(config: Config, source: DataSource, split: Split) -> int | None:
    """Images of a split the viewer offers: all of a split that ends; of a generated one, the
    validation images training evaluates (``data.val_images``), or None (its endless training split)."""
    size = source.size(split)
    if size is not None:
        return size
    return config.data.val_images if split == "val" else None


@dataclass(frozen=True)
class Checkpoint:
    """A job's checkpoint on disk, with the weights the viewer loads (``weights``: ``best`` or
    ``last``); ``key`` changes whenever that weights file is replaced."""

    job_id: str
    directory: Path
    mtime_ns: int
    size: int
    step: int | None
    weights: str = "last"

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.job_id, self.weights, self.mtime_ns, self.size)

    def to_dict(self) -> dict[str, Any]:
        saved = datetime.fromtimestamp(self.mtime_ns / 1e9, UTC).isoformat()
        return {"step": self.step, "saved_at": saved, "weights": self.weights}


def _r(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


class DetectionService:
    """Detections, evaluations and uploads of jobs under ``jobs_dir`` (one per app)."""

    def __init__(
        self,
        jobs_dir: Path,
        *,
        max_upload_bytes: int,
        max_upload_pixels: int = MAX_UPLOAD_PIXELS,
        max_eval_images: int = 1000,
        data_dir: Path | None = None,
        cache_size: int = 4,
        heavy: HeavyWork | None = None,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.data_dir = jobs_dir.parent if data_dir is None else data_dir
        self.max_eval_images = max_eval_images
        self.max_upload_bytes = max_upload_bytes
        self.max_upload_pixels = max_upload_pixels
        self.heavy = heavy or HeavyWork(2)
        self._detectors = LRU(cache_size)
        self._images = LRU(IMAGE_CACHE_SIZE)
        self._evaluations = LRU(cache_size)
        self._responses = LRU(16)
        self._sources = LRU(cache_size)  # an imported dataset's index is read once, not per request
        self._datasets = LRU(cache_size)
        self._load_lock = threading.Lock()  # one TensorFlow model build at a time
        self._infer_lock = threading.Lock()

    def forget_results(self) -> None:
        """Drop cached predictions and evaluations (loaded detectors stay): for benchmarks."""
        self._images, self._evaluations, self._responses = LRU(IMAGE_CACHE_SIZE), LRU(self._detectors.size), LRU(16)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, job: Job) -> Checkpoint:
        """The job's checkpoint, its best weights where there are some (else the last);
        :class:`Conflict` while it trains without one, else :class:`NotFound`."""
        directory = self.jobs_dir / job.id
        path = weights_path(directory, "best")
        try:
            stat = path.stat()
        except OSError:
            if job.status in ACTIVE:
                every = (job.config or {}).get("train", {}).get("checkpoint_every")
                when = f"every {every} steps and " if every else ""
                raise Conflict(
                    f"job {job.id} is {job.status} and has no checkpoint yet; "
                    f"it saves one {when}when it stops: try again later",
                ) from None
            raise NotFound(f"job {job.id} ({job.status}) has no checkpoint") from None
        if path.name == BEST_WEIGHTS_FILE:
            best = read_best(directory)
            step = best["step"] if best is not None else None
            return Checkpoint(job.id, directory, stat.st_mtime_ns, stat.st_size, step, "best")
        return Checkpoint(job.id, directory, stat.st_mtime_ns, stat.st_size, job.checkpoint_step, "last")

    def detector(self, ckpt: Checkpoint) -> Predictor:
        """The loaded detector of ``ckpt`` (cached); a broken checkpoint is :class:`Broken`, naming the file."""

        def load() -> Predictor:
            with self.heavy.slot(f"loading the checkpoint of job {ckpt.job_id}"), self._load_lock:
                try:
                    return load_detector(ckpt.directory, ckpt.weights)
                except FileNotFoundError as exc:
                    raise NotFound(self._clean(ckpt, exc)) from None
                except Exception as exc:  # ValueError (bad file), ConfigError, anything Keras raises
                    message = f"the checkpoint of job {ckpt.job_id} cannot be loaded: {self._clean(ckpt, exc)}"
                    raise Broken(message) from None

        return self._detectors.get_or_make(ckpt.key, load)

    def _clean(self, ckpt: Checkpoint, exc: BaseException) -> str:
        # Name the file relative to the data dir: the client has no business with server paths.
        return str(exc).replace(str(ckpt.directory), f"jobs/{ckpt.job_id}")

    def _predict(self, detector: Predictor, images: np.ndarray) -> list[Detections]:
        with self._infer_lock:
            return list(detector.predict(images, batch_size=batch_size(images.shape[1] * images.shape[2])))

    def source(self, config: Config) -> DataSource:
        """The dataset a checkpoint's config reads, resolved once per config; :class:`Conflict`
        when its imported dataset was deleted (a finished job's may be)."""
        source: DataSource | None = self._sources.get(config)
        if source is not None and source.exists():
            return source
        try:
            source = resolve(config, self.data_dir)
        except ConfigError as exc:
            gone = "was deleted" if exc.field == "data.dataset" else f"no longer fits the job ({exc.message})"
            raise Conflict(
                f"the job's dataset {config.data.dataset!r} {gone}: its images cannot be shown "
                "(the checkpoint can still be downloaded and exported)"
            ) from None
        self._sources.put(config, source)
        return source

    def data(self, config: Config, split: Split) -> SplitData:
        """The split a checkpoint's config reads as training used it, made once per config and split:
        unaugmented (the viewer shows images, not samples) and with no decoded image kept (a request
        reads its batch and lets it go, so an evaluation of many large photos never holds them all)."""
        source = self.source(config)
        return self._datasets.get_or_make(
            (config, split), lambda: source.split(config, split, augment=False, cache_bytes=0)
        )

    def _run(
        self, ckpt: Checkpoint, split: Split, indices: Sequence[int], stop: threading.Event | None = None
    ) -> Predicted:
        """Ground truth ``(boxes, labels)``, detections and (for an imported dataset) ignore regions
        of images ``indices``. Images not in the cache are read and predicted a bounded batch at a
        time (no more than one batch of images is ever in memory), holding a heavy-work slot, and
        stopping between batches once ``stop`` is set."""
        found: dict[int, ImageResult] = {}
        for i in indices:
            if (hit := self._images.get((ckpt.key, split, i))) is not None:
                found[i] = hit
        missing = [i for i in indices if i not in found]
        if missing:
            detector = self.detector(ckpt)
            config = detector.config
            ds = self.data(config, split)
            step = batch_size(config.data.image_size**2)
            with self.heavy.slot(f"predicting {len(missing)} images of job {ckpt.job_id}"):
                for start in range(0, len(missing), step):
                    check_stop(stop, f"predicting images of job {ckpt.job_id}")
                    chunk = missing[start : start + step]
                    samples = [ds[i] for i in chunk]
                    predicted = self._predict(detector, np.stack([s.image for s in samples]))
                    for i, sample, det in zip(chunk, samples, predicted, strict=True):
                        found[i] = (sample.boxes, sample.labels, det, ds.ignore_regions(i))
                        self._images.put((ckpt.key, split, i), found[i])
        results = [found[i] for i in indices]
        return [(r[0], r[1]) for r in results], [r[2] for r in results], [r[3] for r in results]

    def class_names(self, config: Config) -> list[str]:
        """The job's class names in index order: its dataset's, else the class indices."""
        digits = [str(k) for k in range(config.model.num_classes)]
        try:
            names = self.source(config).class_names
        except Conflict:  # removed since: indices are all there is
            return digits
        return names if len(names) == config.model.num_classes else digits

    # ------------------------------------------------------------------ validation images
    def detections(
        self,
        job: Job,
        *,
        split: Split = "val",
        offset: int = 0,
        limit: int = 12,
        score: float = 0.5,
        image_url: Callable[[int], str],
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Ground truth, every detection, their IoU matrix and TP/FP/missed at ``score`` per image."""
        ckpt = self.checkpoint(job)
        detector = self.detector(ckpt)
        config = detector.config
        total = split_size(config, self.source(config), split)
        end = offset + limit if total is None else min(offset + limit, total)
        indices = list(range(offset, max(end, offset)))

        truth, dets, _ = self._run(ckpt, split, indices, stop)
        size = config.data.image_size
        images = []
        for index, (boxes, labels), det in zip(indices, truth, dets, strict=True):
            item = _judge(boxes, labels, det, score=score)
            url = image_url(index)
            figure = image_figure(
                source=url, width=size, height=size, gt=item["gt"], detections=item["detections"], score=score
            )
            images.append({"index": index, "image_url": url, "width": size, "height": size, **item, "figure": figure})
        return {
            "job_id": job.id,
            "job_status": job.status.value,
            "checkpoint": ckpt.to_dict(),
            "split": split,
            "offset": offset,
            "limit": limit,
            "total": total,
            "num_classes": config.model.num_classes,
            "class_names": self.class_names(config),
            "score_threshold": config.detect.score_threshold,
            "iou_threshold": IOU_THRESHOLD,
            "score": score,
            "images": images,
        }

    # ------------------------------------------------------------------ evaluation
    def evaluation(
        self, job: Job, *, n: int = 100, score: float = 0.5, stop: threading.Event | None = None
    ) -> dict[str, Any]:
        """COCO metrics, per-class AP, PR curves and a confusion matrix on validation images 0..n-1."""
        if n > self.max_eval_images:
            raise Invalid(
                ("query", "n"), f"at most {self.max_eval_images} images per evaluation (SSDBOARD_MAX_EVAL_IMAGES)"
            )
        ckpt = self.checkpoint(job)
        detector = self.detector(ckpt)
        config = detector.config
        available = split_size(config, self.source(config), "val")
        if available is not None and n > available:
            raise NotFound(f"n = {n} exceeds the job's validation set ({available} images)")

        def evaluate() -> dict[str, Any]:
            start = time.perf_counter()
            truth, dets, ignore = self._run(ckpt, "val", range(n), stop)
            gt_boxes, gt_labels = [b for b, _ in truth], [lab for _, lab in truth]
            result = coco_evaluate(
                gt_boxes,
                gt_labels,
                dets,
                num_classes=config.model.num_classes,
                image_size=config.data.image_size,
                ignore=ignore,
            )
            return {"gt": (gt_boxes, gt_labels), "dets": dets, "result": result, "seconds": time.perf_counter() - start}

        def respond() -> dict[str, Any]:
            cached = self._evaluations.get_or_make((ckpt.key, n), evaluate)
            gt_boxes, gt_labels = cached["gt"]
            matrix = confusion_matrix(
                gt_boxes,
                gt_labels,
                cached["dets"],
                num_classes=config.model.num_classes,
                iou_threshold=IOU_THRESHOLD,
                score_threshold=score,
            )
            metrics = cached["result"].to_dict()
            names = self.class_names(config)
            classes = [
                {"class": k, "name": names[k], "ap": ap, "ap50": ap50, "num_gt": num_gt}
                for k, (ap, ap50, num_gt) in enumerate(
                    zip(metrics["ap_per_class"], metrics["ap50_per_class"], metrics["num_gt"], strict=True)
                )
            ]
            return {
                "job_id": job.id,
                "checkpoint": ckpt.to_dict(),
                "n": n,
                "score": score,
                "iou_threshold": IOU_THRESHOLD,
                **{key: metrics[key] for key in ("map", "map50", "map75", "mar100", "num_detections", "num_images")},
                "classes": classes,
                "recall_thresholds": metrics["recall_thresholds"],
                "pr_curves": metrics["pr_curves"],
                "confusion": {
                    "rows": [*names, "background"],
                    "columns": [*names, "missed"],
                    "matrix": matrix.tolist(),
                },
                "pr_figure": pr_figure(metrics["recall_thresholds"], metrics["pr_curves"], metrics["ap50_per_class"]),
                "confusion_figure": confusion_figure(matrix.tolist(), score=score, iou_threshold=IOU_THRESHOLD),
                "seconds": round(cached["seconds"], 3),
            }

        return self._responses.get_or_make(("eval", ckpt.key, n, score), respond)

    # ------------------------------------------------------------------ uploads
    def upload(self, job: Job, data: bytes, *, score: float = 0.3) -> dict[str, Any]:
        """Detections on an uploaded PNG/JPEG, letterboxed to the model's size, boxes in its own pixels."""
        # TooLarge, UnsupportedMedia or Undecodable before any model work.
        image = decode_upload(data, max_bytes=self.max_upload_bytes, max_pixels=self.max_upload_pixels)
        ckpt = self.checkpoint(job)
        detector = self.detector(ckpt)
        size = detector.config.data.image_size
        square, box = letterbox(image, size)
        with self.heavy.slot(f"detections on an upload to job {job.id}"):
            det = self._predict(detector, square[None])[0]
        boxes = box.unmap(det.boxes)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # drop boxes wholly in the padding
        detections = [
            {"box": [_r(v) for v in b], "label": int(lab), "score": _r(s, 4), "iou": None, "status": None}
            for b, s, lab in zip(
                boxes[keep].tolist(), det.scores[keep].tolist(), det.labels[keep].tolist(), strict=True
            )
        ]
        height, width = image.shape[:2]
        figure = image_figure(
            source=data_url(image),
            width=width,
            height=height,
            detections=detections,
            score=score,
            plot_height=480,
            showlegend=True,
        )
        return {
            "job_id": job.id,
            "checkpoint": ckpt.to_dict(),
            "width": width,
            "height": height,
            "image_size": size,
            "letterbox": {"scale": box.scale, "pad_x": box.pad_x, "pad_y": box.pad_y},
            "score_threshold": detector.config.detect.score_threshold,
            "score": score,
            "detections": detections,
            "figure": figure,
        }


def _judge(gt_boxes: np.ndarray, gt_labels: np.ndarray, det: Detections, *, score: float) -> dict[str, Any]:
    """One image's ground truth and detections, matched at IoU 0.5 among detections scoring >= ``score``."""
    # The page matches again with the scores it receives: match on those same rounded scores.
    scores = np.round(np.asarray(det.scores, dtype=np.float64), 4)
    m = match_detections(
        gt_boxes,
        gt_labels,
        det.boxes,
        scores,
        det.labels,
        iou_threshold=IOU_THRESHOLD,
        score_threshold=score,
    )
    gts = [
        {"box": [_r(v) for v in b], "label": int(lab), "matched": bool(hit)}
        for b, lab, hit in zip(
            np.asarray(gt_boxes).tolist(), np.asarray(gt_labels).tolist(), m.gt_matched.tolist(), strict=True
        )
    ]
    dets = []
    for i, (b, s, lab) in enumerate(zip(det.boxes.tolist(), scores.tolist(), det.labels.tolist(), strict=True)):
        best = int(np.argmax(m.iou[i])) if len(gts) else -1
        dets.append(
            {
                "box": [_r(v) for v in b],
                "label": int(lab),
                "score": s,
                "iou": _r(m.iou[i, best], 4) if best >= 0 else 0.0,
                "best_gt": best,
                "matched_gt": int(m.det_gt[i]),
                "status": ("tp" if m.det_gt[i] >= 0 else "fp") if m.det_kept[i] else None,
            }
        )
    return {"gt": gts, "detections": dets, "iou": m.iou.tolist()}
