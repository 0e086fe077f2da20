"""Prior coverage: which ground truths the matching rule gives a positive prior, and how well.

The matching rule is :func:`ssd.matching.match`'s (SSD paper, sec. 2.2): a prior is positive
when its best IoU with a ground truth reaches ``iou_threshold``, and then belongs to the
ground truth it overlaps most; with ``force_best`` every ground truth also takes its best prior
(where two share one, the one it overlaps most keeps it). A ground truth that owns no positive
prior is never learned. This module answers, per image and over a data set, which ground truths
those are, their best IoU, and how many positives the loss sees.

NumPy only, on purpose: the prior explorer answers a request per pointer move, and one image's
IoU against 4032 priors takes microseconds in NumPy but about a millisecond of TensorFlow eager
dispatch per op. The IoU is :func:`ssd.geometry.iou` (equal to :func:`ssd.boxes.box_iou`) and
the assignment equals :func:`ssd.matching.match`; tests prove both.

Boxes are float32 pixel ``xyxy`` throughout.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ssd.config import Config, DataConfig
from ssd.data import VAL_SEED, Split, for_config
from ssd.geometry import box_size, iou

__all__ = [
    "BUCKET_EDGES",
    "BUCKET_LABELS",
    "Assignment",
    "BucketCoverage",
    "CoverageReport",
    "DatasetBoxes",
    "Pairs",
    "assign",
    "coverage",
    "dataset_boxes",
    "describe",
    "quantiles",
    "size_bucket",
]

# Box-size buckets by sqrt(area) in pixels, suited to the 128 px generator (digits of 22-70 px
# squares, tight ink boxes of about 10-60 px): upper edges, the last bucket is open.
BUCKET_EDGES: tuple[float, ...] = (16.0, 24.0, 32.0, 48.0)
BUCKET_LABELS: tuple[str, ...] = ("< 16 px", "16-24 px", "24-32 px", "32-48 px", ">= 48 px")

# IoU entries computed at once in :func:`assign`: bounds memory, and stays in cache.
_CHUNK_ELEMENTS = 500_000


def size_bucket(boxes: np.ndarray) -> np.ndarray:
    """int32 [...] index into :data:`BUCKET_LABELS` of [..., 4] ``xyxy`` boxes (by ``sqrt(area)``).

    A box exactly on an edge goes to the upper bucket: 16 px is "16-24 px".
    """
    return np.searchsorted(np.asarray(BUCKET_EDGES, np.float32), box_size(boxes), side="right").astype(np.int32)


@dataclass(frozen=True)
class Pairs:
    """Positive priors and the ground truth each belongs to: M (ground truth, prior) pairs.

    Attributes:
        gt: int32 [M] ground truth index; prior: int32 [M] prior index; iou: float32 [M] their IoU.
    """

    gt: np.ndarray
    prior: np.ndarray
    iou: np.ndarray

    def per_gt(self, num_gt: int) -> np.ndarray:
        """int32 [num_gt] positive priors each ground truth owns."""
        return np.bincount(self.gt, minlength=num_gt).astype(np.int32)


@dataclass(frozen=True)
class Assignment:
    """The matching of G ground truths (of one or many images) to P priors.

    Attributes:
        best_iou: float32 [G] each ground truth's best IoU over all priors.
        best_prior: int32 [G] the prior reaching it (the first one on a tie, as ``argmax``).
        at_threshold: the positives of the IoU threshold alone.
        forced: the positives once each ground truth also takes its best prior.
    """

    best_iou: np.ndarray
    best_prior: np.ndarray
    at_threshold: Pairs
    forced: Pairs


def _keep_best(key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the entry of highest ``value`` for each distinct ``key`` (the last on a tie)."""
    order = np.lexsort((value, key))
    last = np.r_[key[order][1:] != key[order][:-1], True] if key.size else np.zeros(0, bool)
    return order[last]


def assign(
    gt_boxes: np.ndarray,
    image: np.ndarray,
    priors: np.ndarray,
    *,
    iou_threshold: float,
) -> Assignment:
    """Match ground truths to priors by :func:`ssd.matching.match`'s rules.

    A prior is positive for an image when its IoU with one of that image's ground truths is
    ``>= iou_threshold``, and belongs to the one it overlaps most. Forced (the paper's rule):
    each ground truth overlapping any prior also takes its best prior, overriding the
    threshold's owner; where several force one prior, the one it overlaps most keeps it.
    Both assignments are returned; the config's ``force_best`` picks which the loss uses.

    Args:
        gt_boxes: float32 [G] x 4 ``xyxy`` ground truths of any number of images, flattened.
        image: int [G] the image each belongs to (ground truths interact only within an image).
        priors: float32 [P, 4] ``xyxy``.
    """
    gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    image = np.asarray(image, np.int64).reshape(-1)
    g, p = gt_boxes.shape[0], int(priors.shape[0])
    best_iou = np.zeros(g, np.float32)
    best_prior = np.zeros(g, np.int32)
    hits_gt, hits_prior, hits_iou = [], [], []
    # Chunks of ground truths keep the [chunk, P] IoU matrix in cache (3x faster than all at once).
    step = max(1, _CHUNK_ELEMENTS // max(p, 1))
    for start in range(0, g, step):
        overlaps = iou(gt_boxes[start : start + step], priors)
        if p == 0:
            continue
        best_prior[start : start + step] = overlaps.argmax(axis=1)
        best_iou[start : start + step] = overlaps.max(axis=1)
        rows, cols = np.nonzero(overlaps >= iou_threshold)
        hits_gt.append(rows + start)
        hits_prior.append(cols)
        hits_iou.append(overlaps[rows, cols])
    cat_gt = np.concatenate(hits_gt).astype(np.int64) if hits_gt else np.zeros(0, np.int64)
    cat_prior = np.concatenate(hits_prior).astype(np.int64) if hits_prior else np.zeros(0, np.int64)
    cat_iou = np.concatenate(hits_iou).astype(np.float32) if hits_iou else np.zeros(0, np.float32)
    keep = _keep_best(image[cat_gt] * p + cat_prior, cat_iou)
    at_threshold = Pairs(cat_gt[keep].astype(np.int32), cat_prior[keep].astype(np.int32), cat_iou[keep])

    forcing = np.flatnonzero(best_iou > 0.0)
    f_prior = best_prior[forcing].astype(np.int64)
    f_keep = _keep_best(image[forcing] * p + f_prior, best_iou[forcing])
    f_gt, f_prior, f_iou = forcing[f_keep], f_prior[f_keep], best_iou[forcing][f_keep]
    overridden = np.isin(image[at_threshold.gt] * p + at_threshold.prior, image[f_gt] * p + f_prior)
    forced = Pairs(
        np.concatenate([at_threshold.gt[~overridden], f_gt]).astype(np.int32),
        np.concatenate([at_threshold.prior[~overridden], f_prior]).astype(np.int32),
        np.concatenate([at_threshold.iou[~overridden], f_iou]).astype(np.float32),
    )
    return Assignment(best_iou=best_iou, best_prior=best_prior, at_threshold=at_threshold, forced=forced)


@dataclass(frozen=True)
class DatasetBoxes:
    """The ground truth of the first ``n`` images of a split, padded.

    Attributes:
        boxes: float32 [N, K, 4] ``xyxy`` (zero padded).
        labels: int32 [N, K] classes (-1 padded).
        counts: int32 [N] real boxes per image.
    """

    boxes: np.ndarray
    labels: np.ndarray
    counts: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """bool [N, K] real boxes."""
        return np.asarray(self.labels >= 0)


@functools.lru_cache(maxsize=16)
def _dataset_boxes(data: DataConfig, seed: int, split: Split, n: int) -> DatasetBoxes:
    config = Config(seed=seed, data=data)
    _, boxes, labels, counts = for_config(config, split).batch(0, n)
    for array in (boxes, labels, counts):
        array.setflags(write=False)
    return DatasetBoxes(boxes=boxes, labels=labels, counts=counts)


def dataset_boxes(config: Config, split: Split, n: int) -> DatasetBoxes:
    """Ground truth of images ``0..n-1`` of a config's split; cached per data config.

    Generating 300 images takes about 0.3 s; the prior explorer asks for the same set on every
    change of a prior setting, which leaves the data config alone. Arrays are read-only.
    """
    seed = config.seed if split == "train" else VAL_SEED  # for_config ignores the run's seed for val
    return _dataset_boxes(config.data, seed, split, n)


@dataclass(frozen=True)
class BucketCoverage:
    """Coverage of the ground truths of one size bucket.

    Attributes:
        label: e.g. ``"24-32 px"``.
        count: ground truths in the bucket.
        matched: those owning a prior at the threshold alone.
        matched_forced: those owning a prior once forced matches are added.
        best_iou: float32 [count] each one's best IoU over all priors.
    """

    label: str
    count: int
    matched: int
    matched_forced: int
    best_iou: np.ndarray

    @property
    def unmatched(self) -> int:
        """Ground truths with no prior at the threshold."""
        return self.count - self.matched


@dataclass(frozen=True)
class CoverageReport:
    """How the priors of a config cover the ground truth of ``num_images`` images.

    Attributes:
        num_images, num_gt: images and ground truths counted.
        iou_threshold, force_best: the matching rule.
        is_matched: bool [G] each ground truth owns at least one prior at the threshold.
        is_matched_forced: bool [G] the same once each ground truth also takes its best prior.
        best_iou: float32 [G] each ground truth's best IoU; size: float32 [G] its sqrt(area);
            bucket: int32 [G] its size bucket.
        buckets: per size bucket, see :class:`BucketCoverage`.
        positives: int32 [N] positive priors per image at the threshold alone.
        positives_forced: int32 [N] the same with forced matches.
        prior_shapes: float32 [S, 2] the distinct prior ``(w, h)`` over all layers.
    """

    num_images: int
    num_gt: int
    iou_threshold: float
    force_best: bool
    is_matched: np.ndarray
    is_matched_forced: np.ndarray
    best_iou: np.ndarray
    size: np.ndarray
    bucket: np.ndarray
    buckets: tuple[BucketCoverage, ...]
    positives: np.ndarray
    positives_forced: np.ndarray
    prior_shapes: np.ndarray

    @property
    def matched(self) -> int:
        """Ground truths owning at least one prior at the threshold."""
        return int(self.is_matched.sum())

    @property
    def matched_forced(self) -> int:
        """Ground truths owning at least one prior once forced matches are added."""
        return int(self.is_matched_forced.sum())

    @property
    def unmatched(self) -> int:
        """Ground truths with no prior at the threshold."""
        return self.num_gt - self.matched

    @property
    def loss_positives(self) -> np.ndarray:
        """int32 [N] positives per image the loss sees under the configured rule."""
        return self.positives_forced if self.force_best else self.positives


def coverage(
    data: DatasetBoxes,
    priors: np.ndarray,
    prior_shapes: np.ndarray,
    *,
    iou_threshold: float,
    force_best: bool,
) -> CoverageReport:
    """The coverage report of ``priors`` ([P, 4] ``xyxy``) over ``data``.

    ``prior_shapes`` ([S, 2] ``(w, h)``) only feeds the words of :func:`describe`. Both rules
    are always counted ("matched at the threshold" and "forced"); ``force_best`` says which one
    the loss uses.
    """
    n = data.labels.shape[0]
    valid = data.valid
    image = np.nonzero(valid)[0]
    gt_boxes = data.boxes[valid]
    g = gt_boxes.shape[0]
    a = assign(gt_boxes, image, np.asarray(priors, np.float32), iou_threshold=iou_threshold)
    has = a.at_threshold.per_gt(g) > 0
    has_forced = a.forced.per_gt(g) > 0
    best_iou = a.best_iou
    bucket = size_bucket(gt_boxes)
    buckets = tuple(
        BucketCoverage(
            label=label,
            count=int((bucket == i).sum()),
            matched=int(has[bucket == i].sum()),
            matched_forced=int(has_forced[bucket == i].sum()),
            best_iou=best_iou[bucket == i],
        )
        for i, label in enumerate(BUCKET_LABELS)
    )
    return CoverageReport(
        num_images=n,
        num_gt=g,
        iou_threshold=float(iou_threshold),
        force_best=bool(force_best),
        is_matched=has,
        is_matched_forced=has_forced,
        best_iou=best_iou,
        size=box_size(gt_boxes),
        bucket=bucket,
        buckets=buckets,
        positives=np.bincount(image[a.at_threshold.gt], minlength=n).astype(np.int32),
        positives_forced=np.bincount(image[a.forced.gt], minlength=n).astype(np.int32),
        prior_shapes=np.unique(np.asarray(prior_shapes, np.float32).reshape(-1, 2), axis=0),
    )


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


def _wh(shape: np.ndarray) -> str:
    return f"{shape[0]:.0f}x{shape[1]:.0f} px"


def describe(report: CoverageReport) -> list[str]:
    """The report in plain sentences, gaps first: what a person should read before the plots."""
    thr = f"{report.iou_threshold:g}"
    if report.num_gt == 0:
        return [f"No ground truths in {report.num_images} images."]
    areas = report.prior_shapes[:, 0] * report.prior_shapes[:, 1]
    smallest, largest = report.prior_shapes[areas.argmin()], report.prior_shapes[areas.argmax()]
    priors_text = f"priors range from {_wh(smallest)} to {_wh(largest)}"
    lines = []
    u = report.unmatched
    if u == 0:
        lines.append(
            f"Every ground truth ({report.num_gt} in {report.num_images} images) has a prior with IoU ≥ {thr}."
        )
    else:
        gaps = sorted((b for b in report.buckets if b.unmatched), key=lambda b: -b.unmatched)
        where = ", ".join(
            f"{b.unmatched} in the {b.label} bucket ({_pct(b.unmatched, b.count)} of its {b.count})" for b in gaps
        )
        lines.append(
            f"{_pct(u, report.num_gt)} of ground truths ({u} of {report.num_gt}) have no prior with IoU ≥ {thr}: "
            f"{where}. The {priors_text} (by area)."
        )
        missed = report.best_iou[~report.is_matched]
        lines.append(
            f"Their best IoU is {float(np.median(missed)):.2f} at the median "
            f"(range {float(missed.min()):.2f}-{float(missed.max()):.2f})."
        )
        forced_extra = report.matched_forced - report.matched
        if report.force_best:
            lines.append(
                f"Forced matching is on: {forced_extra} of them are learned from their best prior "
                f"(coverage {_pct(report.matched_forced, report.num_gt)}), though it overlaps them poorly."
            )
        else:
            lines.append(
                f"Forced matching is off: these {u} ground truths are never learned (no positive prior); "
                f"turning it on would cover {_pct(report.matched_forced, report.num_gt)}."
            )
    positives = report.loss_positives
    none = int((positives == 0).sum())
    rule = "with forced matches" if report.force_best else f"at IoU ≥ {thr}"
    sentence = (
        f"The loss sees {float(positives.mean()):.1f} positive priors per image on average {rule} "
        f"(median {float(np.median(positives)):.0f}, range {int(positives.min())}-{int(positives.max())})"
    )
    lines.append(sentence + (f"; {none} images have none." if none else "."))
    return lines


def quantiles(values: np.ndarray, qs: tuple[float, ...] = (0.05, 0.5, 0.95)) -> list[float]:
    """Rounded quantiles of a possibly empty array (NaN when empty)."""
    if values.size == 0:
        return [math.nan for _ in qs]
    return [round(float(v), 4) for v in np.quantile(values, qs)]
