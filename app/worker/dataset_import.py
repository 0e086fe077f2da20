"""One dataset import in a process of its own: ``python -m app.worker.dataset_import``.

The server (:class:`app.services.imports.ImportQueue`) starts one per uploaded dataset, so that
what an import holds — an annotation file's records, decoded images — never lands in the server's
memory, and a dataset too large for its limit fails alone: the server and every job's stream go on.

Protocol. The request is one JSON object on stdin (:class:`ImportRequest`'s fields). Each line on
stdout is one JSON object: ``{"progress": [done, total, stage]}`` while it runs, then exactly one
outcome with this process's peak resident memory, ``"peak_bytes"``:

- ``{"ready": META}``: registered (``META`` is the registry's meta of the dataset);
- ``{"failed": MESSAGE}``: the dataset cannot be imported (the message names the file);
- ``{"out_of_memory": STAGE}``: an allocation failed past ``memory_bytes`` during ``STAGE``;
- ``{"cancelled": true}``: SIGTERM or SIGINT (the server stopping); nothing is left behind.

Its memory is bounded by ``RLIMIT_AS`` (``memory_bytes``), set once the modules it needs are
loaded: an allocation past it is a ``MemoryError`` where it happens, not a kernel out-of-memory
kill of whichever process is largest (a resident-memory watch would poll, and one JSON value can
allocate hundreds of MB between two polls). The server starts it with ``MALLOC_ARENA_MAX=2`` and
one BLAS thread: glibc reserves 64 MiB of address space per thread arena, so the 8 image-checking
threads reserved 0.5 GiB that the limit counts but the import never used. It exits when the server
is gone (:func:`ssd.lifetime.exit_with_parent`); what it leaves then, the next start sweeps.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

from ssd.lifetime import exit_with_parent

EXIT_ORPHANED = 4  # the server went away: nobody reads the outcome


class Cancelled(BaseException):
    """SIGTERM: the server is stopping. A BaseException, so no ``except Exception`` swallows it."""


@dataclass(frozen=True)
class ImportRequest:
    """What one import needs; travels as JSON on the child's stdin."""

    data_dir: str
    source: str
    format: str
    name: str
    val_fraction: float
    dataset_id: str
    max_unpacked_bytes: int
    memory_bytes: int
    limits: dict[str, Any] = field(default_factory=dict)  # ImportLimits' fields, names included


def limit_memory(limit: int) -> None:
    """Bound this process's address space to ``limit`` bytes (never above the hard limit it has)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def peak_bytes() -> int:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(request: ImportRequest, out: IO[str]) -> None:
    """Import ``request``'s source, writing progress and the outcome to ``out`` (see the module)."""
    from ssd.datasets import sources  # noqa: F401 - loaded before the limit, not under it
    from ssd.datasets.limits import ImportLimits
    from ssd.datasets.records import DatasetError
    from ssd.datasets.registry import Registry, RegistryError

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    stage = "queued"

    def progress(done: int, total: int, at: str) -> None:
        nonlocal stage
        stage = at
        send({"progress": [done, total, at]})

    limit_memory(request.memory_bytes)
    outcome: dict[str, Any]
    try:
        meta = Registry(request.data_dir).import_dataset(
            request.source,
            format=request.format,
            name=request.name,
            val_fraction=request.val_fraction,
            max_unpacked_bytes=request.max_unpacked_bytes,
            progress=progress,
            dataset_id=request.dataset_id,
            limits=ImportLimits(**request.limits),
        )
    except MemoryError:
        outcome = {"out_of_memory": stage}
    except (Cancelled, KeyboardInterrupt):
        outcome = {"cancelled": True}
    except (DatasetError, RegistryError) as exc:
        outcome = {"failed": str(exc)}
    except Exception as exc:  # a bug: the server's log gets the traceback, the user a sentence
        traceback.print_exc()
        outcome = {"failed": f"{os.path.basename(request.source)}: {type(exc).__name__}: {exc}"}
    else:
        outcome = {"ready": meta}
    send({**outcome, "peak_bytes": peak_bytes()})


def main() -> int:
    """Read the request, run it; 0 once an outcome was written."""
    exit_with_parent(EXIT_ORPHANED)

    def cancel(signum: int, frame: FrameType | None) -> None:
        raise Cancelled

    signal.signal(signal.SIGTERM, cancel)
    # Outcomes go to a copy of stdout; stdout itself becomes stderr, so nothing a library prints
    # can be taken for a message.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    request = ImportRequest(**json.loads(sys.stdin.read()))
    try:
        run(request, out)
    except Cancelled:  # before the import began: nothing to clean up
        out.write(json.dumps({"cancelled": True, "peak_bytes": peak_bytes()}) + "\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
