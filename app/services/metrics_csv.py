"""A job's metrics as CSV: one row per training step, or one row per evaluation.

The rows are the store's (the same the metrics API and the charts read). Floats are written with
``repr``, the shortest text that parses back to the same double, so a spreadsheet or pandas gets
exactly the stored values; a value the store lacks is an empty cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.services.jobs import JobService
from app.store.jobs import METRIC_KEYS

CsvKind = Literal["steps", "evals"]
#: Columns of ``kind=steps``: ``metrics.jsonl``'s keys.
STEP_COLUMNS: tuple[str, ...] = ("step", *METRIC_KEYS)
#: Columns of ``kind=evals``: ``evals.jsonl``'s keys (``images``: how many validation images).
EVAL_COLUMNS: tuple[str, ...] = (
    "step",
    "map",
    "map50",
    "val_pos_clf",
    "val_neg_clf",
    "val_loc",
    "val_total",
    "images",
    "time",
)


@dataclass(frozen=True)
class CsvDownload:
    """A CSV file to stream: its download name and its lines (header first)."""

    filename: str
    lines: Iterator[str]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


def csv_lines(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """A header line, then one line per row with ``columns``' values (CRLF-terminated, RFC 4180)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # quoting and escaping by the standard library

    def line(values: Sequence[Any]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(columns)
    for row in rows:
        yield line([_cell(row.get(c)) for c in columns])


def metrics_csv(jobs: JobService, job_id: str, kind: CsvKind = "steps") -> CsvDownload:
    """The job's steps or evaluations as CSV; :class:`~app.domain.NotFound` for an unknown job.

    The rows are read before the first line is sent, so an unknown job is a 404, not a broken stream.
    """
    jobs.get(job_id)
    if kind == "evals":
        rows, columns = jobs.store.evals(job_id), EVAL_COLUMNS
    else:
        rows, columns = jobs.store.metrics(job_id), STEP_COLUMNS
    filename = f"ssdboard-{job_id}-{'evals' if kind == 'evals' else 'metrics'}.csv"
    return CsvDownload(filename=filename, lines=csv_lines(rows, columns))
