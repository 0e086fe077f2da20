"""An imported dataset as training and validation data: decoded, augmented, resized, batched.

:class:`FileDataset` is one split of an imported dataset as a :class:`ssd.datasets.source.SplitData`,
the interface the generator's splits (:class:`ssd.data.DetectionDataset`) have too:
``dataset[i]`` is a :class:`~ssd.data.Sample` of the square network input, ``batch(start, size)``
the padded arrays the trainer's input pipeline stacks, ``max_digits`` the padded box count. An
:class:`ssd.datasets.source.ImportedSource` makes it; nothing else needs to know which it has.

- Training index ``i`` is image ``order(epoch)[i % n]`` with ``epoch = i // n``: every image once
  per epoch, in a new seeded order each epoch, so a resumed run sees the same images in the same
  order. Augmentation (:mod:`ssd.augment`) draws from ``default_rng([seed, i])``: sample ``i`` is a
  pure function of the seed and ``i``, in any process, in any order.
- Validation index ``i`` is image ``i`` of the split, never augmented, and does not wrap.
- Decoded images are cached in memory up to ``cache_bytes`` (the first images that fit), so
  after the first epoch a small dataset costs no decoding at all.
- Ignore regions (crowd, difficult) follow every transform (as labels ``~c``, see
  :mod:`ssd.augment`); :meth:`FileDataset.ignore_regions` gives them per sample, the samples'
  ``boxes``/``labels`` hold only the objects.

Images uint8 ``[S, S, 3]``; boxes float32 ``[K, 4]`` pixel ``xyxy`` in the square input; labels
int32 ``[K]`` class indices. NumPy and Pillow; no TensorFlow.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ssd.augment import Augmentation, augment, resize, resize_boxes
from ssd.coverage import DatasetBoxes
from ssd.data import Sample, pad_samples
from ssd.datasets.records import DatasetIndex, ImageRecord, Split

DEFAULT_CACHE_BYTES = 2 << 30  # decoded images kept in memory: 2 GiB holds 5,000 640x480 photos
IGNORE = -2  # ssd.matching.IGNORE: the label of an ignore region in a padded batch (-1 is padding)
MIN_BOX_SIDE = 1.0  # pixels in the network input; a crop can leave slivers that teach nothing


class FileDataset:
    """One split of an imported dataset at the network's input size (see the module docstring)."""

    def __init__(
        self,
        index: DatasetIndex,
        root: Path,
        split: Split,
        *,
        image_size: int,
        resize_mode: Literal["stretch", "letterbox"] = "stretch",
        augmentation: Augmentation | None = None,
        seed: int = 0,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.records: list[ImageRecord] = index.split(split)
        if not self.records:
            raise ValueError(f"the dataset {index.name!r} has no {split} images")
        self.root = Path(root)
        self.split: Split = split
        self.image_size = image_size
        self.resize_mode: Literal["stretch", "letterbox"] = resize_mode
        self.augmentation = augmentation if split == "train" else None
        self.seed = seed
        self.num_classes = len(index.classes)
        self.class_names = list(index.classes)
        # Zoom-out and crops never add boxes, so the most boxes (ignore regions included) of any
        # image bounds every sample's padded rows.
        self.max_digits = max(1, max(len(r.labels) + len(r.ignore) for r in self.records))
        self._cache: dict[int, np.ndarray] = {}
        self._cache_left = cache_bytes
        self._lock = threading.Lock()
        self._epoch_order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        """Images in the split (training indices wrap around it, epoch after epoch)."""
        return len(self.records)

    def record(self, index: int) -> tuple[int, ImageRecord]:
        """``(position in the split, record)`` of sample ``index``."""
        n = len(self.records)
        if self.split == "val":
            if not 0 <= index < n:
                raise IndexError(f"val has {n} images, not {index}")
            return index, self.records[index]
        if index < 0:
            raise IndexError(f"index must be >= 0, got {index}")
        epoch, k = divmod(index, n)
        position = int(self._order(epoch)[k])
        return position, self.records[position]

    def _order(self, epoch: int) -> np.ndarray:
        """The seeded order of the training images in ``epoch`` (the last one kept)."""
        cached = self._epoch_order
        if cached is None or cached[0] != epoch:
            cached = self._epoch_order = (
                epoch,
                np.random.default_rng([self.seed, epoch]).permutation(len(self.records)),
            )
        return cached[1]

    def decode(self, position: int) -> np.ndarray:
        """uint8 [H, W, 3] of the image at ``position`` in the split (cached while memory lasts)."""
        cached = self._cache.get(position)
        if cached is not None:
            return cached
        with Image.open(self.root / self.records[position].file) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        with self._lock:
            if pixels.nbytes <= self._cache_left and position not in self._cache:
                self._cache[position] = pixels
                self._cache_left -= pixels.nbytes
        return pixels

    def _sample(self, index: int) -> tuple[Sample, tuple[np.ndarray, np.ndarray]]:
        position, record = self.record(index)
        image = self.decode(position)
        boxes = np.concatenate([record.boxes, record.ignore]).astype(np.float32)
        labels = np.concatenate([record.labels, ~record.ignore_labels]).astype(np.int32)
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, index])
            image, boxes, labels = augment(image, boxes, labels, rng, self.augmentation)
        image, boxes = resize(image, boxes, self.image_size, self.resize_mode)
        boxes, labels = big_enough(boxes, labels)
        objects = labels >= 0
        return Sample(image=image, boxes=boxes[objects], labels=labels[objects]), (boxes[~objects], ~labels[~objects])

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index`` (see the module docstring for which image and which augmentation)."""
        return self._sample(index)[0]

    def ignore_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Crowd and difficult regions of sample ``index``: float32 [M, 4] pixel ``xyxy``, int32 [M] classes.

        Without augmentation they are the record's, resized: no image is decoded for them.
        """
        if self.augmentation is not None:
            return self._sample(index)[1]
        _, record = self.record(index)
        boxes = resize_boxes(record.ignore, record.width, record.height, self.image_size, self.resize_mode)
        return big_enough(boxes, record.ignore_labels.astype(np.int32))

    def batch(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Samples ``start .. start + size - 1`` padded as :func:`ssd.data.pad_samples` does, each
        image's ignore regions after its objects with the label :data:`IGNORE` (matching leaves
        the priors they claim out of the loss); ``counts`` counts objects and regions."""
        items = [self._sample(start + i) for i in range(size)]
        rows = [
            Sample(
                s.image, np.concatenate([s.boxes, regions]), np.concatenate([s.labels, np.full(len(regions), IGNORE)])
            )
            for s, (regions, _) in items
        ]
        return pad_samples(rows, self.max_digits)


def big_enough(boxes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The boxes [K, 4] (and labels [K]) at least :data:`MIN_BOX_SIDE` wide and high."""
    keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIDE
    return boxes[keep], labels[keep]


def record_boxes(
    records: Sequence[ImageRecord], image_size: int, resize_mode: Literal["stretch", "letterbox"] = "stretch"
) -> DatasetBoxes:
    """The objects of ``records`` in the network input, from the index alone (no image decoded):
    where an unaugmented sample has them (:func:`ssd.augment.resize_boxes`, slivers under
    :data:`MIN_BOX_SIDE` dropped). Ignore regions are left out. ``boxes`` float32 [N, K, 4]
    pixel ``xyxy`` in the ``image_size`` square, padded as :class:`ssd.coverage.DatasetBoxes`."""
    per_image = [
        big_enough(resize_boxes(r.boxes, r.width, r.height, image_size, resize_mode), r.labels.astype(np.int32))
        for r in records
    ]
    most = max([len(b) for b, _ in per_image], default=0)
    boxes = np.zeros((len(records), most, 4), np.float32)
    labels = np.full((len(records), most), -1, np.int32)
    counts = np.zeros(len(records), np.int32)
    for i, (b, lab) in enumerate(per_image):
        boxes[i, : len(b)], labels[i, : len(b)], counts[i] = b, lab, len(b)
    return DatasetBoxes(boxes=boxes, labels=labels, counts=counts)


def decode_at(image: Image.Image, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 3]: an opened image file resized (bilinear) to ``width x height``,
    decoding no more than that needs.

    A JPEG is decoded at 1/2, 1/4 or 1/8 of its size (``draft``: the smallest scale still at
    least ``width x height``); any image is then reduced by an integer factor before the
    resize (``reducing_gap``), and converted to RGB only once small. A 6000 x 4000 file shown
    at 128 px took the server's memory 321 MiB up (a whole decode and three copies of it); now
    a JPEG costs a 750 x 500 decode, a PNG (which cannot be decoded smaller) one decode.
    """
    image.draft("RGB", (width, height))
    source = image if image.mode in ("RGB", "L") else image.convert("RGB")
    resized = source.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(resized.convert("RGB"), dtype=np.uint8)
