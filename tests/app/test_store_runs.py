"""The store's runs table: filters, sort keys and paging, the best mAP kept as evals arrive, the
duration, names, tags and notes, and sweeps. Each test runs on SQLite and on PostgreSQL (the
``store`` fixture of tests/app/conftest.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.store.jobs import JobStore, jobs, utcnow


def _job(store: JobStore, name: str, dataset: str = "mnist", **kwargs: Any) -> str:
    job, _ = store.create_job(name=name, config={"data": {"dataset": dataset}}, total_steps=10, **kwargs)
    return job.id


def _step(step: int, total: float, time: float = 0.0, images_per_sec: float = 100.0) -> dict[str, Any]:
    parts = {"pos_clf": total / 2, "neg_clf": total / 4, "loc": total / 4}
    return {"step": step, **parts, "total": total, "images_per_sec": images_per_sec, "time": time}


def test_the_best_map_is_the_best_value_and_its_first_step_not_the_last(store: JobStore) -> None:
    job_id = _job(store, "a")
    assert store.get_job(job_id).best.to_dict() == {"map50": None, "map50_step": None, "map": None, "map_step": None}  # type: ignore[union-attr]
    store.record(job_id, [("eval", {"step": 2, "map50": 0.5, "map": 0.2})])
    store.record(job_id, [("eval", {"step": 4, "map50": 0.8, "map": 0.3}), ("eval", {"step": 6, "map50": 0.8})])
    store.record(job_id, [("eval", {"step": 8, "map50": 0.6, "map": 0.35})])
    job = store.get_job(job_id)
    assert job is not None
    assert job.best.to_dict() == {"map50": 0.8, "map50_step": 4, "map": 0.35, "map_step": 8}
    assert job.last_eval["map50"] == 0.6  # the last stays the last
    # A resume from step 5 forgets the evaluations after it, and the best they held.
    store.reset_to_step(job_id, 5)
    assert store.get_job(job_id).best.to_dict() == {"map50": 0.8, "map50_step": 4, "map": 0.3, "map_step": 4}  # type: ignore[union-attr]
    store.reset_to_step(job_id, 3)
    assert store.get_job(job_id).best.to_dict() == {"map50": 0.5, "map50_step": 2, "map": 0.2, "map_step": 2}  # type: ignore[union-attr]


def test_duration_adds_up_the_runs_of_a_job(store: JobStore) -> None:
    job_id = _job(store, "a")
    start = utcnow() - timedelta(seconds=30)
    store.set_status(job_id, "running", started_at=start)
    store.record(job_id, [("step", _step(1, 2.0, time=start.timestamp() + 12.5))])
    with store.engine.connect() as conn:  # through the latest step, for sorting
        assert conn.scalar(jobs.select().with_only_columns(jobs.c.duration_s)) == pytest.approx(12.5)
    assert 30 <= store.get_job(job_id).duration_s < 35  # type: ignore[union-attr]  # live while it runs
    store.set_status(job_id, "cancelled", finished_at=utcnow())
    first = store.get_job(job_id).duration_s  # type: ignore[union-attr]
    assert 30 <= first < 35
    store.set_status(job_id, "running", started_at=utcnow() - timedelta(seconds=10))
    store.set_status(job_id, "succeeded", finished_at=utcnow())
    assert store.get_job(job_id).duration_s == pytest.approx(first + 10, abs=2)  # type: ignore[union-attr]


def test_filters_sort_keys_and_paging(store: JobStore) -> None:
    ids = {
        "alpha": _job(store, "Alpha run", tags=["baseline"]),
        "beta": _job(store, "beta", dataset="trees", tags=["wide", "lr"]),
        "gamma": _job(store, "gamma_1", sweep_id="sw1"),
        "delta": _job(store, "delta", sweep_id="sw1", tags=["wide-priors"]),
    }
    store.record(ids["alpha"], [("step", _step(5, 3.0, images_per_sec=90)), ("eval", {"step": 5, "map50": 0.7})])
    store.record(ids["beta"], [("step", _step(9, 1.0, images_per_sec=120)), ("eval", {"step": 9, "map50": 0.9})])
    store.record(ids["gamma"], [("step", _step(2, 2.0, images_per_sec=60))])
    store.set_status(ids["delta"], "failed", error="boom")

    def names(**kwargs: Any) -> list[str]:
        return [job.name for job in store.list_jobs(**kwargs)]

    assert names() == ["delta", "gamma_1", "beta", "Alpha run"]  # newest first
    assert names(sort="created_at") == ["Alpha run", "beta", "gamma_1", "delta"]
    # Jobs without the value come last in both directions.
    assert names(sort="-best_map50") == ["beta", "Alpha run", "delta", "gamma_1"]
    assert names(sort="best_map50") == ["Alpha run", "beta", "delta", "gamma_1"]
    assert names(sort="total")[:3] == ["beta", "gamma_1", "Alpha run"]
    assert names(sort="-images_per_sec")[:3] == ["beta", "Alpha run", "gamma_1"]
    assert names(sort="-step")[:2] == ["beta", "Alpha run"]
    assert names(sort="name") == ["Alpha run", "beta", "delta", "gamma_1"]  # case-insensitive
    assert names(sort="-name") == ["gamma_1", "delta", "beta", "Alpha run"]
    assert names(status="failed") == ["delta"]
    assert names(status=["failed", "queued"], sort="created_at") == ["Alpha run", "beta", "gamma_1", "delta"]
    # A tag matches whole tags only ("wide" is not "wide-priors").
    assert names(tag="wide") == ["beta"]
    assert names(tag="wide-priors") == ["delta"]
    assert names(tag="%") == []
    assert names(dataset="trees") == ["beta"]
    assert names(sweep_id="sw1") == ["delta", "gamma_1"]
    assert names(name="ALPHA") == ["Alpha run"]
    assert names(name="_") == ["gamma_1"]  # LIKE wildcards are plain characters here
    assert names(sort="created_at", limit=2, offset=1) == ["beta", "gamma_1"]
    assert store.count_jobs() == 4 and store.count_jobs(sweep_id="sw1") == 2 and store.count_jobs(tag="lr") == 1
    with pytest.raises(ValueError, match="unknown sort key 'bogus'"):
        store.list_jobs(sort="-bogus")


def test_update_job_meta_changes_only_what_is_given(store: JobStore) -> None:
    job_id = _job(store, "a")
    job = store.update_job_meta(job_id, name="renamed", tags=["x", "y"])
    assert job is not None and (job.name, job.tags, job.notes) == ("renamed", ("x", "y"), "")
    job = store.update_job_meta(job_id, notes="lr too high?\nretry with 3e-4")
    assert job is not None and (job.name, job.tags) == ("renamed", ("x", "y"))
    assert job.notes == "lr too high?\nretry with 3e-4"
    assert store.update_job_meta(job_id, tags=[]).tags == ()  # type: ignore[union-attr]
    assert store.update_job_meta("nope", name="x") is None


def test_sweeps(store: JobStore) -> None:
    sweep = store.create_sweep(name="lr", base={"train": {"steps": 5}}, spec={"grid": {"train.learning_rate": [1, 2]}})
    assert sweep["job_ids"] == [] and sweep["cancel_requested"] is False and sweep["created_at"].tzinfo
    first = _job(store, "lr=1", sweep_id=sweep["id"])
    second = _job(store, "lr=2", sweep_id=sweep["id"])
    assert store.add_sweep_jobs(sweep["id"], [first, second])["job_ids"] == [first, second]  # type: ignore[index]
    got = store.get_sweep(sweep["id"])
    assert got is not None and got["spec"] == {"grid": {"train.learning_rate": [1, 2]}} and got["base"]["train"]
    other = store.create_sweep(name="b", base={}, spec={}, job_ids=["j"], sweep_id="fixedid")
    assert [s["id"] for s in store.list_sweeps()] == ["fixedid", sweep["id"]] and other["job_ids"] == ["j"]
    assert store.set_sweep_cancel(sweep["id"])["cancel_requested"] is True  # type: ignore[index]
    assert store.get_sweep("nope") is None and store.set_sweep_cancel("nope") is None
    assert store.get_job(first).sweep_id == sweep["id"]  # type: ignore[union-attr]


def test_a_job_interrupted_by_a_crash_ran_until_its_last_step(store: JobStore) -> None:
    job_id = _job(store, "a")
    start = utcnow() - timedelta(hours=1)  # the server died soon after the step; it restarts now
    store.set_status(job_id, "running", started_at=start)
    store.record(job_id, [("step", _step(1, 2.0, time=start.timestamp() + 40.0))])
    store.set_status(job_id, "interrupted", finished_at=utcnow())
    assert store.get_job(job_id).duration_s == pytest.approx(40.0)  # type: ignore[union-attr]


def test_a_jobs_dict_is_the_api_answer_with_every_field(store: JobStore) -> None:
    """``Job.to_dict`` (the one place a job becomes JSON) has exactly ``JobOut``'s fields, which accept it."""
    from app.api.schemas import JobOut

    job_id = _job(store, "a", tags=["x"], sweep_id="sw1")
    store.record(job_id, [("eval", {"step": 2, "map50": 0.5, "map": 0.2})])
    job = store.get_job(job_id)
    assert job is not None
    data = job.to_dict()
    assert set(data) == set(JobOut.model_fields)
    assert data["tags"] == ["x"] and data["best"] == {"map50": 0.5, "map50_step": 2, "map": 0.2, "map_step": 2}
    out = JobOut.model_validate(data).model_dump(mode="json")
    assert out["status"] == "queued" and out["sweep_id"] == "sw1" and out["run"] is None
    assert job.with_run({"device": "cpu"}).to_dict()["run"] == {"device": "cpu"}
