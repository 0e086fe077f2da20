"""Every ground truth's story (ssd.analysis.story) and the analysis document (ssd.analysis.report),
worked by hand on four one-object images and two priors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ssd.analysis.report import analyze
from ssd.analysis.story import ground_truth_stories, recall_by_prior_iou
from ssd.analysis.tide import tide_errors
from ssd.config import from_dict

# P0 covers A exactly; P1 = [50, 50, 70, 70] (area 400).
PRIORS = np.array([[0, 0, 10, 10], [50, 50, 70, 70]], np.float32)
GT_BOXES = [
    np.array([[0, 0, 10, 10]], np.float32),  # A: IoU 1 with P0; detected -> found
    np.array([[100, 100, 104, 104]], np.float32),  # B: overlaps no prior; missed -> no_prior either way
    np.array([[50, 50, 66, 66]], np.float32),  # C: IoU 256/400 = 0.64 with P1 (>= 0.5); missed -> missed
    np.array([[50, 50, 60, 60]], np.float32),  # D: IoU 100/400 = 0.25 with P1; missed -> no_prior unless forced
]
GT_LABELS = [np.array([0]), np.array([0]), np.array([0]), np.array([1])]


@dataclass
class Dets:
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _dets() -> list[Dets]:
    none = Dets(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    found = Dets(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.array([0]))
    return [found, none, none, none]


@pytest.mark.parametrize(("force_best", "d_cause", "d_positives"), [(False, "no_prior", 0), (True, "missed", 1)])
def test_each_ground_truths_story_worked_by_hand(force_best: bool, d_cause: str, d_positives: int) -> None:
    tide = tide_errors(GT_BOXES, GT_LABELS, _dets(), num_classes=2)
    stories = ground_truth_stories(GT_BOXES, GT_LABELS, tide, PRIORS, iou_threshold=0.5, force_best=force_best)
    assert stories.outcome.tolist() == ["found", "missed", "missed", "missed"]
    assert stories.cause.tolist() == ["found", "no_prior", "missed", d_cause]
    np.testing.assert_allclose(stories.best_prior_iou, [1.0, 0.0, 0.64, 0.25], atol=1e-6)
    assert stories.positives_threshold.tolist() == [1, 0, 1, 0]
    assert stories.positives_forced.tolist() == [1, 0, 1, 1]  # D forces P1: C owns it only in its own image
    assert stories.positives.tolist() == [1, 0, 1, d_positives]
    assert stories.detection.tolist() == [0, -1, -1, -1]
    curve = {(b["low"], b["high"]): b for b in recall_by_prior_iou(stories) if b["ground_truths"]}
    assert curve[(0.9, 1.0)] == {"low": 0.9, "high": 1.0, "ground_truths": 1, "found": 1, "no_prior": 0, "recall": 1.0}
    assert curve[(0.0, 0.1)]["no_prior"] == 1 and curve[(0.0, 0.1)]["recall"] == 0.0
    assert curve[(0.6, 0.7)]["no_prior"] == 0 and curve[(0.2, 0.3)]["no_prior"] == (0 if force_best else 1)
    assert sum(b["ground_truths"] for b in recall_by_prior_iou(stories)) == 4


def test_other_ground_truths_than_tides_are_refused() -> None:
    tide = tide_errors(GT_BOXES, GT_LABELS, _dets(), num_classes=2)
    with pytest.raises(ValueError, match="other ground truths"):
        ground_truth_stories(GT_BOXES[:3], GT_LABELS[:3], tide, PRIORS, iou_threshold=0.5, force_best=False)


def test_the_analysis_document() -> None:
    """ap50: class 0 has A found (AP 100 for 1 of 3 objects: recall 1/3 -> 101-point AP 34/101),
    class 1 has D missed (AP 0); the mean is what TIDE reports, in points."""
    config = from_dict({"model": {"num_classes": 2}, "matching": {"force_best": False}})
    doc = analyze(GT_BOXES, GT_LABELS, _dets(), config, PRIORS).to_dict()
    assert doc["images"] == 4
    assert doc["causes"] == {"found": 1, "cls": 0, "loc": 0, "missed": 1, "no_prior": 2}
    assert doc["ap50"] == pytest.approx(100 * (34 / 101) / 2, abs=0.01)
    assert set(doc["tide"]) == {"cls", "loc", "both", "dupe", "bkg", "missed", "false_pos", "false_neg"}
    assert set(doc["ap_by_size"]) == {"small", "medium", "large"}
    assert doc["ap_by_size"]["small"]["num_gt"] == 4  # every box is under 32 x 32
    a, b = doc["ground_truths"][:2]
    assert a == {
        "image": 0,
        "index": 0,
        "box": [0.0, 0.0, 10.0, 10.0],
        "class": 0,
        "outcome": "found",
        "cause": "found",
        "best_prior_iou": 1.0,
        "positives": 1,
        "positives_threshold": 1,
        "positives_forced": 1,
        "size_bucket": "< 16 px",
        "detection": 0,
    }
    assert b["box"] == [100.0, 100.0, 4.0, 4.0] and b["cause"] == "no_prior"
    assert doc["health"] == [] and doc["false_positives"] == [] and doc["false_positives_total"] == 0


def test_false_positives_are_listed_best_scored_first() -> None:
    """Image 0: A found at 0.9, then a box 0.4 IoU-off A (loc, 0.8) and one on background (bkg, 0.3)."""
    dets = _dets()
    dets[0] = Dets(
        np.array([[0, 0, 10, 10], [50, 100, 60, 110], [0, 0, 10, 4]], np.float32),
        np.array([0.9, 0.3, 0.8], np.float32),
        np.array([0, 0, 0]),
    )
    config = from_dict({"model": {"num_classes": 2}})
    doc = analyze(GT_BOXES, GT_LABELS, dets, config, PRIORS).to_dict()
    assert doc["false_positives_total"] == 2
    loc, bkg = doc["false_positives"]
    assert loc == {"image": 0, "detection": 2, "box": [0.0, 0.0, 10.0, 4.0], "class": 0, "score": 0.8,
                   "type": "loc", "gt": 0, "iou": 0.4, "size_bucket": "< 16 px"}  # fmt: skip
    assert (bkg["detection"], bkg["type"], bkg["gt"], bkg["score"]) == (1, "bkg", -1, 0.3)
