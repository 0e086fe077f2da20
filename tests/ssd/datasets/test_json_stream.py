"""ssd.datasets.json_stream against json.loads: the same values and the same errors (line and
column in the whole file), with windows small enough that every value spans several of them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import ssd.datasets.json_stream as json_stream
from ssd.datasets.json_stream import JsonStream
from ssd.datasets.records import DatasetError


def parse(path: Path) -> dict[str, Any]:
    """The top-level object rebuilt through the stream (lists element by element)."""
    out: dict[str, Any] = {}
    with JsonStream.open(path, path.name) as stream:
        assert stream.start_object()
        for key in stream.keys():
            out[key] = list(stream.elements()) if stream.at_list() else stream.value()
        stream.end()
    return out


def document(rng: random.Random) -> dict[str, Any]:
    def value(depth: int) -> Any:
        kind = rng.randrange(7 if depth < 3 else 4)
        if kind == 0:
            return rng.choice([12345678901234567890, -7, 0, 3.25e-7, 1e300])
        if kind == 1:
            return "".join(rng.choice('aé€😀\\"\n ') for _ in range(rng.randrange(12)))
        if kind == 2:
            return rng.choice([True, False, None])
        if kind == 3:
            return rng.random()
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {f"k{i}é": value(depth + 1) for i in range(rng.randrange(4))}

    return {"images": [value(1) for _ in range(5)], "info": value(1), "n": 1234567, "empty": [], "o": {}}


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_values_match_json_loads_across_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    rng = random.Random(chunk)
    for k in range(20):
        doc = document(rng)
        path = tmp_path / f"{k}.json"
        path.write_text(json.dumps(doc, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5))
        assert parse(path) == json.loads(path.read_text())


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_errors_name_the_line_and_column_json_loads_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    text = json.dumps({"images": [{"a": [1, 2]}, {"b": "xé"}], "x": 1}, indent=2)
    for cut in (10, 25, 40, len(text) - 1):
        for damage in ("", "]", ",,", "@"):
            bad = text[:cut] + damage + text[cut + 1 :]
            try:
                json.loads(bad)
            except json.JSONDecodeError as error:
                expected = f"line {error.lineno} column {error.colno}"
            else:
                continue
            path = tmp_path / "bad.json"
            path.write_text(bad)
            with pytest.raises(DatasetError, match=expected):
                parse(path)


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'{"images": ["ok", "\xff"]}')
    with pytest.raises(DatasetError, match=r"not UTF-8 text \(byte 19\)"):
        parse(path)
