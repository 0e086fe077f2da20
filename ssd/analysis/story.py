"""Every ground truth's story: what became of it, and whether any prior could ever have matched it.

:func:`ssd.analysis.tide.tide_errors` says what the detector did with each ground truth (found,
claimed by a ``cls`` or ``loc`` error, or missed); :func:`ssd.coverage.assign` says what the
matching rule gave it to learn from: its best IoU over all priors and the positive priors it
owns, by the IoU threshold alone and with forced matching (``matching.force_best``). Joined,
they separate two kinds of misses:

- ``no_prior``: a missed ground truth that owns no positive prior under the run's matching rule
  (best prior IoU under ``matching.iou_threshold`` with forced matching off; no overlapping prior
  at all with it on). The loss never asked the network to find it: not the network's fault; the
  fix is in the priors or the input size.
- ``missed``: every other miss: the priors could match it and the network did not learn to.

:func:`recall_by_prior_iou` turns the stories into recall against best-prior IoU.

Boxes are float32 pixel ``xyxy`` in the network's square input; priors float32 [P, 4] ``xyxy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssd.analysis.tide import TideResult
from ssd.coverage import BUCKET_LABELS, assign, size_bucket

__all__ = ["CAUSES", "PRIOR_IOU_EDGES", "Stories", "ground_truth_stories", "recall_by_prior_iou"]

# What became of a ground truth: TIDE's outcomes, a miss split by whether a prior could match it.
CAUSES = ("found", "cls", "loc", "missed", "no_prior")
PRIOR_IOU_EDGES = tuple(round(0.1 * k, 1) for k in range(11))  # best-prior IoU bins of the recall curve


@dataclass(frozen=True)
class Stories:
    """G ground truths (every image's, in input order) and what became of each.

    Attributes:
        image: int64 [G] image index; index: int64 [G] index in that image's ground truth.
        boxes: float32 [G, 4] pixel ``xyxy``; labels: int64 [G] class.
        outcome: str [G] TIDE's (``found``, ``cls``, ``loc``, ``missed``).
        cause: str [G] one of :data:`CAUSES`: the outcome, ``no_prior`` for a miss no prior matches.
        best_prior_iou: float32 [G] best IoU over all priors; best_prior: int32 [G] that prior.
        positives_threshold: int32 [G] positive priors by the IoU threshold alone.
        positives_forced: int32 [G] positive priors with forced matching.
        positives: int32 [G] those of the run's rule (``force_best`` picks).
        size_bucket: int32 [G] index into :data:`ssd.coverage.BUCKET_LABELS`.
        detection: int64 [G] the detection that found or claims it (index in its image), or -1.
    """

    image: np.ndarray
    index: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    outcome: np.ndarray
    cause: np.ndarray
    best_prior_iou: np.ndarray
    best_prior: np.ndarray
    positives_threshold: np.ndarray
    positives_forced: np.ndarray
    positives: np.ndarray
    size_bucket: np.ndarray
    detection: np.ndarray

    def __len__(self) -> int:
        return int(self.image.size)

    def counts(self) -> dict[str, int]:
        """Ground truths of each of :data:`CAUSES`."""
        return {c: int((self.cause == c).sum()) for c in CAUSES}

    def to_list(self) -> list[dict[str, Any]]:
        """One JSON object a ground truth: ``box`` is COCO's ``[x, y, w, h]`` in input pixels."""
        out = []
        for g in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[g])
            out.append(
                {
                    "image": int(self.image[g]),
                    "index": int(self.index[g]),
                    "box": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "class": int(self.labels[g]),
                    "outcome": str(self.outcome[g]),
                    "cause": str(self.cause[g]),
                    "best_prior_iou": round(float(self.best_prior_iou[g]), 4),
                    "positives": int(self.positives[g]),
                    "positives_threshold": int(self.positives_threshold[g]),
                    "positives_forced": int(self.positives_forced[g]),
                    "size_bucket": BUCKET_LABELS[int(self.size_bucket[g])],
                    "detection": int(self.detection[g]),
                }
            )
        return out


def ground_truth_stories(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    tide: TideResult,
    priors: np.ndarray,
    *,
    iou_threshold: float,
    force_best: bool,
) -> Stories:
    """Join TIDE's outcome of every ground truth with its prior matching.

    Args:
        gt_boxes: per image float [K_i, 4] pixel ``xyxy`` (the ones ``tide`` was computed on).
        gt_labels: per image int [K_i].
        tide: :func:`ssd.analysis.tide.tide_errors` of these ground truths.
        priors: float32 [P, 4] ``xyxy`` in the same pixels.
        iou_threshold, force_best: the run's ``matching`` settings.
    """
    counts = [len(np.asarray(b).reshape(-1, 4)) for b in gt_boxes]
    image = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    index = np.concatenate([np.arange(k, dtype=np.int64) for k in counts] or [np.zeros(0, np.int64)])
    boxes = np.concatenate(
        [np.asarray(b, np.float32).reshape(-1, 4) for b in gt_boxes] or [np.zeros((0, 4), np.float32)]
    )
    labels = (
        np.concatenate([np.asarray(lab, np.int64).reshape(-1) for lab in gt_labels])
        if counts
        else np.zeros(0, np.int64)
    )
    if not (np.array_equal(tide.gt_image, image) and np.array_equal(tide.gt_index, index)):
        raise ValueError("tide was computed on other ground truths than gt_boxes")
    g = len(image)
    matched = assign(boxes, image, np.asarray(priors, np.float32), iou_threshold=iou_threshold)
    threshold = matched.at_threshold.per_gt(g)
    forced = matched.forced.per_gt(g)
    positives = forced if force_best else threshold
    outcome = np.asarray(tide.gt_outcome, dtype=object).astype(str) if g else np.zeros(0, str)
    cause = np.where((outcome == "missed") & (positives == 0), "no_prior", outcome)
    return Stories(
        image=image,
        index=index,
        boxes=boxes,
        labels=labels,
        outcome=outcome,
        cause=cause.astype(str),
        best_prior_iou=matched.best_iou,
        best_prior=matched.best_prior,
        positives_threshold=threshold,
        positives_forced=forced,
        positives=positives,
        size_bucket=size_bucket(boxes),
        detection=np.asarray(tide.gt_detection, np.int64),
    )


def recall_by_prior_iou(stories: Stories, edges: Sequence[float] = PRIOR_IOU_EDGES) -> list[dict[str, Any]]:
    """Recall (``found`` over all) of the ground truths in each bin ``[edges[k], edges[k+1])`` of
    best-prior IoU (the last bin closed): ``{"low", "high", "ground_truths", "found", "no_prior",
    "recall"}`` per bin, ``recall`` None for an empty bin."""
    bins = np.clip(np.searchsorted(np.asarray(edges[1:-1]), stories.best_prior_iou, side="right"), 0, len(edges) - 2)
    out = []
    for k in range(len(edges) - 1):
        mine = bins == k
        total = int(mine.sum())
        found = int((stories.outcome[mine] == "found").sum())
        out.append(
            {
                "low": float(edges[k]),
                "high": float(edges[k + 1]),
                "ground_truths": total,
                "found": found,
                "no_prior": int((stories.cause[mine] == "no_prior").sum()),
                "recall": round(found / total, 4) if total else None,
            }
        )
    return out
