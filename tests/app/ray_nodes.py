"""Real Ray clusters for the tests: a head on one address (:func:`start_head`), and a second node
in a network, PID and mount namespace of its own (:class:`TwoNodes`), the recipe of
``shared/TWO-NODES.md``: two node IPs, real TCP between them over a veth pair, and a link a test
can cut (:meth:`TwoNodes.cut`).

The namespaces need root (``ip netns``, ``unshare``); :func:`namespaces_unavailable` says why a
machine cannot make them, and the two-node tests skip with that reason.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.server import free_port

RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def start_head(ip: str, cpus: int, temp: str) -> tuple[str, str]:
    """``ray start --head`` on ``ip`` with ``cpus`` CPUs; its (Jobs API URL, GCS address), once the
    Jobs API answers. ``temp``: Ray's temp dir (short: its socket paths must fit 107 bytes)."""
    from ray.job_submission import JobSubmissionClient

    dashboard, gcs = free_port(), free_port()
    ports = {
        "--port": gcs,
        "--dashboard-port": dashboard,
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--metrics-export-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--ray-client-server-port": free_port(),
    }
    command = [RAY, "start", "--head", "--num-cpus", str(cpus), "--num-gpus", "0", "--node-ip-address", ip]
    command += ["--dashboard-host", ip, "--include-dashboard", "true", "--disable-usage-stats"]
    command += ["--object-store-memory", "200000000", "--temp-dir", temp]
    command += [str(x) for item in ports.items() for x in item]
    started = subprocess.run(command, capture_output=True, text=True, timeout=180, env=ENV)
    assert started.returncode == 0, started.stdout + started.stderr
    address = f"http://{ip}:{dashboard}"
    deadline = time.monotonic() + 60
    while True:  # the Jobs API answers once the dashboard's job module and the agent are up
        try:
            JobSubmissionClient(address).list_jobs()
            return address, f"{ip}:{gcs}"
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def stop_ray() -> None:
    """``ray stop --force``: every Ray process of this machine's namespace (the tests run one cluster at a time)."""
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=ENV)


def ray_job(address: str, job_id: str) -> Any:
    """The one Ray job of ``job_id``'s latest run."""
    from ray.job_submission import JobSubmissionClient

    runs = [j for j in JobSubmissionClient(address).list_jobs() if (j.metadata or {}).get("ssdboard_job") == job_id]
    return max(runs, key=lambda j: j.start_time or 0)


def ray_job_ended(address: str, job_id: str, timeout: float = 60) -> Any:
    """The Ray job of ``job_id``'s latest run once Ray says it ended (the worker exits after its last report)."""
    deadline = time.monotonic() + timeout
    while (job := ray_job(address, job_id)).status not in ("SUCCEEDED", "STOPPED", "FAILED"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make a second node in namespaces (None: it can)."""
    if os.geteuid() != 0:
        return "two Ray nodes on one machine need root for network namespaces (ip netns)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"two Ray nodes on one machine need `{tool}` (iproute2, util-linux)"
    probe = f"ssdprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine does not allow network namespaces: ip netns add: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"


class TwoNodes:
    """A head on ``head_ip`` (this namespace) and a second node on ``node_ip`` in namespace ``netns``.

    ``cpus`` each. :attr:`address` is the Jobs API's URL. :meth:`close` stops both and removes
    the namespace and the veth pair.
    """

    def __init__(self, temp: Path, cpus: int = 2) -> None:
        tag = f"{os.getpid() % 100000}"
        subnet = f"10.{random.randint(216, 250)}.{random.randint(0, 255)}"  # noqa: S311 - not a secret
        self.netns, self.veth = f"ssdt{tag}", f"vssd{tag}"
        self.head_ip, self.node_ip = f"{subnet}.1", f"{subnet}.2"
        self._node: subprocess.Popen[bytes] | None = None
        _ip("netns", "add", self.netns)
        try:
            _ip("link", "add", self.veth, "type", "veth", "peer", "name", f"{self.veth}b")
            _ip("link", "set", f"{self.veth}b", "netns", self.netns)
            _ip("addr", "add", f"{self.head_ip}/24", "dev", self.veth)
            _ip("link", "set", self.veth, "up")
            _ip("netns", "exec", self.netns, "ip", "addr", "add", f"{self.node_ip}/24", "dev", f"{self.veth}b")
            _ip("netns", "exec", self.netns, "ip", "link", "set", f"{self.veth}b", "up")
            _ip("netns", "exec", self.netns, "ip", "link", "set", "lo", "up")
            self.address, gcs = start_head(self.head_ip, cpus, str(temp / "head"))
            # Its own PID and mount namespace too: a driver there would otherwise find the head's
            # raylet in the shared process list and take the head's IP. Killing `unshare`'s child,
            # PID 1 of that namespace, ends every process of the node.
            command = ["ip", "netns", "exec", self.netns, "unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
            command += [RAY, "start", "--address", gcs, "--node-ip-address", self.node_ip, "--num-cpus", str(cpus)]
            command += ["--object-store-memory", "200000000", "--temp-dir", str(temp / "node2")]
            command += ["--disable-usage-stats", "--block"]
            log = (temp / "node2.log").open("wb")
            self._node = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True
            )
            self._wait_for_nodes(2)
        except BaseException:
            self.close()
            raise

    def _wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        from ray.util.state import list_nodes

        deadline = time.monotonic() + timeout
        while len([n for n in list_nodes(address=self.address) if n.state == "ALIVE"]) < count:
            assert self._node is None or self._node.poll() is None, "the second Ray node exited"
            assert time.monotonic() < deadline, f"the cluster did not reach {count} nodes"
            time.sleep(1)

    def cut(self) -> None:
        """Partition the second node: its link goes down (Ray marks it dead after about a minute)."""
        _ip("link", "set", self.veth, "down")

    def mend(self) -> None:
        """Bring the link back up."""
        _ip("link", "set", self.veth, "up")

    def close(self) -> None:
        """Stop both nodes; remove the namespace and the veth pair."""
        if self._node is not None and self._node.poll() is None:
            os.killpg(self._node.pid, signal.SIGKILL)
            self._node.wait(30)
        stop_ray()
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
