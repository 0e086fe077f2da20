"""The training worker: the body of one job's spawned process (:class:`JobRun`, run by :func:`run_job`).

It imports TensorFlow (the server never does), trains with :class:`ssd.train.Trainer` into the
job directory, resuming from its checkpoint, and ``put``s the typed messages of
:mod:`app.worker.messages` (started, a record per step and evaluation, a checkpoint notice per
checkpoint, done last) to its reporter: an :class:`app.worker.reporter.HttpReporter`, which posts
them to the server (:func:`app.worker.main.run_reporting` sets it up, for every executor).

A config with ``train.workers = N > 1`` trains with :class:`ssd.distributed.DistributedTrainer`:
this process is the chief (it alone writes, evaluates and reports, so the messages are those of
one process) and starts workers ``1..N-1``: as its own child processes on loopback
(:meth:`~ssd.distributed.DistributedTrainer.with_local_peers`, as ``ssdboard train`` does), or,
under the Ray executor, as Ray actors that may sit on other nodes (:mod:`app.worker.ray_peers`). A
cancel is the chief's stop flag, which every worker agrees on before each step, so all stop
after the same step. The peers end with the chief: it kills them when it ends (an error, its
memory watch) and each exits by itself within a second of the chief's death (a SIGKILL).

The same function runs under either executor: a local worker is handed the server's pid and its
executor's cancel event too; a worker elsewhere (a Ray job) no parent pid.

It stops before the next step when the job's cancel event is set or when the server that
started it is gone (a local worker's parent pid changed), so an orphan never trains on. A lock file in the
job directory keeps a new worker from starting until an orphan has written its checkpoint.

It watches its own resident memory (:class:`MemoryWatch`; with peers, the largest of its own and
theirs) against the limit the runner passes (``SSDBOARD_WORKER_MEMORY_GIB``, per process):
between steps, and on a thread every 150 ms, because one TensorFlow op can allocate gigabytes.
Over the limit, the job fails with ``out of memory: ...`` before the kernel's out-of-memory
killer acts. Between steps that is an exception like any
other; from the thread (the main thread is inside an op it cannot interrupt) the worker waits
for a checkpoint being written, sends its ``done`` message, flushes the reporter and exits with
``os._exit``. Either way nothing on disk is removed: the last checkpoint and the metrics stay.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from app.worker.memory import GIB, MemoryWatch, OutOfMemory, resident_bytes
from app.worker.messages import CheckpointSaved, Done, Message, Outcome, Planned, Record, Started, Waiting
from app.worker.peer_failures import JobError, PeerDied, collective_failure, peer_death
from ssd.checkpoint import METRICS_FILE, TRACEBACK_FILE

log = logging.getLogger(__name__)
MAX_TRACEBACK_CHARS = 20_000  # the end of a traceback kept in TRACEBACK_FILE

if TYPE_CHECKING:  # TensorFlow: imported only once a run starts
    from ssd.distributed import PeerProcess
    from ssd.train import Trainer

# Starts workers 1..N-1 of a multi-worker job elsewhere: (config, job_dir, waiting, cancelled) ->
# ssd.distributed.Peers, where waiting(reason) tells the job page why the run has not started
# training yet and cancelled() whether to stop waiting.
MakePeers = Callable[[Any, Path, Callable[[str], None], Callable[[], bool]], Any]
# After TensorFlow aborts a collective, how long the chief waits for a dead peer's exit to show:
# the abort often comes first, and a peer's own exit status says more than the abort.
PEER_DEATH_WAIT = 3.0
EXIT_OUT_OF_MEMORY = 3  # the exit status of a worker its memory watch stopped
# How long the memory watch waits for a checkpoint being written, then for the reports to flush.
CHECKPOINT_WAIT = 60.0
FLUSH_WAIT = 10.0


class _Reports(Protocol):
    """Where messages go: an HttpReporter (anything with a multiprocessing queue's methods)."""

    def put(self, obj: Any) -> None: ...

    def cancel_join_thread(self) -> None: ...

    def close(self) -> object: ...

    def join_thread(self) -> None: ...


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
    if isinstance(exc, OutOfMemory | JobError):
        return message
    if message and (type(exc).__module__.startswith("ssd.") or type(exc) in (ValueError, RuntimeError)):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class JobRun:
    """One run of a job in its worker process: trains ``config`` into ``job_dir``, reporting to ``queue``.

    :meth:`run` is the whole run, and every outcome ends with one ``done`` message
    (:meth:`finish`), sent by the main thread or by the memory watch's (:meth:`out_of_memory`).
    The trainer reports its checkpoints here (:meth:`checkpoint_saved`, under :attr:`checkpointing`):
    a single-process one and a multi-worker chief alike (:mod:`app.worker.trainers`). The arguments
    are :func:`run_job`'s.
    """

    def __init__(
        self,
        job_id: str,
        config: dict[str, Any],
        job_dir: str,
        queue: _Reports,
        cancel: _Flag,
        parent_pid: int | None,
        nice: int = 0,
        known_step: int = 0,
        memory_limit_gib: float | None = None,
        *,
        data_dir: str | None = None,
        make_peers: MakePeers | None = None,
    ) -> None:
        self.job_id = job_id
        self.config = config
        self.out = Path(job_dir)
        self.queue = queue
        self.cancel = cancel
        self.parent_pid = parent_pid
        self.nice = nice
        self.known_step = known_step
        self.memory_limit_gib = memory_limit_gib
        self.data_dir = data_dir
        self.make_peers = make_peers
        self.checkpointing = threading.Lock()  # held while a checkpoint is written
        self.reported_step: int | None = None  # the last step reported, None before Started
        self.peers: list[PeerProcess] = []  # the chief's peer processes, train.workers > 1
        self.peer_addresses: list[str] = []  # every worker's host:port, the chief's first
        self.watch: MemoryWatch | None = None
        self.trainer: Trainer | None = None
        self._started = False  # the trainer's step means something only once its checkpoint is loaded
        self._final = threading.Lock()  # one done message, whichever thread sends it
        self._finished = False
        self.outcome: Outcome | None = None  # the done message's status, once sent

    # ------------------------------------------------------------------ reports
    def send(self, message: Message) -> None:
        """Put a message on the reporter."""
        self.queue.put(message)

    def finish(self, message: Done) -> bool:
        """Send the done message unless one was sent already; whether this call sent it."""
        with self._final:
            if self._finished:
                return False
            self._finished = True
            self.outcome = message.status
            self.send(message)
            return True

    def on_step(self, metrics: dict[str, Any]) -> None:
        """A training step's record."""
        self.send(Record(self.job_id, "step", metrics))
        self.reported_step = metrics["step"]

    def on_eval(self, metrics: dict[str, Any]) -> None:
        """An evaluation's record."""
        self.send(Record(self.job_id, "eval", metrics))

    def on_plan(self, total_steps: int, reason: str) -> None:
        """A time budget's plan: the job's length (``train.time_budget``)."""
        self.send(Planned(self.job_id, total_steps, reason))

    def checkpoint_saved(self, step: int) -> None:
        """The trainer's checkpoint of ``step`` is on disk (:class:`app.worker.trainers.CheckpointSink`)."""
        self.send(CheckpointSaved(self.job_id, step))

    # ------------------------------------------------------------------ stops
    def orphaned(self) -> bool:
        """Whether the server that started this local worker is gone."""
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def stop_peers(self) -> None:
        """Kill the peers still running (they would wait for a chief that no longer steps)."""
        for process in self.peers:
            if process.poll() is None:
                process.kill()
                process.wait()

    def resident(self) -> int:
        """The largest resident memory of this process and its peers."""
        local = [p.pid for p in self.peers if p.pid is not None and p.poll() is None]  # a Ray peer elsewhere: None
        return max([resident_bytes(), *(resident_bytes(pid) for pid in local)])

    def out_of_memory(self, message: str) -> None:
        """On the watch's thread: the main thread is inside an op; stop the process from here."""
        # Never leave a half-replaced checkpoint: let one being written finish, and start no other.
        self.checkpointing.acquire(timeout=CHECKPOINT_WAIT)
        if not self.finish(Done(self.job_id, "failed", self.reported_step, message)):
            return  # the main thread has already reported how the job ended
        self.stop_peers()  # os._exit skips LocalPeers' atexit hook
        # os._exit skips the reporter's sender thread: flush it first, but never wait forever.
        threading.Timer(FLUSH_WAIT, os._exit, (EXIT_OUT_OF_MEMORY,)).start()
        if not self.orphaned():
            self.queue.close()
            self.queue.join_thread()
        os._exit(EXIT_OUT_OF_MEMORY)

    def peer_death(self) -> str | None:
        """Why the first peer that ended badly ended (:func:`~app.worker.peer_failures.peer_death`), else None."""
        return peer_death([p.poll() for p in self.peers], [getattr(p, "ended_because", None) for p in self.peers])

    def check_peers(self) -> None:
        """Fail the job when a peer has died: the chief's next collective would wait for it until
        TensorFlow's heartbeat check aborts it (seconds), with a message naming no process."""
        if (message := self.peer_death()) is not None:
            raise PeerDied(message)

    def stop_waiting(self) -> bool:
        """Whether the job was cancelled (or its server is gone) while its peers were being placed."""
        return self.cancel.is_set() or self.orphaned()

    def waiting(self, reason: str) -> None:
        """The run waits before training (e.g. for a cluster's resources): the job page says why."""
        self.send(Waiting(self.job_id, reason))

    def should_stop(self) -> bool:
        """Before each step: memory over the limit and a dead peer fail the job; a cancel or a
        gone server stop it."""
        if self.watch is not None and (message := self.watch.check()) is not None:
            raise OutOfMemory(message)  # between steps: fails the job like any other error
        self.check_peers()
        return self.cancel.is_set() or self.orphaned()

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        """Train; every outcome ends with one ``done`` message."""
        if self.memory_limit_gib is not None and self.memory_limit_gib > 0:
            self.watch = MemoryWatch(int(self.memory_limit_gib * GIB), read=self.resident).start(self.out_of_memory)
        # Ctrl-C in the server's terminal reaches the whole process group: the server's shutdown
        # cancels this job (which checkpoints first) instead.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.nice:
            os.nice(self.nice)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.out.mkdir(parents=True, exist_ok=True)
        lock = open(self.out / "worker.lock", "w")  # noqa: SIM115 - held for the process's life
        fcntl.flock(lock, fcntl.LOCK_EX)
        (self.out / TRACEBACK_FILE).unlink(missing_ok=True)  # an earlier attempt's (this one resumes it)
        try:
            self._train()
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, then the process ends
            self._failed(exc)
        finally:
            self._end(lock)

    def _train(self) -> None:
        from app.worker.trainers import reporting_trainer  # TensorFlow loads here (seconds)
        from ssd.config import from_dict
        from ssd.distributed import LocalPeers

        parsed = from_dict(self.config)
        if self.should_stop():  # cancelled (or the server stopped) while TensorFlow was loading
            self.finish(Done(self.job_id, "cancelled", None))
            return
        if parsed.train.workers > 1:  # the peers start now; the strategy must be TF's first work here
            if self.make_peers is not None:
                try:
                    group = self.make_peers(parsed, self.out, self.waiting, self.stop_waiting)
                except Exception:
                    if not self.stop_waiting():
                        raise
                    self.finish(Done(self.job_id, "cancelled", None))  # while it waited for room
                    return
            else:
                group = LocalPeers(parsed, self.out, self.data_dir)
            trainer = reporting_trainer(parsed, self.out, self, peers=group, data_dir=self.data_dir)
            self.peers.extend(group.processes)
            self.peer_addresses = list(group.peers)
        else:
            trainer = reporting_trainer(parsed, self.out, self, data_dir=self.data_dir)
        self.trainer = trainer
        if trainer.has_checkpoint():
            trainer.load_checkpoint()
        history = read_jsonl(self.out / METRICS_FILE, after_step=self.known_step, up_to_step=trainer.step)
        self.send(Started(self.job_id, trainer.step, os.getpid(), history))
        self.reported_step = trainer.step
        self._started = True
        result = trainer.fit(
            on_step=self.on_step, on_eval=self.on_eval, should_stop=self.should_stop, on_plan=self.on_plan
        )
        self.finish(Done(self.job_id, result.status, result.step))

    def _failed(self, exc: BaseException) -> None:
        """Report how the run failed: a peer's death is the cause of TensorFlow's abort of a collective.

        The whole traceback goes to the worker's log (stderr: a Ray job's logs) and to
        :data:`TRACEBACK_FILE` in the job directory, which the job page shows under the one-line error.
        """
        trace = "".join(traceback.format_exception(exc))
        log.error("job %s failed:\n%s", self.job_id, trace)
        try:
            (self.out / TRACEBACK_FILE).write_text(trace[-MAX_TRACEBACK_CHARS:])
        except OSError:
            log.exception("job %s: the traceback could not be written", self.job_id)
        death = self.peer_death()
        if self.peers and death is None and type(exc).__module__.startswith("tensorflow"):
            death = self._collective_failure(str(exc))
        if isinstance(exc, PeerDied) or death is not None:
            self.finish(Done(self.job_id, "failed", self.reported_step, death or str(exc)))
        else:
            step = self.trainer.step if self._started and self.trainer is not None else None
            self.finish(Done(self.job_id, "failed", step, describe(exc)))

    def _collective_failure(self, message: str) -> str | None:
        """Why TensorFlow aborted a collective: a peer's death once it shows (within
        :data:`PEER_DEATH_WAIT`), else the silent peer the abort names, else None (another error)."""
        deadline = time.monotonic() + PEER_DEATH_WAIT
        while (death := self.peer_death()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return death or collective_failure(message, self.peer_addresses)

    def _end(self, lock: IO[str]) -> None:
        """Stop the watch and the peers, and release the job directory."""
        if self.watch is not None:
            self.watch.stop()
        peer_group = getattr(self.trainer, "peer_group", None)
        if peer_group is not None:
            peer_group.close()  # after a failure the peers would wait for the chief for ever
        if self.orphaned():
            # Nobody reads the reports any more: exiting must not wait for them to drain.
            self.queue.cancel_join_thread()
        lock.close()


def run_job(
    job_id: str,
    config: dict[str, Any],
    job_dir: str,
    queue: _Reports,
    cancel: _Flag,
    parent_pid: int | None,
    nice: int = 0,
    known_step: int = 0,
    memory_limit_gib: float | None = None,
    *,
    data_dir: str | None = None,
    make_peers: MakePeers | None = None,
) -> Outcome | None:
    """Train ``config`` into ``job_dir``; every outcome ends with one ``done`` message (:class:`JobRun`),
    and is returned (None: none was sent).

    ``make_peers(config, job_dir, waiting, cancelled)``: starts workers ``1..N-1`` of a
    ``train.workers = N`` job elsewhere (:class:`app.worker.ray_peers.RayPeers`), calling
    ``waiting(reason)`` while it waits for room and stopping when ``cancelled()``, and returns
    them (:class:`ssd.distributed.Peers`); None: they are this process's children on loopback.

    ``memory_limit_gib``: the resident memory at which the worker stops the job (None: no limit).
    ``data_dir``: the artifact root, whose registry holds the job's imported dataset.
    ``parent_pid``: the server's pid for a local worker, which stops when its parent changes;
    None for a worker that outlives the server (its reports wait for the server to return).
    """
    run = JobRun(
        job_id,
        config,
        job_dir,
        queue,
        cancel,
        parent_pid,
        nice,
        known_step,
        memory_limit_gib,
        data_dir=data_dir,
        make_peers=make_peers,
    )
    run.run()
    return run.outcome
