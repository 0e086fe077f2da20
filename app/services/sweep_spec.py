"""What a sweep asks for, as plain data: the swept keys, their values and the configs they make.

Pure functions, no store, no runner, no TensorFlow: :mod:`app.services.sweeps` validates the
configs these produce and queues them.

A sweep names config keys by their dotted path (``train.learning_rate``, ``priors.ratios``,
``seed``, ``preset``) and gives each either

- a **grid** entry, a list of values: every combination is run. The order is
  :func:`itertools.product` over the keys in the order the request gives them, the **last key
  changing fastest** (``{"a": [1, 2], "b": [3, 4]}`` runs ``(1, 3), (1, 4), (2, 3), (2, 4)``);
- a **random** entry, drawn ``samples`` times with :class:`random.Random` seeded by ``seed``:
  a list of values (one is chosen uniformly) or a :class:`Range` ``{"min", "max", "log"}``.
  A range over an integer key (``train.batch_size``, ``seed``) draws whole numbers, inclusive of
  both ends; a float draw is rounded to 4 significant digits so tables stay readable. Each
  sample draws the keys in the order given, so the same request draws the same values.

With both, every grid point runs with each of the same ``samples`` draws (grid outer, draws
inner): the draws are a controlled variable across the grid. ``samples`` left out fills
``max_jobs``: ``max_jobs // grid points`` draws. A grid alone larger than ``max_jobs`` is refused
with the count it makes; so is an explicit ``samples`` that would exceed it.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.domain import Invalid

MAX_JOBS = 200  # the most jobs one sweep may queue, whatever max_jobs says
TOP_LEVEL = ("preset", "name", "seed")  # keys outside the sections


@dataclass(frozen=True)
class Range:
    """A numeric range to draw from: uniform in ``[min, max]``, or log-uniform with ``log``.

    ``integer`` (set from the swept key's type) draws whole numbers, both ends included.
    """

    min: float
    max: float
    log: bool = False
    integer: bool = False

    def draw(self, rng: random.Random) -> float | int:
        """One value of the range."""
        if self.integer:
            if self.log:
                lo, hi = math.log(self.min), math.log(self.max + 1)
                return min(int(self.max), int(math.exp(rng.uniform(lo, hi))))
            return rng.randint(int(self.min), int(self.max))
        if self.log:
            value = 10 ** rng.uniform(math.log10(self.min), math.log10(self.max))
        else:
            value = rng.uniform(self.min, self.max)
        return min(self.max, max(self.min, float(f"{value:.4g}")))

    def to_dict(self) -> dict[str, Any]:
        """As a request gives it."""
        return {"min": self.min, "max": self.max, "log": self.log}


@dataclass(frozen=True)
class Spec:
    """A checked sweep request: grid and random entries by dotted key, draws and the cap."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, list[Any] | Range] = field(default_factory=dict)
    samples: int = 0  # random draws; 0 without random entries
    seed: int = 0
    max_jobs: int = 20

    @property
    def keys(self) -> list[str]:
        """The swept keys: grid's, then random's, each in the request's order."""
        return [*self.grid, *self.random]

    @property
    def grid_size(self) -> int:
        """Combinations of the grid (1 without one)."""
        return math.prod(len(values) for values in self.grid.values())

    @property
    def size(self) -> int:
        """Jobs the sweep makes."""
        return self.grid_size * (self.samples or 1)

    def section_of(self, key: str) -> str:
        """``"grid"`` or ``"random"``: where ``key`` sits in the request."""
        return "grid" if key in self.grid else "random"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as a request would give it (``samples`` resolved)."""
        random_ = {k: v.to_dict() if isinstance(v, Range) else v for k, v in self.random.items()}
        return {
            "grid": self.grid,
            "random": random_,
            "samples": self.samples,
            "seed": self.seed,
            "max_jobs": self.max_jobs,
        }


def sweepable(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Every key a sweep may set, dotted, with its value in ``defaults`` (a resolved config)."""
    keys: dict[str, Any] = {"preset": "default"}
    for key, value in defaults.items():
        if isinstance(value, Mapping):
            keys.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            keys[key] = value
    return keys


def show(value: Any) -> str:
    """A value as the messages quote it: JSON (``0.001``, ``[0.5, 1]``, ``"cosine"``)."""
    return json.dumps(value, separators=(", ", ": "))


def _check_key(key: str, known: Mapping[str, Any], loc: tuple[str | int, ...]) -> None:
    if key in known:
        return
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; keys look like train.learning_rate or priors.ratios"
    raise Invalid(loc, f"unknown config key {key!r}{hint}")


def _is_integer_key(default: Any) -> bool:
    return isinstance(default, int) and not isinstance(default, bool)


def _range(key: str, value: Mapping[str, Any], default: Any, loc: tuple[str | int, ...]) -> Range:
    extra = set(value) - {"min", "max", "log"}
    if extra or not {"min", "max"} <= set(value):
        raise Invalid(loc, f'a range is {{"min": ..., "max": ..., "log": false}}, got {show(value)}')
    if not isinstance(default, int | float) or isinstance(default, bool):
        raise Invalid(loc, f"{key} is not a number ({show(default)}): give a list of values to draw from")
    lo, hi, log = value["min"], value["max"], value.get("log", False)
    for name, bound in (("min", lo), ("max", hi)):
        if not isinstance(bound, int | float) or isinstance(bound, bool) or not math.isfinite(bound):
            raise Invalid((*loc, name), f"must be a finite number, got {show(bound)}")
    if not isinstance(log, bool):
        raise Invalid((*loc, "log"), f"must be true or false, got {show(log)}")
    integer = _is_integer_key(default)
    if integer and not (float(lo).is_integer() and float(hi).is_integer()):
        raise Invalid(loc, f"{key} takes whole numbers: min and max must be whole, got {show(lo)}..{show(hi)}")
    if lo > hi:
        raise Invalid(loc, f"min {show(lo)} is above max {show(hi)}")
    if log and lo <= 0:
        raise Invalid((*loc, "min"), f"a log range needs min > 0, got {show(lo)}")
    return Range(min=lo, max=hi, log=log, integer=integer)


def _values(value: Any, loc: tuple[str | int, ...]) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(loc, f"must be a list of values, got {show(value)}")
    if not value:
        raise Invalid(loc, "needs at least one value")
    return value


def parse(
    *,
    grid: Mapping[str, Any] | None,
    random: Mapping[str, Any] | None,
    samples: int | None,
    seed: int,
    max_jobs: int,
    defaults: Mapping[str, Any],
    loc: tuple[str | int, ...] = ("body",),
) -> Spec:
    """Check a sweep request's keys, values and size against ``defaults`` (a resolved config).

    Raises:
        Invalid: an unknown key, an empty or malformed entry, a key in both grid and random, no
            swept key at all, or more jobs than ``max_jobs``; ``loc`` names the entry.
    """
    known = sweepable(defaults)
    grid_: dict[str, list[Any]] = {}
    for key, value in (grid or {}).items():
        _check_key(key, known, (*loc, "grid", key))
        grid_[key] = _values(value, (*loc, "grid", key))
    random_: dict[str, list[Any] | Range] = {}
    for key, value in (random or {}).items():
        where = (*loc, "random", key)
        _check_key(key, known, where)
        if key in grid_:
            raise Invalid(where, f"{key} is swept by the grid already; give it in one of grid or random")
        random_[key] = _range(key, value, known[key], where) if isinstance(value, Mapping) else _values(value, where)
    if not grid_ and not random_:
        raise Invalid((*loc, "grid"), "a sweep needs at least one key in grid or random")
    spec = Spec(grid=grid_, random=random_, samples=0, seed=seed, max_jobs=max_jobs)
    if spec.grid_size > max_jobs:
        counts = " x ".join(f"{len(v)} {k}" for k, v in grid_.items())
        raise Invalid(
            (*loc, "max_jobs"),
            f"the grid makes {spec.grid_size} jobs ({counts}), more than max_jobs = {max_jobs}; "
            "raise max_jobs or give fewer values",
        )
    if random_:
        if samples is None:
            samples = max_jobs // spec.grid_size
        elif spec.grid_size * samples > max_jobs:
            raise Invalid(
                (*loc, "samples"),
                f"{spec.grid_size} grid points x {samples} samples = {spec.grid_size * samples} jobs, "
                f"more than max_jobs = {max_jobs}",
            )
        spec = Spec(grid=grid_, random=random_, samples=samples, seed=seed, max_jobs=max_jobs)
    elif samples is not None:
        raise Invalid((*loc, "samples"), "samples counts random draws: give random keys, or sweep seed in the grid")
    return spec


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid``, the last key changing fastest; ``[{}]`` for no grid."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def draws(spec: Spec) -> list[dict[str, Any]]:
    """``spec.samples`` draws of the random keys (seeded by ``spec.seed``); ``[{}]`` without random keys."""
    if not spec.random:
        return [{}]
    rng = random.Random(spec.seed)
    out = []
    for _ in range(spec.samples):
        sample = {}
        for key, source in spec.random.items():
            sample[key] = source.draw(rng) if isinstance(source, Range) else copy.deepcopy(rng.choice(source))
        out.append(sample)
    return out


def expand(spec: Spec) -> list[dict[str, Any]]:
    """The swept values of every job, in queue order: each grid point with each draw."""
    samples = draws(spec)
    return [{**point, **sample} for point in grid_points(spec.grid) for sample in samples]


def apply(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a client's config) with each dotted key of ``values`` set; ``base`` is not changed."""
    out = copy.deepcopy(dict(base))
    for key, value in values.items():
        *sections, leaf = key.split(".")
        target = out
        for section in sections:
            if not isinstance(target.get(section), dict):
                target[section] = {}
            target = target[section]
        target[leaf] = copy.deepcopy(value)
    return out


def get(config: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key of a config, or None."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
