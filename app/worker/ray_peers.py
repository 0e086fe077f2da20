"""Workers ``1..N-1`` of a multi-worker job as Ray actors, on other nodes where the cluster has them.

Under the Ray executor a ``train.workers = N`` job is one Ray job whose entrypoint is the chief
(worker 0, :mod:`app.worker.main`); the Ray job holds the chief's share of resources
(``entrypoint_num_cpus``). The chief connects to the cluster it runs in and reserves one
placement group for the whole job (:func:`place`): bundle 0 is the chief's, pinned to the
chief's node by Ray's ``node:<ip>`` resource (a token amount: the Ray job already holds the
chief's CPUs), and bundles ``1..N-1`` hold a share each. It asks for ``STRICT_SPREAD`` (every
worker on its own node) when the cluster has at least N nodes, and if that group is not placed
within :data:`STRICT_WAIT` (the other nodes are full) or the cluster is smaller, for ``SPREAD``:
distinct nodes where there is room, several workers on a node where there is not. Where the
workers landed is the group's ``placement`` (kept in ``run.json``, shown on the job page).

Until the group is placed, the job page says the run waits for the cluster's resources (the
chief's ``on_wait``), for at most ``timeout`` seconds (``SSDBOARD_RAY_PLACEMENT_TIMEOUT_S``);
then the job fails, saying what it asked for. It starts one :class:`PeerActor` per bundle and asks
each for an address on its node (its IP and a free port). With its own address first, that is the
``peers`` list of :class:`ssd.distributed.DistributedTrainer`; each actor then runs ``python -m
ssd.distributed --index I`` as its child, reading the config it is handed and the job directory
and datasets under the shared artifact root (``SSDBOARD_ARTIFACT_DIR``, mounted on every node).

Ending: killing an actor (the chief failed, or its job was stopped) kills its process, and the
training process under it exits within a second of losing its parent. The placement group is
removed when the chief closes its peers; Ray removes what a dead chief left with its job. An
actor that died says why (:attr:`RayPeerProcess.ended_because`): *its node was lost* where Ray
says the node died, not the ``-9`` Ray reports for every gone actor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.worker.peer_failures import JobError
from ssd.config import Config
from ssd.distributed import PEER_EXIT_TIMEOUT, free_addresses

PLACEMENT_TIMEOUT = 300.0  # seconds to wait for the cluster to have room for every peer
STRICT_WAIT = 5.0  # seconds STRICT_SPREAD may take before the workers may share nodes
WAIT_NOTICE = 1.0  # a group not placed within this is announced as waiting
NODE_MARKER = 0.001  # of the chief's node:<ip> resource, which pins bundle 0 there
ACTOR_GONE = -9  # the exit code reported for a peer whose actor died (its node lost, or killed)


class PeerActor:
    """One peer: its address on its node, then the training process (a Ray actor class)."""

    def address(self) -> str:
        """``node-ip:free-port`` on this actor's node."""
        import ray

        return free_addresses(1, ray.util.get_node_ip_address())[0]

    def run(self, config: dict[str, Any], out_dir: str, peers: list[str], index: int, data_dir: str | None) -> int:
        """Train as worker ``index`` until the chief's last step; the process's exit code."""
        with tempfile.TemporaryDirectory(prefix="ssdboard-peer-") as temp:
            config_file = Path(temp) / "config.json"
            config_file.write_text(json.dumps(config))
            command = [sys.executable, "-m", "ssd.distributed", "--config", str(config_file), "--out", out_dir]
            command += ["--peers", ",".join(peers), "--index", str(index)]
            if data_dir is not None:
                command += ["--data-dir", data_dir]
            return subprocess.run(command, check=False).returncode


class PlacementTimeout(JobError):
    """The cluster had no room for the job's workers in time; the message is the job's error."""


@dataclass
class Placement:
    """A placed group: the group, the IP of each bundle's node (the chief's first), and the words."""

    group: Any
    nodes: list[str]
    strategy: str

    def describe(self) -> str:
        """``2 workers on 2 nodes (STRICT_SPREAD): 10.0.0.1 (chief), 10.0.0.2``."""
        distinct = len(set(self.nodes))
        where = ", ".join(f"{ip} (chief)" if i == 0 else ip for i, ip in enumerate(self.nodes))
        text = f"{len(self.nodes)} workers on {distinct} node{'s' if distinct != 1 else ''} ({self.strategy}): {where}"
        if distinct < len(self.nodes):
            text += "; the cluster had no other node with room for a worker's share, so some share a node"
        return text


def _alive_nodes() -> dict[str, str]:
    """Node id -> IP of the cluster's alive nodes."""
    import ray

    return {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}


def place(
    count: int,
    bundle: dict[str, float],
    *,
    timeout: float = PLACEMENT_TIMEOUT,
    on_wait: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    name: str = "ssdboard",
) -> Placement:
    """Reserve bundle 0 on this (the chief's) node and ``count`` bundles of ``bundle`` for the peers.

    ``on_wait(reason)`` is called once when the group is not placed within :data:`WAIT_NOTICE`;
    ``cancelled()`` is asked every second meanwhile (the job was cancelled: stop waiting).

    Raises:
        PlacementTimeout: not placed within ``timeout`` seconds, or cancelled (the group is removed).
    """
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    me = ray.util.get_node_ip_address()
    bundles = [{f"node:{me}": NODE_MARKER}] + [dict(bundle)] * count
    share = ", ".join(f"{v:g} {k}" for k, v in bundle.items())
    workers = f"{count} more worker{'s' if count > 1 else ''} ({share} each)"
    started = time.monotonic()
    strategies = (["STRICT_SPREAD"] if len(_alive_nodes()) > count else []) + ["SPREAD"]
    for strategy in strategies:
        group = placement_group(bundles, strategy=strategy, name=f"{name}-{strategy.lower()}")
        last = strategy == strategies[-1]
        deadline = started + timeout if last else time.monotonic() + min(STRICT_WAIT, timeout)
        announced = not last or on_wait is None
        placed = group.ready()  # one check task per group: each call would start another
        while True:
            left = deadline - time.monotonic()
            ready, _ = ray.wait([placed], timeout=max(min(left, WAIT_NOTICE), 0))
            if ready:
                nodes = _alive_nodes()
                table = placement_group_table(group)["bundles_to_node_id"]
                return Placement(group, [nodes.get(table[i], "?") for i in range(len(bundles))], strategy)
            if left <= WAIT_NOTICE or cancelled():
                break
            if not announced and on_wait is not None:
                on_wait(f"waiting for the Ray cluster to have room for {workers}, up to {timeout:.0f} s")
                announced = True
        remove_placement_group(group)
        if cancelled():
            raise PlacementTimeout(f"cancelled while waiting for the Ray cluster to have room for {workers}")
    raise PlacementTimeout(
        f"the Ray cluster had no room for {workers} within {timeout:.0f} s (SSDBOARD_RAY_PLACEMENT_TIMEOUT_S): "
        "add nodes, lower train.workers, or wait for other jobs"
    )


def death_cause(error: BaseException, node: str) -> str:
    """What Ray's error for a gone actor says of its end, for :func:`~app.worker.peer_failures.peer_death`."""
    text = str(error)
    if type(error).__name__ == "ActorUnavailableError":  # Ray lost contact: the raylet or the link is gone
        return f"its node {node} was lost or cannot be reached (Ray can no longer reach the worker's actor)"
    if "node" in text.lower() and ("died" in text or "dead" in text):  # Ray 2.x: "...its node has died..."
        return f"its node {node} was lost"
    if "ray.kill" in text:
        return f"its Ray actor on {node} was killed"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return f"its Ray actor on {node} died ({type(error).__name__}: {first[:200]})"


class RayPeerProcess:
    """A peer as :class:`ssd.distributed.PeerProcess`: its actor, the call that trains, its node."""

    pid = None  # on another node, maybe: the chief's memory watch does not read it

    def __init__(self, actor: Any, result: Any, node: str) -> None:
        self.actor = actor
        self.result = result
        self.node = node
        self._code: int | None = None
        self.ended_because: str | None = None  # why Ray says the actor died, once it did

    def poll(self) -> int | None:
        """None while it trains, else its exit code (:data:`ACTOR_GONE` for a dead actor)."""
        if self._code is None:
            import ray

            ready, _ = ray.wait([self.result], timeout=0)
            if ready:
                try:
                    self._code = int(ray.get(self.result))
                except ray.exceptions.RayError as exc:
                    self.ended_because = death_cause(exc, self.node)
                    self._code = ACTOR_GONE
        return self._code

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, waiting up to ``timeout`` (``subprocess.TimeoutExpired`` after it)."""
        import ray

        ready, _ = ray.wait([self.result], timeout=timeout)
        if not ready:
            raise subprocess.TimeoutExpired("ray peer", timeout or 0)
        code = self.poll()
        assert code is not None
        return code

    def kill(self) -> None:
        """Kill the actor (its training process follows within a second)."""
        import ray

        ray.kill(self.actor, no_restart=True)


class RayPeers:
    """:class:`ssd.distributed.Peers` for a chief inside a Ray job (``ray.init`` connects to its cluster)."""

    def __init__(
        self,
        config: Config,
        out_dir: Path,
        data_dir: str | None,
        *,
        cpus: float,
        gpus: float = 0.0,
        timeout: float = PLACEMENT_TIMEOUT,
        on_wait: Callable[[str], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)
        count = config.train.workers - 1
        bundle = {"CPU": cpus, **({"GPU": gpus} if gpus > 0 else {})}
        self.processes: list[RayPeerProcess] = []
        self._placement = place(
            count, bundle, timeout=timeout, on_wait=on_wait, cancelled=cancelled, name=f"ssdboard-{os.getpid()}"
        )
        self.placement = self._placement.describe()
        try:
            actor_class: Any = ray.remote(PeerActor)
            actors: list[Any] = [
                actor_class.options(
                    num_cpus=cpus,
                    num_gpus=gpus,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        self._placement.group, placement_group_bundle_index=i
                    ),
                ).remote()
                for i in range(1, count + 1)
            ]
            chief = free_addresses(1, ray.util.get_node_ip_address())[0]
            self.peers = [chief, *ray.get([a.address.remote() for a in actors], timeout=timeout)]
            settings = config.to_dict()
            for index, actor in enumerate(actors, start=1):
                result = actor.run.remote(settings, str(out_dir), self.peers, index, data_dir)
                self.processes.append(RayPeerProcess(actor, result, self.peers[index].rpartition(":")[0]))
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float = PEER_EXIT_TIMEOUT) -> list[int | None]:
        """Wait for the peers to end (they stop after the chief's last step); their exit codes."""
        import ray

        ray.wait([p.result for p in self.processes], num_returns=len(self.processes), timeout=timeout)
        return [p.poll() for p in self.processes]

    def close(self) -> None:
        """Kill the peers still training and give the placement group back."""
        from ray.util.placement_group import remove_placement_group

        for process in self.processes:
            if process.poll() is None:
                process.kill()
        remove_placement_group(self._placement.group)
