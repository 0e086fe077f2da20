"""Train for a time, not only for steps (``train.time_budget``): the step count fitted to the clock.

A run with a budget measures its own speed over its first steps (after :data:`SKIP` steps of
graph tracing, over :data:`MEASURE` steps) and plans how many steps end it on time, counting the
evaluations those steps bring (every ``train.eval_every`` steps and one at the end): ``n`` steps
of ``s`` seconds and ``e(n)`` evaluations of ``v`` seconds fill the time left. An evaluation's
cost is estimated until one has been measured; after each evaluation the plan is made again
with the measured cost. ``train.steps`` stays the most steps a run may take. The plan moves the
end of the learning-rate schedule with it (:class:`ssd.optim.AdjustableCosine`), so the schedule
ends where the run does. Pure Python: the trainer gives it the clock's readings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SKIP = 5  # steps not measured: the first ones trace the graph
MEASURE = 25  # steps whose time gives the speed
REPLAN_TOLERANCE = 0.02  # a new plan within 2% of the last changes nothing


@dataclass
class StepBudget:
    """The plan of a run with ``seconds`` to train, from ``start`` (clock seconds).

    Attributes:
        planned: the steps the run will take (``cap`` until the first plan).
        reason: the last plan in words, for ``run.json`` and the job page.
    """

    seconds: float
    cap: int
    eval_every: int
    start: float
    eval_images: int  # per evaluation: with the batch size, its cost until one is measured
    batch_size: int
    first_step: int = 0  # a resumed run's first step
    planned: int = 0
    reason: str = ""
    _marks: dict[int, float] = field(default_factory=dict)
    _step_seconds: float | None = None
    _evals: list[float] = field(default_factory=list)
    _stale: bool = False

    def __post_init__(self) -> None:
        self.planned = self.cap

    def step_done(self, step: int, now: float) -> int | None:
        """After ``step`` ended at ``now``: the new planned step count when it changed, else None."""
        measured_from, measured_to = self.first_step + SKIP, self.first_step + SKIP + MEASURE
        if step in (measured_from, measured_to):
            self._marks[step] = now
        if self._step_seconds is None and step == measured_to and measured_from in self._marks:
            self._step_seconds = (now - self._marks[measured_from]) / MEASURE
            self._stale = True
        if not self._stale or self._step_seconds is None:
            return None
        self._stale = False
        return self._plan(step, now)

    def eval_done(self, seconds: float) -> None:
        """An evaluation took ``seconds``: the next step plans again with the measured cost."""
        self._evals.append(seconds)
        self._stale = self._step_seconds is not None

    def _evals_between(self, step: int, last: int) -> int:
        """Evaluations after ``step`` up to ``last``, the final one included."""
        periodic = (last // self.eval_every - step // self.eval_every) if self.eval_every else 0
        return periodic + (0 if self.eval_every and last % self.eval_every == 0 else 1)

    def _plan(self, step: int, now: float) -> int | None:
        assert self._step_seconds is not None
        rate = self._step_seconds
        if self._evals:
            cost = sum(self._evals) / len(self._evals)
        else:
            cost = evaluation_estimate(rate, self.eval_images, self.batch_size)
        left = self.seconds - (now - self.start)

        def needs(n: int) -> float:  # seconds of n more steps and the evaluations they bring
            return n * rate + self._evals_between(step, step + n) * cost

        # needs() grows with n: the most steps that fit, by bisection.
        lo, hi = 0, max(int(left / rate), 0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if needs(mid) <= left else (lo, mid - 1)
        n = lo
        planned = min(max(step + n, step + 1), self.cap)
        measured = f"{len(self._evals)} measured" if self._evals else "estimated"
        self.reason = (
            f"planned {planned} steps to end {self.seconds / 60:g} min after the start: {rate:.3f} s a step "
            f"(steps {self.first_step + SKIP + 1}-{self.first_step + SKIP + MEASURE}), evaluations of "
            f"{cost:.1f} s ({measured})" + (f"; train.steps {self.cap} is the most" if planned == self.cap else "")
        )
        if abs(planned - self.planned) <= REPLAN_TOLERANCE * self.planned and self.planned != self.cap:
            return None
        self.planned = planned
        return planned


def evaluation_estimate(step_seconds: float, eval_images: int, batch_size: int) -> float:
    """An evaluation's seconds before one is measured: its batches' forward passes (about a third
    of a training step each) and a second for decoding and scoring."""
    batches = math.ceil(eval_images / max(min(batch_size, 64), 1))
    return batches * step_seconds / 3 + 1.0
