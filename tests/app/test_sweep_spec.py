"""Sweep expansion without a server: grid order, seeded draws, ranges, the max_jobs cap, bad entries."""

from __future__ import annotations

import random
from typing import Any

import pytest

from app.api.schemas import DEFAULTS
from app.domain import Invalid
from app.services.sweep_spec import Range, apply, expand, get, grid_points, parse


def spec(**request: Any) -> Any:
    request.setdefault("seed", 0)
    request.setdefault("max_jobs", 20)
    grid, random_, samples = request.pop("grid", None), request.pop("random", None), request.pop("samples", None)
    return parse(grid=grid, random=random_, samples=samples, defaults=DEFAULTS, **request)


def test_grid_is_the_product_with_the_last_key_fastest() -> None:
    s = spec(grid={"train.learning_rate": [1e-3, 3e-3], "priors.ratios": [[0.5, 1], [0.35, 0.6, 1]]})
    assert expand(s) == [
        {"train.learning_rate": 1e-3, "priors.ratios": [0.5, 1]},
        {"train.learning_rate": 1e-3, "priors.ratios": [0.35, 0.6, 1]},
        {"train.learning_rate": 3e-3, "priors.ratios": [0.5, 1]},
        {"train.learning_rate": 3e-3, "priors.ratios": [0.35, 0.6, 1]},
    ]
    assert s.size == 4 and s.keys == ["train.learning_rate", "priors.ratios"]
    assert grid_points({}) == [{}]


def test_random_draws_are_reproducible_with_the_seed() -> None:
    request = {"random": {"train.learning_rate": {"min": 1e-4, "max": 1e-2, "log": True}, "seed": [1, 2, 3]},
               "samples": 6, "seed": 7}  # fmt: skip
    first, again = expand(spec(**request)), expand(spec(**request))
    assert first == again and len(first) == 6
    assert expand(spec(**{**request, "seed": 8})) != first
    for values in first:
        assert 1e-4 <= values["train.learning_rate"] <= 1e-2
        assert values["seed"] in (1, 2, 3)
    # By hand: the same generator, the keys drawn in the request's order, rounded to 4 digits.
    rng = random.Random(7)
    lr = float(f"{10 ** rng.uniform(-4, -2):.4g}")
    assert first[0] == {"train.learning_rate": lr, "seed": rng.choice([1, 2, 3])}


def test_integer_keys_draw_whole_numbers_inclusive() -> None:
    s = spec(random={"train.batch_size": {"min": 2, "max": 4}}, samples=60, max_jobs=60)
    drawn = {v["train.batch_size"] for v in expand(s)}
    assert drawn == {2, 3, 4} and all(isinstance(v, int) for v in drawn)
    log = spec(random={"train.steps": {"min": 10, "max": 1000, "log": True}}, samples=50, max_jobs=50)
    assert all(10 <= v["train.steps"] <= 1000 and isinstance(v["train.steps"], int) for v in expand(log))
    assert Range(1, 1, integer=True).draw(random.Random(0)) == 1


def test_grid_and_random_each_grid_point_gets_the_same_draws() -> None:
    s = spec(grid={"train.batch_size": [2, 4]}, random={"train.learning_rate": {"min": 0.001, "max": 0.01}}, samples=3)
    runs = expand(s)
    assert [r["train.batch_size"] for r in runs] == [2, 2, 2, 4, 4, 4]
    assert [r["train.learning_rate"] for r in runs[:3]] == [r["train.learning_rate"] for r in runs[3:]]


def test_samples_default_fills_max_jobs() -> None:
    s = spec(grid={"seed": [1, 2, 3]}, random={"train.learning_rate": [0.001, 0.002]}, max_jobs=10)
    assert s.samples == 3 and s.size == 9


def test_a_grid_over_max_jobs_says_how_many_it_makes() -> None:
    with pytest.raises(Invalid) as refused:
        spec(grid={"seed": [1, 2, 3], "train.batch_size": [2, 4]}, max_jobs=5)
    assert refused.value.loc == ("body", "max_jobs")
    assert "makes 6 jobs" in refused.value.message and "3 seed x 2 train.batch_size" in refused.value.message
    with pytest.raises(Invalid) as too_many:
        spec(grid={"seed": [1, 2]}, random={"train.learning_rate": [0.1]}, samples=3, max_jobs=5)
    assert too_many.value.loc == ("body", "samples") and "6 jobs" in too_many.value.message


@pytest.mark.parametrize(
    ("request_", "loc", "words"),
    [
        (
            {"grid": {"train.learning_rte": [1]}},
            ("body", "grid", "train.learning_rte"),
            "did you mean train.learning_rate",
        ),
        ({"grid": {"train": [1]}}, ("body", "grid", "train"), "unknown config key"),
        ({"grid": {"seed": []}}, ("body", "grid", "seed"), "at least one value"),
        ({"grid": {"seed": 3}}, ("body", "grid", "seed"), "list of values"),
        ({}, ("body", "grid"), "at least one key"),
        ({"grid": {"seed": [1]}, "random": {"seed": [2]}}, ("body", "random", "seed"), "grid already"),
        ({"random": {"priors.ratios": {"min": 0, "max": 1}}}, ("body", "random", "priors.ratios"), "not a number"),
        (
            {"random": {"train.learning_rate": {"min": 1, "max": 0.1}}},
            ("body", "random", "train.learning_rate"),
            "above max",
        ),
        (
            {"random": {"train.learning_rate": {"min": 0, "max": 1, "log": True}}},
            ("body", "random", "train.learning_rate", "min"),
            "min > 0",
        ),  # fmt: skip
        ({"random": {"train.batch_size": {"min": 1.5, "max": 4}}}, ("body", "random", "train.batch_size"), "whole"),
        ({"random": {"train.learning_rate": {"min": 0.1}}}, ("body", "random", "train.learning_rate"), "a range is"),
        ({"grid": {"seed": [1]}, "samples": 2}, ("body", "samples"), "random keys"),
    ],
)
def test_bad_entries_name_the_key(request_: dict[str, Any], loc: tuple[str, ...], words: str) -> None:
    with pytest.raises(Invalid) as refused:
        spec(**request_)
    assert refused.value.loc == loc
    assert words in refused.value.message


def test_apply_sets_dotted_keys_without_touching_the_base() -> None:
    base = {"preset": "notebook", "train": {"steps": 5}}
    out = apply(base, {"train.learning_rate": 0.01, "model.num_units": 4, "seed": 3})
    assert out == {
        "preset": "notebook",
        "train": {"steps": 5, "learning_rate": 0.01},
        "model": {"num_units": 4},
        "seed": 3,
    }
    assert base == {"preset": "notebook", "train": {"steps": 5}}
    assert get(out, "train.learning_rate") == 0.01 and get(out, "data.image_size") is None
