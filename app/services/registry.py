"""The dataset registry over REST: list, show (with the validation report), delete, and uploads
of a ``.zip`` that are imported in a background thread.

The datasets themselves live in :class:`ssd.datasets.registry.Registry` (``DATA_DIR/datasets/``,
shared with the CLI). What this service adds lives in memory only:

- **Uploads.** A zip is streamed into its own folder ``DATA_DIR/uploads/upload-*/`` (flock'ed
  while in use; :meth:`RegistryService.start` removes what a stopped server left), checked as it
  arrives (a zip by its first bytes, else 415; ``max_dataset_bytes``, else 413), then queued.
- **Imports.** One background thread imports the queued uploads one at a time
  (:meth:`Registry.import_dataset`, which builds in ``datasets/.tmp-*`` and renames at the end:
  the dataset is listed by the registry only once complete). Until then the import is an
  :class:`Import` of this process: ``importing`` with the registry's progress
  (``done``/``total``/``stage``), then ``ready`` (its ``dataset_id`` is the registered id) or
  ``failed`` with the error naming the file. A server that stops forgets them; the registry
  sweeps its half-built directories.

Errors are the domain errors of :mod:`app.domain`. TensorFlow is never imported.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import math
import posixpath
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from app.domain import ACTIVE, Conflict, Invalid, NotFound
from app.services.jobs import JobService
from app.services.problem_view import problem_view
from app.services.uploads import Upload, safe_filename, sweep_uploads
from app.settings import Settings
from ssd.datasets.records import DatasetError, DatasetIndex
from ssd.datasets.registry import (
    MNIST,
    BuiltInDataset,
    DatasetNotFound,
    NameTaken,
    Registry,
    RegistryError,
    check_name,
)
from ssd.datasets.report import BOX_DROPS, DESCRIPTIONS, IMAGE_DROPS, NOTES, Reason, Report

log = logging.getLogger("ssdboard.datasets")

FORMATS = ("auto", "coco", "voc", "yolo")
MAX_PENDING = 8  # imports queued or running at once; more is a 409
KEEP_DONE = 100  # finished imports remembered (their upload id -> dataset id, or their error)
INLINE_PROBLEMS = 100  # problems in GET /api/datasets/{id}; the rest through /problems
BOX_FORMATS = {"coco": "xywh", "voc": "xyxy", "yolo": "cxcywh_normalized"}
Status = Literal["importing", "ready", "failed"]


def kind_of(reason: Reason) -> str:
    """``image_dropped``, ``box_dropped`` or ``kept`` (kept with a note)."""
    if reason in IMAGE_DROPS:
        return "image_dropped"
    return "box_dropped" if reason in BOX_DROPS else "kept"


@dataclass
class Import:
    """An upload's import, known to this process only."""

    id: str
    name: str
    format: str
    source: str
    size: int
    val_fraction: float
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    status: Status = "importing"
    progress: dict[str, Any] = field(default_factory=lambda: {"done": 0, "total": 1, "stage": "queued"})
    error: str | None = None
    dataset_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the API answers while importing or after a failure."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "format": self.format,
            "created": self.created,
            "source": self.source,
            "bytes": self.size,
            "progress": dict(self.progress),
            "error": self.error,
            "builtin": False,
        }


@dataclass(frozen=True)
class _Parsed:
    """A ready dataset's report with what the pages need to link its problems."""

    report: Report
    kept_files: frozenset[str]
    index: DatasetIndex


class RegistryService:
    """The datasets under ``settings.artifact_root`` and this server's uploads (one per app)."""

    def __init__(self, jobs: JobService, settings: Settings) -> None:
        self.jobs = jobs
        self.settings = settings
        self.registry = Registry(settings.artifact_root)  # every worker reads datasets from there
        self.uploads_dir = settings.data_dir / "uploads"
        self._imports: OrderedDict[str, Import] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Import, Upload] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._parsed = functools.lru_cache(maxsize=4)(self._parse)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Remove what a stopped server left: upload folders and half-built imports."""
        swept = sweep_uploads(self.uploads_dir) + self.registry.sweep()
        if swept:
            log.info("removed %d unfinished uploads and imports: %s", len(swept), ", ".join(sorted(swept)))

    def close(self) -> None:
        """Forget the queued imports (their uploads removed); the running one ends on its own."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].discard()
        self._queue.put(None)

    # ------------------------------------------------------------------ reading
    def _find(self, dataset: str) -> Import | None:
        with self._lock:
            found = self._imports.get(dataset)
            if found is None:
                found = next((i for i in self._imports.values() if i.status == "importing" and i.name == dataset), None)
            return found

    def _meta(self, dataset: str) -> dict[str, Any]:
        try:
            return self.registry.get(dataset)
        except DatasetNotFound as exc:
            raise NotFound(str(exc)) from None

    def list(self) -> list[dict[str, Any]]:
        """``mnist``, the imported datasets (oldest first), then this server's imports in progress or failed."""
        with self._lock:
            pending = [i.to_dict() for i in self._imports.values() if i.status != "ready"]
        return [*self.registry.list(), *pending]

    def summary(self, dataset: str) -> dict[str, Any]:
        """One dataset's meta (or an upload's import) without the report; NotFound."""
        found = self._find(dataset)
        if found is not None and found.status != "ready":
            return found.to_dict()
        return self._meta(found.dataset_id if found is not None and found.dataset_id else dataset)

    def get(self, dataset: str) -> dict[str, Any]:
        """One dataset by id or name (or an upload's id): its meta, and the report once ready."""
        found = self._find(dataset)
        if found is not None and found.status != "ready":
            return found.to_dict()
        meta = self._meta(found.dataset_id if found is not None and found.dataset_id else dataset)
        if meta["id"] == MNIST:
            return {**meta, "report": None}
        parsed = self._parsed(meta["id"])
        report = parsed.report.to_dict()
        report["problems"] = self._problems(meta["id"], range(min(INLINE_PROBLEMS, len(parsed.report.problems))))
        report["problems_total"] = len(parsed.report.problems)
        report["reasons"] = [
            {"reason": r.value, "kind": kind_of(r), "count": parsed.report.counts[r], "description": DESCRIPTIONS[r]}
            for r in (*IMAGE_DROPS, *BOX_DROPS, *NOTES)
        ]
        return {**meta, "report": report}

    def _parse(self, dataset_id: str) -> _Parsed:
        index = self.registry.index(dataset_id)
        return _Parsed(self.registry.report(dataset_id), frozenset(r.file for r in index.images), index)

    def _ready(self, dataset: str) -> tuple[dict[str, Any], _Parsed]:
        found = self._find(dataset)
        if found is not None and found.status != "ready":
            raise NotFound(f"the dataset {dataset!r} is {found.status}: it has no report")
        meta = self._meta(found.dataset_id if found is not None and found.dataset_id else dataset)
        if meta["id"] == MNIST:
            raise NotFound("mnist is the built-in generator: it has no import report")
        return meta, self._parsed(meta["id"])

    def _problems(self, dataset_id: str, positions: Iterable[int]) -> builtins.list[dict[str, Any]]:
        parsed = self._parsed(dataset_id)
        out = []
        for k in positions:
            problem = parsed.report.problems[k]
            out.append(
                {
                    "index": k,
                    **problem.to_dict(),
                    "kind": kind_of(problem.reason),
                    "viewable": _stored(problem.image) in parsed.kept_files,
                    "drawable": _numbers(problem.box) is not None,
                }
            )
        return out

    def problems(self, dataset: str, *, reason: str | None, offset: int, limit: int) -> dict[str, Any]:
        """A page of a ready dataset's problems, of one reason or all."""
        meta, parsed = self._ready(dataset)
        if reason is not None and reason not in Reason.__members__.values():
            raise Invalid(("query", "reason"), f"one of {', '.join(r.value for r in Reason)}, not {reason!r}")
        chosen = [k for k, p in enumerate(parsed.report.problems) if reason is None or p.reason.value == reason]
        page = chosen[offset : offset + limit]
        items = self._problems(meta["id"], page)
        return {
            "id": meta["id"],
            "reason": reason,
            "total": len(chosen),
            "offset": offset,
            "limit": limit,
            "items": items,
        }

    def problem(self, dataset: str, k: int) -> dict[str, Any]:
        """Problem ``k`` with its image at its own size, the kept boxes and the problem's box
        (pixel ``xyxy``) as a Plotly figure; ``figure`` is None for an image that was dropped."""
        meta, parsed = self._ready(dataset)
        if k >= len(parsed.report.problems):
            raise NotFound(f"the dataset has {len(parsed.report.problems)} problems, not {k + 1}")
        item = self._problems(meta["id"], [k])[0]
        record = next((r for r in parsed.index.images if r.file == _stored(item["image"])), None)
        view = problem_view(
            self.registry.path(meta["id"]),
            record,
            parsed.index.classes,
            reason=Reason(item["reason"]),
            box=_numbers(item["box"]),
            box_format=BOX_FORMATS.get(meta["format"], "xyxy"),
        )
        dataset_info = {"id": meta["id"], "name": meta["name"]}
        return {"dataset": dataset_info, "total": len(parsed.report.problems), "problem": item, **view}

    # ------------------------------------------------------------------ deleting
    def delete(self, dataset: str) -> None:
        """Remove an imported dataset (or forget a failed upload). Conflict for ``mnist``, an
        import still running, and a dataset that a queued or running job trains on."""
        found = self._find(dataset)
        if found is not None and found.status == "importing":
            raise Conflict(f"the dataset {found.name!r} is still importing: delete it once it is ready or failed")
        if found is not None and found.status == "failed":
            with self._lock:
                self._imports.pop(found.id, None)
            return
        meta = self._meta(found.dataset_id if found is not None and found.dataset_id else dataset)
        if meta["id"] == MNIST:
            raise Conflict("mnist is the built-in dataset: it cannot be deleted")
        users = [
            job["id"]
            for status in sorted(ACTIVE)
            for job in self.jobs.list(status=status, limit=100_000)
            if (job.get("config") or {}).get("data", {}).get("dataset") == meta["id"]
        ]
        if users:
            raise Conflict(f"the dataset {meta['name']!r} is used by queued or running jobs: {', '.join(users)}")
        try:
            self.registry.remove(meta["id"])
        except BuiltInDataset as exc:
            raise Conflict(str(exc)) from None
        except DatasetNotFound as exc:
            raise NotFound(str(exc)) from None

    # ------------------------------------------------------------------ uploading
    def check_form(self, fields: Mapping[str, str], filename: str | None = None) -> dict[str, Any]:
        """The import options of an upload form (``name``, ``format``, ``val_fraction``), checked:
        Invalid naming the field, Conflict for a name in use. ``name`` defaults to the file's name."""
        fmt = fields.get("format", "auto") or "auto"
        if fmt not in FORMATS:
            raise Invalid(("body", "format"), f"one of {', '.join(FORMATS)}, not {fmt!r}")
        try:
            fraction = float(fields.get("val_fraction", "0.1") or "0.1")
        except ValueError:
            raise Invalid(("body", "val_fraction"), "a number in [0, 1)") from None
        if not 0.0 <= fraction < 1.0:
            raise Invalid(("body", "val_fraction"), f"a number in [0, 1), not {fraction}")
        name = fields.get("name") or ""
        if not name.strip():
            name = Path(safe_filename(filename)).stem if filename is not None else ""
        if not name:
            return {"format": fmt, "val_fraction": fraction, "name": None}  # the file's name decides later
        try:
            name = check_name(name)
        except NameTaken as exc:
            raise Conflict(f"name: {exc}: choose another name") from None
        except RegistryError as exc:
            raise Invalid(("body", "name"), str(exc)) from None
        self._check_free(name)
        return {"format": fmt, "val_fraction": fraction, "name": name}

    def _check_free(self, name: str) -> None:
        with contextlib.suppress(DatasetNotFound):
            meta = self.registry.get(name)
            if meta["name"] == name:
                raise Conflict(f"name: a dataset named {name!r} exists already (id {meta['id']}): choose another name")
        found = self._find(name)
        if found is not None and found.name == name:
            raise Conflict(f"name: a dataset named {name!r} is being imported (id {found.id}): choose another name")

    def begin_upload(self, filename: str, fields: Mapping[str, str]) -> Upload:
        """Check the form fields sent so far, then open the file an upload streams into."""
        self.check_form(fields, filename)
        with self._lock:
            if sum(i.status == "importing" for i in self._imports.values()) >= MAX_PENDING:
                raise Conflict(f"{MAX_PENDING} imports are waiting already: try again when one is done")
        return Upload(self.uploads_dir, filename, max_bytes=self.settings.max_dataset_bytes)

    def start_import(self, upload: Upload, fields: Mapping[str, str]) -> dict[str, Any]:
        """Queue the import of a received upload; returns the import (``status: importing``)."""
        upload.finish()
        options = self.check_form(fields, upload.filename)
        with self._lock:
            item = Import(
                id=uuid.uuid4().hex[:12],
                name=options["name"] or "dataset",
                format=options["format"],
                source=upload.path.name,
                size=upload.size,
                val_fraction=options["val_fraction"],
            )
            self._imports[item.id] = item
            upload.taken = True
            self._queue.put((item, upload))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="dataset-import", daemon=True)
                self._worker.start()
        return item.to_dict()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            item, upload = job
            try:
                self._import(item, upload)
            finally:
                upload.discard()

    def _import(self, item: Import, upload: Upload) -> None:
        def progress(done: int, total: int, stage: str) -> None:
            item.progress = {"done": done, "total": total, "stage": stage}

        try:
            meta = self.registry.import_dataset(
                upload.path,
                format=item.format,
                name=item.name,
                val_fraction=item.val_fraction,
                max_unpacked_bytes=self.settings.max_dataset_unpacked_bytes,
                progress=progress,
                dataset_id=item.id,  # the id the 202 answered is the dataset's for good
            )
        except (DatasetError, RegistryError) as exc:
            item.error, item.status = str(exc), "failed"
        except Exception as exc:  # the import must not kill the thread: say what happened
            log.exception("import of %s failed", upload.path.name)
            item.error, item.status = f"{upload.path.name}: {type(exc).__name__}: {exc}", "failed"
        else:
            item.dataset_id, item.status = meta["id"], "ready"
        with self._lock:
            done = [k for k, i in self._imports.items() if i.status != "importing"]
            for key in done[: max(0, len(done) - KEEP_DONE)]:
                del self._imports[key]


def _stored(image: str | None) -> str | None:
    """Where the registry keeps an image of the source (``images/<path>``)."""
    return None if image is None else posixpath.normpath(posixpath.join("images", image))


def _numbers(box: list[Any] | None) -> list[float] | None:
    """The four finite numbers of a box as written, or None."""
    if not box or len(box) != 4:
        return None
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) and not any(isinstance(v, bool) for v in box) else None
