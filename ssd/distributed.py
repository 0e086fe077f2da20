"""Multi-worker training: one job on ``train.workers`` processes with ``MultiWorkerMirroredStrategy``.

Protocol (every worker runs the same config; ``peers`` are the N ``host:port`` addresses, the
same list in every worker; index 0 is the chief):

- **Data.** Worker ``i`` of ``N`` trains step ``s`` on samples ``s * B + i * B / N`` to
  ``s * B + (i + 1) * B / N - 1`` (:attr:`ssd.train.Trainer.shard`): the global batch of a step
  is the very samples a single process would use, still a pure function of the step.
- **Loss.** Every worker all-gathers predictions and targets and computes the loss parts of the
  whole global batch: the notebook mines hard negatives across the flattened batch (SSD paper,
  sec. 2.2), so per-worker losses would not add up to it. These are the parts the chief
  reports. The gradient of ``all_gather`` sums over the workers, so each divides its loss by N.
- **BatchNorm** layers are ``synchronized`` (Keras all-reduces the moments): their statistics
  are the global batch's, as in one process.
- **Optimizer.** Keras 3's optimizer sums the replicas' gradients in ``apply_gradients``.
- **Writes.** Only the chief writes (checkpoints, ``metrics.jsonl``, ``evals.jsonl``,
  ``run.json``, TensorBoard) and evaluates; the others train and read the checkpoint to resume.
  ``out_dir`` must be the same directory for all (local processes, or a shared mount).
- **Stop.** Before every step the workers all-reduce the chief's stop flag, so a cancel stops
  every worker after the same step.

Entry points: ``ssdboard train`` with ``train.workers > 1`` runs the chief and starts the other
workers as local processes (:meth:`DistributedTrainer.with_local_peers`); ``python -m
ssd.distributed --config FILE --out DIR --index I --peers HOST:PORT,...`` runs one worker (any
index), e.g. one per node under a cluster scheduler.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import keras
import tensorflow as tf

from ssd.config import Config, from_dict, read_mapping
from ssd.lifetime import exit_with_parent
from ssd.train import LOSS_KEYS, NonFiniteLossError, PlanCallback, StepCallback, StopFlag, Trainer, TrainResult

PEER_EXIT_TIMEOUT = 120.0  # seconds the chief waits for the others after its last step


def free_addresses(count: int, host: str = "127.0.0.1") -> list[str]:
    """``count`` distinct ``host:port`` addresses on free ports (all bound at once, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [f"{host}:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(peers: Sequence[str], index: int) -> dict[str, Any]:
    """The ``TF_CONFIG`` of worker ``index`` of ``peers`` (worker 0 is the chief)."""
    return {"cluster": {"worker": list(peers)}, "task": {"type": "worker", "index": index}}


def _batch_norms(layer: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization in ``layer``, nested models included (keras.applications nests)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [layer]
    found: list[keras.layers.BatchNormalization] = []
    for child in getattr(layer, "layers", []):
        found += _batch_norms(child)
    return found


class PeerProcess(Protocol):
    """One of workers ``1..N-1`` as the chief sees it (a ``subprocess.Popen`` is one)."""

    @property
    def pid(self) -> int | None:  # None when it runs on another machine
        ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class Peers(Protocol):
    """Workers ``1..N-1`` of a job, started for the chief; ``peers`` are all N addresses and
    ``placement`` says where the workers run (``run.json``'s ``placement``)."""

    peers: list[str]
    placement: str

    @property
    def processes(self) -> Sequence[PeerProcess]: ...

    def wait(self, timeout: float = PEER_EXIT_TIMEOUT) -> list[int | None]: ...

    def close(self) -> None: ...


class LocalPeers:
    """Workers ``1..N-1`` of a job as child processes of the chief, on loopback ports."""

    def __init__(self, config: Config, out_dir: Path, data_dir: str | Path | None) -> None:
        self.peers = free_addresses(config.train.workers)
        self.placement = f"{config.train.workers} worker processes on this machine (loopback)"
        self._dir = tempfile.TemporaryDirectory(prefix="ssdboard-workers-")
        config_file = Path(self._dir.name) / "config.json"
        config_file.write_text(json.dumps(config.to_dict()))
        command = [sys.executable, "-m", "ssd.distributed", "--config", str(config_file), "--out", str(out_dir)]
        command += ["--peers", ",".join(self.peers)]
        if data_dir is not None:
            command += ["--data-dir", str(data_dir)]
        self.processes = [subprocess.Popen([*command, "--index", str(i)]) for i in range(1, config.train.workers)]
        atexit.register(self.close)  # whatever way the chief ends, no worker outlives it

    def wait(self, timeout: float = PEER_EXIT_TIMEOUT) -> list[int | None]:
        """Wait for the workers to exit (they stop after the chief's last step); their exit codes."""
        deadline = time.monotonic() + timeout
        for p in self.processes:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        return [p.poll() for p in self.processes]

    def close(self) -> None:
        """Kill the workers still running (the chief failed: they would wait for it for ever)."""
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        self._dir.cleanup()


class DistributedTrainer(Trainer):
    """A :class:`~ssd.train.Trainer` that is worker ``index`` of the ``peers`` training one job.

    Make it before any other TensorFlow work in the process: the strategy configures the
    collective ops, which TensorFlow allows only at start-up.
    """

    def __init__(
        self,
        config: Config,
        out_dir: str | Path,
        *,
        index: int,
        peers: Sequence[str],
        data_dir: str | Path | None = None,
    ) -> None:
        n = config.train.workers
        if len(peers) != n or not 0 <= index < n:
            raise ValueError(f"train.workers is {n}: needs {n} peers and an index below, got {len(peers)} and {index}")
        # The strategy reads TF_CONFIG once, when it is made; it must come before other TF work.
        os.environ["TF_CONFIG"] = json.dumps(tf_config(peers, index))
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        if self.strategy.num_replicas_in_sync != n:
            raise ValueError(f"expected one replica per worker ({n}), got {self.strategy.num_replicas_in_sync}")
        self.index = index
        self.peers = list(peers)
        self.shard = (index, n)
        self.peer_group: Peers | None = None  # workers 1..N-1, when this chief started them
        with self.strategy.scope():  # model and optimizer variables become mirrored ones
            super().__init__(config, out_dir, data_dir=data_dir)
        if self.precision.policy == "mixed_float16":
            # Not tried: Keras' LossScaleOptimizer skips steps on each worker's own overflow check.
            raise ValueError("train.workers > 1 does not support float16 with loss scaling; use float32 or bf16")
        for layer in _batch_norms(self.model):
            layer.synchronized = True
        self._train_step = self._make_distributed_step()
        self._vote = self._make_vote()

    @classmethod
    def with_local_peers(
        cls, config: Config, out_dir: str | Path, *, data_dir: str | Path | None = None
    ) -> DistributedTrainer:
        """The chief, with workers ``1..N-1`` started as local processes on loopback."""
        return cls.with_peers(config, out_dir, LocalPeers(config, Path(out_dir), data_dir), data_dir=data_dir)

    @classmethod
    def with_peers(
        cls, config: Config, out_dir: str | Path, peers: Peers, *, data_dir: str | Path | None = None
    ) -> DistributedTrainer:
        """The chief of ``peers`` (started already, e.g. elsewhere by a cluster); it closes them
        if it cannot be made."""
        try:
            trainer = cls(config, out_dir, index=0, peers=peers.peers, data_dir=data_dir)
        except BaseException:
            peers.close()
            raise
        trainer.peer_group = peers
        return trainer

    def _workers_info(self) -> dict[str, str]:
        """``workers``: every worker's ``host:port`` (the TensorFlow cluster, the chief's first);
        ``placement``: where they run and why, when the peers say (:class:`Peers`)."""
        info = {"workers": ", ".join(self.peers)}
        if self.peer_group is not None:
            info["placement"] = self.peer_group.placement
        return info

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def _make_distributed_step(self) -> Any:
        strategy, model, optimizer, losses = self.strategy, self.model, self.optimizer, self._losses
        workers = float(self.strategy.num_replicas_in_sync)
        # TF 2.21: all_gather of a tensor with no device (a tf.function input) fails under this
        # strategy with "destinations can not be empty"; ops pinned to the worker's device work.
        device = strategy.extended.worker_devices[0]

        def replica_step(images: tf.Tensor, y_true: tf.Tensor) -> dict[str, tf.Tensor]:
            context = tf.distribute.get_replica_context()
            variables = model.trainable_variables
            with tf.device(device), tf.GradientTape() as tape:
                y_pred = tf.identity(model(images, training=True))
                batch_true = context.all_gather(tf.identity(y_true), axis=0)  # [B, P, C+4], worker order
                parts = losses(batch_true, context.all_gather(y_pred, axis=0))
                scaled = parts["total"] / workers  # the all_gather gradient sums the N workers' losses
            grads = tape.gradient(scaled, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))  # sums over the workers
            return parts

        @tf.function(reduce_retracing=True)
        def step(images: tf.Tensor, y_true: tf.Tensor) -> dict[str, tf.Tensor]:
            per_replica = strategy.run(replica_step, args=(images, y_true))
            return {k: strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}

        return step

    def _make_vote(self) -> Any:
        strategy = self.strategy
        device = strategy.extended.worker_devices[0]

        def replica_vote(flag: tf.Tensor) -> tf.Tensor:
            with tf.device(device):
                return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(flag))

        @tf.function
        def vote(flag: tf.Tensor) -> tf.Tensor:
            return strategy.experimental_local_results(strategy.run(replica_vote, args=(flag,)))[0]

        return vote

    def stop_agreed(self, stop: bool) -> bool:
        """Whether any worker asks to stop; every worker must call it before every step."""
        return float(self._vote(tf.constant(1.0 if stop else 0.0))) > 0

    def save_checkpoint(self) -> None:
        """The chief's alone: the others hold the same variables."""
        if self.is_chief:
            super().save_checkpoint()

    def save_best(self, evaluation: dict[str, Any]) -> None:
        """The chief's alone, as :meth:`save_checkpoint`."""
        if self.is_chief:
            super().save_best(evaluation)

    def _stop_vote(self, stop: bool) -> bool:
        """The chief's wish to stop (cancelled or stopped early), agreed with the workers'."""
        return self.stop_agreed(stop)

    def fit(
        self,
        *,
        on_step: StepCallback | None = None,
        on_eval: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        steps: int | None = None,
        on_plan: PlanCallback | None = None,
    ) -> TrainResult:
        """The chief trains and reports as :meth:`Trainer.fit`; the others train in step with it.

        Callbacks and ``should_stop`` matter on the chief only.
        """
        if not self.is_chief:
            return self._follow(steps)
        # Every stop (asked, or early stopping's) is voted on by _stop_vote before every step.
        result = super().fit(on_step=on_step, on_eval=on_eval, should_stop=should_stop, steps=steps, on_plan=on_plan)
        if self.peer_group is not None:
            codes = self.peer_group.wait()
            if any(code != 0 for code in codes):
                raise RuntimeError(f"a worker process ended badly (exit codes {codes})")
        return result

    def _follow(self, steps: int | None) -> TrainResult:
        """A non-chief worker's loop: the chief's collectives in the chief's order, no writes."""
        last = self.config.train.steps if steps is None else steps
        status: Literal["succeeded", "cancelled"] = "succeeded"
        record: dict[str, Any] | None = None
        with contextlib.ExitStack() as stack:
            pipeline = self.batches(stack, last)
            while self.step < last:
                if self.stop_agreed(False):
                    status = "cancelled"
                    break
                images, y_true = next(pipeline)
                values = {k: float(v) for k, v in self._train_step(images, y_true).items()}
                self.step += 1
                for key in LOSS_KEYS:  # the same global values as the chief's: it stops here too
                    if not math.isfinite(values[key]):
                        raise NonFiniteLossError(self.step, key, values[key])
                record = {"step": self.step, **values}
        return TrainResult(status=status, step=self.step, last_metrics=record, last_eval=None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ssd.distributed``: run one worker of a multi-worker job; 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m ssd.distributed", description=main.__doc__)
    parser.add_argument("--config", required=True, help="TOML or JSON config (train.workers = N)")
    parser.add_argument("--out", required=True, help="the job's output directory, the same for every worker")
    parser.add_argument("--index", type=int, required=True, help="this worker, 0..N-1 (0: the chief)")
    parser.add_argument("--peers", required=True, help="HOST:PORT of every worker, comma-separated, in index order")
    parser.add_argument("--data-dir", default=None, help="where imported datasets live")
    args = parser.parse_args(argv)
    exit_with_parent(1)  # a chief killed mid-step: this worker fails too
    config = from_dict(read_mapping(args.config))
    peers = args.peers.split(",")
    trainer = DistributedTrainer(config, args.out, index=args.index, peers=peers, data_dir=args.data_dir)
    if trainer.has_checkpoint():
        trainer.load_checkpoint()
    trainer.fit()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
