"""Helper processes that end with the process that started them.

A worker of a multi-worker job (:mod:`ssd.distributed`) and a loader process
(:mod:`ssd.loader_pool`) must not outlive their parent when it is killed (SIGKILL leaves it no
clean-up): an orphaned worker would wait on collectives forever, an orphaned loader would hold
its memory. TensorFlow-free, so the loaders can import it.
"""

from __future__ import annotations

import os
import threading
import time

POLL_S = 1.0


def exit_with_parent(code: int, parent: int | None = None) -> None:
    """Watch, on a daemon thread, for this process's parent to go; then exit at once with ``code``.

    ``parent``: the pid of the process that started this one, passed down by it. Without it the
    parent is whatever ``getppid()`` says now, which is already the reaper's pid when the parent
    was killed while this process was still starting (a spawned process imports for seconds on a
    busy machine); with it, that case exits at once instead of waiting forever.
    """
    if parent is None:
        parent = os.getppid()
    elif os.getppid() != parent:
        os._exit(code)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os._exit(code)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
