"""Priors fitted to a dataset's boxes: shapes clustered, layers chosen by size, coverage searched.

Coverage is the share of ground truths with a prior at IoU >= the matching threshold
(:mod:`ssd.coverage`). The config shares one list of ratios over all source layers and gives each
layer its own scales (``w = scale * sqrt(ratio)``, ``h = scale / sqrt(ratio)``, rounded as
:func:`ssd.priors.prior_shapes` does), so a cell of layer ``l`` holds
``len(scales[l]) * len(ratios)`` priors; the suggestion keeps that at most ``per_cell``.

1. **Clusters** (:mod:`ssd.clusters`). k-means of the boxes' ``(w, h)`` with ``d = 1 - IoU``
   of two shapes sharing a centre (YOLOv2's dimension clusters; YOLOv5's autoanchor clusters,
   then evolves anchors against a fitness: here the fitness is the coverage itself, at the real
   grid centres).
2. **Layers by size.** A prior of a layer of stride ``s`` is at most ``s / 2`` from a box's
   centre along x and along y. A square box of side ``a`` shifted so from a prior of its own size
   keeps IoU >= t when ``a >= s / (2 (1 - sqrt(2t / (1 + t))))`` (:func:`full_cover_size`:
   2.72 s at t = 0.5), so each size belongs to the coarsest layer that covers it wherever it
   lies, and each layer's scales are searched in a window around its sizes (neighbours overlap
   by :data:`MARGIN`). Big boxes stay off fine layers, whose receptive fields cannot see them.
3. **Search.** A box's best IoU over all of a layer's priors of one shape is its IoU with the
   one at the grid centre nearest its own (:mod:`ssd.prior_grid`), so each candidate (layer,
   scale, ratio) costs one IoU per box and is kept as a bit set of the boxes it covers. For each way of
   splitting the budget into ``n`` scales x ``r`` ratios, the ratios start at a 1-D k-means of
   the clusters' aspect ratios and move one at a time over a grid (coordinate ascent); for given
   ratios each layer's scales are picked greedily (maximum coverage; ties go to coverage at the
   stricter IoU t + :data:`STRICTER`, then to fewer priors), then improved by swaps. A scale
   that adds nothing is left out: the budget is a bound, not a target.

The search's figures are estimates (two boxes of one image may want the same prior, which
:func:`ssd.coverage.assign` gives to one); callers report coverage with
:func:`ssd.priors.make_priors` and :func:`ssd.coverage.coverage`, as :func:`fit` does.
NumPy only. Boxes are float32 pixel ``xyxy`` in the square network input.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssd.clusters import kmeans_1d, kmeans_shapes
from ssd.config import MAX_IMAGE_SIZE, Config, PriorConfig
from ssd.coverage import CoverageReport, DatasetBoxes, coverage
from ssd.prior_grid import covers, full_cover_size, grid_iou
from ssd.priors import make_priors, prior_shapes

__all__ = ["MAX_PER_CELL", "Fitted", "Suggestion", "fit", "measure", "priors_section", "suggest_priors"]

MAX_PER_CELL = 32  # a bound on the budget: more priors per cell than this is no use to a suggestion
MARGIN = 1.25  # a layer's scale window reaches this factor past the sizes it owns
SCALE_STEP = 1.05  # candidate scales: a geometric grid 5% apart (IoU at 0.5 tolerates ~40%)
RATIO_CANDIDATES = 32  # candidate ratios: log-spaced over the boxes' aspect ratios, plus the clusters'
STRICTER = 0.1  # tie-break: coverage at iou_threshold + this
PASSES = 3  # coordinate-ascent passes over the ratios at most
MAX_SEARCH_BOXES = 20_000  # the search uses a seeded sample of this many boxes (its cost is linear)
MAX_KMEANS_BOXES = 10_000
MIN_RATIO, MAX_RATIO = 0.05, 20.0  # PriorConfig's bounds


@dataclass(frozen=True)
class Suggestion:
    """What :func:`suggest_priors` found.

    Attributes:
        priors: the suggested section (strides unchanged).
        kmeans: what the clusters alone give (its ratios start the search), for comparison.
        estimate, kmeans_estimate: share of the searched boxes covered by each, from :func:`grid_iou`.
        num_boxes: boxes searched (a seeded sample of at most :data:`MAX_SEARCH_BOXES`).
        evaluations: ratio sets whose scales were picked.
        elapsed_s: time taken.
    """

    priors: PriorConfig
    kmeans: PriorConfig
    estimate: float
    kmeans_estimate: float
    num_boxes: int
    evaluations: int
    elapsed_s: float


class _Candidates:
    """Every (layer, scale, ratio) the search may use, as bit sets of the boxes each covers."""

    def __init__(
        self,
        boxes: np.ndarray,
        strides: Sequence[int],
        image_size: int,
        iou_threshold: float,
        scales: list[np.ndarray],
        ratios: np.ndarray,
        natural: list[int],
    ) -> None:
        self.scales, self.ratios, self.natural = scales, ratios, natural
        self.num_boxes = len(boxes)
        stricter = min(iou_threshold + STRICTER, 1.0)
        # bits[l]: uint8 [S_l, R, ceil(G / 8)] at the threshold; strict[l]: the same at the stricter IoU.
        self.bits: list[np.ndarray] = []
        self.strict: list[np.ndarray] = []
        for stride, layer_scales in zip(strides, scales, strict=True):
            wh = prior_shapes(tuple(float(s) for s in layer_scales), tuple(float(r) for r in ratios))
            # Rounding to whole pixels makes many (scale, ratio) pairs one shape: test each shape once.
            unique, inverse = np.unique(wh, axis=0, return_inverse=True)
            at_t, at_strict = covers(boxes, unique, stride, image_size, (iou_threshold, stricter))
            shape = (len(layer_scales), len(ratios), -1)
            self.bits.append(np.packbits(at_t[inverse.ravel()].reshape(shape), axis=-1))
            self.strict.append(np.packbits(at_strict[inverse.ravel()].reshape(shape), axis=-1))
        # Coverage at the threshold always outranks the stricter count.
        self.weight = self.num_boxes + 1
        self.layer_of = np.concatenate([np.full(len(s), i) for i, s in enumerate(scales)])
        self.first = np.r_[0, np.cumsum([len(s) for s in scales])].astype(int).tolist()

    def pick_scales(self, ratio_index: Sequence[int], capacity: int, *, swap: bool) -> tuple[int, list[list[int]]]:
        """Greedy maximum coverage by at most ``capacity`` scales per layer for the given ratios,
        then improved by swaps if ``swap``: ``(score, chosen scale indices per layer)``. A layer
        that adds nothing keeps one scale: its best alone, ties to the size it covers fully
        (``natural``)."""
        r = list(ratio_index)
        # A scale covers a box when one of its ratios does: OR over the chosen ratios.
        cand_t = np.concatenate([np.bitwise_or.reduce(b[:, r], axis=1) for b in self.bits])
        cand_s = np.concatenate([np.bitwise_or.reduce(b[:, r], axis=1) for b in self.strict])
        cur_t, cur_s = np.zeros_like(cand_t[0]), np.zeros_like(cand_s[0])
        open_ = np.ones(len(cand_t), bool)
        chosen: list[int] = []
        while open_.any():
            gain = self._count(cand_t & ~cur_t) * self.weight + self._count(cand_s & ~cur_s)
            gain[~open_] = -1
            c = int(gain.argmax())  # ties: the first, so the finer layer and the smaller scale
            if gain[c] <= 0:
                break
            chosen.append(c)
            cur_t, cur_s = cur_t | cand_t[c], cur_s | cand_s[c]
            open_[c] = False
            layer = self.layer_of[c]
            if np.count_nonzero(self.layer_of[chosen] == layer) >= capacity:
                open_[self.layer_of == layer] = False
        for layer in range(len(self.scales)):
            if not np.any(self.layer_of[chosen] == layer):
                own = np.flatnonzero(self.layer_of == layer)
                alone = self._count(cand_t[own]) * self.weight + self._count(cand_s[own])
                distance = np.abs(np.arange(len(own)) - self.natural[layer])
                chosen.append(int(own[np.lexsort((distance, -alone))[0]]))
        score, chosen = self._swap(cand_t, cand_s, chosen, passes=PASSES if swap else 0)
        per_layer = [
            sorted(c - self.first[lay] for c in chosen if self.layer_of[c] == lay) for lay in range(len(self.scales))
        ]
        return score, per_layer

    @staticmethod
    def _count(bits: np.ndarray) -> np.ndarray:
        """int64 [...] boxes in each bit set of ``bits`` [..., B]."""
        return np.bitwise_count(bits).sum(axis=-1, dtype=np.int64)

    def _union_score(self, cand_t: np.ndarray, cand_s: np.ndarray, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
        empty = np.zeros((1, cand_t.shape[1]), np.uint8)
        t = np.bitwise_or.reduce(np.concatenate([empty, cand_t[chosen]]), axis=0)
        s = np.bitwise_or.reduce(np.concatenate([empty, cand_s[chosen]]), axis=0)
        return t, s

    def _swap(self, cand_t: np.ndarray, cand_s: np.ndarray, chosen: list[int], passes: int) -> tuple[int, list[int]]:
        """Replace one chosen scale at a time by the best other scale of its layer while that helps
        (at most ``passes`` times over them): ``(score, chosen)``."""
        t, s = self._union_score(cand_t, cand_s, chosen)
        best = int(self._count(t)) * self.weight + int(self._count(s))
        for _ in range(passes):
            improved = False
            for j in range(len(chosen)):
                rest = chosen[:j] + chosen[j + 1 :]
                rest_t, rest_s = self._union_score(cand_t, cand_s, rest)
                own = np.flatnonzero(self.layer_of == self.layer_of[chosen[j]])
                score = self._count(cand_t[own] | rest_t) * self.weight + self._count(cand_s[own] | rest_s)
                score[np.isin(own, rest)] = -1
                k = int(score.argmax())
                if score[k] > best:
                    chosen[j], best, improved = int(own[k]), int(score[k]), True
            if not improved:
                break
        return best, chosen

    def config(self, strides: Sequence[int], ratio_index: Sequence[int], chosen: list[list[int]]) -> PriorConfig:
        """The priors section of a search result (scales and ratios sorted)."""
        return PriorConfig(
            strides=tuple(int(s) for s in strides),
            scales=tuple(tuple(sorted(float(self.scales[i][c]) for c in set(ch))) for i, ch in enumerate(chosen)),
            ratios=tuple(sorted(float(self.ratios[r]) for r in ratio_index)),
        )


def _estimate(boxes: np.ndarray, priors: PriorConfig, image_size: int, iou_threshold: float) -> float:
    """Share of ``boxes`` with a prior of ``priors`` at IoU >= the threshold, by :func:`grid_iou`."""
    best = np.zeros(len(boxes), np.float32)
    for stride, scales in zip(priors.strides, priors.scales, strict=True):
        best = np.maximum(best, grid_iou(boxes, prior_shapes(scales, priors.ratios), stride, image_size).max(axis=0))
    return float((best >= iou_threshold).mean()) if len(boxes) else 0.0


def _windows(strides: Sequence[int], iou_threshold: float, lo: float, hi: float) -> list[tuple[float, float]]:
    """Per layer the sizes whose scales it searches: from its full-cover size to the next coarser
    layer's, widened by :data:`MARGIN` (the finest reaches down to ``lo``, the coarsest up to ``hi``)."""
    distinct = sorted(set(strides))
    cover = {s: full_cover_size(s, iou_threshold) for s in distinct}
    out = []
    for s in strides:
        j = distinct.index(s)
        low = lo if j == 0 else cover[s] / MARGIN
        high = hi if j == len(distinct) - 1 else cover[distinct[j + 1]] * MARGIN
        out.append((low, high))
    return out


def suggest_priors(
    boxes: np.ndarray,
    *,
    strides: Sequence[int],
    image_size: int,
    iou_threshold: float,
    per_cell: int,
    seed: int = 0,
) -> Suggestion:
    """Priors for ``boxes`` on layers of ``strides``, at most ``per_cell`` per cell (module docstring).

    Args:
        boxes: float32 [G, 4] pixel ``xyxy`` ground truths in the ``image_size`` square input.
        strides: one per source layer (the config's ``priors.strides``), kept as they are.
        iou_threshold: the matching threshold (``matching.iou_threshold``).
        per_cell: the budget K: ``len(scales[l]) * len(ratios) <= K`` for every layer.
        seed: the clustering's and the sample's seed; the same inputs give the same suggestion.

    Raises:
        ValueError: no box with a positive width and height, or ``per_cell`` out of 1..32.
    """
    started = time.perf_counter()
    if not 1 <= per_cell <= MAX_PER_CELL:
        raise ValueError(f"per_cell must be in 1..{MAX_PER_CELL}, got {per_cell}")
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
    if len(b) == 0:
        raise ValueError("no ground-truth boxes to fit priors to")
    rng = np.random.default_rng(seed)
    if len(b) > MAX_SEARCH_BOXES:
        b = b[np.sort(rng.choice(len(b), MAX_SEARCH_BOXES, replace=False))]
    wh = b[:, 2:] - b[:, :2]
    size, aspect = np.sqrt(wh[:, 0] * wh[:, 1]), wh[:, 0] / wh[:, 1]

    # 1. Clusters of shapes: one per prior the budget allows over all layers.
    sample = wh if len(wh) <= MAX_KMEANS_BOXES else wh[np.sort(rng.choice(len(wh), MAX_KMEANS_BOXES, replace=False))]
    centroids, members = kmeans_shapes(sample, per_cell * len(strides), seed=seed)
    c_size = np.sqrt(centroids[:, 0] * centroids[:, 1])
    c_log_aspect = np.log(centroids[:, 0] / centroids[:, 1])

    # 2. Candidates: scales per layer in its size window, ratios over the boxes' aspect ratios.
    lo, hi = max(1.0, float(size.min()) / MARGIN), min(2.0 * MAX_IMAGE_SIZE, float(size.max()) * MARGIN)
    windows = _windows(strides, iou_threshold, lo, hi)
    scales, natural = _candidate_scales(strides, windows, iou_threshold, lo, hi)
    # n scales per layer and as many ratios as then fit: (6, 1), (3, 2), (2, 3), (1, 6) for K = 6.
    splits = [(per_cell // r, r) for r in range(1, per_cell + 1) if r == per_cell // (per_cell // r)]
    seeds = {r: np.round(np.exp(kmeans_1d(c_log_aspect, members, r)), 3) for _, r in splits}
    a_lo, a_hi = np.quantile(aspect, [0.005, 0.995])
    ratio_grid = np.geomspace(max(MIN_RATIO, a_lo / 1.2), min(MAX_RATIO, a_hi * 1.2), RATIO_CANDIDATES)
    ratios = np.unique(np.clip(np.round(np.concatenate([ratio_grid, *seeds.values()]), 3), MIN_RATIO, MAX_RATIO))
    cands = _Candidates(b.astype(np.float32), strides, image_size, iou_threshold, scales, ratios, natural)

    # 3. Per split, coordinate ascent over the ratios from the clusters' ones; the best split wins,
    # then the one with fewer priors.
    evaluations = 0
    best: tuple[int, int, list[int], list[list[int]], int] | None = None
    middle = float(np.median(np.log(aspect)))
    for n, r in splits:
        start = sorted({int(np.abs(ratios - v).argmin()) for v in seeds[r]})
        for extra in np.argsort(np.abs(np.log(ratios) - middle), kind="stable"):
            if len(start) >= min(r, len(ratios)):
                break
            start = sorted({*start, int(extra)})  # clusters that share a ratio: fill from the median out
        score, current, chosen, count = _ascend(cands, start, n)
        evaluations += count
        cost = -sum(len(ch) * len(current) for ch in chosen)
        if best is None or (score, cost) > (best[0], best[1]):
            best = (score, cost, current, chosen, r)
    assert best is not None
    priors = cands.config(strides, best[2], best[3])
    n_best = per_cell // best[4]
    kmeans = _kmeans_config(strides, seeds[best[4]], n_best, c_size, members, windows, scales, natural)
    return Suggestion(
        priors=priors,
        kmeans=kmeans,
        estimate=_estimate(b, priors, image_size, iou_threshold),
        kmeans_estimate=_estimate(b, kmeans, image_size, iou_threshold),
        num_boxes=len(b),
        evaluations=evaluations,
        elapsed_s=time.perf_counter() - started,
    )


def _candidate_scales(
    strides: Sequence[int], windows: list[tuple[float, float]], iou_threshold: float, lo: float, hi: float
) -> tuple[list[np.ndarray], list[int]]:
    """Per layer the candidate scales (a geometric grid from ``lo`` to ``hi`` cut to its window,
    rounded to 0.1 px) and the index of the one nearest the size it covers fully."""
    grid = np.unique(np.round(lo * SCALE_STEP ** np.arange(math.ceil(math.log(hi / lo, SCALE_STEP)) + 1), 1))
    grid = grid[(grid >= 1.0) & (grid <= 2.0 * MAX_IMAGE_SIZE)]
    scales, natural = [], []
    for (low, high), stride in zip(windows, strides, strict=True):
        inside = grid[(grid >= low) & (grid <= high)]
        if inside.size == 0:  # no box size in reach of this layer: the grid's scale nearest its window
            inside = grid[[int(np.abs(np.log(grid) - math.log(math.sqrt(low * high))).argmin())]]
        scales.append(inside)
        full = min(full_cover_size(stride, iou_threshold), hi)
        natural.append(int(np.abs(np.log(inside) - math.log(full)).argmin()))
    return scales, natural


def _ascend(cands: _Candidates, start: list[int], n: int) -> tuple[int, list[int], list[list[int]], int]:
    """Coordinate ascent over the ratio set from ``start`` (indices into the candidates' ratios),
    ``n`` scales per layer: ``(score, ratios, scales per layer, evaluations)``."""
    perfect = cands.weight * cands.num_boxes + cands.num_boxes
    # Swaps cost twice the greedy pick: the ascent compares greedy picks, the winner is swapped.
    current = list(start)
    score, chosen = cands.pick_scales(current, n, swap=False)
    evaluations = 1
    for _ in range(PASSES):
        improved = False
        for j in range(len(current)):
            for cand in range(len(cands.ratios)):
                if cand in current or score == perfect:
                    continue
                trial = sorted([*current[:j], *current[j + 1 :], cand])
                s, ch = cands.pick_scales(trial, n, swap=False)
                evaluations += 1
                if s > score:
                    score, chosen, current, improved = s, ch, trial, True
                    break  # slot j moved (and the sorted set may have reordered): on to the next slot
        if not improved:
            break
    score, chosen = cands.pick_scales(current, n, swap=True)
    return score, current, chosen, evaluations


def _kmeans_config(
    strides: Sequence[int],
    ratios: np.ndarray,
    n: int,
    c_size: np.ndarray,
    members: np.ndarray,
    windows: list[tuple[float, float]],
    scales: list[np.ndarray],
    natural: list[int],
) -> PriorConfig:
    """The clusters alone: each centroid to the layers whose own size range (the window without
    its margin) holds its size, each layer's scales a 1-D k-means of its centroids' sizes, at most
    ``n`` (none: the scale it covers fully)."""
    groups: list[tuple[float, ...]] = []
    for i, (low, high) in enumerate(windows):
        first, last = strides[i] == min(strides), strides[i] == max(strides)
        mine = (first | (c_size >= low * MARGIN)) & (last | (c_size < high / MARGIN))
        if mine.any():
            groups.append(tuple(np.round(np.exp(kmeans_1d(np.log(c_size[mine]), members[mine], n)), 1).tolist()))
        else:
            groups.append((float(scales[i][natural[i]]),))
    return PriorConfig(
        strides=tuple(int(s) for s in strides),
        scales=tuple(tuple(max(1.0, s) for s in g) for g in groups),
        ratios=tuple(sorted({float(np.clip(r, MIN_RATIO, MAX_RATIO)) for r in ratios})),
    )


def priors_section(priors: PriorConfig) -> dict[str, Any]:
    """The ``priors`` section of a config file for ``priors``: strides, scales, ratios."""
    return {
        "strides": list(priors.strides),
        "scales": [list(group) for group in priors.scales],
        "ratios": list(priors.ratios),
    }


def measure(data: DatasetBoxes, priors: PriorConfig, config: Config) -> CoverageReport:
    """Coverage of ``data`` by the real prior layout of ``priors`` (:func:`ssd.priors.make_priors`,
    centres on the grid) under the config's matching rule (:func:`ssd.coverage.coverage`)."""
    layout = make_priors(priors, config.data.image_size)
    return coverage(
        data,
        layout.boxes,
        np.concatenate(layout.shapes),
        iou_threshold=config.matching.iou_threshold,
        force_best=config.matching.force_best,
    )


def _summary(report: CoverageReport, priors: PriorConfig, image_size: int) -> dict[str, Any]:
    share = lambda part, whole: round(part / whole, 4) if whole else 0.0  # noqa: E731
    return {
        "priors": priors_section(priors),
        "priors_per_cell": list(priors.priors_per_cell),
        "num_priors": len(make_priors(priors, image_size)),
        "num_gt": report.num_gt,
        "matched": report.matched,
        "share_matched": share(report.matched, report.num_gt),
        "matched_forced": report.matched_forced,
        "share_matched_forced": share(report.matched_forced, report.num_gt),
        "buckets": [
            {"label": b.label, "count": b.count, "matched": b.matched, "share_matched": share(b.matched, b.count)}
            for b in report.buckets
        ],
    }


@dataclass(frozen=True)
class Fitted:
    """A suggestion for a config's data, with the coverage of the config's priors (``before``),
    the suggestion's (``after``) and, when asked for, the clusters' alone (``kmeans``), all by
    :func:`measure`."""

    config: Config
    suggestion: Suggestion
    before: CoverageReport
    after: CoverageReport
    kmeans: CoverageReport | None
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``priors`` (the section to paste), ``before``/``after``/``kmeans`` (coverage
        overall and per size bucket), the search's figures and ``elapsed_ms``."""
        size, s = self.config.data.image_size, self.suggestion
        kmeans = None if self.kmeans is None else _summary(self.kmeans, s.kmeans, size)
        return {
            "priors": priors_section(s.priors),
            "iou_threshold": self.config.matching.iou_threshold,
            "num_images": self.after.num_images,
            "num_gt": self.after.num_gt,
            "before": _summary(self.before, self.config.priors, size),
            "after": _summary(self.after, s.priors, size),
            "kmeans": kmeans,
            "search": {"boxes": s.num_boxes, "evaluations": s.evaluations, "ms": round(1000 * s.elapsed_s, 1)},
            "elapsed_ms": round(1000 * self.elapsed_s, 1),
        }


def fit(data: DatasetBoxes, config: Config, *, per_cell: int, seed: int = 0, kmeans: bool = False) -> Fitted:
    """Suggest priors for ``data`` (a split's ground truth at the network input) on the config's
    source layers and matching threshold, at most ``per_cell`` per cell, and measure before and
    after (and the clusters alone if ``kmeans``: each measure takes about as long as the search).

    Raises:
        ValueError: no boxes, or ``per_cell`` out of range (see :func:`suggest_priors`).
    """
    started = time.perf_counter()
    suggestion = suggest_priors(
        data.boxes[data.valid],
        strides=config.priors.strides,
        image_size=config.data.image_size,
        iou_threshold=config.matching.iou_threshold,
        per_cell=per_cell,
        seed=seed,
    )
    return Fitted(
        config=config,
        suggestion=suggestion,
        before=measure(data, config.priors, config),
        after=measure(data, suggestion.priors, config),
        kmeans=measure(data, suggestion.kmeans, config) if kmeans else None,
        elapsed_s=time.perf_counter() - started,
    )
