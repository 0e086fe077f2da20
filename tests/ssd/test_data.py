"""Tests for ssd.data, the synthetic MNIST-detection generator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ssd.data
from ssd.data import DetectionDataset, Sample, load_digits, pad_samples

NOISE_CEIL = 26  # round(255 * 0.1) with round-half-up: brightest a non-ink pixel gets
TINT_CEIL = 179  # round(255 * 0.7)


def _single(index: int, **kwargs: Any) -> Sample:
    return DetectionDataset(min_digits=1, max_digits=1, seed=3, **kwargs)[index]


def _sides(sample: Sample) -> np.ndarray:
    return sample.boxes[:, 2:] - sample.boxes[:, :2]  # [K, 2] widths, heights


def test_determinism() -> None:
    ds = DetectionDataset(seed=7)
    a, b = ds[5], DetectionDataset(seed=7)[5]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(ds[5].image, ds[6].image)
    assert not np.array_equal(ds[5].image, DetectionDataset(seed=8)[5].image)
    assert not np.array_equal(ds[5].image, DetectionDataset("val", seed=7)[5].image)
    assert ds[np.int64(5)].image.tobytes() == a.image.tobytes()


def test_shapes_dtypes_and_ranges() -> None:
    ds = DetectionDataset()
    for i in range(30):
        s = ds[i]
        assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8
        k = len(s.labels)
        assert 2 <= k <= 6
        assert s.boxes.shape == (k, 4) and s.boxes.dtype == np.float32
        assert s.labels.dtype == np.int32
        assert np.all((s.labels >= 0) & (s.labels <= 9))
        x1, y1, x2, y2 = s.boxes.T
        assert np.all((x1 >= 0) & (y1 >= 0) & (x2 <= 128) & (y2 <= 128))
        assert np.all((x2 > x1) & (y2 > y1))
        np.testing.assert_array_equal(s.boxes, np.round(s.boxes))  # pixel edges


def test_batch_padding() -> None:
    ds = DetectionDataset(image_size=64, scale_range=(0.8, 1.5), max_digits=4)
    images, boxes, labels, counts = ds.batch(10, 5)
    assert images.shape == (5, 64, 64, 3) and images.dtype == np.uint8
    assert boxes.shape == (5, 4, 4) and boxes.dtype == np.float32
    assert labels.shape == (5, 4) and labels.dtype == np.int32
    assert counts.shape == (5,) and counts.dtype == np.int32
    for j in range(5):
        s, k = ds[10 + j], counts[j]
        assert k == len(s.labels)
        np.testing.assert_array_equal(images[j], s.image)
        np.testing.assert_array_equal(boxes[j, :k], s.boxes)
        np.testing.assert_array_equal(labels[j, :k], s.labels)
        assert np.all(boxes[j, k:] == 0) and np.all(labels[j, k:] == -1)
    with pytest.raises(ValueError, match="max_boxes"):
        pad_samples([ds[0]], 0 if len(ds[0].labels) else -1)
    with pytest.raises(ValueError, match="samples"):
        pad_samples([], 4)


@pytest.mark.parametrize("index", range(8))
def test_single_digit_box_is_tight(index: int) -> None:
    s = _single(index)
    assert len(s.labels) == 1
    x1, y1, x2, y2 = (int(v) for v in s.boxes[0])
    peak = s.image.max(axis=2).astype(int)  # brightest channel per pixel
    # Each edge row/column just inside the box holds ink brighter than noise.
    assert peak[y1, x1:x2].max() > NOISE_CEIL - 1
    assert peak[y2 - 1, x1:x2].max() > NOISE_CEIL - 1
    assert peak[y1:y2, x1].max() > NOISE_CEIL - 1
    assert peak[y1:y2, x2 - 1].max() > NOISE_CEIL - 1
    # Everything outside the box (incl. rows/cols just outside) is background.
    outside = np.ones_like(peak, dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert peak[outside].max() <= NOISE_CEIL
    # Tint: digit pixels never exceed 0.7 * 255; channel ratios stay within
    # the colour range (0.3-0.7 per channel) where the ink dominates.
    box = s.image[y1:y2, x1:x2].astype(float)
    assert box.max() <= TINT_CEIL
    brightest = box.reshape(-1, 3)[box.max(axis=2).argmax()]
    assert brightest.min() / brightest.max() >= 0.3 / 0.7 - 0.03


def test_background_noise_level() -> None:
    s = DetectionDataset(seed=1)[0]
    outside = np.ones(s.image.shape[:2], dtype=bool)
    for x1, y1, x2, y2 in s.boxes.astype(int):
        outside[y1:y2, x1:x2] = False
    background = s.image[outside]
    assert background.max() <= NOISE_CEIL
    assert 10.0 < background.mean() < 15.5  # uniform 0-25.5 -> mean ~12.75


def test_scale_is_configurable() -> None:
    small = DetectionDataset(scale_range=(1.0, 1.0), max_digits=3)
    large = DetectionDataset(scale_range=(2.5, 2.5), max_digits=3)
    small_sides = np.concatenate([_sides(small[i]) for i in range(10)])
    large_sides = np.concatenate([_sides(large[i]) for i in range(10)])
    assert small_sides.min() >= 1 and small_sides.max() <= 28
    assert large_sides.max() > 28


def test_pools_are_disjoint() -> None:
    train_images, train_labels = load_digits("train")
    val_images, val_labels = load_digits("val")
    assert train_images.shape[1:] == (28, 28) and train_images.dtype == np.uint8
    assert len(train_images) == len(train_labels) and len(val_images) == len(val_labels)
    assert len(val_images) > 0 and len(train_images) > len(val_images)
    assert set(np.unique(train_labels)) == set(range(10)) == set(np.unique(val_labels))
    train_set = {img.tobytes() for img in train_images}
    assert not any(img.tobytes() in train_set for img in val_images)
    assert load_digits("train")[0] is train_images  # cached
    with pytest.raises(ValueError, match="split"):
        load_digits("test")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"split": "test"}, "split"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": 64.0}, "image_size"),
        ({"min_digits": -1}, "min_digits"),
        ({"max_digits": 0}, "max_digits"),
        ({"min_digits": 4, "max_digits": 3}, "max_digits"),
        ({"scale_range": (0.0, 1.0)}, "scale_range"),
        ({"scale_range": (2.0, 1.0)}, "scale_range"),
        ({"scale_range": (1.0,)}, "scale_range"),
        ({"image_size": 32, "scale_range": (1.0, 2.0)}, "scale_range"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_args(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DetectionDataset(**kwargs)


def test_negative_index_rejected() -> None:
    with pytest.raises(IndexError):
        DetectionDataset()[-1]


def test_module_constants() -> None:
    assert ssd.data.NUM_CLASSES == 10
    assert ssd.data.ASSET_PATH.is_file()


def _max_cover(boxes: np.ndarray) -> float:
    worst = 0.0
    for i in range(len(boxes)):
        for j in range(len(boxes)):
            if i == j:
                continue
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            area = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            worst = max(worst, iw * ih / area)
    return worst


def test_max_cover_bounds_overlap() -> None:
    strict = DetectionDataset("train", seed=3)
    loose = DetectionDataset("train", seed=3, max_cover=1.0)
    strict_cover = [_max_cover(strict[i].boxes) for i in range(150)]
    loose_cover = [_max_cover(loose[i].boxes) for i in range(150)]
    assert max(strict_cover) <= 0.25 + 1e-6
    assert max(loose_cover) > 0.5  # digits now occlude each other
    with pytest.raises(ValueError, match="max_cover"):
        DetectionDataset("train", max_cover=1.5)


def test_nearest_matrix_by_hand() -> None:
    # 28 -> 56: every input pixel twice; 28 -> 14: centres (x + 0.5) * 2 are pixels 1, 3, 5, ...
    up = ssd.data._nearest_matrix(56)
    assert up.shape == (56, 28) and (up.sum(axis=1) == 1).all()
    assert [int(i) for i in up.argmax(axis=1)[:6]] == [0, 0, 1, 1, 2, 2]
    assert [int(i) for i in ssd.data._nearest_matrix(14).argmax(axis=1)] == list(range(1, 28, 2))
    # 28 -> 35: output pixel x takes floor((x + 0.5) * 0.8): 0.4, 1.2, 2.0, 2.8, 3.6, 4.4, 5.2, 6.0, 6.8, 7.6
    assert [int(i) for i in ssd.data._nearest_matrix(35).argmax(axis=1)[:10]] == [0, 1, 2, 2, 3, 4, 5, 6, 6, 7]


def _distinct_ink(sample: Sample) -> int:
    x1, y1, x2, y2 = (int(v) for v in sample.boxes[0])
    peak = sample.image[y1:y2, x1:x2].max(axis=2)
    return len(np.unique(peak[peak > 40]))


def test_nearest_share_resamples_some_digits_nearest_neighbour() -> None:
    plain = DetectionDataset(seed=3, min_digits=1, max_digits=1, scale_range=(2.5, 2.5))
    blocky = DetectionDataset(seed=3, min_digits=1, max_digits=1, scale_range=(2.5, 2.5), nearest_share=1.0)
    nearest_zero = DetectionDataset(seed=3, min_digits=1, max_digits=1, scale_range=(2.5, 2.5), nearest_share=0.0)
    assert np.array_equal(plain[0].image, nearest_zero[0].image)  # no share, no extra draw: the same samples
    a, b = plain[0], blocky[0]
    assert a.labels.tolist() == b.labels.tolist()  # the same digit drawn, another resampling
    # 70 px digits from 28 px by nearest-neighbour hold 2 or 3 copies of each source value per row,
    # so far fewer distinct ink intensities inside the box than the bilinear filter's blend
    assert _distinct_ink(b) < _distinct_ink(a)
    with pytest.raises(ValueError, match="nearest_share"):
        DetectionDataset(nearest_share=1.5)
