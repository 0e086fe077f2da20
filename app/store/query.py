"""Filters and sort keys of the runs table, as portable SQL over the ``jobs`` table.

One place that knows how a filter (status, tag, dataset, sweep, name) and a sort key
(``best_map50``, ``-duration``, ...) become SQL, for :meth:`app.store.jobs.JobStore.list_jobs` and
:meth:`~app.store.jobs.JobStore.count_jobs`. Everything is written with SQLAlchemy constructs that
SQLite and PostgreSQL both compile: JSON paths for the last step's losses, a ``LIKE`` over the
tags' JSON text, ``CASE`` instead of ``NULLS LAST``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.store.tables import jobs

LOSS_PARTS = ("pos_clf", "neg_clf", "loc", "total")

# Sort key -> the column or expression it orders by. Loss parts and images/s are the latest
# step's (``last_metrics``); the trainer never reports a non-finite loss, so the JSON is plain.
SORT_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "created_at": jobs.c.created_at,
    "name": sa.func.lower(jobs.c.name),  # people read "Alpha" and "beta" in that order
    "status": jobs.c.status,
    "step": jobs.c.step,
    "best_map50": jobs.c.best_map50,
    "best_map": jobs.c.best_map,
    "duration": jobs.c.duration_s,
    "images_per_sec": jobs.c.last_metrics["images_per_sec"].as_float(),
    **{part: jobs.c.last_metrics[part].as_float() for part in LOSS_PARTS},
}
SORT_KEYS = tuple(SORT_COLUMNS)
DEFAULT_SORT = "-created_at"


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows; every field left None matches all.

    ``status``: one status or several; ``tag``: jobs carrying this tag; ``dataset``: the
    config's ``data.dataset``; ``sweep_id``: the sweep that queued them; ``name``: a
    case-insensitive substring of the name.
    """

    status: str | Sequence[str] | None = None
    tag: str | None = None
    dataset: str | None = None
    sweep_id: str | None = None
    name: str | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The WHERE clauses, ANDed by the caller."""
        clauses: list[sa.ColumnElement[bool]] = []
        if isinstance(self.status, str):
            clauses.append(jobs.c.status == self.status)
        elif self.status is not None:
            clauses.append(jobs.c.status.in_(list(self.status)))
        if self.tag is not None:
            # Tags are stored as compact JSON (["a","b"]); the tag's own JSON text, quotes
            # included, matches one whole tag and never a part of another. Portable, unlike
            # json_each (SQLite) or ``?`` (PostgreSQL jsonb).
            clauses.append(sa.cast(jobs.c.tags, sa.Text).contains(json.dumps(self.tag), autoescape=True))
        if self.dataset is not None:
            clauses.append(jobs.c.dataset == self.dataset)  # the config's data.dataset, kept as a column
        if self.sweep_id is not None:
            clauses.append(jobs.c.sweep_id == self.sweep_id)
        if self.name:
            clauses.append(jobs.c.name.icontains(self.name, autoescape=True))
        return clauses


def parse_sort(sort: str | None) -> tuple[str, bool]:
    """``"-best_map50"`` -> ``("best_map50", True)`` (descending); ValueError for an unknown key."""
    sort = sort or DEFAULT_SORT
    descending = sort.startswith("-")
    key = sort.lstrip("-+")
    if key == "duration_s":
        key = "duration"
    if key not in SORT_COLUMNS:
        raise ValueError(f"unknown sort key {key!r}; one of {', '.join(SORT_KEYS)}, with '-' for descending")
    return key, descending


@functools.cache
def order_by(sort: str | None) -> tuple[sa.ColumnElement[Any], ...]:
    """ORDER BY for a sort key: jobs without the value last in either direction, then newest first.

    Built once per key: building the expressions cost more than SQLite's sort of 1,000 ids.
    """
    key, descending = parse_sort(sort)
    column = SORT_COLUMNS[key]
    order: list[sa.ColumnElement[Any]] = []
    if key not in ("created_at", "name", "status", "step", "duration"):  # the nullable ones
        order.append(sa.case((column.is_(None), 1), else_=0))
    order.append(column.desc() if descending else column.asc())
    if key != "created_at":
        order.append(jobs.c.created_at.desc())
    order.append(jobs.c.id)
    return tuple(order)


def best_after(current: dict[str, Any], evaluations: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``best_map50``, ``best_map50_step``, ``best_map``, ``best_map_step`` after ``evaluations``.

    The best value and the first step that reached it; ``current`` holds the values so far.
    """
    best = dict(current)
    for evaluation in evaluations:
        for key in ("map50", "map"):
            value, step = evaluation.get(key), evaluation["step"]
            if not isinstance(value, int | float) or value != value:  # absent, or NaN
                continue
            held = best.get(f"best_{key}")
            if held is None or value > held or (value == held and step < best[f"best_{key}_step"]):
                best[f"best_{key}"], best[f"best_{key}_step"] = float(value), step
    return best
