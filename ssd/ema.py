"""An exponential moving average of a model's weights (``train.ema_decay``; TensorFlow).

What modern detectors evaluate and ship (YOLOv5's ``ModelEMA``, TensorFlow's
``ExponentialMovingAverage``): after every optimizer step each float weight ``w`` of the model
moves its average ``a`` as ``a = d a + (1 - d) w``, with ``d = min(decay, (1 + n) / (10 + n))``
after ``n`` updates, so the first steps' random weights fade fast (TensorFlow's
``num_updates`` rule). BatchNorm's moving statistics are averaged with the rest, as YOLOv5 does,
so the averaged network's statistics belong to it.

The trainer evaluates, keeps as best and saves the averaged weights (:meth:`WeightAverage.applied`),
so ``model.weights.h5``, ``best.weights.h5`` and every export hold them; the raw weights the
optimizer keeps training travel in ``train_state.npz`` for a resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf


class WeightAverage:
    """The moving average of ``model.weights``' float variables (trainable and BatchNorm statistics)."""

    def __init__(self, model: keras.Model, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.weights = [w for w in model.weights if np.dtype(w.dtype).kind == "f"]
        self.average = [tf.Variable(w.numpy(), trainable=False, name=f"ema_{i}") for i, w in enumerate(self.weights)]
        self.updates = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="ema_updates")

    def update(self) -> None:
        """One update after an optimizer step (inside the compiled training step)."""
        n = self.updates.assign_add(1.0)
        d = tf.minimum(tf.constant(self.decay, tf.float32), (1.0 + n) / (10.0 + n))
        for a, w in zip(self.average, self.weights, strict=True):
            a.assign(d * a + (1.0 - d) * tf.cast(keras.ops.convert_to_tensor(w), a.dtype))

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside, its own again after."""
        raw = self.raw()
        for w, a in zip(self.weights, self.average, strict=True):
            w.assign(a.numpy())
        try:
            yield
        finally:
            self.restore(raw)

    def raw(self) -> list[np.ndarray]:
        """The model's own (unaveraged) weight values, in :attr:`weights` order."""
        return [w.numpy() for w in self.weights]

    def restore(self, raw: Sequence[np.ndarray]) -> None:
        """Give the model back weight values :meth:`raw` gave."""
        for w, value in zip(self.weights, raw, strict=True):
            w.assign(value)

    def reset(self, updates: int) -> None:
        """The model's weights become the average, after ``updates`` updates (a resumed run's step)."""
        for a, w in zip(self.average, self.weights, strict=True):
            a.assign(w.numpy())
        self.updates.assign(float(updates))
