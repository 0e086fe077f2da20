"""The layout of a run directory: the files training writes and detection loads.

One place for the names that :class:`ssd.train.Trainer` writes, :class:`ssd.detect.Detector`
loads and the web server lists, serves and watches. Standard library only (and
:mod:`ssd.config`), no TensorFlow: the server can ask whether a run has a checkpoint, or read
its config, without loading a model.

A run directory holds:

- :data:`CONFIG_FILE` ``config.json``: the run's :class:`~ssd.config.Config` as
  ``Config.to_dict()`` JSON.
- :data:`WEIGHTS_FILE` ``model.weights.h5``: the Keras weights of :func:`ssd.model.build_ssd`.
- :data:`STATE_FILE` ``train_state.npz``: ``step`` (int64) and the optimizer variables
  ``v0 .. v{n-1}`` in ``optimizer.variables`` order.
- :data:`METRICS_FILE` ``metrics.jsonl``: one JSON object per training step.
- :data:`EVALS_FILE` ``evals.jsonl``: one JSON object per evaluation.
- :data:`RUN_FILE` ``run.json``: how the run computes (``precision``, ``precision_reason``,
  ``xla`` ``"on"``/``"off"``, ``xla_reason``, ``loader_processes``, ``loader_reason``,
  ``device``), written when training starts; the job page shows it. A run that early stopping
  ended adds ``stop_reason``.
- :data:`BEST_WEIGHTS_FILE` ``best.weights.h5``: the weights at the evaluation with the highest
  ``map50`` so far (ties keep the earlier), beside the last checkpoint's.
- :data:`BEST_FILE` ``best.json``: which evaluation that was, ``{"step", "map50", "map"}``.

The first three are the checkpoint (:data:`CHECKPOINT_FILES`): with them a run resumes, or its
model detects. Weights and state are replaced atomically (written to a temporary file, then
renamed), so a reader sees either the previous checkpoint or the new one. The best weights are
written the same way, before ``best.json``. :func:`weights_path` is the file a reader loads:
the best when there is one, unless asked for the last (``--weights last``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from ssd.config import Config, ConfigError, from_dict
from ssd.sections import JOB_PREFIX

__all__ = [
    "BEST_FILE",
    "BEST_WEIGHTS_FILE",
    "CHECKPOINT_FILES",
    "CONFIG_FILE",
    "EVALS_FILE",
    "METRICS_FILE",
    "STATE_FILE",
    "WEIGHTS_FILE",
    "RUN_FILE",
    "TRACEBACK_FILE",
    "WEIGHTS_CHOICES",
    "InitKind",
    "check_init",
    "has_checkpoint",
    "init_kind",
    "init_source",
    "read_best",
    "read_config",
    "read_recipe",
    "read_run_info",
    "write_recipe",
    "weights_path",
    "write_best",
    "write_config",
    "write_run_info",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "train_state.npz"
METRICS_FILE = "metrics.jsonl"
EVALS_FILE = "evals.jsonl"
RUN_FILE = "run.json"
TRACEBACK_FILE = "error.txt"
"""A failed run's whole traceback (the dashboard's worker writes it; the job page shows it)."""
RECIPE_FILE = "recipe.json"
"""What the data-fitted recipe chose (:mod:`ssd.recipe`): ``{"choices": [{"key", "value", "reason", "text"}]}``."""
CHECKPOINT_FILES: tuple[str, ...] = (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE)
BEST_WEIGHTS_FILE = "best.weights.h5"
"""The weights at the evaluation with the highest mAP@.5 so far (ties keep the earlier)."""
BEST_FILE = "best.json"
"""Which evaluation :data:`BEST_WEIGHTS_FILE` holds: ``{"step": int, "map50": float, "map": float}``."""
WEIGHTS_CHOICES: tuple[str, ...] = ("best", "last")
"""What a reader may ask for: ``best`` (the best weights where there are some, else the last) or ``last``."""


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds every file of :data:`CHECKPOINT_FILES` (as a regular file)."""
    directory = Path(directory)
    return all((directory / name).is_file() for name in CHECKPOINT_FILES)


def read_config(directory: str | Path) -> Config:
    """The :class:`~ssd.config.Config` of ``directory/config.json``.

    Raises:
        FileNotFoundError: there is no config file (the message names its path).
        ValueError: it is not readable JSON (the message names its path);
            :class:`ssd.config.ConfigError` for JSON that is no valid config.
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint config not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint config {path} is not valid JSON: {exc}") from exc
    return from_dict(data)


def write_config(directory: str | Path, config: Config) -> Path:
    """Write ``config`` to ``directory/config.json`` (indented JSON, atomically); return the path."""
    path = Path(directory) / CONFIG_FILE
    tmp = path.with_name(f"tmp-{CONFIG_FILE}")
    tmp.write_text(json.dumps(config.to_dict(), indent=2))
    os.replace(tmp, path)
    return path


def write_run_info(directory: str | Path, info: dict[str, str]) -> Path:
    """Write ``run.json`` (how the run computes) atomically."""
    path = Path(directory) / RUN_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def write_recipe(directory: str | Path, choices: list[dict[str, Any]]) -> Path:
    """Write ``recipe.json`` (the recipe's choices, :meth:`ssd.recipe.Choice.to_dict`) atomically."""
    path = Path(directory) / RECIPE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"choices": choices}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_recipe(directory: str | Path) -> list[str] | None:
    """The recipe's choices of a run directory as lines (``key = value: reason``), or None."""
    try:
        data = json.loads((Path(directory) / RECIPE_FILE).read_text())
        return [str(choice["text"]) for choice in data["choices"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_run_info(directory: str | Path) -> dict[str, str] | None:
    """``run.json`` of a run directory, or None before training started (or if unreadable)."""
    try:
        data = json.loads((Path(directory) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def weights_path(directory: str | Path, weights: str = "best") -> Path:
    """The weights file to load from ``directory``: for ``"best"`` :data:`BEST_WEIGHTS_FILE` when
    it exists, else :data:`WEIGHTS_FILE`; for ``"last"`` :data:`WEIGHTS_FILE`.

    Raises:
        ValueError: ``weights`` is not one of :data:`WEIGHTS_CHOICES`.
    """
    if weights not in WEIGHTS_CHOICES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS_CHOICES)}, got {weights!r}")
    directory = Path(directory)
    best = directory / BEST_WEIGHTS_FILE
    if weights == "best" and best.is_file():
        return best
    return directory / WEIGHTS_FILE


def read_best(directory: str | Path) -> dict[str, Any] | None:
    """``best.json`` of a run directory (``step``, ``map50``, ``map``), or None where there is none
    (or it is unreadable)."""
    try:
        data = json.loads((Path(directory) / BEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("step"), int) or "map50" not in data:
        return None
    return {"step": int(data["step"]), "map50": float(data["map50"]), "map": float(data.get("map", 0.0))}


def write_best(directory: str | Path, record: dict[str, Any]) -> Path:
    """Write ``best.json`` (``step``, ``map50``, ``map`` of ``record``) atomically; return the path."""
    path = Path(directory) / BEST_FILE
    tmp = path.with_name(f"tmp-{BEST_FILE}")
    best = {"step": int(record["step"]), "map50": float(record["map50"]), "map": float(record["map"])}
    tmp.write_text(json.dumps(best) + "\n")
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------- model.init
InitKind = Literal["none", "imagenet", "job", "checkpoint", "file"]
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
JOBS_DIR = "jobs"  # the dashboard's job directories under the artifact root (app.settings)


def init_kind(init: str) -> InitKind:
    """What ``model.init`` names: ``none``, ``imagenet``, ``job`` (``job:<id>``), ``checkpoint``
    (a run directory) or ``file`` (a Keras weights file of the backbone); a path that does not
    exist counts as a file (:func:`check_init` refuses it)."""
    if init in ("none", "imagenet"):
        return init  # type: ignore[return-value]
    if init.startswith(JOB_PREFIX):
        return "job"
    return "checkpoint" if Path(init).expanduser().is_dir() else "file"


def init_source(init: str, data_dir: str | Path) -> Path | None:
    """The directory or file ``model.init`` reads: ``job:<id>`` is ``data_dir/jobs/<id>`` (the
    dashboard's run directory of that job, ``data_dir`` the artifact root); None for ``none`` and
    ``imagenet``."""
    kind = init_kind(init)
    if kind in ("none", "imagenet"):
        return None
    if kind == "job":
        return Path(data_dir) / JOBS_DIR / init.removeprefix(JOB_PREFIX)
    return Path(init).expanduser()


def check_init(config: Config, data_dir: str | Path, *, within: str | Path | None = None) -> None:
    """Refuse a ``model.init`` that cannot start this run, before it is queued.

    ``job:<id>`` and a directory must hold a checkpoint (:func:`has_checkpoint`) of the same
    backbone; a file must exist and is for a keras.applications backbone. ``within``: a path
    must lie under it (the server reads no file outside its artifact root).

    Raises:
        ConfigError: on ``model.init``, saying what is wrong.
    """
    init, backbone = config.model.init, config.model.backbone
    kind = init_kind(init)
    source = init_source(init, data_dir)
    if source is None:
        return
    if kind == "job":
        job = init.removeprefix(JOB_PREFIX)
        if not JOB_ID.fullmatch(job):
            raise ConfigError("model.init", f"{job!r} is not a job id")
        if not has_checkpoint(source):
            what = "no checkpoint yet" if source.is_dir() else "no run directory"
            raise ConfigError("model.init", f"job {job} has {what} to start from")
    elif within is not None and not source.resolve().is_relative_to(Path(within).resolve()):
        raise ConfigError("model.init", f"{init} is outside {within}: put the file or run directory there")
    if kind == "file":
        if not source.is_file():
            raise ConfigError("model.init", f"no such file or directory: {init}")
        if backbone == "notebook":
            raise ConfigError(
                "model.init",
                "a weights file starts a mobilenet_v2 or resnet50 backbone; the notebook backbone "
                "starts from a run: job:<id> or a checkpoint directory",
            )
        return
    if kind == "checkpoint" and not has_checkpoint(source):
        raise ConfigError("model.init", f"{init} holds no checkpoint ({', '.join(CHECKPOINT_FILES)})")
    try:
        theirs = read_config(source).model.backbone
    except (OSError, ValueError) as exc:
        raise ConfigError("model.init", f"the run in {init} cannot be read: {exc}") from None
    if theirs != backbone:
        raise ConfigError(
            "model.init", f"{init} trained a {theirs} backbone, this run has {backbone}: the backbone must match"
        )
