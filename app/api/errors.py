"""The one place where domain errors (:mod:`app.domain`) become HTTP answers.

``create_app`` calls :func:`install`. An :class:`~app.domain.Invalid` becomes a 422 in the
same shape as pydantic's refusals (``{"detail": [{"loc": [...], "msg": ..., "type":
"value_error"}]}``), so a client reads one format whichever layer refused; every other domain
error becomes ``{"detail": message}`` with the status of :data:`STATUS` (and ``Retry-After`` for
:class:`~app.domain.Busy`).

Validation errors echo what the client sent; a lone surrogate (``"\\ud800"``, valid JSON but not
encodable as UTF-8) would make that echo itself fail with a 500, so every string in an error
answer is made encodable first (the surrogate shown escaped).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from app.domain import (
    Broken,
    Busy,
    ClientGone,
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    TooLarge,
    Unavailable,
    Undecodable,
    UnsupportedMedia,
)

STATUS: dict[type[DomainError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    TooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    UnsupportedMedia: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    Undecodable: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Invalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Broken: status.HTTP_500_INTERNAL_SERVER_ERROR,
    Unavailable: status.HTTP_501_NOT_IMPLEMENTED,
    Busy: status.HTTP_503_SERVICE_UNAVAILABLE,
    ClientGone: 499,  # nginx's "client closed request": logged, never read by the client
}


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error (its class or nearest base in :data:`STATUS`)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def invalid_error(exc: Invalid) -> RequestValidationError:
    """The pydantic-shaped validation error of an :class:`Invalid`."""
    return RequestValidationError([{"loc": exc.loc, "msg": exc.message, "type": "value_error"}])


def encodable(value: Any) -> Any:
    """``value`` (JSON-like) with every string, keys included, encodable as UTF-8 (lone surrogates escaped)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = encodable(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, Invalid):
        return await _validation_error(request, invalid_error(exc))
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
    return JSONResponse({"detail": encodable(exc.message)}, status_code=status_of(exc), headers=headers)


def install(app: FastAPI) -> None:
    """Answer every :class:`DomainError` a route lets through, and every validation error, encodably."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
