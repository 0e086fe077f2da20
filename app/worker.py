"""The training worker: the body of one job's spawned process.

It imports TensorFlow (the server never does), trains with :class:`ssd.train.Trainer` into the
job directory, resuming from its checkpoint, and reports through a multiprocessing queue with
the typed messages of :mod:`app.messages` (started, a record per step and evaluation, a
checkpoint notice per checkpoint, done last).

It stops before the next step when the job's cancel event is set or when the server that
started it is gone (its parent pid changed), so an orphan never trains on. A lock file in the
job directory keeps a new worker from starting until an orphan has written its checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path
from typing import Any, Protocol

from app.messages import CheckpointSaved, Done, Message, Record, Started
from ssd.checkpoint import METRICS_FILE


class _Queue(Protocol):
    def put(self, obj: Any) -> None: ...

    def cancel_join_thread(self) -> None: ...


class _Flag(Protocol):
    def is_set(self) -> bool: ...


def read_jsonl(path: Path, *, after_step: int = 0, up_to_step: int) -> list[dict[str, Any]]:
    """Records with ``after_step < step <= up_to_step`` of a JSON-lines file (bad lines skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and after_step < record.get("step", -1) <= up_to_step:
            out.append(record)
    return out


def describe(exc: BaseException) -> str:
    """A failed job's error text: ``str(exc)`` for the library's errors, else prefixed with the type."""
    message = str(exc)
    if message and (type(exc).__module__.startswith("ssd.") or type(exc) in (ValueError, RuntimeError)):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def run_job(
    job_id: str,
    config: dict[str, Any],
    job_dir: str,
    queue: _Queue,
    cancel: _Flag,
    parent_pid: int,
    nice: int = 0,
    known_step: int = 0,
) -> None:
    """Train ``config`` into ``job_dir``; every outcome ends with one ``done`` message."""

    def send(message: Message) -> None:
        queue.put(message)

    # Ctrl-C in the server's terminal reaches the whole process group: the server's shutdown
    # cancels this job (which checkpoints first) instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        os.nice(nice)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = Path(job_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / "worker.lock", "w")  # noqa: SIM115 - held for the process's life
    fcntl.flock(lock, fcntl.LOCK_EX)

    def should_stop() -> bool:
        return cancel.is_set() or os.getppid() != parent_pid

    trainer: Any = None
    started = False  # the trainer's step means something only once its checkpoint is loaded
    try:
        from ssd.config import from_dict
        from ssd.train import Trainer

        class ReportingTrainer(Trainer):
            """Tells the server about every checkpoint once it is on disk."""

            def save_checkpoint(self) -> None:
                super().save_checkpoint()
                send(CheckpointSaved(job_id, self.step))

        if should_stop():  # cancelled (or the server stopped) while TensorFlow was loading
            send(Done(job_id, "cancelled", None))
            return
        trainer = ReportingTrainer(from_dict(config), out)
        if trainer.has_checkpoint():
            trainer.load_checkpoint()
        history = read_jsonl(out / METRICS_FILE, after_step=known_step, up_to_step=trainer.step)
        send(Started(job_id, trainer.step, os.getpid(), history))
        started = True
        result = trainer.fit(
            on_step=lambda m: send(Record(job_id, "step", m)),
            on_eval=lambda m: send(Record(job_id, "eval", m)),
            should_stop=should_stop,
        )
        send(Done(job_id, result.status, result.step))
    except BaseException as exc:  # noqa: BLE001 - every failure is reported, then the process ends
        send(Done(job_id, "failed", trainer.step if started else None, describe(exc)))
    finally:
        if os.getppid() != parent_pid:
            # Nobody reads the queue any more: exiting must not wait for its buffer to drain.
            queue.cancel_join_thread()
        lock.close()
