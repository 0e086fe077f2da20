"""Text a dataset chooses, in names and messages: the name rule, quoting, and the bounds that
DatasetError and every report problem apply once for all readers."""

from __future__ import annotations

import json

import pytest

from ssd.datasets.records import DatasetError
from ssd.datasets.report import Problem, Reason, Report
from ssd.datasets.text import MAX_SHOWN, name_fault, quote, shown


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("cat", None),
        ("traffic light", None),
        ("chat noir\u00a0/ 猫 🐈‍⬛", None),  # a no-break space, CJK, an emoji sequence with ZWJ: fine
        ("c\x00at", "a control character (\\x00)"),
        ("cat\tdog", "a control character (\\t)"),
        ("\ud800.png", "a lone surrogate (\\ud800: bytes that are not UTF-8)"),
        ("cat\u202egod", "a bidirectional control character (\\u202e)"),
        ("\u2066cat\u2069", "a bidirectional control character (\\u2066)"),
    ],
)
def test_the_name_rule(name: str, fault: str | None) -> None:
    assert name_fault(name) == fault


def test_shown_escapes_and_bounds() -> None:
    assert shown("a\x00b\ud800c\u202ed\n") == "a\\x00b\\ud800c\\u202ed\\n"
    assert shown("plain text, 猫") == "plain text, 猫"
    long = shown("x" * 10**6)
    assert long == "x" * MAX_SHOWN + "... (1000000 characters)"
    assert shown("\x00" * 10**6, 10) == "\\x00\\x00... (1000000 characters)"  # escapes count, never cut
    json.dumps(shown("\udcff")).encode("utf-8")


def test_quote_is_a_bounded_repr() -> None:
    assert quote("cat") == "'cat'" and quote("\ud800\x1b") == "'\\ud800\\x1b'"
    assert quote("y" * 100) == repr("y" * 60 + "...")
    nested: list[object] = ["lol"] * 9
    for _ in range(8):  # what the alias bomb expands to, built without the bomb: 9**9 references
        nested = [nested] * 9
    assert len(quote(nested)) <= 64
    assert quote(10**5000) == "<a int too large to show>"
    assert quote({"k": [1, 2]}) == "{'k': [1, 2]}"


def test_dataset_errors_are_escaped_and_bounded() -> None:
    error = DatasetError("a\ud800" * 10_000, "says " + "b\x1b" * 10**6)
    assert len(str(error)) < 6000 and error.file.startswith("a\\ud800a\\ud800")
    assert "\x1b" not in error.message and error.message.endswith("(2000005 characters)")
    str(error).encode("utf-8")


def test_problems_are_escaped_and_bounded_however_made() -> None:
    report = Report()
    report.add(
        Reason.malformed,
        "ann\x00.json",
        image="\ud800.png",
        box=[1, "two", [3] * 1000, 2**100, None, *range(20)],
        detail="d" * 10**6,
    )
    problem = report.problems[0]
    assert (problem.file, problem.image) == ("ann\\x00.json", "\\ud800.png")
    assert problem.box == [1, "two", "[3, 3, 3, 3, 3, ...]", str(2**100), None, 0, 1, 2, "... (25 values)"]
    assert len(problem.detail) < 1100
    # A report.json written before these rules (a lone surrogate in a COCO file_name) reads back safe.
    old = {**report.to_dict(), "problems": [{"file": "a.json", "reason": "missing_image", "image": "\ud800.png"}]}
    again = Report.from_dict(json.loads(json.dumps(old)))
    assert again.problems == [Problem("a.json", Reason.missing_image, "\\ud800.png")]
    json.dumps(again.to_dict(), ensure_ascii=False).encode("utf-8")
