"""A large JSON object read one value at a time: its top-level keys, and the elements of a list.

``json.loads`` of a COCO file builds every annotation with its polygons at once, before the first
box is looked at: reading a 58 MiB file of 500,000 boxes peaked at 430 MiB that way, 250 MiB this
way, and a 13.7 MB file of 20,000 polygons at 90 MB of Python objects instead of 9.4 MB.
:class:`JsonStream` walks the top-level object and decodes one value at a time with the standard
library's C scanner (``JSONDecoder.raw_decode``) over a window of the file (1 MiB, or as much as
the value being decoded needs), so the caller keeps what it needs of each element and the rest is
freed at once.

Errors are those of ``json.loads``, at the same line and column of the whole file:
:class:`~ssd.datasets.records.DatasetError` naming the file, ``not valid JSON: line L column C
(message)``; a file that is not UTF-8 is ``not UTF-8 text (byte N)``.

    with JsonStream.open(path, "instances.json") as stream:
        for key in stream.keys():          # after stream.start_object()
            if key == "annotations" and stream.at_list():
                for element in stream.elements():
                    ...
            else:
                value = stream.value()     # every key's value must be consumed, one way or the other
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ssd.datasets.records import DatasetError

CHUNK = 1 << 20
WHITESPACE = " \t\n\r"
PROGRESS_S = 0.1  # seconds between two calls of the progress callback
_DECODER = json.JSONDecoder()


class JsonStream:
    """A JSON document read forward through a window of its text; see the module docstring."""

    def __init__(
        self, handle: IO[bytes], name: str, *, size: int = 0, progress: Callable[[int, int], None] | None = None
    ) -> None:
        self.handle = handle
        self.name = name
        self.size = size
        self.progress = progress
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.read_bytes = 0
        self._line, self._column = 1, 0  # where buf[0] lies in the file (column: characters before it)
        self._told = 0.0

    @classmethod
    def open(cls, path: Path, name: str, progress: Callable[[int, int], None] | None = None) -> JsonStream:
        """A stream over the file at ``path``, quoted as ``name`` in errors; ``progress(bytes read,
        file size)`` is called as the file is read. DatasetError when it cannot be opened."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by __exit__
            size = path.stat().st_size
        except OSError as error:
            raise DatasetError(name, f"cannot be read: {error.strerror or error}") from None
        return cls(handle, name, size=size, progress=progress)

    def __enter__(self) -> JsonStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.handle.close()

    # -- the window ---------------------------------------------------------------------------------

    def _more(self, at_least: int = 1) -> bool:
        """Read until ``at_least`` more characters past ``pos`` are buffered (or the end);
        drops what lies before ``pos``. False at the end of the file."""
        dropped = self.buf[: self.pos]
        newlines = dropped.count("\n")
        self._line += newlines
        self._column = len(dropped) - dropped.rfind("\n") - 1 if newlines else self._column + len(dropped)
        parts, have = [self.buf[self.pos :]], len(self.buf) - self.pos
        self.pos = 0
        target = have + at_least
        while have < target and not self.eof:
            data = self.handle.read(max(CHUNK, target - have))
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as error:
                raise DatasetError(self.name, f"not UTF-8 text (byte {self.read_bytes + error.start})") from None
            self.read_bytes += len(data)
            self.eof = not data
            parts.append(text)
            have += len(text)
        self.buf = "".join(parts)
        self._tell()
        return have > 0

    def _tell(self) -> None:
        if self.progress is not None and (self.eof or time.monotonic() - self._told > PROGRESS_S):
            self.progress(self.read_bytes, max(self.size, self.read_bytes))
            self._told = time.monotonic()

    def _error(self, message: str, index: int) -> DatasetError:
        """``not valid JSON: line L column C (message)`` for ``buf[index]``, in the whole file."""
        line = self.buf.count("\n", 0, index)
        column = index - self.buf.rfind("\n", 0, index)
        if line == 0:
            column += self._column
        return DatasetError(self.name, f"not valid JSON: line {self._line + line} column {column} ({message})")

    def _peek(self) -> str:
        """The next character that is not whitespace ("" at the end), left in place."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _expect(self, chars: str, message: str) -> str:
        """Consume the next character if it is one of ``chars``; else the JSON error ``message``."""
        char = self._peek()
        if not char or char not in chars:
            raise self._error(message, self.pos)
        self.pos += 1
        return char

    # -- values -------------------------------------------------------------------------------------

    def value(self) -> Any:
        """Decode the next value whole."""
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as error:
                if self.eof:
                    raise self._error(error.msg, error.pos) from None
                self._more(at_least=max(CHUNK, len(self.buf) - self.pos))  # doubling: linear in the value
                continue
            except RecursionError:
                raise DatasetError(self.name, "not valid JSON: nested too deeply") from None
            if self._cut(value, end):  # a number may go on in the next chunk ("1" of "1e5")
                self._more(at_least=max(CHUNK, len(self.buf) - self.pos))
                continue
            self.pos = end
            return value

    def _cut(self, value: Any, end: int) -> bool:
        """Whether a number decoded up to ``end`` may go on past the window: the window ends
        there, or with what a fraction or exponent starts with (``1e`` decodes as ``1``)."""
        if self.eof or not isinstance(value, int | float) or isinstance(value, bool):
            return False
        rest = self.buf[end:]
        return len(rest) <= 2 and all(char in ".eE+-" for char in rest)

    def start_object(self) -> bool:
        """Consume the ``{`` of an object; False (nothing consumed) when the next value is no object."""
        if self._peek() != "{":
            return False
        self.pos += 1
        return True

    def keys(self) -> Iterator[str]:
        """The keys of the object :meth:`start_object` opened, in order; the caller consumes each
        key's value (:meth:`value`, or :meth:`at_list` and :meth:`elements`) before the next."""
        if self._peek() == "}":
            self.pos += 1
            return
        while True:
            if self._peek() != '"':
                raise self._error("Expecting property name enclosed in double quotes", self.pos)
            key = self.value()
            self._expect(":", "Expecting ':' delimiter")
            yield key
            if self._expect(",}", "Expecting ',' delimiter") == "}":
                return

    def at_list(self) -> bool:
        """Consume the ``[`` of a list; False (nothing consumed) when the next value is no list."""
        if self._peek() != "[":
            return False
        self.pos += 1
        return True

    def elements(self) -> Iterator[Any]:
        """The elements of the list :meth:`at_list` opened, each decoded whole, in order."""
        if self._peek() == "]":
            self.pos += 1
            return
        while True:
            yield self.value()
            if self._expect(",]", "Expecting ',' delimiter") == "]":
                return

    def end(self) -> None:
        """Check that nothing but whitespace follows the document."""
        if self._peek():
            raise self._error("Extra data", self.pos)
