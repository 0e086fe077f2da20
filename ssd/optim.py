"""The optimizer of a run and its learning-rate schedule, and the device it runs on (TensorFlow)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from ssd.config import Config
from ssd.precision import Gpu


class AdjustableCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Keras' ``CosineDecay`` (linear warm-up from 0, then cosine to zero) whose end can move while
    the run trains (:meth:`end_at`): a time budget plans the run's length after it started
    (:mod:`ssd.budget`), and the schedule ends where the run does."""

    def __init__(self, learning_rate: float, warmup_steps: int, total_steps: int) -> None:
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = tf.Variable(float(max(total_steps - warmup_steps, 1)), trainable=False, dtype=tf.float32)

    def end_at(self, total_steps: int) -> None:
        """The cosine reaches zero at ``total_steps``."""
        self.decay_steps.assign(float(max(total_steps - self.warmup_steps, 1)))

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        warmup = float(self.warmup_steps)
        rising = self.learning_rate * step / max(warmup, 1.0)
        done = tf.minimum(step - warmup, self.decay_steps) / self.decay_steps
        falling = self.learning_rate * 0.5 * (1.0 + tf.cos(math.pi * done))
        return tf.where(step < warmup, rising, falling)

    def get_config(self) -> dict[str, float | int]:
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": int(self.decay_steps.numpy()) + self.warmup_steps,
        }


def learning_rate_schedule(config: Config) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Constant, or linear warm-up then cosine decay to zero at ``train.steps`` (with
    ``train.time_budget``, an :class:`AdjustableCosine` whose end the budget's plan moves)."""
    t = config.train
    if t.schedule == "constant":
        return t.learning_rate
    warmup = min(t.warmup_steps, t.steps // 2)
    if t.time_budget:
        return AdjustableCosine(t.learning_rate, warmup, t.steps)
    decay_steps = max(t.steps - warmup, 1)
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, warmup_target=t.learning_rate, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(t.learning_rate, decay_steps)


def make_optimizer(
    config: Config,
    policy: str = "float32",
    schedule: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
) -> keras.optimizers.Optimizer:
    """Adam (the notebook's), or AdamW when ``train.weight_decay`` > 0; under ``mixed_float16``
    wrapped in Keras' dynamic ``LossScaleOptimizer`` (float16 gradients underflow without it).
    ``schedule``: the learning rate (default :func:`learning_rate_schedule`)."""
    lr = learning_rate_schedule(config) if schedule is None else schedule
    if config.train.weight_decay > 0:
        inner: keras.optimizers.Optimizer = keras.optimizers.AdamW(lr, weight_decay=config.train.weight_decay)
    else:
        inner = keras.optimizers.Adam(lr)
    return keras.optimizers.LossScaleOptimizer(inner) if policy == "mixed_float16" else inner


def detect_gpu() -> Gpu | None:
    """The first GPU TensorFlow sees, with its compute capability, or None."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = tuple(details.get("compute_capability") or (0, 0))
    return Gpu(str(details.get("device_name", gpus[0].name)), (int(capability[0]), int(capability[1])))


def current_lr(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer applies at its next step."""
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
