"""Domain types and errors of the dashboard, free of HTTP and pydantic.

Services, the runner and the event broadcaster speak in these terms; ``app.api.errors`` is the
one place that turns a :class:`DomainError` into an HTTP answer (404, 409, 413, 415, 422, 499, 500,
501, 503).
Each error's message is written for the person who sent the request: it says what is wrong and,
where there is one, what to change.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Life cycle: queued -> running -> succeeded | failed | cancelled; interrupted by a server stop."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})
RESUMABLE = frozenset({JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})
ACTIVE = frozenset({JobStatus.queued, JobStatus.running})


class DomainError(Exception):
    """A request the dashboard cannot carry out, with a message for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError, LookupError):
    """No such job, image or checkpoint."""


class Conflict(DomainError):
    """The thing exists but its state does not allow the operation (e.g. deleting a running job)."""


class Invalid(DomainError, ValueError):
    """A value the dashboard refuses; ``loc`` says where it sits in the request.

    ``loc`` follows FastAPI's validation errors: ``("body", "priors", "strides")`` or
    ``("query", "job")``, so clients read one format for pydantic's and the services' refusals.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class TooLarge(DomainError):
    """An upload over a size or pixel limit."""


class UnsupportedMedia(DomainError):
    """An upload of a type the server does not decode."""


class Undecodable(DomainError):
    """An upload of a supported type whose content does not decode (truncated, corrupt)."""


class Broken(DomainError):
    """A stored artifact (a checkpoint) exists but cannot be used; the message names the file."""


class Busy(DomainError):
    """The server already runs as much heavy work (model runs, exports) as it allows; the client
    may try again after ``retry_after`` seconds (503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClientGone(DomainError):
    """The client closed its connection, so the work done for it was stopped (nobody reads the answer)."""


class Unavailable(DomainError):
    """A feature that needs an optional package this server lacks; the message names it and how to install it."""
