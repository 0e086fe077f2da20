"""A seeded train/validation split, stratified so that every class that can be is validated.

Rule (:func:`assign_splits`), over the images in a seeded random order:

1. Classes, rarest first (fewest images, then class index): a class found in 2 images or more
   that no validation image holds yet sends one of its images to validation, the first in the
   random order whose move leaves every class it holds with a training image (else one that leaves
   every class of 2+ images with one; else the first).
2. More images, in the random order, go to validation until it holds ``round(N * val_fraction)``
   (at least 1, at most N - 1), skipping any that would take a class's last training image.

So a class with at least 2 images has at least one in each split, a class with a single image
trains, and the validation split is larger than the fraction only when there are more classes to
cover than the fraction allows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ssd.datasets.records import ImageRecord


def val_target(images: int, val_fraction: float) -> int:
    """How many of ``images`` go to validation: ``round(images * val_fraction)``, at least 1 when
    the fraction is positive, never all of them (0 with fewer than 2 images)."""
    if images < 2 or val_fraction <= 0:
        return 0
    return min(max(round(images * val_fraction), 1), images - 1)


def choose_val(classes_of: Sequence[set[int]], val_fraction: float, *, seed: int = 0) -> set[int]:
    """Indices of the validation images, given each image's set of classes (see module docstring)."""
    n = len(classes_of)
    target = val_target(n, val_fraction)
    if target == 0:
        return set()
    order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    images_of = Counter(c for classes in classes_of for c in classes)
    train_left = Counter(images_of)
    val: set[int] = set()
    covered: set[int] = set()

    def keeps(i: int, classes: set[int] | Counter[int]) -> bool:
        return all(train_left[c] >= 2 for c in classes_of[i] if c in classes)

    def move(i: int) -> None:
        val.add(i)
        covered.update(classes_of[i])
        for c in classes_of[i]:
            train_left[c] -= 1

    multi = {c for c, k in images_of.items() if k >= 2}
    for c in sorted(multi, key=lambda c: (images_of[c], c)):
        if c in covered:
            continue
        candidates = [i for i in order if i not in val and c in classes_of[i]]
        ranked = (
            [i for i in candidates if keeps(i, images_of)] or [i for i in candidates if keeps(i, multi)] or candidates
        )
        move(ranked[0])
    for i in order:
        if len(val) >= target:
            break
        if i not in val and keeps(i, images_of):
            move(i)
    return val


def assign_splits(records: Sequence[ImageRecord], val_fraction: float, *, seed: int = 0) -> None:
    """Set every record's ``split`` to ``train`` or ``val`` by :func:`choose_val` (in place)."""
    val = choose_val([set(r.labels.tolist()) for r in records], val_fraction, seed=seed)
    for i, record in enumerate(records):
        record.split = "val" if i in val else "train"
