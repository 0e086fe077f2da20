"""k-means of box shapes with ``d = 1 - IoU`` (YOLOv2's dimension clusters), and a 1-D k-means.

:mod:`ssd.suggest` starts its search for priors here: the clusters of a dataset's ``(w, h)``
give the sizes per layer and, clustered once more by aspect ratio, the ratios to start from.
NumPy only; seeded, so the same boxes give the same clusters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans_1d", "kmeans_shapes", "shape_iou"]


def shape_iou(wh1: np.ndarray, wh2: np.ndarray) -> np.ndarray:
    """IoU of shapes sharing a centre: float64 [N, M] of ``wh1`` [N, 2] and ``wh2`` [M, 2] ``(w, h)``."""
    a = np.asarray(wh1, np.float64)[:, None, :]
    b = np.asarray(wh2, np.float64)[None, :, :]
    inter = np.minimum(a[..., 0], b[..., 0]) * np.minimum(a[..., 1], b[..., 1])
    return inter / (a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter)


def kmeans_shapes(wh: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """k-means of shapes with ``d = 1 - IoU`` (YOLOv2, "Dimension Clusters"), seeded k-means++.

    Args:
        wh: [N, 2] box ``(w, h)`` in pixels, N >= 1.
        k: clusters wanted; fewer come back when there are fewer distinct shapes.

    Returns:
        ``(centroids, counts)``: float64 [k', 2] ``(w, h)`` (the members' median) sorted by area,
        and int64 [k'] members of each.
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    k = min(k, len(np.unique(wh, axis=0)))
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):  # k-means++: far shapes (in 1 - IoU) are likelier seeds
        d = 1.0 - shape_iou(wh, np.asarray(centres)).max(axis=1)
        weight = d**2
        centres.append(wh[rng.choice(len(wh), p=weight / weight.sum())])
    c = np.asarray(centres)
    member = np.full(len(wh), -1)
    for _ in range(iterations):
        new = shape_iou(wh, c).argmax(axis=1)
        if np.array_equal(new, member):
            break
        member = new
        # An emptied cluster keeps its centre; medians resist the odd huge box.
        c = np.asarray([np.median(wh[member == j], axis=0) if (member == j).any() else c[j] for j in range(k)])
    counts = np.bincount(shape_iou(wh, c).argmax(axis=1), minlength=k)
    order = np.argsort(c[:, 0] * c[:, 1], kind="stable")
    return c[order], counts[order]


def kmeans_1d(values: np.ndarray, weights: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Sorted centres of weighted 1-D k-means, started at the weighted quantiles (deterministic)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order].astype(np.float64)
    cdf = (np.cumsum(w) - w / 2) / w.sum()
    c = np.unique(np.interp((np.arange(k) + 0.5) / k, cdf, v))
    for _ in range(iterations):
        member = np.abs(v[:, None] - c[None, :]).argmin(axis=1)
        new = np.asarray(
            [np.average(v[member == j], weights=w[member == j]) for j in range(len(c)) if (member == j).any()]
        )
        if new.shape == c.shape and np.allclose(new, c):
            break
        c = new
    return np.sort(c)
