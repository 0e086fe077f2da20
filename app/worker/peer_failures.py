"""Why a multi-worker job's peer failed, in the one line that becomes the job's error.

A chief learns that a peer (worker ``1..N-1``) is gone in one of three ways, and the first to
come decides the line:

- **the peer's process ended** (:func:`peer_death`): a local child's exit status (``killed by
  signal 9 (SIGKILL)``, ``exit code 1``), or, for a Ray actor, why Ray says it died (its
  :attr:`ended_because`, e.g. *its node 10.0.0.2 was lost*: Ray's ``-9`` for a gone actor is no
  signal anybody sent);
- **TensorFlow aborts a collective** because the peer stopped sending heartbeats
  (:func:`collective_failure`): the first sign of a network partition or a lost node, seconds
  after it, where Ray declares the node dead only after about a minute. TensorFlow's own text is
  ~1,100 characters of graph trace naming ``/job:worker/replica:0/task:1``; the line names the
  worker, its address and the likely causes instead (the whole text stays in the traceback).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence

# TensorFlow's CoordinationService: "The following tasks are unhealthy (stopped sending
# heartbeats):\n/job:worker/replica:0/task:1\n..." (2.16-2.20); older texts name only the task.
_UNHEALTHY = re.compile(r"stopped sending heartbeats\)?:?((?:\s*/job:worker/(?:replica:\d+/)?task:\d+)+)")
_TASK = re.compile(r"/job:worker/(?:replica:\d+/)?task:(\d+)")


class JobError(RuntimeError):
    """An error whose message is the failed job's error as it stands (no type name before it)."""


class PeerDied(JobError):
    """A peer worker process of a multi-worker job ended badly; the message is the job's error."""


def _signal_text(code: int) -> str:
    try:
        return f"killed by signal {-code} ({signal.Signals(-code).name})"
    except ValueError:
        return f"killed by signal {-code}"


def peer_death(exit_codes: Sequence[int | None], hows: Sequence[str | None] | None = None) -> str | None:
    """``worker process 1 of 2 died: killed by signal 9 (SIGKILL)`` for the first peer (workers
    ``1..N-1``) that ended badly, else None; a peer exits 0 by itself only after the last step.

    ``hows[i]``: what is known of peer ``i + 1``'s end beyond its code (a Ray actor's death
    cause, e.g. ``its node 10.0.0.2 was lost``), used instead of the code's text.
    """
    for index, code in enumerate(exit_codes, start=1):
        if code is None or code == 0:
            continue
        how = hows[index - 1] if hows is not None else None
        if how is None:
            how = _signal_text(code) if code < 0 else f"exit code {code}"
        return f"worker process {index} of {len(exit_codes) + 1} died: {how}"
    return None


def unhealthy_tasks(message: str) -> list[int]:
    """The worker indices a TensorFlow collective's abort names as gone, in its order.

    The ones listed after "stopped sending heartbeats" when the text has that list, else every
    ``/job:worker/.../task:I`` it names.
    """
    listed = _UNHEALTHY.search(message)
    found = _TASK.findall(listed.group(1) if listed else message)
    return list(dict.fromkeys(int(i) for i in found))


def collective_failure(message: str, peers: Sequence[str]) -> str | None:
    """One line for a TensorFlow collective aborted because a peer went silent, else None.

    ``message``: the error's text; ``peers``: the job's ``host:port`` addresses, the chief's
    first. ``worker process 1 of 2 (10.0.0.2:41235) stopped answering the chief: its node was
    lost or the network to it was cut (TensorFlow's heartbeat check aborted the step's
    all-reduce)``; None when the text names no peer of ``peers``.
    """
    gone = [i for i in unhealthy_tasks(message) if 0 < i < len(peers)]
    if not gone:
        return None
    index = gone[0]
    return (
        f"worker process {index} of {len(peers)} ({peers[index]}) stopped answering the chief: its node was "
        "lost or the network to it was cut (TensorFlow's heartbeat check aborted the step's all-reduce)"
    )
