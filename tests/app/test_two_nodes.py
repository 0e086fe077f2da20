"""Multi-worker jobs on a real two-node Ray cluster: the second node in namespaces of its own
(``ray_nodes.TwoNodes``, ``shared/TWO-NODES.md``), 2 CPUs each, and ``ssdboard serve`` with the
ray executor on an address both nodes reach.

Shown: a 2-worker job's workers run on the two node IPs (Ray's state API and the TensorFlow
cluster spec in ``run.json`` agree) with every step reported once; a partition fails the job
within 30 s with one line naming the silent peer, and a resume after the link is back finishes; a
job whose workers do not fit says it is waiting, with the timeout, and fails when it passes; a
worker that raises leaves its traceback in ``ray job logs`` and on the job, and Ray says FAILED.

Needs root for the namespaces; skips elsewhere, saying why (CI runs as root, so it runs there).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import TERMINAL, ServerProcess, sse, tiny, wait_for, wait_for_step
from ray_nodes import TwoNodes, namespaces_unavailable, ray_job, ray_job_ended

pytestmark = pytest.mark.slow
if os.environ.get("CI"):  # CI installs the ray extra: a missing Ray is a failure there, not a skip
    import ray.job_submission as job_submission
else:
    job_submission = pytest.importorskip("ray.job_submission")

TOKEN = "two-nodes-token-0123456789"
PLACEMENT_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    if (why := namespaces_unavailable()) is not None:
        pytest.skip(why)
    temp = Path(tempfile.mkdtemp(prefix="ray2", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    cluster = TwoNodes(temp, cpus=2)
    try:
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def server(two_nodes: TwoNodes, tmp_path: Path) -> Iterator[ServerProcess]:
    """``ssdboard serve`` on every address with a token; workers on either node report to the head's IP."""
    process = ServerProcess(tmp_path / "data")
    process.env = {
        "SSDBOARD_HOST": "0.0.0.0",  # noqa: S104 - the second node reaches it on the veth address
        "SSDBOARD_ALLOWED_HOSTS": two_nodes.head_ip,  # the Host of the workers' reports
        "SSDBOARD_TOKEN": TOKEN,
        "SSDBOARD_SERVER_URL": f"http://{two_nodes.head_ip}:{process.port}",
        "SSDBOARD_EXECUTOR": "ray",
        "SSDBOARD_RAY_ADDRESS": two_nodes.address,
        "SSDBOARD_RAY_PYTHON": sys.executable,
        "SSDBOARD_RAY_PLACEMENT_TIMEOUT_S": str(PLACEMENT_TIMEOUT_S),
        "SSDBOARD_ARTIFACT_DIR": str(tmp_path / "shared"),  # both nodes see this machine's files
    }
    process.start(timeout=60)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})


def _hosts(run: dict[str, str]) -> list[str]:
    """The node IP of each worker in ``run.json``'s ``workers`` (the TensorFlow cluster, the chief's first)."""
    return [address.rpartition(":")[0] for address in run["workers"].split(", ")]


def test_a_two_worker_job_runs_on_both_nodes_with_every_step_once(two_nodes: TwoNodes, server: ServerProcess) -> None:
    from ray.util.state import list_actors, list_nodes

    with _client(server) as http:
        job = http.post("/api/jobs", json=tiny(steps=6, workers=2, batch_size=4, eval_every=3)).json()
        done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=300)
        assert done["status"] == "succeeded" and done["step"] == 6, done
        history = http.get(f"/api/jobs/{job['id']}/metrics").json()
        assert [m["step"] for m in history["metrics"]] == [1, 2, 3, 4, 5, 6]
        assert [e["step"] for e in history["evals"]] == [3, 6]
        events = list(sse(http, f"/api/jobs/{job['id']}/events"))
        assert [e["data"]["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    chief, peer = _hosts(done["run"])
    assert {chief, peer} == {two_nodes.head_ip, two_nodes.node_ip}, done["run"]  # though one node had room for both
    assert done["run"]["placement"].startswith("2 workers on 2 nodes (STRICT_SPREAD)"), done["run"]
    # Ray agrees: the Ray job's driver (the chief) on one node, the job's PeerActor on the other.
    ended = ray_job_ended(two_nodes.address, job["id"])
    ips = {n.node_id: n.node_ip for n in list_nodes(address=two_nodes.address)}
    assert ips[ended.driver_node_id] == chief
    actors = list_actors(address=two_nodes.address, filters=[("class_name", "=", "PeerActor")], detail=True)
    (actor,) = [a for a in actors if a.job_id == ended.job_id]
    assert ips[actor.node_id] == peer


def test_a_partition_fails_the_job_naming_the_peer_and_a_resume_finishes(
    two_nodes: TwoNodes, server: ServerProcess
) -> None:
    steps = 300
    with _client(server) as http:
        config = tiny(steps=steps, workers=2, batch_size=4, eval_every=0, checkpoint_every=20)
        job = http.post("/api/jobs", json=config).json()
        running = wait_for_step(http, job["id"], 30, timeout=300)
        running = http.get(f"/api/jobs/{job['id']}").json()
        chief, peer = _hosts(running["run"])
        # The chief reports to the head's IP: it must be on the head's side of the cut (Ray puts
        # the Ray job's driver on the node that takes the submission while it has room).
        assert chief == two_nodes.head_ip, running["run"]
        cut_at = time.monotonic()
        two_nodes.cut()
        try:
            failed = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=60)
            took = time.monotonic() - cut_at
        finally:
            two_nodes.mend()
        peer_address = running["run"]["workers"].split(", ")[1]
        assert failed["status"] == "failed", failed
        assert failed["error"] == (
            f"worker process 1 of 2 ({peer_address}) stopped answering the chief: its node was lost or the "
            "network to it was cut (TensorFlow's heartbeat check aborted the step's all-reduce)"
        )
        assert took < 30, f"the job failed {took:.1f} s after the cut"
        assert "stopped sending heartbeats" in failed["run"]["traceback"]  # TensorFlow's text, under details
        assert peer == two_nodes.node_ip

        http.post(f"/api/jobs/{job['id']}/resume")
        done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=300)
        assert done["status"] == "succeeded" and done["step"] == steps, done
        history = http.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
        assert [m["step"] for m in history] == list(range(1, steps + 1))
    assert ray_job_ended(two_nodes.address, job["id"]).status == "SUCCEEDED"


def _hold_cpus(address: str, cpus: int) -> str:
    """A Ray job that holds ``cpus`` CPUs of one node until stopped; its submission id."""
    client = job_submission.JobSubmissionClient(address)
    held = client.submit_job(entrypoint="sleep 600", entrypoint_num_cpus=cpus)
    deadline = time.monotonic() + 60
    while client.get_job_status(held).value != "RUNNING":
        assert time.monotonic() < deadline, client.get_job_info(held)
        time.sleep(0.5)
    return str(held)


def test_a_job_whose_workers_do_not_fit_says_it_waits_then_fails_at_the_timeout(
    two_nodes: TwoNodes, server: ServerProcess
) -> None:
    """4 CPUs, 2 held by another Ray job: a 3-worker job's chief runs, its 2 peers cannot be placed."""
    held = _hold_cpus(two_nodes.address, 2)
    client = job_submission.JobSubmissionClient(two_nodes.address)
    try:
        with _client(server) as http:
            job = http.post("/api/jobs", json=tiny(steps=4, workers=3, batch_size=3, eval_every=0)).json()
            waiting = wait_for(http, job["id"], lambda j: j["waiting"] is not None or j["status"] in TERMINAL, 240)
            assert waiting["status"] == "running" and waiting["step"] == 0, waiting
            room = "waiting for the Ray cluster to have room for 2 more workers (1 CPU each)"
            assert waiting["waiting"] == f"{room}, up to {PLACEMENT_TIMEOUT_S} s"
            failed = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=PLACEMENT_TIMEOUT_S + 60)
            assert failed["status"] == "failed" and failed["waiting"] is None, failed
            assert failed["error"].startswith(
                f"the Ray cluster had no room for 2 more workers (1 CPU each) within {PLACEMENT_TIMEOUT_S} s"
            )
            client.stop_job(held)
            http.post(f"/api/jobs/{job['id']}/resume")
            done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=300)
            assert done["status"] == "succeeded" and done["step"] == 4 and done["waiting"] is None, done
            assert done["run"]["placement"].startswith("3 workers on 2 nodes (SPREAD)"), done["run"]
    finally:
        client.stop_job(held)


def test_a_worker_that_raises_leaves_its_traceback_and_a_failed_ray_job(
    two_nodes: TwoNodes, server: ServerProcess
) -> None:
    config: dict[str, Any] = tiny(steps=50, workers=2, batch_size=4, learning_rate=10, schedule="constant")
    config["train"].update(precision="float32", checkpoint_every=0, eval_every=0)
    config["loss"] = {"alpha": 1000}
    config["matching"] = {"variances": [1e-38, 1e-38]}  # the loss overflows (test_jobs.py's recipe)
    with _client(server) as http:
        job = http.post("/api/jobs", json=config).json()
        failed = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=300)
        assert failed["status"] == "failed" and "became" in failed["error"], failed
        assert "NonFiniteLossError" in failed["run"]["traceback"]
    ended = ray_job_ended(two_nodes.address, job["id"])
    assert ended.status == "FAILED", ended
    logs = job_submission.JobSubmissionClient(two_nodes.address).get_job_logs(ended.submission_id)
    assert "Traceback (most recent call last):" in logs and "NonFiniteLossError" in logs
    assert ray_job(two_nodes.address, job["id"]).submission_id == ended.submission_id
