"""Compare: the decimation keeps spikes, the config diff, and ``GET /api/compare``."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.domain import Invalid
from app.services.compare import (
    COLORS,
    SERIES,
    best_of,
    config_table,
    decimate,
    flatten,
    parse_ids,
    series_of,
    significant,
)
from benchmarks.compare import fill_store
from ssd.config import from_dict

# ---------------------------------------------------------------------------- decimation


def test_a_one_step_spike_in_10000_steps_survives() -> None:
    rng = np.random.default_rng(0)
    values = 1.0 + 0.01 * rng.standard_normal(10_000)
    values[6_789] = 50.0  # one step blows up
    values[1_234] = -3.0  # and one dips
    keep = decimate(values, 1000)
    assert 6_789 in keep and 1_234 in keep
    assert len(keep) <= 1000
    assert keep[0] == 0 and keep[-1] == 9_999  # first and last kept
    assert np.all(np.diff(keep) > 0)  # sorted, each once


@pytest.mark.parametrize("n", [1001, 1002, 4_999, 10_000, 12_345])
@pytest.mark.parametrize("points", [10, 11, 999, 1000])
def test_counts_are_bounded_and_ends_kept(n: int, points: int) -> None:
    keep = decimate(np.arange(n, dtype=float)[::-1].copy(), points)
    assert len(keep) <= points
    assert keep[0] == 0 and keep[-1] == n - 1
    assert len(keep) >= min(n, (points - 1) // 3)  # not fewer than one point per bucket


def test_short_series_come_back_whole() -> None:
    assert decimate(np.array([3.0, 1.0, 2.0]), 10).tolist() == [0, 1, 2]


def test_by_hand_three_buckets() -> None:
    # points=10: 3 buckets of 4 (12 values); per bucket the first, the lowest, the highest; and the last.
    values = np.array([5, 1, 9, 5, 5, 5, 5, 5, 2, 7, 0, 3], dtype=float)
    #                  first min max  | first (no extremes apart) | first, max, min; last
    assert decimate(values, 10).tolist() == [0, 1, 2, 4, 8, 9, 10, 11]


def test_nan_is_never_a_buckets_extreme() -> None:
    values = np.ones(100)
    values[50:60] = np.nan
    values[55] = np.nan
    values[70] = 4.0
    keep = decimate(values, 16)
    assert 70 in keep
    assert len(keep) <= 16


def test_series_of_rows_walls_from_the_first_step_and_nan_as_null() -> None:
    rows = [(s, 1.0, 2.0, float("nan") if s == 2 else 3.0, 6.0, 100.0 + 0.5 * s) for s in range(1, 6)]
    series, t0 = series_of(rows, 1000)
    assert t0 == 100.5
    assert series["loc"] == {
        "step": [1, 2, 3, 4, 5],
        "wall": [0.0, 0.5, 1.0, 1.5, 2.0],
        "value": [3.0, None, 3.0, 3.0, 3.0],
    }
    assert set(series) == set(SERIES)
    assert series_of([], 1000) == ({key: {"step": [], "wall": [], "value": []} for key in SERIES}, None)


def test_values_go_out_with_six_significant_digits() -> None:
    values = np.array([0.123456789012, 1234.56789, -0.000123456789, 0.1 + 0.2, 0.0, np.nan, np.inf, 5e-310])
    out = significant(values)
    assert out[:5].tolist() == [0.123457, 1234.57, -0.000123457, 0.3, 0.0]
    assert np.isnan(out[5]) and out[6] == np.inf and out[7] == 5e-310  # left as they are


# ---------------------------------------------------------------------------- config diff


def test_flatten_nested_dicts_to_dotted_keys() -> None:
    config = {"name": "a", "train": {"steps": 5, "opt": {"lr": 0.1}}, "priors": {"scales": [[10, 16], [25]]}}
    assert flatten(config) == {"name": "a", "train.steps": 5, "train.opt.lr": 0.1, "priors.scales": [[10, 16], [25]]}


def test_config_table_marks_only_differing_keys() -> None:
    a = {"name": "a", "seed": 0, "train": {"learning_rate": 0.001, "batch_size": 32}, "model": {"x": 1.0, "flag": True}}
    b = {"name": "b", "seed": 0, "train": {"learning_rate": 0.003, "batch_size": 32}, "model": {"x": 1, "flag": 1}}
    rows = {row["key"]: row for row in config_table([a, b])}
    assert "name" not in rows  # the column heads name the jobs
    assert [k for k, row in rows.items() if row["differs"]] == ["train.learning_rate", "model.flag"]
    assert rows["train.learning_rate"]["values"] == [0.001, 0.003]
    assert not rows["model.x"]["differs"]  # 1 and 1.0 are one setting


def test_a_key_one_config_lacks_differs() -> None:
    rows = {row["key"]: row for row in config_table([{"a": {"b": None}}, {"a": {"c": 1}}])}
    assert rows["a.b"] == {"key": "a.b", "values": [None, None], "differs": True}
    assert rows["a.c"] == {"key": "a.c", "values": [None, 1], "differs": True}


def test_best_is_the_highest_earliest_value() -> None:
    evals = [{"step": 10, "map50": 0.5}, {"step": 20, "map50": 0.8}, {"step": 30, "map50": 0.8}, {"step": 40}]
    assert best_of(evals, "map50") == {"value": 0.8, "step": 20}
    assert best_of([{"step": 1, "map50": math.nan}], "map50") is None


def test_parse_ids() -> None:
    assert parse_ids(" a, b,,a ,c,") == ["a", "b", "c"]
    for text in ["a", "a,a", ",".join(str(i) for i in range(11))]:
        with pytest.raises(Invalid) as info:
            parse_ids(text)
        assert info.value.loc == ("query", "jobs")


# ---------------------------------------------------------------------------- the endpoint


@pytest.fixture
def three(client: TestClient) -> list[str]:
    """Three finished jobs of 3000 steps in the client's store (lr 1e-3, 2e-3, 4e-3; batch 32, 16, 32)."""
    return fill_store(client.app.state.store, jobs=3, steps=3000, eval_every=1000)  # type: ignore[attr-defined]


def test_compare_answers_every_job_decimated(db_client: TestClient) -> None:
    client = db_client  # on SQLite and PostgreSQL: the bulk read of metric_rows
    three = fill_store(client.app.state.store, jobs=3, steps=3000, eval_every=1000)  # type: ignore[attr-defined]
    response = client.get("/api/compare", params={"jobs": ",".join(three), "points": 301})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["points"] == 301
    assert [job["id"] for job in body["jobs"]] == three
    assert [job["color"] for job in body["jobs"]] == list(COLORS[:3])
    job: dict[str, Any] = body["jobs"][1]
    assert job["status"] == "succeeded" and job["batch_size"] == 16 and job["steps_recorded"] == 3000
    assert job["config"]["train"]["learning_rate"] == 0.002
    assert set(job["metrics"]) == set(SERIES)
    for part in SERIES:
        series = job["metrics"][part]
        assert 100 <= len(series["step"]) <= 301
        assert len(series["wall"]) == len(series["value"]) == len(series["step"])
        assert series["step"][0] == 1 and series["step"][-1] == 3000 and series["wall"][0] == 0.0
    assert [e["step"] for e in job["evals"]] == [1000, 2000, 3000]
    assert job["best"]["map50"] == {"value": max(e["map50"] for e in job["evals"]), "step": 3000}
    differing = [row["key"] for row in body["config"] if row["differs"]]
    assert differing == ["seed", "train.batch_size", "train.learning_rate"]  # the config's own key order


def test_the_spike_of_a_job_reaches_the_page(client: TestClient, three: list[str]) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    rows = store.metric_rows(three[0], ("total",))
    spike_step = max(rows, key=lambda r: r[1])[0]  # fill_store puts one 8x spike in each job
    body = client.get("/api/compare", params={"jobs": ",".join(three[:2]), "points": 50}).json()
    assert spike_step in body["jobs"][0]["metrics"]["total"]["step"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "jobs"),
        ({"jobs": "onlyone"}, "jobs"),
        ({"jobs": ",".join(f"j{i}" for i in range(11))}, "jobs"),
        ({"jobs": "a,b", "points": 9}, "points"),
        ({"jobs": "a,b", "points": 5001}, "points"),
        ({"jobs": "a,b", "points": "many"}, "points"),
    ],
)
def test_bad_queries_are_422_naming_the_field(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.get("/api/compare", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_an_unknown_job_is_404(client: TestClient, three: list[str]) -> None:
    response = client.get("/api/compare", params={"jobs": f"{three[0]},nosuchjob"})
    assert response.status_code == 404
    assert "nosuchjob" in response.json()["detail"]


def test_jobs_without_steps_compare_too(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    a, b = (
        store.create_job(
            name=name, config=from_dict({"name": name, "train": {"steps": steps}}).to_dict(), total_steps=steps
        )[0].id
        for name, steps in (("a", 5), ("b", 6))
    )
    body = client.get("/api/compare", params={"jobs": f"{a},{b}"}).json()
    assert [job["t0"] for job in body["jobs"]] == [None, None]
    assert body["jobs"][0]["metrics"]["total"] == {"step": [], "wall": [], "value": []}
    assert body["jobs"][0]["best"] == {"map50": None, "map": None}
    assert [row["key"] for row in body["config"] if row["differs"]] == ["train.steps"]


def test_the_compare_page_is_served(client: TestClient) -> None:
    response = client.get("/compare", params={"jobs": "a,b"})
    assert response.status_code == 200
    assert 'src="/static/js/pages/compare.js"' in response.text


def test_finished_jobs_are_cached_until_they_change(client: TestClient, three: list[str]) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    service = client.app.state.compare  # type: ignore[attr-defined]
    params = {"jobs": ",".join(three[:2]), "points": 100}
    first = client.get("/api/compare", params=params).json()
    assert set(service._cache) == {(three[0], 100), (three[1], 100)}
    assert client.get("/api/compare", params=params).json() == first
    # A resume makes the job queued, then running: its records change, so it is read again.
    store.set_status(three[0], "running")
    store.record(three[0], [("step", {"step": 3001, "total": 1.0, "time": 2e9})])
    after = client.get("/api/compare", params=params).json()
    assert after["jobs"][0]["steps_recorded"] == 3001 and after["jobs"][0]["status"] == "running"
    assert after["jobs"][1] == first["jobs"][1]


def test_the_cache_keeps_to_its_size(client: TestClient, three: list[str]) -> None:
    from app.services.compare import CompareService

    store = client.app.state.store  # type: ignore[attr-defined]
    service = CompareService(store, cache_bytes=60_000)  # one job's answer at 1000 points is larger
    body = json.loads(service.compare_json(three, points=100))
    assert [job["id"] for job in body["jobs"]] == three
    assert 0 < service._cached_bytes <= 60_000
    service.compare_json(three, points=1000)
    assert service._cached_bytes <= 60_000
