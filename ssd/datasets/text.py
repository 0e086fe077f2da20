"""Text a dataset chooses, in names and in messages: what a class or image file name may hold, and
how a value read from a dataset is quoted (escaped, bounded).

An import's errors and report reach the API, the pages and the terminal, and an uploaded archive
chooses every name and value in them. So:

- **Names** read from annotation files (class names, image file names) follow the rule of names
  given to the API (:func:`ssd.sections.printable_text`: no control character such as NUL or ESC,
  no lone surrogate, which UTF-8 cannot encode, no bidirectional control: U+202A-U+202E,
  U+2066-U+2069, the "Trojan Source" characters, CVE-2021-42574, which make a name display as
  another). :func:`name_fault` says which character breaks the rule.
- **Quoted values** (:func:`quote`) are a ``repr`` bounded before it is built (:mod:`reprlib`):
  the probe's 388-byte YAML alias bomb had its expansion quoted into a 312 MB message.
- **Shown text** (:func:`shown`: a file name, an error message, a report's detail) has every
  character the name rule refuses backslash-escaped (``\\x00``, ``\\u202e``, ``\\ud800``) and is
  cut at a bound: always encodable as UTF-8, one line, and small.

NumPy-free, TensorFlow-free.
"""

from __future__ import annotations

import reprlib
import unicodedata
from collections import Counter
from typing import Any

from ssd.sections import BIDI_CONTROLS, printable_text

MAX_QUOTED = 60  # characters of one value quoted in a message
MAX_SHOWN = 1000  # characters of a message, or of a problem's detail
MAX_PATH = 4096  # Linux's PATH_MAX: a file name that exists is never cut
MAX_CLASS_NAME = 200  # as a job's name over the API
LISTED = 5  # names a message lists before "and N more"

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = MAX_QUOTED
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 5


def _unsafe(ch: str) -> bool:
    return ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs")


def _escaped(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


def name_fault(name: str) -> str | None:
    """Why ``name`` cannot name a class or an image (the first character that breaks the rule),
    or None when it can."""
    if printable_text(name):
        return None
    ch = next(ch for ch in name if _unsafe(ch))
    if unicodedata.category(ch) == "Cs":
        return f"a lone surrogate ({_escaped(ch)}: bytes that are not UTF-8)"
    if ch in BIDI_CONTROLS:
        return f"a bidirectional control character ({_escaped(ch)})"
    return f"a control character ({_escaped(ch)})"


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` with every character :func:`name_fault` refuses backslash-escaped, cut before
    ``limit`` characters are passed (never inside an escape; ``... (N characters)`` then says how
    long it was)."""
    head = text[: limit + 1]
    if head.isprintable():  # C speed: the common case
        return head if len(text) <= limit else f"{head[:limit]}... ({len(text)} characters)"
    pieces: list[str] = []
    used = 0
    for ch in head:
        piece = _escaped(ch) if _unsafe(ch) else ch
        if used + len(piece) > limit:
            break
        pieces.append(piece)
        used += len(piece)
    out = "".join(pieces)
    return out if len(pieces) == len(text) else f"{out}... ({len(text)} characters)"


def listed(names: list[str], limit: int = LISTED) -> str:
    """``a, b, c and 4 more``: the first ``limit`` of ``names`` for a message."""
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted (linear: a list may hold a million)."""
    return sorted(name for name, n in Counter(names).items() if n > 1)


def quote(value: Any, limit: int = MAX_QUOTED) -> str:
    """A value read from a dataset, for a message: its ``repr`` (escaped: every unprintable
    character is an escape) of at most about ``limit`` characters, however large or deep the value."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int past Python's 4300 digits (int -> str refuses it)
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[:limit] + "..."
