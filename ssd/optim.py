"""The optimizer of a run and its learning-rate schedule, and the device it runs on (TensorFlow)."""

from __future__ import annotations

import keras
import tensorflow as tf

from ssd.config import Config
from ssd.precision import Gpu


def learning_rate_schedule(config: Config) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Constant, or linear warm-up then cosine decay to zero at ``train.steps``."""
    t = config.train
    if t.schedule == "constant":
        return t.learning_rate
    warmup = min(t.warmup_steps, t.steps // 2)
    decay_steps = max(t.steps - warmup, 1)
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, warmup_target=t.learning_rate, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(t.learning_rate, decay_steps)


def make_optimizer(config: Config, policy: str = "float32") -> keras.optimizers.Optimizer:
    """Adam (the notebook's), or AdamW when ``train.weight_decay`` > 0; under ``mixed_float16``
    wrapped in Keras' dynamic ``LossScaleOptimizer`` (float16 gradients underflow without it)."""
    lr = learning_rate_schedule(config)
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
