"""FileDataset: an imported split as training data (epochs, seeds, augmentation, resizing, ignore
regions) with the generator's interface, on hand-made images whose boxes are solid colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssd.augment import Augmentation
from ssd.datasets.loader import FileDataset
from ssd.datasets.records import DatasetIndex, ImageRecord

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def make(tmp_path: Path, n_train: int = 5, n_val: int = 2) -> DatasetIndex:
    """Images 200x100: image k has one box of class k % 3 at x = 10 + 10 k, painted in its colour."""
    records = []
    for k in range(n_train + n_val):
        image = np.zeros((100, 200, 3), np.uint8)
        x0 = 10 + 10 * k
        image[20:60, x0 : x0 + 40] = COLOURS[k % 3]
        name = f"img{k}.png"
        Image.fromarray(image).save(tmp_path / name)
        records.append(
            ImageRecord(
                file=name,
                width=200,
                height=100,
                split="train" if k < n_train else "val",
                boxes=np.array([[x0, 20, x0 + 40, 60]], np.float32),
                labels=np.array([k % 3], np.int32),
                ignore=np.array([[150, 70, 190, 95]], np.float32),
                ignore_labels=np.array([1], np.int32),
            )
        )
    return DatasetIndex(name="toy", format="coco", classes=["r", "g", "b"], images=records)


def test_every_training_image_once_per_epoch_in_a_seeded_order(tmp_path: Path) -> None:
    data = FileDataset(make(tmp_path), tmp_path, "train", image_size=64, augmentation=None, seed=3)
    epochs = [[data.record(e * 5 + k)[0] for k in range(5)] for e in range(3)]
    assert all(sorted(e) == [0, 1, 2, 3, 4] for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1  # a new order each epoch
    again = FileDataset(make(tmp_path), tmp_path, "train", image_size=64, augmentation=None, seed=3)
    assert [again.record(i)[0] for i in range(15)] == sum(epochs, [])  # resumable: same order


def test_validation_is_plain_and_ends(tmp_path: Path) -> None:
    data = FileDataset(make(tmp_path), tmp_path, "val", image_size=100, augmentation=Augmentation(), seed=0)
    assert len(data) == 2 and data.augmentation is None
    sample = data[0]  # image 5: box x 60..100 of 200 -> 30..50 of 100 (stretch: x / 2, y / 1)
    np.testing.assert_allclose(sample.boxes, [[30, 20, 50, 60]])
    assert sample.labels.tolist() == [5 % 3] and sample.image.shape == (100, 100, 3)
    boxes, labels = data.ignore_regions(0)
    np.testing.assert_allclose(boxes, [[75, 70, 95, 95]])
    assert labels.tolist() == [1]
    with pytest.raises(IndexError):
        data[2]


def test_letterbox_and_the_batch_interface(tmp_path: Path) -> None:
    data = FileDataset(make(tmp_path), tmp_path, "val", image_size=100, resize_mode="letterbox")
    # Scale 1/2 -> 100x50 centred: 25 rows above. Image 6: box x 70..110, y 20..60 -> 35..55, 35..55.
    np.testing.assert_allclose(data[1].boxes, [[35, 35, 55, 55]])
    # Read from the record without decoding, the regions are where the full sample puts them.
    for i in range(2):
        for a, b in zip(data.ignore_regions(i), data._sample(i)[1], strict=True):
            np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(data.ignore_regions(0)[0], [[75, 60, 95, 72.5]])  # x / 2, y / 2 + 25
    images, boxes, labels, counts = data.batch(0, 2)
    assert images.shape == (2, 100, 100, 3) and boxes.shape == (2, data.max_digits, 4)
    # Each image: its object, then its ignore region with the label matching leaves out (-2).
    assert counts.tolist() == [2, 2] and labels[:, :2].tolist() == [[2, -2], [0, -2]]


def test_augmented_samples_are_reproducible_and_keep_boxes_on_their_colour(tmp_path: Path) -> None:
    aug = Augmentation(photometric=False)
    data = FileDataset(make(tmp_path), tmp_path, "train", image_size=96, augmentation=aug, seed=1)
    same = FileDataset(make(tmp_path), tmp_path, "train", image_size=96, augmentation=aug, seed=1)
    for i in range(40):
        sample = data[i]
        np.testing.assert_array_equal(sample.image, same[i].image)  # a pure function of (seed, i)
        for box, label in zip(sample.boxes, sample.labels, strict=True):
            x0, y0, x1, y1 = np.round(box).astype(int)
            inner = sample.image[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3)
            if len(inner):  # the box's inside is its object's colour
                assert np.abs(inner.mean(0) - COLOURS[label]).max() < 30, (i, box)


def test_decoded_images_are_cached_within_the_budget(tmp_path: Path) -> None:
    data = FileDataset(make(tmp_path), tmp_path, "train", image_size=64, cache_bytes=2 * 200 * 100 * 3)
    for i in range(5):
        data[i]
    assert len(data._cache) == 2  # two images fit, the rest are decoded each time
