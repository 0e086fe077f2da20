"""The dataset registry over REST: list, show (with the validation report), delete, and uploads
of a ``.zip`` that are imported in a background thread.

The datasets themselves live in :class:`ssd.datasets.registry.Registry` (``DATA_DIR/datasets/``,
shared with the CLI). What this service adds lives in memory only:

- **Uploads.** A zip is streamed into its own folder ``DATA_DIR/uploads/upload-*/`` (flock'ed
  while in use; :meth:`DatasetService.start` removes what a stopped server left), checked as it
  arrives (a zip by its first bytes, else 415; ``max_dataset_bytes``, else 413), then queued. Its
  import slot is taken before the file streams (:meth:`ImportQueue.reserve`).
- **Imports.** :class:`app.services.imports.ImportQueue` runs the queued uploads one at a time,
  each in a process of its own with a memory limit (:meth:`Registry.import_dataset`, which builds
  in ``datasets/.tmp-*`` and renames at the end: the dataset is listed by the registry only once
  complete). Until then the import is an :class:`~app.services.imports.Import` of this process:
  ``importing`` with the registry's progress (``done``/``total``/``stage``), then ``ready`` (its
  ``dataset_id`` is the registered id) or ``failed`` with the error naming the file. A server
  that stops forgets them; the registry sweeps its half-built directories.

Errors are the domain errors of :mod:`app.domain`. TensorFlow is never imported.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import math
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain import ACTIVE, Conflict, Invalid, NotFound
from app.services.imports import Import, ImportQueue
from app.services.jobs import JobService
from app.services.problem_view import problem_view
from app.services.uploads import Upload, safe_filename, sweep_uploads
from app.settings import Settings
from ssd.datasets.records import DatasetIndex
from ssd.datasets.registry import (
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
INLINE_PROBLEMS = 100  # problems in GET /api/datasets/{id}; the rest through /problems
BOX_FORMATS = {"coco": "xywh", "voc": "xyxy", "yolo": "cxcywh_normalized"}


def kind_of(reason: Reason) -> str:
    """``image_dropped``, ``box_dropped`` or ``kept`` (kept with a note)."""
    if reason in IMAGE_DROPS:
        return "image_dropped"
    return "box_dropped" if reason in BOX_DROPS else "kept"


@dataclass(frozen=True)
class _Parsed:
    """A ready dataset's report with what the pages need to link its problems."""

    report: Report
    kept_files: frozenset[str]
    index: DatasetIndex


class DatasetService:
    """The datasets under ``settings.artifact_root`` and this server's uploads (one per app)."""

    def __init__(self, jobs: JobService, settings: Settings) -> None:
        self.jobs = jobs
        self.settings = settings
        self.registry = Registry(settings.artifact_root)  # every worker reads datasets from there
        self.uploads_dir = settings.data_dir / "uploads"
        self.imports = ImportQueue(self.registry, settings)
        self._parsed = functools.lru_cache(maxsize=4)(self._parse)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Remove what a stopped server left: upload folders and half-built imports."""
        swept = sweep_uploads(self.uploads_dir) + self.registry.sweep()
        if swept:
            log.info("removed %d unfinished uploads and imports: %s", len(swept), ", ".join(sorted(swept)))

    def close(self) -> None:
        """Forget the queued imports (their uploads removed) and stop the running one."""
        self.imports.close()

    # ------------------------------------------------------------------ reading
    def _find(self, dataset: str) -> Import | None:
        return self.imports.find(dataset)

    def _meta(self, dataset: str) -> dict[str, Any]:
        try:
            return self.registry.get(dataset)
        except DatasetNotFound as exc:
            raise NotFound(str(exc)) from None

    def list(self) -> list[dict[str, Any]]:
        """``mnist``, the imported datasets (oldest first), then this server's imports in progress or failed."""
        return [*self.registry.list(), *self.imports.unfinished()]

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
        if meta.get("builtin"):  # generated, not imported: there is no import report
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
        if meta.get("builtin"):
            raise NotFound(f"{meta['id']} is the built-in generator: it has no import report")
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
            self.imports.forget(found.id)
            return
        meta = self._meta(found.dataset_id if found is not None and found.dataset_id else dataset)
        if meta.get("builtin"):
            raise Conflict(f"{meta['id']} is the built-in dataset: it cannot be deleted")
        users = [
            job.id
            for status in sorted(ACTIVE)
            for job in self.jobs.list(status=status, limit=100_000)
            if (job.config or {}).get("data", {}).get("dataset") == meta["id"]
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
        """Check the form fields sent so far, take an import slot (Conflict when none is free),
        then open the file an upload streams into; discarding the upload gives the slot back."""
        self.check_form(fields, filename)
        release = self.imports.reserve()
        try:
            upload = Upload(self.uploads_dir, filename, max_bytes=self.settings.max_dataset_bytes)
        except BaseException:
            release()
            raise
        upload.release = release
        return upload

    def start_import(self, upload: Upload, fields: Mapping[str, str]) -> dict[str, Any]:
        """Queue the import of a received upload; returns the import (``status: importing``)."""
        upload.finish()
        options = self.check_form(fields, upload.filename)
        item = Import(
            id=uuid.uuid4().hex[:12],
            name=options["name"] or "dataset",
            format=options["format"],
            source=upload.path.name,
            size=upload.size,
            val_fraction=options["val_fraction"],
        )
        self.imports.submit(item, upload)
        return item.to_dict()


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
