"""A job's health checks (:mod:`ssd.analysis.health`): why a run may learn little or nothing,
from its own records and its data, answered while it trains.

The record checks (positive priors per step, a loss gone NaN or diverging, validation loss rising
while the training loss falls) read the job's steps and evaluations from the store on every call:
NumPy over a few thousand rows. The data checks (boxes no prior can match, boxes below the
smallest prior, rare classes, the same image in both splits) depend only on the config, so they
are computed once per config and kept (an LRU): the first call on an imported dataset reads its
index and hashes its image files. No TensorFlow.
"""

from __future__ import annotations

from typing import Any

from app.services.jobs import JobService
from app.services.lru import LRU
from ssd.analysis.health import Check, check_data, run_health
from ssd.config import Config, ConfigError, from_dict
from ssd.datasets.resolve import resolve

DATA_IMAGES = 2000  # training (and validation) images the data checks read


class RunHealthService:
    """Health checks of the jobs of ``jobs`` (one per app)."""

    def __init__(self, jobs: JobService, *, max_images: int = DATA_IMAGES, cache_size: int = 16) -> None:
        self.jobs = jobs
        self.max_images = max_images
        self._data = LRU(cache_size)

    def health(self, job_id: str) -> dict[str, Any]:
        """Every check of the job (:data:`ssd.analysis.health.CHECKS`' order) with its step."""
        job = self.jobs.get(job_id)
        config = from_dict(job.config)  # as stored: bound to its dataset's id and class count
        data = self._data.get_or_make(config, lambda: self._data_checks(config))
        steps = self.jobs.store.metrics(job_id)
        evals = self.jobs.store.evals(job_id)
        checks = run_health(config, steps, evals, data, error=job.error)
        return {"job_id": job_id, "step": job.step, "status": job.status.value, "checks": [c.to_dict() for c in checks]}

    def _data_checks(self, config: Config) -> list[Check]:
        try:
            source = resolve(config, self.jobs.settings.artifact_root)
        except ConfigError as exc:  # the dataset was deleted since: the record checks still answer
            return [Check("unmatched_boxes", "skipped", f"the job's data cannot be read: {exc.message}", "")]
        return check_data(config, source, max_images=self.max_images)
