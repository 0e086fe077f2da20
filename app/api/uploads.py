"""A multipart form with one large file, streamed: the file's bytes go to a sink as they arrive.

Starlette's form parser spools files to the system's temporary folder (often a small tmpfs);
a dataset upload of gigabytes must land under the data dir instead, and be refused early (its
form fields checked before the file's bytes, its first bytes checked before the rest). So
:func:`stream_form` drives python-multipart's push parser over ``request.stream()`` itself and
hands the file part to a sink that the caller opens when the part's headers arrive. Writes go
through a worker thread (file I/O must not block the event loop). The body size limit stays
the middleware's (:class:`app.http.security.BodySizeLimitMiddleware`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from app.domain import Invalid

MAX_FIELDS = 16
MAX_FIELD_BYTES = 4096


class Sink(Protocol):
    """Where the file part's bytes go (``write`` runs in a worker thread)."""

    def write(self, data: bytes) -> None: ...


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename: str | None = None
        self.data = bytearray()
        self.is_file = False


def _decode(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(("body", field), "not UTF-8 text") from None


async def stream_form(
    request: Request, *, file_field: str, open_file: Callable[[str, Mapping[str, str]], Sink]
) -> dict[str, str]:
    """Read a ``multipart/form-data`` body: its text fields (returned) and at most one file, in
    ``file_field``, whose bytes go to ``open_file(filename, fields so far)``'s sink. A second
    file or a file in another field, more than 16 fields, a field over 4 KiB or a malformed body
    is :class:`~app.domain.Invalid`; what ``open_file`` and the sink raise propagates."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise Invalid(("body",), "a multipart/form-data body needs a boundary")
    fields: dict[str, str] = {}
    part = _Part()
    header = [b"", b""]
    sink: list[Sink] = []
    pending: list[bytes] = []

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        part.headers[header[0].lower()] = header[1]
        header[0], header[1] = b"", b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise Invalid(("body",), "a form part without a name")
        part.name = _decode(options[b"name"], "name")
        if b"filename" in options:
            if part.name != file_field or sink:
                raise Invalid(("body", part.name), f"one file only, in the field {file_field!r}")
            part.is_file = True
            sink.append(open_file(_decode(options[b"filename"], file_field), dict(fields)))
        elif len(fields) >= MAX_FIELDS:
            raise Invalid(("body",), f"more than {MAX_FIELDS} form fields")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.is_file:
            pending.append(data[start:end])
            return
        part.data += data[start:end]
        if len(part.data) > MAX_FIELD_BYTES:
            raise Invalid(("body", part.name), f"a form field of more than {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if not part.is_file:
            fields[part.name] = _decode(bytes(part.data), part.name)

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if pending:
                data = b"".join(pending)
                pending.clear()
                await run_in_threadpool(sink[0].write, data)
        parser.finalize()
    except MultipartParseError as exc:
        raise Invalid(("body",), f"a malformed multipart body: {exc}") from None
    return fields
