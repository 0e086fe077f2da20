"""benchmarks.executors without Ray or training: its summary, its Ray head's command line and how it
ends that cluster's processes (by pid, found by the temp dir in their command lines)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.executors import end_processes, job_config, processes_of, ray_head_command, summarize


def _run(executor: str, first: float, rate: float, status: str = "succeeded") -> dict[str, Any]:
    return {
        "executor": executor,
        "status": status,
        "every_step_once": True,
        "time_to_first_step_s": first,
        "steps_per_s": rate,
        "delivery_lag_ms_median": 10.0,
        "wall_s": first + 200 / rate,
    }


def test_medians_and_ratios() -> None:
    runs = [_run("local", 10, 4.0), _run("ray", 15, 3.9), _run("ray", 17, 4.1), _run("local", 12, 3.8)]
    runs += [_run("local", 11, 4.2), _run("ray", 16, 4.0)]
    summary = summarize(runs)
    assert summary["medians"]["local"]["time_to_first_step_s"] == 11
    assert summary["medians"]["ray"]["steps_per_s"] == 4.0
    assert summary["ratio_ray_over_local"]["time_to_first_step_s"] == 16 / 11
    assert summary["ratio_ray_over_local"]["steps_per_s"] == 1.0
    assert [r["time_to_first_step_s"] for r in summary["per_round"]] == [15 / 10, 17 / 12, 16 / 11]
    assert summary["all_succeeded"]
    assert not summarize([*runs, _run("ray", 1, 1, status="failed")])["all_succeeded"]


def test_the_job_and_the_ray_head() -> None:
    config = job_config("x", steps=200, batch_size=8, model="default")
    assert config["train"] == {"steps": 200, "batch_size": 8, "eval_images": 16, "checkpoint_every": 0}
    assert "model" not in config  # the default recipe's model
    assert job_config("y", steps=5, batch_size=2, model="tiny")["model"]["num_units"] == 2
    command = ray_head_command(Path("/tmp/rayx"), 8265, 2)
    assert command[1:3] == ["start", "--head"] and "--block" not in command
    assert command[command.index("--dashboard-host") + 1] == "127.0.0.1"
    assert command[command.index("--node-ip-address") + 1] == "127.0.0.1"
    ports = [command[i + 1] for i, part in enumerate(command) if part.endswith("-port") or part == "--port"]
    assert len(ports) == 9 and len(set(ports)) == 9  # every port its own, none of Ray's defaults


def test_only_the_marked_processes_and_their_children_are_ended() -> None:
    marked = subprocess.Popen(["bash", "-c", "sleep 60 & wait; : /tmp/raybx-test-marker"])
    other = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.3)
        pids = processes_of("/tmp/raybx-test-marker")
        assert marked.pid in pids and len(pids) == 2 and other.pid not in pids  # bash and its sleep
        end_processes(pids, timeout=5)
        assert marked.wait(5) is not None and processes_of("/tmp/raybx-test-marker") == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
