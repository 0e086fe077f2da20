"""Tests for ssd.detect: decoding, per-class NMS, COCO results and checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssd.config import Config, DataConfig, DetectConfig, ModelConfig, PriorConfig
from ssd.detect import Detections, Detector, postprocess, split_predictions, to_coco_results
from ssd.model import build_ssd

A = [0.0, 0.0, 10.0, 10.0]
B = [1.0, 0.0, 11.0, 10.0]  # IoU with A = 90 / 110 = 0.82 > 0.45
C = [20.0, 20.0, 30.0, 30.0]  # disjoint from A and B


def _probs_output(priors: list[list[float]], probs: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """y_pred [1, P, C + 1 + 4] of probabilities (background last) and zero offsets; priors [P, 4]."""
    p = np.asarray(probs, np.float32)
    y = np.concatenate([p, np.zeros((len(p), 4), np.float32)], axis=-1)[None]
    return y, np.asarray(priors, np.float32)


def _run(priors: list[list[float]], probs: list[list[float]], **kwargs: object) -> Detections:
    y, pr = _probs_output(priors, probs)
    num_classes = len(probs[0]) - 1
    (det,) = postprocess(y, pr, num_classes=num_classes, from_logits=False, **kwargs)  # type: ignore[arg-type]
    return det


def _as_set(det: Detections) -> set[tuple[tuple[float, ...], int, float]]:
    return {
        (tuple(b), int(c), round(float(s), 6))
        for b, c, s in zip(det.boxes.tolist(), det.labels, det.scores, strict=True)
    }


def test_split_predictions_softmax_background_last() -> None:
    y = np.zeros((2, 3, 3 + 4), np.float32)
    y[0, 0, :3] = [np.log(2.0), 0.0, np.log(5.0)]  # probabilities 2/8, 1/8, 5/8
    y[..., 3:] = 7.0
    scores, offsets = split_predictions(y)
    assert scores.shape == (2, 3, 3) and offsets.shape == (2, 3, 4)
    np.testing.assert_allclose(scores.numpy()[0, 0], [0.25, 0.125, 0.625], rtol=1e-6)
    np.testing.assert_allclose(scores.numpy().sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(offsets.numpy(), 7.0)
    raw, _ = split_predictions(y, from_logits=False)
    np.testing.assert_array_equal(raw.numpy(), y[..., :3])


def test_overlapping_same_class_keeps_best() -> None:
    det = _run([A, B], [[0.9, 0.0, 0.1], [0.8, 0.0, 0.2]])
    assert _as_set(det) == {(tuple(A), 0, 0.9)}


def test_overlapping_different_classes_both_kept() -> None:
    det = _run([A, B], [[0.9, 0.0, 0.1], [0.0, 0.8, 0.2]])
    assert _as_set(det) == {(tuple(A), 0, 0.9), (tuple(B), 1, 0.8)}
    np.testing.assert_allclose(det.scores, [0.9, 0.8])  # sorted by score
    assert det.boxes.dtype == np.float32 and det.scores.dtype == np.float32 and det.labels.dtype == np.int32


def test_iou_below_threshold_both_kept() -> None:
    det = _run([A, B], [[0.9, 0.0, 0.1], [0.8, 0.0, 0.2]], config=DetectConfig(nms_iou=0.9))
    assert len(det) == 2


def test_score_threshold_and_background_never_reported() -> None:
    # C: 0.005 <= 0.01 dropped; the background probability 0.99 of prior A is never a detection.
    det = _run([A, C], [[0.0, 0.02, 0.99], [0.005, 0.0, 0.995]])
    assert _as_set(det) == {(tuple(A), 1, 0.02)}
    assert len(_run([A], [[0.3, 0.0, 0.7]], config=DetectConfig(score_threshold=0.3))) == 0  # strictly greater
    assert len(_run([A], [[0.0, 0.0, 1.0]])) == 0


def test_max_detections_cap() -> None:
    priors = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(6)]  # disjoint
    probs = [[0.1 * (i + 1), 0.05, 0.0] for i in range(6)]
    assert len(_run(priors, probs)) == 12
    det = _run(priors, probs, config=DetectConfig(max_detections=3))
    np.testing.assert_allclose(det.scores, [0.6, 0.5, 0.4])
    np.testing.assert_array_equal(det.labels, [0, 0, 0])


def test_pre_nms_top_k_is_per_class() -> None:
    priors = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(4)]
    probs = [[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.7, 0.3, 0.0], [0.6, 0.4, 0.0]]
    det = _run(priors, probs, config=DetectConfig(pre_nms_top_k=2))
    assert sorted(zip(det.labels.tolist(), np.round(det.scores.astype(float), 6).tolist(), strict=True)) == [
        (0, 0.8),
        (0, 0.9),
        (1, 0.3),
        (1, 0.4),
    ]


def test_zero_offsets_decode_to_prior_exactly() -> None:
    priors = np.asarray([[2.0, 3.0, 12.0, 9.0], [20.0, 4.0, 26.0, 30.0]], np.float32)
    y = np.zeros((1, 2, 3 + 4), np.float32)
    y[0, 0, :3] = [0.0, 8.0, 0.0]  # class 1, prior 0
    y[0, 1, :3] = [8.0, 0.0, 0.0]  # class 0, prior 1
    expected = np.exp(8.0) / (np.exp(8.0) + 2)
    for variances in (None, (0.1, 0.2)):
        (det,) = postprocess(y, priors, num_classes=2, variances=variances, image_size=32)
        top = {int(c): b for c, b, s in zip(det.labels, det.boxes, det.scores, strict=True) if s > 0.5}
        np.testing.assert_array_equal(top[1], priors[0])
        np.testing.assert_array_equal(top[0], priors[1])
        np.testing.assert_allclose(det.scores[:2], [expected, expected], rtol=1e-6)


def test_decode_offsets_and_clipping() -> None:
    # offset (0.5, 0, log 2, 0) on prior [0,0,10,10]: centre x 5 + 0.5 * 10 = 10, width 20 -> [0, 0, 20, 10]
    priors = np.asarray([[0.0, 0.0, 10.0, 10.0], [40.0, 40.0, 50.0, 50.0]], np.float32)
    y = np.zeros((1, 2, 2 + 4), np.float32)
    y[0, :, 0] = 5.0
    y[0, 0, 2:] = [0.5, 0.0, np.log(2.0), 0.0]
    (det,) = postprocess(y, priors, num_classes=1)
    np.testing.assert_allclose(det.boxes[np.argsort(det.boxes[:, 0])], [[0, 0, 20, 10], [40, 40, 50, 50]], atol=1e-5)
    (det,) = postprocess(y, priors, num_classes=1, image_size=(16, 30))  # H 16, W 30: second box outside, dropped
    np.testing.assert_allclose(det.boxes, [[0, 0, 20, 10]], atol=1e-5)
    (det,) = postprocess(y, priors, num_classes=1, image_size=15)
    np.testing.assert_allclose(det.boxes, [[0, 0, 15, 10]], atol=1e-5)


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, cfg: DetectConfig) -> set[tuple[int, int]]:
    """Plain greedy per-class NMS: {(class, prior index)} kept."""
    kept: list[tuple[float, int, int]] = []
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")[: cfg.pre_nms_top_k]
        candidates = [int(i) for i in order if scores[i, c] > cfg.score_threshold]
        chosen: list[int] = []
        for i in candidates:
            ok = True
            for j in chosen:
                lt = np.maximum(boxes[i, :2], boxes[j, :2])
                rb = np.minimum(boxes[i, 2:], boxes[j, 2:])
                inter = np.prod(np.clip(rb - lt, 0, None))
                union = np.prod(boxes[i, 2:] - boxes[i, :2]) + np.prod(boxes[j, 2:] - boxes[j, :2]) - inter
                if inter / union > cfg.nms_iou:
                    ok = False
                    break
            if ok:
                chosen.append(i)
        kept.extend((float(scores[i, c]), c, i) for i in chosen)
    kept.sort(reverse=True)
    return {(c, i) for _, c, i in kept[: cfg.max_detections]}


def test_matches_reference_greedy_nms() -> None:
    rng = np.random.default_rng(0)
    num, num_classes = 60, 3
    xy = rng.uniform(0, 40, (num, 2))
    priors = np.concatenate([xy, xy + rng.uniform(5, 20, (num, 2))], axis=1).astype(np.float32)
    probs = rng.dirichlet(np.ones(num_classes + 1), num).astype(np.float32)
    y = np.concatenate([probs, np.zeros((num, 4), np.float32)], axis=1)[None]
    cfg = DetectConfig(score_threshold=0.05, nms_iou=0.3, max_detections=25, pre_nms_top_k=30)
    (det,) = postprocess(np.repeat(y, 2, axis=0), priors, num_classes=num_classes, config=cfg, from_logits=False)[1:]
    expected = _reference_nms(priors, probs[:, :num_classes], cfg)
    got = set()
    for box, c in zip(det.boxes, det.labels, strict=True):
        i = int(np.argmin(np.abs(priors - box).sum(axis=1)))  # decode round-trips to ~1e-5
        assert np.allclose(priors[i], box, atol=1e-4)
        got.add((int(c), i))
    assert len(det) == 25 and got == expected


def test_batch_and_errors() -> None:
    y = np.zeros((3, 5, 3 + 4), np.float32)
    priors = np.tile(np.asarray([[0, 0, 4, 4]], np.float32), (5, 1))
    assert len(postprocess(y, priors, num_classes=2)) == 3
    with pytest.raises(ValueError, match="class channels"):
        postprocess(y, priors, num_classes=3)
    with pytest.raises(ValueError, match="priors"):
        postprocess(y, priors[:4], num_classes=2)


def test_to_coco_results() -> None:
    dets = [
        Detections(np.asarray([[1, 2, 11, 7]], np.float32), np.asarray([0.75], np.float32), np.asarray([3], np.int32)),
        Detections.empty(),
        Detections(np.asarray([[0, 0, 2.5, 4]], np.float32), np.asarray([0.5], np.float32), np.asarray([0], np.int32)),
    ]
    results = to_coco_results(dets)
    assert results == [
        {"image_id": 0, "category_id": 3, "bbox": [1.0, 2.0, 10.0, 5.0], "score": 0.75},
        {"image_id": 2, "category_id": 0, "bbox": [0.0, 0.0, 2.5, 4.0], "score": 0.5},
    ]
    assert all(type(r["category_id"]) is int and type(r["score"]) is float for r in results)
    json.dumps(results)


def tiny_config() -> Config:
    """Smallest useful detector: 2 units, one source layer, 32 px images."""
    return Config(
        name="tiny",
        model=ModelConfig(num_units=2, source_layers=("norm3_2",)),
        priors=PriorConfig(strides=(4,), scales=((10.0,),), ratios=(1.0,)),
        data=DataConfig(image_size=32, scale_range=(0.8, 1.1)),
    )


def _save(tmp_path: Path) -> tuple[Detector, Path]:
    config = tiny_config()
    model = build_ssd(config.model, config.priors, None)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    model.save_weights(str(tmp_path / "model.weights.h5"))
    return Detector(model, config), tmp_path


def test_detector_checkpoint_round_trip(tmp_path: Path) -> None:
    original, directory = _save(tmp_path)
    loaded = Detector.from_checkpoint(directory)
    assert loaded.config == original.config
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.model(images.astype(np.float32)), original.model(images.astype(np.float32)))
    a, b = original.predict(images, batch_size=2), loaded.predict(images, batch_size=2)
    assert len(a) == len(b) == 3
    for da, db in zip(a, b, strict=True):
        np.testing.assert_allclose(da.scores, db.scores, rtol=1e-5)
        np.testing.assert_allclose(da.boxes, db.boxes, rtol=1e-4, atol=1e-4)
        assert len(da) <= 100 and np.all((da.boxes >= 0) & (da.boxes <= 32)) and np.all(da.labels < 10)
    assert len(loaded.predict(np.zeros((1, 48, 48, 3), np.uint8))) == 1  # any multiple of the stride
    with pytest.raises(ValueError, match="square"):
        loaded.predict(np.zeros((1, 32, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="multiple of 4"):
        loaded.predict(np.zeros((1, 34, 34, 3), np.uint8))


def test_detector_checkpoint_errors(tmp_path: Path) -> None:
    _, directory = _save(tmp_path)
    weights = directory / "model.weights.h5"
    weights.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="model.weights.h5"):
        Detector.from_checkpoint(directory)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.weights.h5"):
        Detector.from_checkpoint(directory)
    (directory / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        Detector.from_checkpoint(directory)
