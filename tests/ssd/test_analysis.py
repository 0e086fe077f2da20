"""Tests for ssd.analysis: TIDE's error breakdown against tidecv and by hand, AP by size against
pycocotools. No TensorFlow: detections are a small stand-in with Detections' three fields."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ssd.analysis.tide import ERROR_TYPES, SPECIAL_TYPES, tide_errors
from ssd.geometry import xyxy_to_xywh


@dataclass(frozen=True, eq=False)
class Dets:
    """:class:`ssd.detect.Detections`' fields, without importing TensorFlow."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _dets(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Dets:
    return Dets(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), np.asarray(labels, np.int32)
    )


def _boxes(boxes: list[list[float]]) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def _labels(labels: list[int]) -> np.ndarray:
    return np.asarray(labels, np.int64)


# --- a made-up data set with every kind of error -------------------------------------------------


def _scene(
    seed: int, *, crowded: bool = False, num_images: int = 40, num_classes: int = 5, size: int = 256
) -> dict[str, Any]:
    """Ground truth of classes 0-3 in x < 190 (class 4 never occurs), detections of every error
    type, an ignore region of class 2 at x >= 200 on every fifth image with a detection in it;
    ``crowded``: image 1 holds more than 100 detections."""
    rng = np.random.default_rng(seed)
    gt_boxes, gt_labels, detections, ignore = [], [], [], []
    for i in range(num_images):
        k = int(rng.integers(0, 6)) if i % 7 else 0  # every 7th image holds no object
        wh = rng.uniform(8, 70, (k, 2))
        xy = rng.uniform(0, 1, (k, 2)) * (np.array([190, size]) - wh)
        gb = np.concatenate([xy, xy + wh], 1)
        gl = rng.integers(0, 4, k)
        boxes, scores, labels = [], [], []
        for box, label in zip(gb, gl, strict=True):
            w, h = box[2:] - box[:2]
            for _ in range(int(rng.choice([0, 1, 1, 2]))):  # missed, found, found twice (a dupe)
                kind = rng.choice(["good", "good", "loc", "cls", "both"])
                jitter = 0.04 if kind in ("good", "cls") else 0.45
                boxes.append(box + rng.normal(0, jitter, 4) * np.array([w, h, w, h]))
                labels.append(label if kind in ("good", "loc") else (label + rng.integers(1, 5)) % num_classes)
                scores.append(rng.uniform(0.05, 1))
        for _ in range(int(rng.integers(0, 3))):  # background anywhere
            xy0 = rng.uniform(0, size - 30, 2)
            boxes.append(np.concatenate([xy0, xy0 + rng.uniform(8, 30, 2)]))
            labels.append(int(rng.integers(0, num_classes)))
            scores.append(rng.uniform(0.05, 1))
        if crowded and i == 1:  # more than max_dets (100): the best 100 count, of all classes
            for _ in range(110):
                xy0 = rng.uniform(0, size - 30, 2)
                boxes.append(np.concatenate([xy0, xy0 + rng.uniform(8, 30, 2)]))
                labels.append(int(rng.integers(0, num_classes)))
                scores.append(rng.uniform(0.05, 1))
        regions = (np.zeros((0, 4)), np.zeros(0, np.int64))
        if i % 5 == 0:
            regions = (np.array([[200.0, 0.0, 256.0, 80.0]]), np.array([2]))
            boxes.append(np.array([205.0, 10.0, 240.0, 50.0]))
            labels.append(2)
            scores.append(rng.uniform(0.05, 1))
        gt_boxes.append(gb.astype(np.float32))
        gt_labels.append(gl.astype(np.int64))
        detections.append(
            Dets(
                np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, size),
                np.asarray(scores, np.float32),
                np.asarray(labels, np.int32),
            )
        )
        ignore.append(regions)
    return {"gt_boxes": gt_boxes, "gt_labels": gt_labels, "detections": detections, "ignore": ignore}


# --- tidecv, the reference -------------------------------------------------------------------------

# tidecv 1.0.1 imports its plotting and download helpers' packages at import time; the errors,
# matching and AP it is checked on need none of them (only numpy and pycocotools).
_TIDECV_EXTRAS = ("cv2", "matplotlib", "matplotlib.pyplot", "matplotlib.lines", "seaborn", "pandas", "appdirs")


class _Stub(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        return None


def _import_tidecv() -> Any:
    """``tidecv.quantify``, with stand-ins for the packages of its plots where they are missing."""
    if importlib.util.find_spec("tidecv") is None:  # not importorskip: a broken import must fail
        pytest.skip("tidecv is not installed (it is in the test extra)")
    added = []
    for name in _TIDECV_EXTRAS:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _Stub(name)
            added.append(name)
    try:
        return importlib.import_module("tidecv.quantify")
    finally:
        for name in added:
            del sys.modules[name]


def _tidecv_run(scene: dict[str, Any]) -> tuple[float, dict[str, float], dict[str, int]]:
    """tidecv's mAP, dAPs and error counts of a scene, keyed as ssd.analysis.tide's."""
    quantify = _import_tidecv()
    gt, preds = quantify.Data("gt"), quantify.Data("preds")
    for i, (boxes, labels, det, (r_boxes, r_labels)) in enumerate(
        zip(scene["gt_boxes"], scene["gt_labels"], scene["detections"], scene["ignore"], strict=True)
    ):
        gt.add_image(i, str(i))  # images without ground truth count too (their detections are bkg)
        for box, label in zip(xyxy_to_xywh(boxes).tolist(), labels.tolist(), strict=True):
            gt.add_ground_truth(i, label, box=box)
        for box, label in zip(xyxy_to_xywh(r_boxes).tolist(), r_labels.tolist(), strict=True):
            gt.add_ignore_region(i, label, box=box)
        for box, score, label in zip(
            xyxy_to_xywh(det.boxes).tolist(), det.scores.tolist(), det.labels.tolist(), strict=True
        ):
            preds.add_detection(i, label, score, box=box)
    with contextlib.redirect_stdout(io.StringIO()):
        run = quantify.TIDERun(gt, preds, 0.5, 0.1, quantify.TIDE.BOX, gt.max_dets, True)
        main, special = run.fix_main_errors(), run.fix_special_errors()
    names = dict(
        zip(
            ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FalsePos", "FalseNeg"),
            ERROR_TYPES + SPECIAL_TYPES,
            strict=True,
        )
    )
    dap = {names[e.short_name]: float(v) for e, v in {**main, **special}.items()}
    counts = {names[e.short_name]: len(v) for e, v in run.error_dict.items()}
    return float(run.ap), dap, counts


@pytest.mark.parametrize(("seed", "crowded"), [(0, False), (1, False), (2, True)])
def test_tide_agrees_with_tidecv(seed: int, crowded: bool) -> None:
    """Every dAP within 0.5 AP points of tidecv's (on 20 seeds they agree to 1e-13)."""
    scene = _scene(seed, crowded=crowded)
    ours = tide_errors(**scene, num_classes=5)
    ap, dap, counts = _tidecv_run(scene)

    assert ours.ap50 == pytest.approx(ap, abs=0.5)
    assert set(ours.dap) == set(dap)
    worst = max(abs(ours.dap[k] - dap[k]) for k in dap)
    assert worst <= 0.5, {k: (round(ours.dap[k], 3), round(dap[k], 3)) for k in dap}
    # tidecv also classifies the detections on ignore regions (away from every object here: bkg).
    assert ours.num_ignored > 0
    assert {**ours.counts, "bkg": ours.counts["bkg"] + ours.num_ignored} == counts
    assert all(ours.counts[t] > 0 for t in ERROR_TYPES), ours.counts  # the scene exercises every type
