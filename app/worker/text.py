"""Text that clients and workers hand the dashboard to store and show: one rule, two strengths.

Names, tags and search terms are one line; notes and a failed job's error may hold line breaks
and tabs. Neither holds another control character (NUL, BEL, ESC: PostgreSQL refuses NUL, a
terminal acts on ESC, a page shows none of them as typed) nor a lone surrogate (not encodable as
UTF-8). The test is :func:`ssd.sections.printable_text`, the one a config's name passes; these are
its pydantic types, so a request that breaks the rule is a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ssd.sections import printable_text

LAYOUT = "\n\r\t"  # what multi-line text may hold besides printable characters
_NO_LAYOUT = str.maketrans("", "", LAYOUT)


def printable(value: str) -> str:
    """``value`` when it is one line of printable text; else ValueError."""
    if not printable_text(value):
        raise ValueError("must be text without control characters or lone surrogates")
    return value


def multiline(value: str) -> str:
    """``value`` when it is printable text, line breaks and tabs allowed; else ValueError."""
    if not printable_text(value.translate(_NO_LAYOUT)):
        raise ValueError("must be text without control characters (line breaks and tabs allowed) or lone surrogates")
    return value


def scrub(value: str) -> str:
    """``value`` made :func:`multiline`: every other control character or lone surrogate becomes U+FFFD.

    For text a program writes rather than a person types (an exception's message), which should
    arrive changed rather than be refused.
    """
    return "".join(ch if ch in LAYOUT or printable_text(ch) else "\ufffd" for ch in value)


PrintableText = Annotated[str, AfterValidator(printable)]
MultilineText = Annotated[str, AfterValidator(multiline)]
