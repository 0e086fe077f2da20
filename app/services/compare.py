"""Compare jobs: their loss parts decimated to a chart's width, every evaluation, and a config diff.

What ``GET /api/compare`` answers and the compare page draws. Per job: its id, name, status,
colour (one per job, in selection order, the same on every chart and table), config, batch
size, best mAP@.5 and mAP with their steps, the decimated step metrics and every evaluation.

Decimation (:func:`decimate`) keeps spikes: a chart ``points`` wide cannot show 10,000 steps
anyway, but an even sample would drop a one-step blow-up of the loss, the thing a person
comparing runs looks for. A series of ``n > points`` steps is cut into
``B = (points - 1) // 3`` buckets of consecutive steps of equal count (the last may be shorter),
and from each bucket we keep the first step, the step of the bucket's minimum and the step of
its maximum (each once, in step order), plus the series' last step: at most ``3 B + 1 <=
points`` points, the first and last always among them. Each of ``pos_clf``, ``neg_clf``,
``loc`` and ``total`` is decimated on its own (its own minima and maxima), so each carries its
own ``step`` and ``wall`` arrays. A series of at most ``points`` steps comes back whole. Values
go out with 6 significant digits (:func:`significant`), ``wall`` to the millisecond.

Speed (``python -m benchmarks.compare``): reading the rows dominates. The store hands plain rows
(:meth:`app.store.jobs.JobStore.metric_rows`), NumPy buckets them, each job's part is encoded once
with :func:`json.dumps` (FastAPI's encoder walks every float in Python), and a finished job's
encoded part is cached (:class:`CompareService`).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from app.domain import TERMINAL, Invalid, Job, NotFound
from app.figures.dataset import CLASS_COLORS
from app.store.jobs import JobStore

MIN_JOBS, MAX_JOBS = 2, 10
DEFAULT_POINTS, MIN_POINTS, MAX_POINTS = 1000, 10, 5000
SIGNIFICANT_DIGITS = 6  # of the loss values sent
CACHE_BYTES = 64 * 2**20  # ~500 finished jobs' answers at 1000 points (~130 kB of JSON each)
SERIES = ("pos_clf", "neg_clf", "loc", "total")
# One colour per job: the dashboard's one palette (Tableau 10), also told apart with a colour-vision deficiency.
COLORS = CLASS_COLORS
# Left out of the config diff: the name heads each column already, so it always "differs".
NOT_COMPARED = frozenset({"name"})
_MISSING = object()  # a key one config lacks (None is a value: ``matching.variances = null``)


def parse_ids(text: str) -> list[str]:
    """The job ids of ``jobs=ID1,ID2,...``: 2 to 10 distinct ids (blanks dropped, repeats once).

    Raises :class:`Invalid` at ``("query", "jobs")`` for fewer or more.
    """
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not MIN_JOBS <= len(ids) <= MAX_JOBS:
        raise Invalid(
            ("query", "jobs"),
            f"compare {MIN_JOBS} to {MAX_JOBS} distinct jobs, comma-separated ids; got {len(ids)}",
        )
    return ids


def decimate(values: np.ndarray, points: int) -> np.ndarray:
    """Indices (sorted, unique) of at most ``points`` entries of ``values`` that keep its shape.

    Args:
        values: float [n], one series in step order; NaN for a missing value.
        points: the most indices to return, >= 4.

    Returns:
        int [m], m <= points: all of ``range(n)`` when n <= points; else per bucket of
        consecutive entries the first, the minimum and the maximum, and the last entry
        (see the module docstring). NaNs are never a bucket's minimum or maximum.
    """
    n = len(values)
    if n <= points:
        return np.arange(n)
    buckets = (points - 1) // 3
    width = math.ceil(n / buckets)
    count = math.ceil(n / width)  # buckets actually used (<= buckets)
    pad = count * width - n
    low = np.concatenate([np.where(np.isnan(values), np.inf, values), np.full(pad, np.inf)]).reshape(count, width)
    high = np.concatenate([np.where(np.isnan(values), -np.inf, values), np.full(pad, -np.inf)]).reshape(count, width)
    starts = np.arange(count) * width
    picks = np.concatenate([starts, starts + low.argmin(axis=1), starts + high.argmax(axis=1), [n - 1]])
    return np.unique(np.minimum(picks, n - 1))  # a padded bucket's argmin/argmax never exceeds n - 1


def significant(array: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """``array`` rounded to ``digits`` significant digits (0, NaN and infinities as they are).

    A loss of 0.123456789012 goes out as 0.123457: the answer halves, and so do its encoding,
    transfer and parsing, with far more precision than a chart or a hover label shows.
    """
    finite = np.isfinite(array) & (array != 0)
    magnitude = np.floor(np.log10(np.abs(array, where=finite, out=np.ones_like(array))))
    wanted = finite & (np.abs(magnitude) < 100)  # beyond, the scale itself would overflow
    scale = 10.0 ** (digits - 1 - np.where(wanted, magnitude, 0))
    return np.where(wanted, np.round(array * scale) / scale, array)


def _json_floats(array: np.ndarray) -> list[float | None]:
    """Plain floats for JSON: NaN and infinities become None (JSON has neither)."""
    out: list[float | None] = array.tolist()
    if not np.isfinite(array).all():
        out = [v if math.isfinite(v) else None for v in out]  # type: ignore[arg-type]
    return out


def series_of(rows: Sequence[Sequence[Any]], points: int) -> tuple[dict[str, dict[str, list[Any]]], float | None]:
    """The decimated loss parts of ``rows`` (``(step, *SERIES, time)`` in step order) and ``t0``.

    Returns ``({part: {"step": [...], "wall": [...], "value": [...]}}, t0)``: ``wall`` is seconds
    since ``t0``, the time the job's first recorded step ended (None without steps or times).
    """
    if not rows:
        return {key: {"step": [], "wall": [], "value": []} for key in SERIES}, None
    table = np.array(list(itertools.chain.from_iterable(rows)), dtype=float).reshape(len(rows), len(SERIES) + 2)
    steps, times = table[:, 0].astype(np.int64), table[:, -1]
    finite = np.isfinite(times)
    t0 = float(times[finite][0]) if finite.any() else None
    wall = np.round(times - t0, 3) if t0 is not None else np.full(len(rows), np.nan)
    out = {}
    for i, key in enumerate(SERIES, start=1):
        keep = decimate(table[:, i], points)
        out[key] = {
            "step": steps[keep].tolist(),
            "wall": _json_floats(wall[keep]),
            "value": _json_floats(significant(table[keep, i])),
        }
    return out, t0


def best_of(evals: Iterable[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    """``{"value", "step"}`` of the highest ``key`` (``map50``, ``map``) over ``evals``; the
    earliest step on a tie; None when no evaluation has it."""
    best: dict[str, Any] | None = None
    for record in evals:
        value = record.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and (best is None or value > best["value"]):
            best = {"value": value, "step": record.get("step")}
    return best


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: ``{"train": {"steps": 5}}`` -> ``{"train.steps": 5}``.

    Only dicts nest; a list (``priors.scales``) is one value.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_table(configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every dotted key of ``configs`` (first-seen order) with one value per config and whether
    they differ: ``[{"key", "values", "differs"}]``. A key a config lacks is None there and
    counts as a difference; ``name`` is left out (:data:`NOT_COMPARED`)."""
    flats = [flatten(c) for c in configs]
    keys = [k for k in dict.fromkeys(itertools.chain.from_iterable(flats)) if k not in NOT_COMPARED]
    rows = []
    for key in keys:
        values = [flat.get(key, _MISSING) for flat in flats]
        differs = any(_differs(values[0], v) for v in values[1:])
        rows.append({"key": key, "values": [None if v is _MISSING else v for v in values], "differs": differs})
    return rows


def _differs(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is not b
    if isinstance(a, bool) or isinstance(b, bool):  # 1 and 1.0 are one setting, True and 1 are not
        return type(a) is not type(b) or a != b
    return bool(a != b)


def heavy_part(store: JobStore, job_id: str, points: int) -> dict[str, Any]:
    """What a job's entry reads from the metrics and evals tables: ``t0``, ``last_step``,
    ``steps_recorded``, ``best``, ``metrics`` (decimated) and ``evals``."""
    rows = store.metric_rows(job_id, (*SERIES, "time"))
    series, t0 = series_of(rows, points)
    evals = store.evals(job_id)
    return {
        "last_step": int(rows[-1][0]) if rows else 0,
        "steps_recorded": len(rows),
        "best": {"map50": best_of(evals, "map50"), "map": best_of(evals, "map")},
        "t0": t0,
        "metrics": series,
        "evals": evals,
    }


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class CompareService:
    """Comparisons of a store's jobs (one per app, built in the lifespan).

    A finished job's records never change (a resume makes it queued again, and its next finish
    has another ``finished_at``), so the encoded JSON of its metrics and evaluations is kept per
    ``(job, points)`` in a small LRU cache of at most ``cache_bytes``: reloading or sharing a
    comparison of finished runs reads nothing but the jobs' rows. Jobs still queued or running
    are read every time.
    """

    def __init__(self, store: JobStore, *, cache_bytes: int = CACHE_BYTES) -> None:
        self.store = store
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[str, int], tuple[tuple[Any, ...], str]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def compare_json(self, ids: Sequence[str], *, points: int = DEFAULT_POINTS) -> str:
        """The comparison of ``ids`` as JSON text (see the module docstring); :class:`NotFound`
        for an unknown id. ``{"points", "jobs": [...], "config": config_table(...)}``."""
        found = [(job_id, self.store.get_job(job_id)) for job_id in ids]
        unknown = [job_id for job_id, job in found if job is None]
        if unknown:
            raise NotFound(f"no job {', '.join(unknown)}")
        entries = []
        configs = []
        for index, (job_id, job) in enumerate(found):
            assert job is not None
            config = job.config or {}
            configs.append(config)
            light = {
                "id": job_id,
                "name": job.name,
                "status": job.status.value,
                "color": COLORS[index % len(COLORS)],
                "step": job.step,
                "total_steps": job.total_steps,
                "batch_size": (config.get("train") or {}).get("batch_size"),
                "config": config,
            }
            # Two JSON objects joined into one: "{...light}" + "{...heavy}" -> "{...light,...heavy}".
            entries.append(_encode(light)[:-1] + "," + self._heavy_json(job, points)[1:])
        return f'{{"points":{points},"jobs":[{",".join(entries)}],"config":{_encode(config_table(configs))}}}'

    def _heavy_json(self, job: Job, points: int) -> str:
        if job.status not in TERMINAL:
            return _encode(heavy_part(self.store, job.id, points))
        key = (job.id, points)
        version = (job.status, job.step, job.finished_at)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(key)
                return hit[1]
        text = _encode(heavy_part(self.store, job.id, points))
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._cached_bytes -= len(old[1])
            if len(text) <= self.cache_bytes:
                self._cache[key] = (version, text)
                self._cached_bytes += len(text)
            while self._cached_bytes > self.cache_bytes:
                _, (_, dropped) = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)
        return text
