"""The trainers of a job's worker, which tell the server about every checkpoint.

:class:`ReportingTrainer` is :class:`ssd.train.Trainer` reporting each checkpoint once it is on
disk; mixed in before :class:`ssd.distributed.DistributedTrainer` it makes :class:`ReportingChief`,
the chief of a ``train.workers > 1`` job (index 0: it alone saves). Both report to the same
:class:`CheckpointSink` (:class:`app.worker.job.JobRun`), so a single-process and a multi-worker
run save and report alike.

This module imports TensorFlow: :mod:`app.worker.job` imports it only once its run starts.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from ssd.config import Config
from ssd.distributed import DistributedTrainer, Peers
from ssd.train import Trainer


class CheckpointSink(Protocol):
    """Who hears of a trainer's checkpoints: ``checkpointing`` is held while one is written (so a
    memory stop never cuts one in half), ``checkpoint_saved(step)`` is called once it is on disk."""

    @property
    def checkpointing(self) -> AbstractContextManager[Any]: ...

    def checkpoint_saved(self, step: int) -> None: ...


class ReportingTrainer(Trainer):
    """A trainer that writes each checkpoint under its sink's lock and then reports it.

    ``reports`` is set once the trainer is made (:func:`reporting_trainer`); without one it saves
    as a plain :class:`~ssd.train.Trainer`. Mix it in before another trainer class to make that
    one report too (:class:`ReportingChief`).
    """

    reports: CheckpointSink | None = None

    def save_checkpoint(self) -> None:
        if self.reports is None:
            super().save_checkpoint()
            return
        with self.reports.checkpointing:
            super().save_checkpoint()
            self.reports.checkpoint_saved(self.step)


class ReportingChief(ReportingTrainer, DistributedTrainer):
    """The chief of a multi-worker job, reporting its checkpoints as :class:`ReportingTrainer` does."""


def reporting_trainer(
    config: Config,
    out_dir: Path,
    reports: CheckpointSink,
    *,
    peers: Peers | None = None,
    data_dir: str | None = None,
) -> ReportingTrainer:
    """The trainer of ``config`` reporting to ``reports``: the chief of ``peers`` (workers
    ``1..N-1``, started already) when given, else a single-process one."""
    trainer: ReportingTrainer
    if peers is not None:
        chief = ReportingChief.with_peers(config, out_dir, peers, data_dir=data_dir)
        assert isinstance(chief, ReportingChief)
        trainer = chief
    else:
        trainer = ReportingTrainer(config, out_dir, data_dir=data_dir)
    trainer.reports = reports
    return trainer
