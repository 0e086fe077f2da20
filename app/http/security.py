"""Access control and request limits, as pure ASGI middleware that ``create_app`` installs.

One rule, by method and path, so routes added later are covered without touching them:

- **Bearer token.** With ``SSDBOARD_TOKEN`` set, every state-changing request
  (``POST``/``PUT``/``PATCH``/``DELETE``) under ``/api/`` needs ``Authorization: Bearer TOKEN``,
  compared in constant time; otherwise 401 with ``WWW-Authenticate: Bearer``. The one exception
  is where workers report (``POST /api/jobs/{id}/worker/events``): that route checks the job's
  own worker token instead, and refuses the admin token. Reads (``GET``,
  ``HEAD``, the event streams, the pages, ``/healthz``) stay open, the expensive ones
  (detections, evaluation) included: they change nothing. The check runs before the body is read.
- **Body size.** A request body larger than ``max_body_bytes`` (1 MiB; ``multipart/form-data``:
  ``max_upload_bytes`` + a little for the form's framing, or the route's own limit for the routes
  given one, e.g. ``POST /api/datasets``: ``max_dataset_bytes``) is a 413, by ``Content-Length`` up
  front and by counting the streamed bytes when there is none (chunked uploads). The worker route
  is bounded by its own gate (:class:`app.api.worker.WorkerGate`), after its token.
- **Binding.** Without a token the server binds to loopback only; :func:`check_bind` refuses a
  non-loopback host unless the operator passes ``--insecure``.
- **Host.** Only the expected ``Host`` values are served (400 otherwise): the loopback names when
  bound to loopback, plus ``SSDBOARD_ALLOWED_HOSTS``. A foreign site that rebinds its DNS name to
  127.0.0.1 reaches the server under its own name, and is refused.
- **Cross-site writes.** A state-changing ``/api/`` request whose ``Origin`` is not this server
  (nor a configured CORS origin), or that a browser marks ``Sec-Fetch-Site: cross-site`` /
  ``same-site`` without an acceptable ``Origin``, is a 403: a page on another site cannot make the
  user's browser submit or delete jobs. Clients that are not browsers send neither header.
- **Content types.** A state-changing ``/api/`` request with a body must say what it is: JSON
  (``application/json``) on JSON routes, ``multipart/form-data`` on upload routes; anything else
  is a 415 — an HTML form cannot send JSON, so this closes the form-POST route to CSRF as well.
- **HEAD.** Every GET route answers HEAD (headers, no body), as HTTP asks.

:func:`document_security` adds the same rule to ``/openapi.json`` (``securitySchemes.bearer``,
``security`` and a 401 on the guarded operations, a 413 on every operation with a body).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ssdboard.security")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIX = "/api/"
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around an uploaded file
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
HEAD_SCOPE_KEY = "ssdboard.head"  # set on a HEAD answered as a GET: heavy routes skip their work
WORKER_ROUTE = re.compile(r"^/api/jobs/[^/]+/worker/events$")  # checks a job's worker token itself


def needs_token(method: str, path: str) -> bool:
    """Whether a request changes state and so needs the bearer token (when one is set)."""
    return method.upper() in STATE_CHANGING and (path + "/").startswith(API_PREFIX)


def route_path(scope: Scope) -> str:
    """The request path without the app's mount prefix (``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def send_json(send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
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
        path = route_path(scope)
        if scope["type"] != "http" or not needs_token(scope["method"], path) or WORKER_ROUTE.match(path):
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
        await send_json(send, 401, detail, {"WWW-Authenticate": challenge})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit; FastAPI answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


class BodySizeLimitMiddleware:
    """413 for a body over the limit: ``max_upload`` for multipart forms (or the route's own
    limit, ``upload_limits[path]``), ``max_body`` otherwise."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_upload: int,
        upload_limits: Mapping[str, int] | None = None,
        exempt: re.Pattern[str] | None = None,
    ) -> None:
        """``exempt``: the paths bounded elsewhere, passed through untouched."""
        self.app = app
        self.exempt = exempt
        self.max_body = max_body
        self.max_upload = max_upload + MULTIPART_SLACK
        self.upload_limits = {path: limit + MULTIPART_SLACK for path, limit in (upload_limits or {}).items()}

    def limit_of(self, headers: Headers, path: str = "") -> int:
        """The byte limit of a request with these headers to ``path`` (without the mount prefix)."""
        content_type = headers.get("content-type", "").lower()
        if not content_type.startswith("multipart/form-data"):
            return self.max_body
        return self.upload_limits.get(path, self.max_upload)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        exempt = self.exempt is not None and self.exempt.match(route_path(scope))
        if exempt or (declared is None and "transfer-encoding" not in headers):
            # No body (a GET, an event stream): nothing to count, so no wrappers on every send.
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(headers, route_path(scope))
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, "Content-Length must be a non-negative integer")
                return
            if int(declared) > limit:
                await send_json(send, 413, f"request body larger than {limit} bytes")
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
            await send_json(send, 413, str(exc.detail))


class CrossSiteMiddleware:
    """403 for a cross-site state-changing request; 415 for a body of the wrong content type.

    The routes that take a form (uploads) are read once from the app's OpenAPI document (request
    bodies declared ``multipart/form-data``); every other state-changing ``/api/`` route takes JSON
    or nothing.
    """

    def __init__(self, app: ASGIApp, *, trusted_origins: list[str], openapi: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.trusted = {origin.rstrip("/").lower() for origin in trusted_origins}
        self._openapi = openapi
        self._multipart: list[re.Pattern[str]] | None = None

    @property
    def multipart(self) -> list[re.Pattern[str]]:
        """Path patterns of the routes whose body is a multipart form."""
        if self._multipart is None:
            self._multipart = [
                re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$")
                for path, operations in self._openapi().get("paths", {}).items()
                if any(
                    "multipart/form-data" in op.get("requestBody", {}).get("content", {})
                    for op in operations.values()
                    if isinstance(op, dict)
                )
            ]
        return self._multipart

    def cross_site(self, headers: Headers) -> str | None:
        """Why the request comes from another site, or None when it does not (or says nothing)."""
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.rstrip("/").lower()
            if origin in self.trusted:
                return None
            host = headers.get("host", "").lower()
            # Origin is scheme://host[:port]; a proxy may terminate TLS, so compare what follows the scheme.
            if origin != "null" and origin.partition("://")[2] == host:
                return None
            return f"Origin {origin} is not this server ({host or 'no Host'})"
        site = headers.get("sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site"):
            return f"the browser marked it Sec-Fetch-Site: {site}"
        return None

    def content_type_error(self, scope: Scope, headers: Headers) -> str | None:
        """Why the body's content type is refused, or None."""
        if scope["method"] == "DELETE":
            return None
        declared = headers.get("content-type")
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if declared is None:
            return "the request has a body but no Content-Type" if has_body else None
        media = declared.partition(";")[0].strip().lower()
        path = route_path(scope)
        if any(pattern.match(path) for pattern in self.multipart):
            return None if media == "multipart/form-data" else f"send multipart/form-data, not {media}"
        if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
            return None
        return f"send application/json, not {media or 'an empty Content-Type'}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not needs_token(scope["method"], route_path(scope)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        reason = self.cross_site(headers)
        if reason is not None:
            await send_json(
                send, 403, f"cross-site request refused: {reason} (SSDBOARD_CORS_ORIGINS lists sites allowed)"
            )
            return
        problem = self.content_type_error(scope, headers)
        if problem is not None:
            await send_json(send, 415, f"unsupported content type: {problem}")
            return
        await self.app(scope, receive, send)


class HeadMiddleware:
    """HEAD on any GET route: the GET's status and headers, no body.

    The app answers the request as a GET; its body is dropped and, once the headers are out, the
    app is told the client disconnected, so an event stream ends instead of streaming to nobody.
    The scope carries ``HEAD_SCOPE_KEY``: a route whose answer costs real work (a model run, an
    export) sends its headers without doing it (``app.api.is_head``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = False

        async def head_receive() -> Message:
            if done:
                return {"type": "http.disconnect"}
            return await receive()

        async def head_send(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not done:
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: True}, head_receive, head_send)


def allowed_hosts(bind_host: str, extra: list[str]) -> list[str]:
    """The ``Host`` values served: the loopback names always (a rebinding site's requests carry
    its own name, and a container's health check asks for 127.0.0.1), plus ``extra``; any name
    when bound to another address with no ``extra`` (the operator lists a deployment's names)."""
    if not is_loopback(bind_host) and not extra:
        return ["*"]
    return [*LOOPBACK_HOSTS, *extra]


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


def install(
    app: FastAPI,
    *,
    token: str | None,
    max_body: int,
    max_upload: int,
    cors_origins: list[str],
    hosts: list[str],
    upload_limits: Mapping[str, int] | None = None,
) -> None:
    """Add the middleware, outermost first: Host check, HEAD, CORS (when configured), cross-site
    and content-type checks, the token, the size limit (``upload_limits``: path -> byte limit of
    the multipart upload routes whose limit is not ``max_upload``)."""
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body=max_body,
        max_upload=max_upload,
        upload_limits=upload_limits,
        exempt=WORKER_ROUTE,  # its own gate checks the worker's token first, then its own bound
    )
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
    app.add_middleware(CrossSiteMiddleware, trusted_origins=cors_origins, openapi=lambda: app.openapi())
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(HeadMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
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
