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
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd.analysis.sizes import COCO_SIZES, ap_by_size, bucket_ranges
from ssd.analysis.tide import ERROR_TYPES, SPECIAL_TYPES, tide_errors
from ssd.coverage import BUCKET_LABELS, size_bucket
from ssd.evaluate import to_coco_gt
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
        pytest.skip("tidecv is not installed (make venv installs it)")
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


# --- hand-worked cases: one tiny image each --------------------------------------------------------
# A = [0, 0, 10, 10] and B = [20, 0, 30, 10] (100 px² each). AP is TIDE's: per class COCO's 101
# recall points 0, 0.01, ..., 1, each taking the best precision at that recall or beyond (0 past
# the last), averaged; the mean over classes with ground truth or detections, in points.
A, B = [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]
NO_ERROR = dict.fromkeys(ERROR_TYPES + SPECIAL_TYPES, 0.0)


def _one(gt: list[list[float]], gt_labels: list[int], det: Dets, **kwargs: Any) -> dict[str, Any]:
    return {"gt_boxes": [_boxes(gt)], "gt_labels": [_labels(gt_labels)], "detections": [det], **kwargs}


def _check(scene: dict[str, Any], ap50: float, dap: dict[str, float]) -> Any:
    """Our breakdown has ``ap50`` and ``dap`` (worked by hand), and so has tidecv's."""
    ours = tide_errors(**scene, num_classes=2)
    assert ours.ap50 == pytest.approx(ap50)
    assert ours.dap == pytest.approx(dap)
    theirs_ap, theirs_dap, _ = _tidecv_run(
        {"ignore": [(np.zeros((0, 4)), np.zeros(0, np.int64))] * len(scene["gt_boxes"])} | scene
    )
    assert theirs_ap == pytest.approx(ap50)
    assert theirs_dap == pytest.approx(dap)
    return ours


def test_loc_error_by_hand() -> None:
    # One detection of the right class on A, twice as tall: IoU 100 / 250 = 0.4, in [0.1, 0.5]: loc.
    # Baseline: class 0's only detection is false: AP 0. The oracle makes it A's true positive:
    # AP 100, dAP loc 100. A is no miss: the loc error claims it (missed 0); false_neg removes A,
    # which leaves class 0 a detection and no ground truth: AP 0, dAP 0.
    r = _check(_one([A], [0], _dets([[0, 0, 10, 25]], [0.9], [0])), 0.0, NO_ERROR | {"loc": 100.0})
    assert r.counts == {"cls": 0, "loc": 1, "both": 0, "dupe": 0, "bkg": 0, "missed": 0}
    assert r.gt_outcome.tolist() == ["loc"] and r.gt_detection.tolist() == [0]
    assert r.fp_type.tolist() == ["loc"] and r.fp_gt.tolist() == [0] and r.fp_iou == pytest.approx([0.4])


def test_cls_error_by_hand() -> None:
    # A (class 0) detected exactly, as class 1: IoU 1 >= 0.5 with a ground truth of another
    # class: cls. Baseline: class 0 (A, no detection) AP 0, class 1 (a detection, no ground
    # truth) AP 0: 0. The oracle makes it A's true positive of class 0: class 0 AP 100, class 1
    # holds nothing and leaves the mean: 100, dAP cls 100. false_pos keeps class 1's detection
    # (scored 0): 0; false_neg removes A: class 0 leaves, class 1 stays at 0: 0.
    r = _check(_one([A], [0], _dets([A], [0.9], [1])), 0.0, NO_ERROR | {"cls": 100.0})
    assert r.counts["cls"] == 1 and r.gt_outcome.tolist() == ["cls"]


def test_both_error_by_hand() -> None:
    # A (class 0) found by d1 (score 0.9); d2 = [20, 0, 30, 25] of class 0 at 0.95 lies on B
    # (class 1) with IoU 0.4: no class-0 box under it (IoU with A 0 < 0.1: not loc), IoU 0.4 < 0.5
    # with the other class (not cls), not on a found class-0 box (not dupe), 0.4 > 0.1 (not
    # bkg): both. Baseline: class 0 ranks d2 (false) then d1 (true): precision 0, 0.5 at recall
    # 0, 1: 0.5 at every recall point: 50; class 1 (B missed) 0: mean 25. Fixing both drops d2:
    # class 0 100, mean 50: dAP 25. B is unclaimed: missed; removing it leaves class 0 alone: 50,
    # dAP missed 25. false_pos (d2 below d1): 25; false_neg (B removed): 25.
    det = _dets([A, [20, 0, 30, 25]], [0.9, 0.95], [0, 0])
    r = _check(
        _one([A, B], [0, 1], det), 25.0, NO_ERROR | {"both": 25.0, "missed": 25.0, "false_pos": 25.0, "false_neg": 25.0}
    )
    assert r.counts["both"] == 1 and r.counts["missed"] == 1
    assert r.gt_outcome.tolist() == ["found", "missed"] and r.gt_detection.tolist() == [0, -1]


def test_dupe_error_by_hand() -> None:
    # A and B of class 0; d1 on A exactly (0.9), d2 = [0, 0, 10, 11] (0.8, IoU 100 / 110 with the
    # already matched A): dupe; d3 on B exactly (0.7). Ranked true, false, true: precision 1,
    # 0.5, 2/3 at recall 0.5, 0.5, 1. Recall points 0-0.50 (51) take 1, 0.51-1 (50) take 2/3:
    # AP = (51 + 50 * 2/3) / 101 = 83.50. Without d2: 100, dAP dupe = 100 * (50/3) / 101 = 16.50;
    # false_pos the same; nothing is missed.
    dupe = 100.0 * (50 / 3) / 101
    det = _dets([B, [0, 0, 10, 11], A], [0.7, 0.8, 0.9], [0, 0, 0])  # not in score order
    r = _check(_one([A, B], [0, 0], det), 100.0 - dupe, NO_ERROR | {"dupe": dupe, "false_pos": dupe})
    assert r.fp_detection.tolist() == [1] and r.fp_type.tolist() == ["dupe"] and r.fp_gt.tolist() == [0]
    assert r.gt_detection.tolist() == [2, 0]  # indices into the detections as passed


def test_bkg_error_by_hand() -> None:
    # Image 0: A found by d1 (0.9); d2 = [100, 100, 120, 120] (0.95) overlaps nothing (IoU 0 <=
    # 0.1): bkg. Image 1 has no ground truth: its detection (0.8) is bkg too. Class 0 ranks
    # false, true, false: precision 0, 0.5, 1/3 at recall 0, 1, 1: 0.5 at every recall point: 50.
    # Without both: 100, dAP bkg 50; false_pos 50.
    scene = {
        "gt_boxes": [_boxes([A]), _boxes([])],
        "gt_labels": [_labels([0]), _labels([])],
        "detections": [_dets([A, [100, 100, 120, 120]], [0.9, 0.95], [0, 0]), _dets([A], [0.8], [0])],
    }
    r = _check(scene, 50.0, NO_ERROR | {"bkg": 50.0, "false_pos": 50.0})
    assert r.counts["bkg"] == 2 and r.fp_image.tolist() == [0, 1] and r.fp_detection.tolist() == [1, 0]


def test_missed_by_hand() -> None:
    # A and B of class 0, only A found (0.9): precision 1 up to recall 0.5: recall points 0-0.50
    # (51 of 101) take 1: AP 100 * 51 / 101 = 50.50. Removing the missed B: 100, dAP missed 49.50;
    # false_neg the same; no false positive.
    r = _check(
        _one([A, B], [0, 0], _dets([A], [0.9], [0])),
        5100 / 101,
        NO_ERROR | {"missed": 5000 / 101, "false_neg": 5000 / 101},
    )
    assert r.gt_outcome.tolist() == ["found", "missed"] and r.counts["missed"] == 1 and len(r.fp_type) == 0


def test_ignore_regions_count_neither_way() -> None:
    # A found (0.9); d2 = [50, 50, 60, 60] (0.95) lies inside the class-0 region [40, 40, 80, 80]
    # (intersection over its own area 1 >= 0.5): ignored, AP 100. A region of class 1 does not
    # cover a class-0 detection: d2 is bkg, and ranks first: AP 50.
    det = _dets([A, [50, 50, 60, 60]], [0.9, 0.95], [0, 0])
    region = _boxes([[40, 40, 80, 80]])
    r = _check(_one([A], [0], det, ignore=[(region, _labels([0]))]), 100.0, NO_ERROR)
    assert r.num_ignored == 1 and len(r.fp_type) == 0
    r = _check(_one([A], [0], det, ignore=[(region, _labels([1]))]), 50.0, NO_ERROR | {"bkg": 50.0, "false_pos": 50.0})
    assert r.num_ignored == 0 and r.fp_type.tolist() == ["bkg"]


def test_tide_errors_checks_its_input() -> None:
    scene = _one([A], [0], _dets([A], [0.9], [0]))
    with pytest.raises(ValueError, match="label out of"):
        tide_errors(**(scene | {"gt_labels": [_labels([2])]}), num_classes=2)
    with pytest.raises(ValueError, match="bg_iou"):
        tide_errors(**scene, num_classes=2, bg_iou=0.6)
    with pytest.raises(ValueError, match="detection sets"):
        tide_errors(**(scene | {"detections": []}), num_classes=2)
    assert tide_errors(**scene, num_classes=2).to_dict() == {
        "ap50": 100.0,
        "tide": NO_ERROR,
        "counts": dict.fromkeys(ERROR_TYPES, 0),
    }


# --- AP by size ---------------------------------------------------------------------------------


def _sized_scene(seed: int, num_images: int = 30, size: int = 320) -> dict[str, Any]:
    """Boxes of 4-200 px (small, medium and large), found with some jitter, some missed, some
    false positives; a 16 x 16 box (on a coverage bucket's edge) and a 32 x 32 one (on COCO's)."""
    rng = np.random.default_rng(seed)
    gt_boxes, gt_labels, detections = [], [], []
    for i in range(num_images):
        k = int(rng.integers(1, 6))
        wh = rng.uniform(4, 200, (k, 2))
        xy = rng.uniform(0, 1, (k, 2)) * (size - wh)
        gb = np.concatenate([xy, xy + wh], 1)
        if i == 0:
            gb = np.concatenate([gb, [[10, 10, 26, 26], [100, 100, 132, 132]]])
        gl = rng.integers(0, 3, len(gb))
        keep = rng.uniform(size=len(gb)) < 0.8
        noisy = gb + rng.normal(0, 0.1, gb.shape) * np.tile(gb[:, 2:] - gb[:, :2], 2)  # 10% of w, h
        extra = rng.uniform(0, size - 60, (2, 2))
        fps = np.concatenate([extra, extra + rng.uniform(5, 60, (2, 2))], 1)
        boxes = np.concatenate([noisy[keep], fps])
        labels = np.concatenate([gl[keep], rng.integers(0, 3, 2)])
        gt_boxes.append(gb.astype(np.float32))
        gt_labels.append(gl.astype(np.int64))
        detections.append(
            Dets(
                np.clip(boxes, 0, size).astype(np.float32),
                rng.uniform(0.05, 1, len(boxes)).astype(np.float32),
                labels.astype(np.int32),
            )
        )
    return {"gt_boxes": gt_boxes, "gt_labels": gt_labels, "detections": detections}


def _cocoeval_default(scene: dict[str, Any], num_classes: int, image_size: int) -> COCOeval:
    """pycocotools run as its users do, COCO's own area ranges (all, small, medium, large)."""
    gt = to_coco_gt(scene["gt_boxes"], scene["gt_labels"], image_size, num_classes=num_classes)
    results = [
        {"image_id": i, "category_id": int(label), "bbox": box, "score": float(score)}
        for i, det in enumerate(scene["detections"])
        for box, score, label in zip(
            xyxy_to_xywh(det.boxes).tolist(), det.scores.tolist(), det.labels.tolist(), strict=True
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1])
def test_ap_by_size_agrees_with_pycocotools(seed: int) -> None:
    scene = _sized_scene(seed)
    ours = ap_by_size(**scene, num_classes=3, image_size=320)
    ev = _cocoeval_default(scene, 3, 320)

    precision = np.asarray(ev.eval["precision"])[0, :, :, :, -1]  # IoU 0.5: [R, K, A]
    for size, stat in zip(ours.coco, ev.stats[3:6], strict=True):  # stats 3-5: AP small, medium, large
        a = ev.params.areaRngLbl.index(size.label)
        assert [size.min_area, size.max_area] == ev.params.areaRng[a]
        assert size.ap == pytest.approx(stat, abs=1e-12)
        assert size.ap50 == pytest.approx(np.mean(precision[:, :, a][precision[:, :, a] > -1]), abs=1e-12)
    assert [s.label for s in ours.coco] == ["small", "medium", "large"]
    assert all(s.num_gt > 0 and 0 < s.ap < 1 for s in ours.coco)
    # The buckets count each box where ssd.coverage.size_bucket puts it, a box on an edge above it.
    every_box = np.concatenate(scene["gt_boxes"])
    assert [s.num_gt for s in ours.buckets] == np.bincount(
        size_bucket(every_box), minlength=len(BUCKET_LABELS)
    ).tolist()
    assert [s.label for s in ours.buckets] == list(BUCKET_LABELS)


def test_size_ranges_meet_at_their_edges() -> None:
    assert [(lo, hi) for _, lo, hi in COCO_SIZES] == [(0, 1024), (1024, 9216), (9216, 1e10)]
    ranges = bucket_ranges()
    assert [r[1] for r in ranges] == [0, 256, 576, 1024, 2304]
    assert all(
        hi < next_lo and np.nextafter(hi, np.inf) == next_lo
        for (_, _, hi), (_, next_lo, _) in zip(ranges, ranges[1:], strict=False)
    )
    # One 16 x 16 box (area 256): COCO small, coverage bucket "16-24 px"; found exactly.
    gt, labels = [_boxes([[0, 0, 16, 16]])], [_labels([0])]
    r = ap_by_size(gt, labels, [_dets([[0, 0, 16, 16]], [0.9], [0])], num_classes=1, image_size=64)
    assert [s.num_gt for s in r.buckets] == [0, 1, 0, 0, 0]
    assert r.buckets[1].ap == pytest.approx(1.0) and np.isnan(r.buckets[0].ap) and r.coco[0].ap50 == pytest.approx(1.0)
    assert r.to_dict()["buckets"][0]["ap"] is None and r.to_dict()["coco"]["small"]["ap"] == pytest.approx(1.0)
