"""Keras layers of the SSD's networks that Keras does not offer as needed (TensorFlow).

The notebook's base network (:mod:`ssd.model`) and the extra feature layers after a
keras.applications backbone (:mod:`ssd.backbone_nets`) both normalise with
:class:`FusedBatchNormalization`; it lives apart from both so neither imports the other for it.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="ssd")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization with the training pass in TensorFlow's fused kernel.

    Keras 3 normalises with separate moments/normalise ops, several passes over each
    activation; on this CPU that made BatchNorm cost more than the convolutions (measured
    2.8x slower training steps in bf16, see docs/performance.md). ``FusedBatchNormV3`` is one oneDNN
    kernel that also takes bf16 activations with float32 statistics. Same variables, same
    checkpoints and the same inference path as the Keras layer; the moving averages follow
    Keras' rule ``moving = moving * momentum + batch * (1 - momentum)`` with the biased batch
    variance, as Keras (the kernel returns the Bessel-corrected one; we undo the correction).
    """

    def call(self, inputs: tf.Tensor, training: bool | None = None, mask: tf.Tensor | None = None) -> tf.Tensor:
        # synchronized (multi-worker training, ssd.distributed): Keras' path all-reduces the moments.
        if not training or self.synchronized or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        empty = tf.constant([], tf.float32)
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=gamma,
            offset=beta,
            mean=empty,
            variance=empty,
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype) * (1.0 - m))
        self.moving_variance.assign(
            self.moving_variance * m + tf.cast(variance, self.moving_variance.dtype) * (1.0 - m)
        )
        return y
