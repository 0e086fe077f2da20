"""Access control and request limits, as pure ASGI middleware that ``create_app`` installs.

One rule, by method and path, so routes added later are covered without touching them:

- **Bearer token.** With ``SSDBOARD_TOKEN`` set, every state-changing request
  (``POST``/``PUT``/``PATCH``/``DELETE``) under ``/api/`` needs ``Authorization: Bearer TOKEN``,
  compared in constant time; otherwise 401 with ``WWW-Authenticate: Bearer``. Reads (``GET``,
  ``HEAD``, the event streams, the pages, ``/healthz``) stay open, the expensive ones
  (detections, evaluation) included: they change nothing. The check runs before the body is read.
- **Body size.** A request body larger than ``max_body_bytes`` (1 MiB; ``multipart/form-data``:
  ``max_upload_bytes`` + a little for the form's framing) is a 413, by ``Content-Length`` up front
  and by counting the streamed bytes when there is none (chunked uploads).
- **Binding.** Without a token the server binds to loopback only; :func:`check_bind` refuses a
  non-loopback host unless the operator passes ``--insecure``.

:func:`document_security` adds the same rule to ``/openapi.json`` (``securitySchemes.bearer``,
``security`` and a 401 on the guarded operations, a 413 on every operation with a body).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ssdboard.security")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIX = "/api/"
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around an uploaded file


def needs_token(method: str, path: str) -> bool:
    """Whether a request changes state and so needs the bearer token (when one is set)."""
    return method.upper() in STATE_CHANGING and (path + "/").startswith(API_PREFIX)


def _route_path(scope: Scope) -> str:
    """The request path without the app's mount prefix (``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _send_json(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BearerTokenMiddleware:
    """401 for a state-changing ``/api/`` request without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.app = app
        self._token = token.encode()

    def authorized(self, headers: Headers) -> bool:
        """Whether the request carries the token (constant-time comparison)."""
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not needs_token(scope["method"], _route_path(scope)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.authorized(headers):
            await self.app(scope, receive, send)
            return
        challenge = 'Bearer realm="ssdboard"'
        if "authorization" in headers:
            challenge += ', error="invalid_token"'
            detail = "invalid token"
        else:
            detail = "this request changes state: send 'Authorization: Bearer <token>' (SSDBOARD_TOKEN)"
        await _send_json(send, 401, detail, {"WWW-Authenticate": challenge})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit; FastAPI answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


class BodySizeLimitMiddleware:
    """413 for a body over the limit: ``max_upload`` for multipart forms, ``max_body`` otherwise."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload + MULTIPART_SLACK

    def limit_of(self, headers: Headers) -> int:
        """The byte limit of a request with these headers."""
        content_type = headers.get("content-type", "").lower()
        return self.max_upload if content_type.startswith("multipart/form-data") else self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:
            # No body (a GET, an event stream): nothing to count, so no wrappers on every send.
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(headers)
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, "Content-Length must be a non-negative integer")
                return
            if int(declared) > limit:
                await _send_json(send, 413, f"request body larger than {limit} bytes")
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside FastAPI's handlers (e.g. a mounted app)
            if started:
                raise
            await _send_json(send, 413, str(exc.detail))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class UnsafeBindError(ValueError):
    """A non-loopback bind without a token and without ``--insecure``."""


def check_bind(host: str, *, token_set: bool, insecure: bool) -> str | None:
    """Refuse an open bind without a token; returns a warning to log when ``insecure`` allows one."""
    if is_loopback(host) or token_set:
        return None
    if not insecure:
        raise UnsafeBindError(
            f"refusing to listen on {host} without a token: anyone who can reach it could start and delete "
            "jobs. Set SSDBOARD_TOKEN (then state-changing requests need 'Authorization: Bearer <token>'), "
            "bind to 127.0.0.1, or pass --insecure if the network is trusted"
        )
    return (
        f"INSECURE: listening on {host} with no token (--insecure): anyone who can reach this port can "
        "submit, cancel and delete jobs and upload files"
    )


def install(app: FastAPI, *, token: str | None, max_body: int, max_upload: int, cors_origins: list[str]) -> None:
    """Add the middleware (CORS outermost when configured, then the token, then the size limit)."""
    app.add_middleware(BodySizeLimitMiddleware, max_body=max_body, max_upload=max_upload)
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    document_security(app, token_required=bool(token))


def document_security(app: FastAPI, *, token_required: bool) -> None:
    """Describe the bearer scheme, the guarded operations (401) and the body limit (413) in OpenAPI."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        if token_required:
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "SSDBOARD_TOKEN; needed by every POST, PUT, PATCH and DELETE under /api/.",
            }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault("413", {"description": "The request body is too large."})
                if token_required and needs_token(method, path):
                    operation["security"] = [{"bearer": []}]
                    responses.setdefault("401", {"description": "Missing or wrong bearer token."})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
