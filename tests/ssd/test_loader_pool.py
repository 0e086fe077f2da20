"""``data.loader_processes``: batches made by worker processes are the in-process ones, in order,
and a run trains the same with or without them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssd.config import ConfigError, from_dict
from ssd.data import for_config
from ssd.datasets.source import GeneratedSource
from ssd.loader_pool import BatchPool

TINY = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 3, "val_images": 4},
    "train": {"steps": 3, "batch_size": 4, "eval_images": 4, "checkpoint_every": 0},
}


def test_pool_batches_are_the_in_process_ones_in_order() -> None:
    config = from_dict(TINY)
    dataset = for_config(config, "train")
    starts = [0, 40, 4, 1000, 8, 12, 16]  # out of order, so order is the pool's doing
    with BatchPool(config, GeneratedSource(), processes=2, ahead=1) as pool:
        made = list(pool.batches(starts, 4))
    assert len(made) == len(starts)
    for start, (images, boxes, labels) in zip(starts, made, strict=True):
        expected = dataset.batch(start, 4)
        np.testing.assert_array_equal(images, expected[0])
        np.testing.assert_array_equal(boxes, expected[1])
        np.testing.assert_array_equal(labels, expected[2])


def test_a_run_trains_the_same_with_loader_processes(tmp_path: Path) -> None:
    from ssd.train import Trainer

    losses = {}
    for processes in (0, 2):
        config = from_dict({**TINY, "data": {**TINY["data"], "loader_processes": processes}})  # type: ignore[dict-item]
        trainer = Trainer(config, tmp_path / str(processes))
        assert trainer.loader.processes == processes
        steps: list[dict[str, float]] = []
        trainer.fit(on_step=steps.append)
        losses[processes] = np.array([[s["num_pos"], s["total"]] for s in steps])
    np.testing.assert_allclose(losses[2], losses[0], rtol=1e-5)


def _train_in_a_daemon(queue: Any) -> None:
    """A dashboard worker's situation: a daemonic process with a pool; reports, then waits."""
    with BatchPool(from_dict(TINY), GeneratedSource(), processes=2) as pool:
        images, _, _ = list(pool.batches(range(0, 32, 4), 4))[0]
        children = [p.pid for p in multiprocessing.active_children()]
        queue.put((int(images.sum()), children))
        time.sleep(60)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (exited, not yet reaped by the init it was handed to) does not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_daemonic_worker_gets_loader_processes_that_end_with_it() -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    worker = ctx.Process(target=_train_in_a_daemon, args=(queue,), daemon=True)
    worker.start()
    try:
        total, children = queue.get(timeout=60)
        assert total == int(for_config(from_dict(TINY), "train").batch(0, 4)[0].sum())
        assert children and all(_alive(pid) for pid in children)  # started on demand, up to 2
    finally:
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)  # no clean-up: the loaders must notice on their own
        worker.join(10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children)


def test_loader_processes_is_checked() -> None:
    assert from_dict({}).data.loader_processes == -1
    with pytest.raises(ConfigError) as bad:
        from_dict({"data": {"loader_processes": -2}})
    assert bad.value.field == "data.loader_processes" and "-1 (auto)" in bad.value.message


def test_a_helper_whose_parent_died_while_it_started_exits_at_once() -> None:
    """The race the daemon test above once lost: the parent killed while a loader still imported,
    so ``getppid()`` already named the reaper; given the parent's pid, the helper exits at once."""
    import subprocess
    import sys

    code = "from ssd.lifetime import exit_with_parent; exit_with_parent(7, parent=-5); import time; time.sleep(60)"
    done = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert done.returncode == 7
