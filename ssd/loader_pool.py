"""Training batches made by a pool of processes (``data.loader_processes``).

The generator and the imported-dataset loader are Python and NumPy: one thread makes about 2,000
MNIST-detection images a second (docs/performance.md), and the GIL keeps more threads from making more.
That is 25x what two CPU cores train, but a GPU trains faster than that. On such a host,
``loader_processes`` worker processes each make the training split of the run's data source
(:class:`ssd.datasets.source.DataSource`, pickled: an imported one reads its index itself) and make
whole batches; the batches come back in order and are the same arrays the in-process path makes
(each sample is a function of its index and the seed), so a run does not depend on the count.

TensorFlow-free: the workers import NumPy and :mod:`ssd.data` / :mod:`ssd.datasets` only, started
with ``spawn`` (a fork of a process running TensorFlow is not safe). As with any ``spawn``, a
script that trains with loader processes needs the ``if __name__ == "__main__":`` guard; the
``ssdboard`` commands and the dashboard's workers have it.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from ssd.config import Config
from ssd.datasets.source import DataSource, SplitData
from ssd.lifetime import exit_with_parent

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # images uint8 [B,S,S,3], boxes [B,K,4], labels [B,K]

_dataset: SplitData | None = None  # the worker process's training split (one per process, made by _start)


def _start(config: Config, source: DataSource, parent: int) -> None:
    global _dataset
    exit_with_parent(0, parent)  # a worker killed mid-run: nothing left to make batches for
    _dataset = source.split(config, "train")


def _make(start: int, size: int) -> Batch:
    assert _dataset is not None, "the worker was not started"
    images, boxes, labels, _ = _dataset.batch(start, size)
    return images, boxes, labels


class BatchPool:
    """``processes`` workers making training batches; :meth:`batches` keeps ``ahead`` per worker
    in flight, so memory stays bounded whatever the consumer's speed."""

    def __init__(self, config: Config, source: DataSource, processes: int, ahead: int = 2) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self._depth = processes * ahead
        # A dashboard's worker is itself a daemonic process, which multiprocessing does not let
        # start children (they could outlive it); these end with it (exit_with_parent), so allow them.
        self._me = multiprocessing.current_process()
        self._was_daemon = self._me.daemon
        self._me.daemon = False
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(config, source, os.getpid()),
        )

    def batches(self, starts: Iterable[int], size: int) -> Iterator[Batch]:
        """The batches of ``size`` samples from each of ``starts``, in order."""
        pending: collections.deque[Future[Batch]] = collections.deque()
        for start in starts:
            pending.append(self._executor.submit(_make, start, size))
            if len(pending) >= self._depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        """Stop the workers (batches not yet taken are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._me.daemon = self._was_daemon

    def __enter__(self) -> BatchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
