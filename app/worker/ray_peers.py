"""Workers ``1..N-1`` of a multi-worker job as Ray actors, on whichever nodes have room.

Under the Ray executor a ``train.workers = N`` job is one Ray job whose entrypoint is the chief
(worker 0, :mod:`app.worker.main`). The chief connects to the cluster it runs in, reserves a
placement group of ``N - 1`` bundles (``SPREAD``: on distinct nodes where there are several,
packed where there is one), starts one :class:`PeerActor` per bundle, and asks each for an
address on its node (its IP and a free port). With its own address first, that is the
``peers`` list of :class:`ssd.distributed.DistributedTrainer`; each actor then runs ``python -m
ssd.distributed --index I`` as its child, reading the config it is handed and the job directory
and datasets under the shared artifact root (``SSDBOARD_ARTIFACT_DIR``, mounted on every node).

Ending: killing an actor (the chief failed, or its job was stopped) kills its process, and the
training process under it exits within a second of losing its parent. The placement group is
removed when the chief closes its peers; Ray removes what a dead chief left with its job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ssd.config import Config
from ssd.distributed import PEER_EXIT_TIMEOUT, free_addresses

PLACEMENT_TIMEOUT = 300.0  # seconds to wait for the cluster to have room for every peer
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


class RayPeerProcess:
    """A peer as :class:`ssd.distributed.PeerProcess`: its actor and the call that trains."""

    pid = None  # on another node, maybe: the chief's memory watch does not read it

    def __init__(self, actor: Any, result: Any) -> None:
        self.actor = actor
        self.result = result
        self._code: int | None = None

    def poll(self) -> int | None:
        """None while it trains, else its exit code (:data:`ACTOR_GONE` for a dead actor)."""
        if self._code is None:
            import ray

            ready, _ = ray.wait([self.result], timeout=0)
            if ready:
                try:
                    self._code = int(ray.get(self.result))
                except ray.exceptions.RayError:
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

    def __init__(self, config: Config, out_dir: Path, data_dir: str | None, *, cpus: float, gpus: float = 0.0) -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)
        count = config.train.workers - 1
        bundle = {"CPU": cpus, **({"GPU": gpus} if gpus > 0 else {})}
        self._group = placement_group([bundle] * count, strategy="SPREAD", name=f"ssdboard-peers-{os.getpid()}")
        self.processes: list[RayPeerProcess] = []
        try:
            ray.get(self._group.ready(), timeout=PLACEMENT_TIMEOUT)
            actor_class: Any = ray.remote(PeerActor)
            actors: list[Any] = [
                actor_class.options(
                    num_cpus=cpus,
                    num_gpus=gpus,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=i),
                ).remote()
                for i in range(count)
            ]
            chief = free_addresses(1, ray.util.get_node_ip_address())[0]
            self.peers = [chief, *ray.get([a.address.remote() for a in actors], timeout=PLACEMENT_TIMEOUT)]
            settings = config.to_dict()
            for index, actor in enumerate(actors, start=1):
                result = actor.run.remote(settings, str(out_dir), self.peers, index, data_dir)
                self.processes.append(RayPeerProcess(actor, result))
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
        remove_placement_group(self._group)
