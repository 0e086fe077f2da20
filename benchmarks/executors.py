"""What the ``ray`` executor costs against ``local``: ``python -m benchmarks.executors`` (``make bench``).

Starts a one-node Ray cluster on loopback the way ``tests/app/test_ray_executor.py`` does
(``ray start --head``, 2 CPUs, every port free and bound to 127.0.0.1, its own ``--temp-dir``) and
two ``ssdboard serve`` (:mod:`benchmarks.server`), one with ``SSDBOARD_EXECUTOR=local`` and one with
``SSDBOARD_EXECUTOR=ray``. Both stay up for the whole run, so each executor's jobs see the same idle
Ray cluster and the same idle second server. The same job (the default model at batch 8, 200 steps,
no checkpoint before the end) goes to each in turn, ``--repeats`` rounds, the order alternating
(local, ray, ray, local, ...); one job at a time, followed over SSE from the moment it is posted:

- **time to first step**: from just before ``POST /api/jobs`` to the arrival of its first ``step``
  event (queueing, starting the worker, TensorFlow's import, the model, the first step's tracing;
  for Ray also the submission, the job's supervisor actor and its entrypoint's start);
- **steps/s**: steps 2..N over the worker's own clock (the step events' ``time``), so the
  transport's batching does not count; **delivery lag**: an event's arrival minus that time;
- **wall**: from the POST to the job's terminal status.

Prints the medians and the ratios ray / local (per round and of the medians), the CPU (``lscpu``'s
"Model name") and the load average; writes ``.bench/executors.json``. At the end the servers stop and
the Ray cluster's processes (those under this run's ``--temp-dir``, and their children) are ended
by pid: other Ray clusters on the machine are left alone (no ``ray stop``, which stops every one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from app.domain import TERMINAL
from benchmarks.server import free_port, start_server, stop_server
from ssd.precision import cpu_info

EXECUTORS = ("local", "ray")
RAY_PORT_OPTIONS = (
    "--port",
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
    "--ray-client-server-port",
)
TINY_MODEL: dict[str, Any] = {  # benchmarks.sse's: hundreds of steps/s (the transport, not training)
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[8]], "ratios": [1.0]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2},
}


def job_config(name: str, *, steps: int, batch_size: int, model: str) -> dict[str, Any]:
    """The benchmark's job: the default recipe (or the tiny model) for ``steps`` steps."""
    config: dict[str, Any] = {
        "name": name,
        "data": {"val_images": 16},
        "train": {"steps": steps, "batch_size": batch_size, "eval_images": 16, "checkpoint_every": 0},
    }
    if model == "tiny":
        config.update({k: v for k, v in TINY_MODEL.items() if k != "data"})
        config["data"].update(TINY_MODEL["data"])
    return config


def ray_bin() -> str:
    """The ``ray`` command next to this interpreter (the ray extra), else the one on PATH."""
    script = Path(sys.executable).with_name("ray")
    return str(script) if script.exists() else (shutil.which("ray") or "ray")


def ray_head_command(temp_dir: Path, dashboard_port: int, cpus: int) -> list[str]:
    """``ray start --head`` of a one-node cluster on loopback, every port a free one."""
    command = [ray_bin(), "start", "--head", "--num-cpus", str(cpus), "--num-gpus", "0"]
    command += ["--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1", "--include-dashboard", "true"]
    command += ["--dashboard-port", str(dashboard_port), "--disable-usage-stats", "--temp-dir", str(temp_dir)]
    for name in RAY_PORT_OPTIONS:
        command += [name, str(free_port())]
    return command


def processes_of(marker: str) -> list[int]:
    """Pids of the processes whose command line contains ``marker``, and of all their descendants."""
    parents: dict[int, int] = {}
    roots = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if marker.encode() in argv:
            roots.append(int(proc.name))
    found = set(roots)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found - {os.getpid()})


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for its parent to reap it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def end_processes(pids: Sequence[int], timeout: float = 15) -> None:
    """SIGTERM ``pids``, then SIGKILL those still there after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            time.sleep(0.2)
        pids = [pid for pid in pids if alive(pid)]
        if not pids:
            return


class RayHead:
    """A one-node Ray cluster on loopback in its own temporary directory; :meth:`stop` ends it by pid."""

    def __init__(self, cpus: int = 2) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="raybx", dir="/tmp"))  # Ray's socket paths: <= 107 bytes
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.cpus = cpus
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}

    def start(self, timeout: float = 120) -> RayHead:
        """``ray start --head`` and wait until the Jobs API answers."""
        command = ray_head_command(self.temp_dir, self.dashboard_port, self.cpus)
        started = subprocess.run(command, capture_output=True, text=True, timeout=180, env=self.env)
        if started.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({started.returncode}):\n{started.stdout}{started.stderr}")
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout
        while True:  # the Jobs API answers once the dashboard's job module and its agent are up
            try:
                JobSubmissionClient(self.address).list_jobs()
                return self
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(1)

    def stop(self) -> None:
        """End this cluster's processes (their command lines name its temp dir) and their children."""
        end_processes(processes_of(str(self.temp_dir)))
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def ray_worker_env(job_id: str) -> dict[str, str]:
    """OMP_NUM_THREADS (as Ray set it) and the thread count of ``job_id``'s Ray worker process."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"app.worker.main" not in argv or job_id.encode() not in argv:
                continue
            environ = dict(
                item.decode(errors="replace").split("=", 1)
                for item in (proc / "environ").read_bytes().split(b"\0")
                if b"=" in item
            )
            threads = next(
                line.split()[1] for line in (proc / "status").read_text().splitlines() if line.startswith("Threads:")
            )
        except (OSError, StopIteration):
            continue
        return {"OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS", "(unset)"), "threads": threads}
    return {}


def run_job(base_url: str, config: dict[str, Any], executor: str, timeout: float) -> dict[str, Any]:
    """Post ``config``, follow its events to the end; the raw timings of this one run."""
    steps: list[int] = []
    worker_times: list[float] = []
    arrivals: list[float] = []
    lags: list[float] = []
    status = None
    worker: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=timeout)) as http:
        posted = time.perf_counter()
        job = http.post("/api/jobs", json=config).raise_for_status().json()
        with http.stream("GET", f"/api/jobs/{job['id']}/events") as response:
            response.raise_for_status()
            kind = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind is not None:
                    data = json.loads(line[5:])
                    if kind == "step":
                        arrivals.append(time.perf_counter() - posted)
                        lags.append(time.time() - data["time"])
                        steps.append(data["step"])
                        worker_times.append(data["time"])
                        if executor == "ray" and len(steps) == 1:
                            worker = ray_worker_env(job["id"])
                    elif kind == "status" and data["status"] in TERMINAL:
                        status = data["status"]
                        break
                elif not line:
                    kind = None
        wall = time.perf_counter() - posted
        final = http.get(f"/api/jobs/{job['id']}").json()
    n = len(steps)
    return {
        "executor": executor,
        "job_id": job["id"],
        "status": status or final["status"],
        "error": final.get("error"),
        "steps": n,
        "every_step_once": steps == list(range(1, n + 1)) and n == config["train"]["steps"],
        "time_to_first_step_s": arrivals[0] if arrivals else None,
        "steps_per_s": (n - 1) / (worker_times[-1] - worker_times[0]) if n > 1 else None,
        "delivery_lag_ms_median": 1000 * statistics.median(lags) if lags else None,
        "wall_s": wall,
        "ray_worker": worker,
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians per executor and the ratios ray / local: of the medians, and per round (pairs in order)."""
    keys = ("time_to_first_step_s", "steps_per_s", "delivery_lag_ms_median", "wall_s")
    medians: dict[str, dict[str, float | None]] = {}
    for executor in EXECUTORS:
        mine = [r for r in runs if r["executor"] == executor]
        medians[executor] = {
            key: statistics.median(values) if (values := [r[key] for r in mine if r[key] is not None]) else None
            for key in keys
        }
    ratios = {
        key: (ray / local if (ray := medians["ray"][key]) is not None and (local := medians["local"][key]) else None)
        for key in keys
    }
    pairs = zip(
        [r for r in runs if r["executor"] == "local"], [r for r in runs if r["executor"] == "ray"], strict=False
    )
    per_round = [
        {
            key: (ray[key] / local[key] if ray[key] is not None and local[key] else None)
            for key in ("time_to_first_step_s", "steps_per_s")
        }
        for local, ray in pairs
    ]
    ok = all(r["status"] == "succeeded" and r["every_step_once"] for r in runs)
    return {"medians": medians, "ratio_ray_over_local": ratios, "per_round": per_round, "all_succeeded": ok}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print and save the summary; 1 when a job did not succeed with every step."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.executors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps of each job (default 200)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of one job per executor (default 3)")
    parser.add_argument(
        "--model", choices=("default", "tiny"), default="default", help="default recipe's model, or 2 units at 32 px"
    )
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the Ray head (default 2)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one job may take (default 900)")
    parser.add_argument("--out", default=".bench/executors.json", help="where the JSON results go")
    args = parser.parse_args(argv)

    cpu = cpu_info()[0]
    print(f"CPU: {cpu} ({os.cpu_count()} cores); load average {os.getloadavg()[0]:.2f} at the start")
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ssdboard-bench-") as tmp_name:
        tmp = Path(tmp_name)
        ray_started = time.perf_counter()
        head = RayHead(args.ray_cpus).start()
        ray_start_s = time.perf_counter() - ray_started
        servers: dict[str, Any] = {}
        ports: dict[str, int] = {}
        try:
            base_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            for executor in EXECUTORS:
                env = {**base_env, "SSDBOARD_EXECUTOR": executor}
                if executor == "ray":
                    env |= {
                        "SSDBOARD_RAY_ADDRESS": head.address,
                        "SSDBOARD_RAY_PYTHON": sys.executable,
                        "SSDBOARD_ARTIFACT_DIR": str(tmp / "shared"),
                    }
                ports[executor] = free_port()
                servers[executor] = start_server(
                    tmp / executor, ports[executor], tmp / f"{executor}.log", env=env, timeout=120
                )
            for round_ in range(args.repeats):
                order = EXECUTORS if round_ % 2 == 0 else EXECUTORS[::-1]
                for executor in order:
                    name = f"bench-executors-{executor}-{round_ + 1}"
                    config = job_config(name, steps=args.steps, batch_size=args.batch_size, model=args.model)
                    run = run_job(f"http://127.0.0.1:{ports[executor]}", config, executor, args.timeout)
                    runs.append(run)
                    print(
                        f"  round {round_ + 1} {executor:5}: {run['status']}, first step after "
                        f"{run['time_to_first_step_s'] or float('nan'):.1f} s, "
                        f"{run['steps_per_s'] or float('nan'):.2f} steps/s, wall {run['wall_s']:.1f} s"
                        + (f", worker {run['ray_worker']}" if run["ray_worker"] else ""),
                        flush=True,
                    )
        finally:
            for server in servers.values():
                stop_server(server)
            head.stop()
    summary = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1min_end": os.getloadavg()[0],
        "config": {"steps": args.steps, "batch_size": args.batch_size, "model": args.model, "repeats": args.repeats},
        "ray_head_start_s": ray_start_s,
        "total_s": time.perf_counter() - started,
        **summarize(runs),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    med, ratio = summary["medians"], summary["ratio_ray_over_local"]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    print(f"{args.model} model, batch {args.batch_size}, {args.steps} steps, {args.repeats} rounds (medians):")
    print(f"{'':22}{'local':>10}{'ray':>10}{'ray/local':>11}")
    for key, label, spec in (
        ("time_to_first_step_s", "time to first step s", ".1f"),
        ("steps_per_s", "steps/s", ".2f"),
        ("delivery_lag_ms_median", "delivery lag ms", ".0f"),
        ("wall_s", "wall s", ".1f"),
    ):
        local, ray = fmt(med["local"][key], spec), fmt(med["ray"][key], spec)
        print(f"{label:22}{local:>10}{ray:>10}{fmt(ratio[key], '.2f'):>11}")
    print(f"Ray head started in {ray_start_s:.1f} s; load average {summary['load_avg_1min_end']:.2f} at the end")
    print(f"{'every job succeeded with every step once' if summary['all_succeeded'] else 'A JOB FAILED'}; {out}")
    return 0 if summary["all_succeeded"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
