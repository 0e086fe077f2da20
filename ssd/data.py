"""Synthetic MNIST-detection data: coloured digits scattered on a noisy canvas.

Each sample is an RGB image (default 128x128) holding ``min_digits`` to
``max_digits`` real MNIST digits (see ``ssd/assets/README.md``). Generation of
one sample, all draws from ``np.random.default_rng([seed, split_id, index])``:

1. Background: every pixel and channel uniform in ``[0, NOISE_MAX)`` (0.1).
2. Digit count ``n`` uniform in ``[min_digits, max_digits]``.
3. For each digit: a digit from the split's pool (train and val pools are
   disjoint), a scale ``s`` uniform in ``scale_range`` (the digit becomes a
   ``round(28 * s)`` square, resized with an antialiased bilinear filter, or
   with nearest-neighbour for a share ``nearest_share`` of the digits), and
   a colour whose RGB components are each uniform in ``COLOUR_RANGE``
   (0.3-0.7). The tinted digit is ``intensity * colour`` with intensity in
   ``[0, 1]``; it is composited onto the canvas with ``np.maximum`` (so
   overlapping digits and the background combine by max).
4. Ground-truth box: tight around the digit's *visible* ink, i.e. the resized
   pixels whose tinted value in the brightest channel exceeds the background
   noise ceiling: ``intensity * max(colour) > NOISE_MAX``. Every pixel outside
   the box is therefore at or below the noise level (for an isolated digit),
   and every box edge row/column holds ink brighter than any noise.
5. Overlap control (rejection sampling): a digit is placed (its tight box is
   placed uniformly where it fits in the image; faint halo outside the box may
   be cropped at the border) only if its box has IoU <= ``MAX_IOU`` (0.1) with
   every box already placed *and* covers at most ``MAX_COVER`` (0.25) of the
   smaller box's area (this stops a small digit hiding inside a large one,
   which IoU alone allows). Each digit slot gets a few positions per drawn
   digit and re-draws digit/scale/colour on failure; a slot below
   ``min_digits`` gets many more attempts than an optional one. A slot that
   still fails is skipped, so a sample can (rarely) hold fewer digits than
   drawn, and in extreme configurations fewer than ``min_digits``.

Images are uint8 ``[H, W, 3]`` (value ``round(255 * x)``). Boxes are float32
pixel ``xyxy``: a box covering pixel columns ``c0..c1`` and rows ``r0..r1``
inclusive is ``[c0, r0, c1 + 1, r1 + 1]``. Labels are int32 digit classes 0-9.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ssd.geometry import box_area, intersection

if TYPE_CHECKING:
    from ssd.config import Config

__all__ = [
    "ASSET_PATH",
    "COLOUR_RANGE",
    "DIGIT_SIZE",
    "MAX_COVER",
    "MAX_IOU",
    "NOISE_MAX",
    "NUM_CLASSES",
    "VAL_SEED",
    "DetectionDataset",
    "Sample",
    "for_config",
    "load_digits",
    "pad_samples",
]

Split = Literal["train", "val"]

ASSET_PATH = Path(__file__).resolve().parent / "assets" / "mnist_digits.npz"
NUM_CLASSES = 10
DIGIT_SIZE = 28
NOISE_MAX = 0.1
COLOUR_RANGE = (0.3, 0.7)
MAX_IOU = 0.1
MAX_COVER = 0.25
VAL_SEED = 0  # one validation set for every run, whatever its training seed

_SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1}
_POSITIONS_PER_DRAW = 4  # positions tried for one drawn digit before re-drawing it
_DRAWS_MANDATORY = 12  # digit draws for a slot below min_digits
_DRAWS_OPTIONAL = 3  # digit draws for an optional slot
_INK_MARGIN = 1.0 + 1e-4


@dataclass(frozen=True, eq=False)
class Sample:
    """One detection sample.

    Attributes:
        image: uint8 ``[H, W, 3]``, RGB 0-255.
        boxes: float32 ``[K, 4]`` pixel ``xyxy`` (``x2``/``y2`` exclusive edges,
            see module docstring), ``K`` = number of digits.
        labels: int32 ``[K]``, digit class 0-9.

    ``eq=False``: array fields make a generated ``__eq__``/``__hash__`` useless.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


@functools.cache
def _load_asset() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(ASSET_PATH) as npz:
        images = np.ascontiguousarray(npz["images"], dtype=np.uint8)
        labels = np.asarray(npz["labels"], dtype=np.int32)
        split = np.asarray(npz["split"], dtype=np.uint8)
    return images, labels, split


@functools.cache
def load_digits(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """The digit pool of one split (train and val pools are disjoint).

    Args:
        split: ``"train"`` or ``"val"``.

    Returns:
        ``(images, labels)``: uint8 ``[N, 28, 28]`` grey levels 0-255 (white ink
        on black) and int32 ``[N]`` classes 0-9. Cached and read-only.

    Raises:
        ValueError: unknown ``split``.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    images, labels, split_ids = _load_asset()
    keep = split_ids == _SPLIT_IDS[split]
    pool_images, pool_labels = images[keep], labels[keep]
    pool_images.setflags(write=False)
    pool_labels.setflags(write=False)
    return pool_images, pool_labels


@functools.lru_cache(maxsize=512)
def _resize_matrix(out_size: int, in_size: int = DIGIT_SIZE) -> np.ndarray:
    """float32 ``[out_size, in_size]`` antialiased-bilinear resampling weights.

    Pixel centres are aligned (``x_in = (x_out + 0.5) / s - 0.5``); the triangle
    filter is widened by ``1 / s`` when downscaling (area-like, as PIL does).
    Each row sums to 1, so resized intensities stay in the input range.
    ``resized = M @ image @ M.T`` for a square image.
    """
    scale = out_size / in_size
    radius = max(1.0, 1.0 / scale)
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) / scale - 0.5
    taps = np.arange(in_size, dtype=np.float64)
    weights = np.clip(1.0 - np.abs(taps[None, :] - centres[:, None]) / radius, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = weights.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=512)
def _nearest_matrix(out_size: int, in_size: int = DIGIT_SIZE) -> np.ndarray:
    """float32 ``[out_size, in_size]`` nearest-neighbour resampling: output pixel ``x`` takes input
    pixel ``floor((x + 0.5) * in_size / out_size)`` (centres aligned, as PIL's ``NEAREST``), so
    strokes come out blocky when enlarged and lose pixels when shrunk. ``M @ image @ M.T``."""
    source = np.minimum(((np.arange(out_size) + 0.5) * in_size / out_size).astype(np.int64), in_size - 1)
    matrix = np.zeros((out_size, in_size), np.float32)
    matrix[np.arange(out_size), source] = 1.0
    matrix.setflags(write=False)
    return matrix


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        # ValueError (not TypeError) by design: every bad argument is a ValueError.
        raise ValueError(f"{name} must be an int, got {value!r}")  # noqa: TRY004
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


class DetectionDataset:
    """Infinite, deterministic MNIST-detection dataset (see module docstring).

    ``dataset[i]`` is a pure function of ``(seed, split, i)`` and the
    configuration, so any index can be generated in any order or process.
    """

    def __init__(
        self,
        split: Split = "train",
        *,
        image_size: int = 128,
        min_digits: int = 2,
        max_digits: int = 6,
        scale_range: tuple[float, float] = (0.8, 2.5),
        seed: int = 0,
        max_cover: float = MAX_COVER,
        nearest_share: float = 0.0,
    ) -> None:
        """Configure the generator.

        Args:
            split: digit pool, ``"train"`` or ``"val"``.
            image_size: side ``S`` of the square ``[S, S, 3]`` images.
            min_digits: fewest digits drawn per image (>= 0).
            max_digits: most digits per image (>= max(1, min_digits)); also the
                padded box count of :meth:`batch`.
            scale_range: ``(low, high)`` digit scale factors relative to 28 px,
                ``0 < low <= high`` and ``round(28 * high) <= image_size``.
            seed: non-negative base seed.
            max_cover: the largest share of a digit's box that another digit's box
                may cover, in ``[0, 1]``; box IoU is capped at ``0.4 * max_cover``
                (the default 0.25 gives IoU <= 0.1). 1 lets digits occlude each other.
            nearest_share: the share of digits resized nearest-neighbour instead of
                antialiased bilinear, in ``[0, 1]``: a detector trained on one resampling
                alone learns its look (``data.train_nearest``).

        Raises:
            ValueError: naming the offending argument.
        """
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split: Split = split
        self.image_size = _check_int("image_size", image_size, 1)
        self.min_digits = _check_int("min_digits", min_digits, 0)
        self.max_digits = _check_int("max_digits", max_digits, 1)
        if self.max_digits < self.min_digits:
            raise ValueError(f"max_digits ({max_digits}) must be >= min_digits ({min_digits})")
        try:
            low, high = (float(v) for v in scale_range)
        except (TypeError, ValueError):
            raise ValueError(f"scale_range must be a (low, high) pair of numbers, got {scale_range!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and 0.0 < low <= high):
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range!r}")
        if round(DIGIT_SIZE * high) > self.image_size:
            raise ValueError(
                f"scale_range high {high} makes digits of {round(DIGIT_SIZE * high)} px, "
                f"larger than image_size {self.image_size}"
            )
        self.scale_range = (low, high)
        self.seed = _check_int("seed", seed, 0)
        if not 0.0 <= float(max_cover) <= 1.0:
            raise ValueError(f"max_cover must be in [0, 1], got {max_cover!r}")
        self.max_cover = float(max_cover)
        if not 0.0 <= float(nearest_share) <= 1.0:
            raise ValueError(f"nearest_share must be in [0, 1], got {nearest_share!r}")
        self.nearest_share = float(nearest_share)
        self._split_id = _SPLIT_IDS[split]
        self._pool_images, self._pool_labels = load_digits(split)

    def __repr__(self) -> str:
        return (
            f"DetectionDataset(split={self.split!r}, image_size={self.image_size}, "
            f"min_digits={self.min_digits}, max_digits={self.max_digits}, "
            f"scale_range={self.scale_range}, seed={self.seed})"
        )

    def __getitem__(self, index: int) -> Sample:
        """Generate sample ``index`` (any int >= 0).

        Returns:
            :class:`Sample` with image uint8 ``[H, W, 3]``, boxes float32
            ``[K, 4]`` pixel xyxy, labels int32 ``[K]``.

        Raises:
            IndexError: negative index. TypeError: non-integer index.
        """
        index = operator.index(index)
        if index < 0:
            raise IndexError(f"index must be >= 0, got {index}")
        rng = np.random.default_rng([self.seed, self._split_id, index])
        size = self.image_size
        canvas = rng.random((size, size, 3), dtype=np.float32)
        canvas *= NOISE_MAX

        n_digits = int(rng.integers(self.min_digits, self.max_digits + 1))
        boxes = np.zeros((n_digits, 4), dtype=np.float32)
        labels = np.zeros(n_digits, dtype=np.int32)
        count = 0
        low, high = self.scale_range
        n_pool = len(self._pool_labels)
        for slot in range(n_digits):
            draws = _DRAWS_MANDATORY if slot < self.min_digits else _DRAWS_OPTIONAL
            placed = False
            for _ in range(draws):
                pick = int(rng.integers(n_pool))
                side = max(1, round(DIGIT_SIZE * float(rng.uniform(low, high))))
                colour = rng.uniform(COLOUR_RANGE[0], COLOUR_RANGE[1], 3).astype(np.float32)
                # The draw only when asked for: samples without it stay as they were.
                nearest = self.nearest_share > 0 and float(rng.random()) < self.nearest_share
                matrix = _nearest_matrix(side) if nearest else _resize_matrix(side)
                digit = matrix @ self._pool_images[pick].astype(np.float32) @ matrix.T
                digit *= np.float32(1.0 / 255.0)
                # Tiny relative margin: float32 rounding must not put box-edge ink
                # back at the noise ceiling.
                ink = digit > _INK_MARGIN * NOISE_MAX / float(colour.max())
                rows = np.flatnonzero(ink.any(axis=1))
                if rows.size == 0:
                    continue
                cols = np.flatnonzero(ink.any(axis=0))
                r0, r1, c0, c1 = (
                    int(rows[0]),
                    int(rows[-1]) + 1,
                    int(cols[0]),
                    int(cols[-1]) + 1,
                )
                box_h, box_w = r1 - r0, c1 - c0
                for _ in range(_POSITIONS_PER_DRAW):
                    bx = int(rng.integers(size - box_w + 1))
                    by = int(rng.integers(size - box_h + 1))
                    box = (bx, by, bx + box_w, by + box_h)
                    if count and not _fits(box, boxes[:count], self.max_cover):
                        continue
                    _paste(canvas, digit, colour, by - r0, bx - c0)
                    boxes[count] = box
                    labels[count] = self._pool_labels[pick]
                    count += 1
                    placed = True
                    break
                if placed:
                    break

        canvas *= 255.0
        canvas += 0.5
        image = canvas.astype(np.uint8)
        return Sample(image=image, boxes=boxes[:count].copy(), labels=labels[:count].copy())

    def ignore_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Crowd and difficult regions of sample ``index``: the generator has none (float32 [0, 4],
        int32 [0]), so its samples read as an imported dataset's do."""
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int32)

    def batch(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Samples ``start .. start + size - 1`` stacked and padded.

        Returns:
            ``(images, boxes, labels, counts)``: uint8 ``[B, H, W, 3]``, float32
            ``[B, max_digits, 4]`` pixel xyxy (zero-padded), int32
            ``[B, max_digits]`` (-1 padded), int32 ``[B]`` real box counts.

        Raises:
            ValueError: ``size < 1``. IndexError: ``start < 0``.
        """
        size = _check_int("size", size, 1)
        start = operator.index(start)
        return pad_samples([self[start + i] for i in range(size)], self.max_digits)


def _fits(box: tuple[int, int, int, int], others: np.ndarray, max_cover: float = MAX_COVER) -> bool:
    """Whether ``box`` overlaps each of ``others`` [M, 4] little enough (see ``max_cover``)."""
    inter = intersection([box], others)[0]  # [M]; integer pixels, so exact in float32
    if not inter.any():
        return True
    area = box_area(box)
    other_area = box_area(others)
    iou = inter / (area + other_area - inter)
    cover = inter / np.minimum(area, other_area)
    return bool(np.all(iou <= max_cover * (MAX_IOU / MAX_COVER)) and np.all(cover <= max_cover))


def _paste(canvas: np.ndarray, digit: np.ndarray, colour: np.ndarray, top: int, left: int) -> None:
    """Max-composite ``digit[..., None] * colour`` at (top, left), cropped to the canvas."""
    height, width = canvas.shape[:2]
    side = digit.shape[0]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, height), min(left + side, width)
    if y0 >= y1 or x0 >= x1:
        return
    patch = digit[y0 - top : y1 - top, x0 - left : x1 - left, None] * colour
    region = canvas[y0:y1, x0:x1]
    np.maximum(region, patch, out=region)


def pad_samples(samples: Sequence[Sample], max_boxes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stack samples of one image size into padded batch arrays.

    Args:
        samples: non-empty, all images of the same ``[H, W, 3]`` shape.
        max_boxes: padded box count ``M`` (>= every sample's box count).

    Returns:
        ``(images, boxes, labels, counts)``: uint8 ``[B, H, W, 3]``, float32
        ``[B, M, 4]`` pixel xyxy (zero-padded), int32 ``[B, M]`` (-1 padded),
        int32 ``[B]`` real box counts.

    Raises:
        ValueError: empty ``samples``, mismatched image shapes, negative
            ``max_boxes`` or a sample with more than ``max_boxes`` boxes.
    """
    max_boxes = _check_int("max_boxes", max_boxes, 0)
    if len(samples) == 0:
        raise ValueError("samples must be non-empty")
    shape = samples[0].image.shape
    batch = len(samples)
    images = np.empty((batch, *shape), dtype=np.uint8)
    boxes = np.zeros((batch, max_boxes, 4), dtype=np.float32)
    labels = np.full((batch, max_boxes), -1, dtype=np.int32)
    counts = np.zeros(batch, dtype=np.int32)
    for i, sample in enumerate(samples):
        if sample.image.shape != shape:
            raise ValueError(f"samples: image {i} has shape {sample.image.shape}, expected {shape}")
        k = len(sample.labels)
        if k > max_boxes:
            raise ValueError(f"max_boxes {max_boxes} < {k} boxes in sample {i}")
        images[i] = sample.image
        boxes[i, :k] = sample.boxes
        labels[i, :k] = sample.labels
        counts[i] = k
    return images, boxes, labels, counts


def for_config(config: Config, split: Split) -> DetectionDataset:
    """The generator of one split of a training config: ``train`` is seeded with ``config.seed``,
    ``val`` with :data:`VAL_SEED`, so every run of every config sees the same validation images."""
    d = config.data
    return DetectionDataset(
        split,
        image_size=d.image_size,
        min_digits=d.min_digits,
        max_digits=d.max_digits,
        scale_range=d.scale_range,
        seed=config.seed if split == "train" else VAL_SEED,
        max_cover=d.train_overlap if split == "train" else MAX_COVER,
        nearest_share=d.train_nearest if split == "train" else 0.0,
    )
