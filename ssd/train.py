"""The training loop: compiled step, callbacks, evaluation, checkpoints, resume.

Training reports through callbacks and checks a stop flag; it knows nothing of where the
metrics go (a progress bar, a database, a web page). Output directory layout (the names are
:mod:`ssd.checkpoint`'s):

- ``config.json``: the :class:`~ssd.config.Config` as a dict.
- ``metrics.jsonl``: one JSON object per step (``step``, ``pos_clf``, ``neg_clf``, ``loc``,
  ``total``, ``num_pos``, ``num_neg``, ``lr``, ``images_per_sec``, ``time``).
- ``evals.jsonl``: one JSON object per evaluation (``step``, validation loss parts, ``map``,
  ``map50``).
- ``model.weights.h5`` and ``train_state.npz``: with ``config.json``, the checkpoint (weights,
  optimizer slots, step; with ``train.ema_decay`` the weights file holds the moving average and
  the state the raw weights, :mod:`ssd.ema`). Written atomically, so a crash mid-write leaves
  the previous checkpoint intact.
- ``best.weights.h5`` and ``best.json``: the best evaluation's weights; ``run.json``: how the
  run computes and where its weights started (:mod:`ssd.init`).
- ``events.out.tfevents.*``: the same metrics, evaluations and config for TensorBoard
  (:mod:`ssd.tensorboard_log`).

The batches come from :func:`ssd.pipeline.input_pipeline`: the data a step sees depends only on
the step, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from ssd.budget import StepBudget
from ssd.checkpoint import (
    BEST_FILE,
    BEST_WEIGHTS_FILE,
    EVALS_FILE,
    METRICS_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    has_checkpoint,
    read_best,
    read_run_info,
    write_best,
    write_config,
    write_run_info,
)
from ssd.config import Config
from ssd.datasets.resolve import default_data_dir, resolve
from ssd.datasets.source import DataSource
from ssd.ema import WeightAverage
from ssd.init import InitReport, apply_init, backbone_variables
from ssd.loader_pool import BatchPool
from ssd.loss import loss_components
from ssd.model import build_ssd
from ssd.optim import AdjustableCosine, current_lr, detect_gpu, learning_rate_schedule, make_optimizer
from ssd.pipeline import input_pipeline, make_targets_fn
from ssd.precision import Choice, LoaderChoice, XlaChoice, choose, choose_loader, choose_xla, cpu_info
from ssd.priors import make_priors
from ssd.tensorboard_log import TensorBoardLog

StepCallback = Callable[[dict[str, Any]], None]
StopFlag = Callable[[], bool]
PlanCallback = Callable[[int, str], None]  # a time budget's plan: (steps, reason)
LOSS_KEYS = ("pos_clf", "neg_clf", "loc", "total")


class NonFiniteLossError(RuntimeError):
    """A loss component became NaN or infinite; names the step and the component."""

    def __init__(self, step: int, component: str, value: float) -> None:
        super().__init__(f"loss component {component!r} became {value} at step {step}; training stopped")
        self.step = step
        self.component = component


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``status`` is ``"succeeded"`` or ``"cancelled"``; ``step`` the last step done;
    ``best`` the best evaluation (``best.json``), ``stop_reason`` why early stopping ended it (else None)."""

    status: Literal["succeeded", "cancelled"]
    step: int
    last_metrics: dict[str, Any] | None
    last_eval: dict[str, Any] | None
    best: dict[str, Any] | None = None
    stop_reason: str | None = None


class Trainer:
    """One run: a model, its optimizer and its data, checkpointed to ``out_dir``."""

    shard: tuple[int, int] = (0, 1)  # (this worker, workers): the slice of each batch it trains on

    def __init__(
        self,
        config: Config,
        out_dir: str | Path,
        *,
        data_dir: str | Path | None = None,
        source: DataSource | None = None,
    ) -> None:
        """``source`` is the config's dataset resolved already; without it, ``data.dataset`` is
        looked up once in the registry in ``data_dir`` (:func:`ssd.datasets.resolve.resolve`)."""
        if self.shard[1] != config.train.workers:
            raise ValueError(
                f"train.workers is {config.train.workers}: train with ssd.distributed.DistributedTrainer "
                "(`ssdboard train` starts the workers itself)"
            )
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.gpu = detect_gpu()  # the device run.json names, and what "auto" precision decides by
        self.precision: Choice = choose(config.train.precision, self.gpu, backbone=config.model.backbone)
        self.xla: XlaChoice = choose_xla(config.train.xla, self.gpu, workers=config.train.workers)
        self.loader: LoaderChoice = choose_loader(config.data.loader_processes, self.gpu)
        policy = self.precision.policy
        dtype = None if policy == "float32" else policy
        keras.utils.set_random_seed(config.seed)
        # model.init only for a fresh run: a checkpoint's weights replace them anyway.
        fresh = not has_checkpoint(self.out_dir)
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.model = build_ssd(config.model, config.priors, config.data.image_size, dtype, pretrained=fresh)
        self.init_report: InitReport | None = apply_init(self.model, config, self.data_dir) if fresh else None
        self.schedule = learning_rate_schedule(config)
        self.optimizer = make_optimizer(config, policy, self.schedule)
        self.optimizer.build(self.model.trainable_variables)
        self.ema = WeightAverage(self.model, config.train.ema_decay) if config.train.ema_decay else None
        self.source = source if source is not None else resolve(config, self.data_dir)
        self.train_data = self.source.split(config, "train")
        self.val_data = self.source.split(config, "val")
        self.priors = make_priors(config.priors, config.data.image_size).boxes  # [P, 4] xyxy
        self._targets = make_targets_fn(config)
        self.step = 0
        loss_cfg = config.loss

        def losses(y_true: tf.Tensor, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
            return loss_components(
                y_true,
                y_pred,
                alpha=loss_cfg.alpha,
                pos_neg_ratio=loss_cfg.pos_neg_ratio,
                from_logits=True,
                normalization=loss_cfg.normalization,
                mining=loss_cfg.mining,
            )

        def make_train_step(variables: list[keras.Variable]) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
            """The compiled step that trains ``variables`` (all, or all but a frozen backbone's)."""

            # Under XLA the loss mines negatives with a sort (ssd.loss: XLA rejects top_k's tensor k).
            @tf.function(reduce_retracing=True, jit_compile=self.xla.enabled)
            def train_step(images: tf.Tensor, y_true: tf.Tensor) -> dict[str, tf.Tensor]:
                with tf.GradientTape() as tape:
                    parts = losses(y_true, self.model(images, training=True))
                    total = parts["total"]
                    if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                        total = self.optimizer.scale_loss(total)  # unscaled (or the step skipped) in apply
                grads = tape.gradient(total, variables)
                self.optimizer.apply_gradients(zip(grads, variables, strict=True))
                if self.ema is not None:
                    self.ema.update()
                return parts

            return train_step

        @tf.function(reduce_retracing=True)
        def eval_step(images: tf.Tensor, y_true: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
            y_pred = self.model(images, training=False)
            return losses(y_true, y_pred), y_pred

        self._losses = losses  # ssd.distributed's step computes the same loss on the gathered batch
        self._train_step = make_train_step(self.model.trainable_variables)
        self._eval_step = eval_step
        # train.freeze_backbone_steps: the first steps train the layers after the backbone only
        # (a second graph, traced only when used; the optimizer has slots for every variable).
        frozen = {id(v) for v in backbone_variables(self.model)}
        self._frozen_step = make_train_step([v for v in self.model.trainable_variables if id(v) not in frozen])

    def step_function(self) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
        """The training step for ``self.step``: the frozen backbone's during ``train.freeze_backbone_steps``."""
        return self._frozen_step if self.step < self.config.train.freeze_backbone_steps else self._train_step

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """The model holds the weights to evaluate and keep inside: the moving average's with
        ``train.ema_decay`` (:mod:`ssd.ema`), else its own."""
        with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
            yield

    # ----------------------------------------------------------------- checkpoints
    @property
    def weights_path(self) -> Path:
        return self.out_dir / WEIGHTS_FILE

    @property
    def state_path(self) -> Path:
        return self.out_dir / STATE_FILE

    def save_checkpoint(self) -> None:
        """Write config, weights, optimizer state and step atomically (temp file, then rename)."""
        write_config(self.out_dir, self.config)
        tmp_w = self.out_dir / f"tmp-{WEIGHTS_FILE}"
        with self.averaged():  # the weights file holds what detection and export should use
            self.model.save_weights(tmp_w)
        tmp_s = self.out_dir / "train_state.tmp.npz"
        slots = {f"v{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        if self.ema is not None:  # the weights the optimizer trains on, for a resume
            slots.update({f"raw{i}": value for i, value in enumerate(self.ema.raw())})
        with open(tmp_s, "wb") as f:
            np.savez(f, step=np.int64(self.step), **slots)
        os.replace(tmp_w, self.weights_path)
        os.replace(tmp_s, self.state_path)

    def has_checkpoint(self) -> bool:
        """Whether ``out_dir`` holds a whole checkpoint (see :func:`ssd.checkpoint.has_checkpoint`)."""
        return has_checkpoint(self.out_dir)

    def load_checkpoint(self) -> None:
        """Restore weights, optimizer state and step; a corrupt file raises ``ValueError`` naming it."""
        try:
            self.model.load_weights(self.weights_path)
        except Exception as exc:  # h5py raises OSError, Keras ValueError: one clear message
            raise ValueError(f"checkpoint {self.weights_path} cannot be read: {exc}") from exc
        try:
            with np.load(self.state_path) as state:
                values = [state[f"v{i}"] for i in range(len(self.optimizer.variables))]
                step = int(state["step"])
                raw = [state[f"raw{i}"] for i in range(len(self.ema.weights))] if self.ema is not None else []
        except Exception as exc:
            raise ValueError(f"checkpoint {self.state_path} cannot be read: {exc}") from exc
        for var, value in zip(self.optimizer.variables, values, strict=True):
            var.assign(value)
        self.step = step
        if self.ema is not None:  # the file held the average; the state the weights under it
            self.ema.reset(step)
            self.ema.restore(raw)

    @property
    def best_weights_path(self) -> Path:
        return self.out_dir / BEST_WEIGHTS_FILE

    def save_best(self, evaluation: dict[str, Any]) -> None:
        """Write the model's weights as ``best.weights.h5``, then ``best.json`` (each atomically)."""
        tmp = self.out_dir / f"tmp-{BEST_WEIGHTS_FILE}"
        with self.averaged():
            self.model.save_weights(tmp)
        os.replace(tmp, self.best_weights_path)
        write_best(self.out_dir, evaluation)

    def _read_best(self, evals_file: Path) -> tuple[dict[str, Any] | None, int]:
        """The best evaluation so far (``best.json``) and the evaluations since it, for a resumed
        run; a fresh run (step 0) drops a best an earlier run in the directory left."""
        if self.step == 0:
            for name in (BEST_FILE, BEST_WEIGHTS_FILE):
                (self.out_dir / name).unlink(missing_ok=True)
            return None, 0
        best = read_best(self.out_dir)
        if best is None or not self.best_weights_path.is_file():
            return None, 0
        since = 0
        if evals_file.exists():
            steps = [json.loads(line)["step"] for line in evals_file.read_text().splitlines() if line.strip()]
            since = sum(1 for step in steps if step > best["step"])
        return best, since

    def _end_schedule(self, total_steps: int) -> None:
        """The learning-rate schedule ends at ``total_steps`` (a time budget's plan)."""
        if isinstance(self.schedule, AdjustableCosine):
            self.schedule.end_at(total_steps)

    def _init_info(self) -> dict[str, str]:
        """``run.json``'s ``init`` keys: this run's :class:`~ssd.init.InitReport`, or for a resumed
        run what the run.json of its start said."""
        if self.init_report is not None:
            return self.init_report.run_info()
        return {k: v for k, v in (read_run_info(self.out_dir) or {}).items() if k.startswith("init")}

    def _workers_info(self) -> dict[str, str]:
        """``run.json``'s keys for the processes that train: none for a single process."""
        return {}

    def _stop_vote(self, stop: bool) -> bool:
        """Whether to stop before the next step (every worker of a distributed run agrees)."""
        return stop

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, num_images: int) -> dict[str, Any]:
        """Validation loss parts and COCO mAP on the first ``num_images`` validation images."""
        from ssd.detect import postprocess  # local: detection is only needed when evaluating
        from ssd.evaluate import coco_evaluate

        cfg = self.config
        num_images = self.source.count("val", num_images)  # an imported validation split has an end
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        detections, gt_boxes, gt_labels = [], [], []
        ignore: list[tuple[np.ndarray, np.ndarray]] = []
        bs = min(cfg.train.batch_size, 64)
        batches = 0
        for start in range(0, num_images, bs):
            n = min(bs, num_images - start)
            images, boxes, labels, _ = self.val_data.batch(start, n)
            parts, y_pred = self._eval_step(tf.constant(images), self._targets(boxes, labels))
            for key in LOSS_KEYS:
                sums[key] += float(parts[key])
            batches += 1
            detections += postprocess(
                y_pred,
                self.priors,
                num_classes=cfg.model.num_classes,
                variances=cfg.matching.variances,
                config=cfg.detect,
                image_size=cfg.data.image_size,
            )
            objects = labels >= 0  # an imported dataset's rows also hold its ignore regions
            gt_boxes += [boxes[i][objects[i]] for i in range(n)]
            gt_labels += [labels[i][objects[i]] for i in range(n)]
            ignore += [self.val_data.ignore_regions(start + i) for i in range(n)]
        result = coco_evaluate(
            gt_boxes,
            gt_labels,
            detections,
            num_classes=cfg.model.num_classes,
            image_size=cfg.data.image_size,
            ignore=ignore or None,
        )
        out: dict[str, Any] = {"step": self.step, "images": num_images, "time": time.time()}
        out.update({f"val_{k}": v / batches for k, v in sums.items()})
        out.update({"map": result.map, "map50": result.map50})
        return out

    # ----------------------------------------------------------------- the loop
    def batches(self, stack: contextlib.ExitStack, last: int) -> Iterator[tuple[tf.Tensor, tf.Tensor]]:
        """This worker's training batches for steps ``self.step .. last - 1``; the loader
        processes (``data.loader_processes``), if any, stop when ``stack`` closes."""
        pool = None
        if self.loader.processes:
            pool = stack.enter_context(BatchPool(self.config, self.source, self.loader.processes))
        return iter(input_pipeline(self.config, self.train_data, self.step, last, self.shard, pool))

    def fit(
        self,
        *,
        on_step: StepCallback | None = None,
        on_eval: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        steps: int | None = None,
        on_plan: PlanCallback | None = None,
    ) -> TrainResult:
        """Train from ``self.step`` to ``steps`` (default ``train.steps``).

        Calls ``on_step(metrics)`` after every step and ``on_eval(metrics)`` after every
        evaluation (every ``train.eval_every`` steps and at the end). An evaluation whose
        ``map50`` beats the best so far (``best.json``, read again on resume) is saved as
        ``best.weights.h5``. Checks ``should_stop()`` before every step: when it is true the run
        saves a checkpoint and returns ``cancelled``. With ``train.early_stop_patience`` N > 0 the
        run ends ``succeeded`` after N evaluations in a row without a new best, its
        ``stop_reason`` said in the result and in ``run.json``. With ``train.time_budget`` the run
        plans its step count from its own speed (:mod:`ssd.budget`) and calls
        ``on_plan(steps, reason)`` with each plan; ``run.json`` keeps ``planned_steps`` and
        ``time_budget`` (the reason), and a resumed run keeps its plan.

        Raises:
            NonFiniteLossError: a loss part became NaN or infinite (the last checkpoint stays).
        """
        t = self.config.train
        last = t.steps if steps is None else steps
        started = time.perf_counter()
        budget: StepBudget | None = None
        kept: dict[str, str] = (read_run_info(self.out_dir) or {}) if self.step else {}
        if t.time_budget and steps is None and kept.get("planned_steps", "").isdigit():
            last = min(int(kept["planned_steps"]), t.steps)  # a resumed run keeps its plan
            self._end_schedule(last)
        elif t.time_budget and steps is None:
            budget = StepBudget(
                seconds=60 * t.time_budget,
                cap=t.steps,
                eval_every=t.eval_every,
                start=started,
                eval_images=self.source.count("val", t.eval_images),
                batch_size=t.batch_size,
                first_step=self.step,
            )
        metrics_file = self.out_dir / METRICS_FILE
        evals_file = self.out_dir / EVALS_FILE
        _truncate_jsonl(metrics_file, self.step)
        _truncate_jsonl(evals_file, self.step)
        write_config(self.out_dir, self.config)
        device = f"GPU: {self.gpu.name}" if self.gpu else f"CPU: {cpu_info()[0]}"
        run_info: dict[str, str] = {
            "precision": self.precision.policy,
            "precision_reason": self.precision.reason,
            "xla": self.xla.setting,
            "xla_reason": self.xla.reason,
            "loader_processes": str(self.loader.processes),
            "loader_reason": self.loader.reason,
            "device": device,
            **self._init_info(),
            **self._workers_info(),
            **{k: kept[k] for k in ("planned_steps", "time_budget") if k in kept},
        }
        write_run_info(self.out_dir, run_info)
        best, since_best = self._read_best(evals_file)
        patience = t.early_stop_patience
        stop_reason: str | None = None
        record: dict[str, Any] | None = None
        evaluation: dict[str, Any] | None = None
        status: Literal["succeeded", "cancelled"] = "succeeded"
        tick = time.perf_counter()
        with contextlib.ExitStack() as stack:
            pipeline = self.batches(stack, last)
            mf = stack.enter_context(open(metrics_file, "a"))
            tb = stack.enter_context(TensorBoardLog(self.out_dir, self.config.to_dict(), self.step))
            while self.step < last:
                asked = should_stop is not None and should_stop()
                if self._stop_vote(asked or stop_reason is not None):
                    if stop_reason is None:
                        status = "cancelled"
                    break
                images, y_true = next(pipeline)
                lr = current_lr(self.optimizer)
                parts = self.step_function()(images, y_true)
                values = {k: float(v) for k, v in parts.items()}
                self.step += 1
                for key in LOSS_KEYS:
                    if not math.isfinite(values[key]):
                        raise NonFiniteLossError(self.step, key, values[key])
                now = time.perf_counter()
                record = {"step": self.step, **values, "lr": lr}
                record["images_per_sec"] = t.batch_size / max(now - tick, 1e-9)
                record["time"] = time.time()
                tick = now
                mf.write(json.dumps(record) + "\n")
                mf.flush()
                tb.step(record)
                if on_step is not None:
                    on_step(record)
                planned = budget.step_done(self.step, time.perf_counter()) if budget is not None else None
                if planned is not None and budget is not None:
                    last = planned
                    self._end_schedule(planned)
                    run_info.update(planned_steps=str(planned), time_budget=budget.reason)
                    write_run_info(self.out_dir, run_info)
                    if on_plan is not None:
                        on_plan(planned, budget.reason)
                done = self.step == last
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 and not done:
                    self.save_checkpoint()
                if done or (t.eval_every and self.step % t.eval_every == 0):
                    evaluated = time.perf_counter()
                    with self.averaged():
                        evaluation = self.evaluate(t.eval_images)
                    if budget is not None:
                        budget.eval_done(time.perf_counter() - evaluated)
                    map50 = float(evaluation.get("map50", math.nan))  # a stand-in evaluation may have none
                    if math.isfinite(map50) and (best is None or map50 > best["map50"]):
                        self.save_best(evaluation)
                        best = {"step": self.step, "map50": map50, "map": float(evaluation["map"])}
                        since_best = 0
                    else:
                        since_best += 1
                    if patience and since_best >= patience and not done:
                        stop_reason = (
                            f"early stop: no new best mAP@.5 in {since_best} evaluations "
                            f"(best {best['map50']:.4f} at step {best['step']})"
                            if best is not None
                            else f"early stop: no finite mAP@.5 in {since_best} evaluations"
                        )
                        run_info["stop_reason"] = stop_reason
                        write_run_info(self.out_dir, run_info)
                    with open(evals_file, "a") as ef:
                        ef.write(json.dumps(evaluation) + "\n")
                    tb.eval(evaluation)
                    if on_eval is not None:
                        on_eval(evaluation)
                    tick = time.perf_counter()  # evaluation time is not training time
        self.save_checkpoint()
        return TrainResult(
            status=status,
            step=self.step,
            last_metrics=record,
            last_eval=evaluation,
            best=best,
            stop_reason=stop_reason,
        )


def _truncate_jsonl(path: Path, step: int) -> None:
    """Drop records after ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def train(
    config: Config,
    out_dir: str | Path,
    *,
    resume: bool = True,
    on_step: StepCallback | None = None,
    on_eval: StepCallback | None = None,
    should_stop: StopFlag | None = None,
    data_dir: str | Path | None = None,
) -> TrainResult:
    """Train ``config`` into ``out_dir``, resuming from its checkpoint when there is one."""
    trainer = Trainer(config, out_dir, data_dir=data_dir)
    if resume and trainer.has_checkpoint():
        trainer.load_checkpoint()
    return trainer.fit(on_step=on_step, on_eval=on_eval, should_stop=should_stop)
