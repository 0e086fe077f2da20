"""The training input pipeline: a config's data, matched to its priors, batch by batch (TensorFlow).

Sample ``i`` of step ``s`` is ``data[s * batch_size + i]``: the data a step sees depends only on
the step, so a resumed run sees the same batches as an uninterrupted one, and worker ``k`` of
``n`` takes the ``k``-th slice of every batch (:mod:`ssd.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from ssd.config import Config
from ssd.datasets.resolve import resolve
from ssd.datasets.source import SplitData
from ssd.loader_pool import BatchPool
from ssd.matching import match
from ssd.priors import make_priors

TrainData = SplitData  # the generator or an imported dataset: one interface (ssd.datasets.source)


def datasets(config: Config, data_dir: Path | None = None) -> tuple[TrainData, TrainData]:
    """The training and validation data of a config: its dataset (the generator, or an import of
    the registry in ``data_dir``, default ``SSDBOARD_DATA_DIR`` or ``data``) resolved once."""
    source = resolve(config, data_dir)
    return source.split(config, "train"), source.split(config, "val")


def make_targets_fn(config: Config, *, jit_compile: bool = True) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``(boxes [B,K,4] xyxy, labels [B,K]) -> y_true [B,P,C+4]`` for the config's priors.

    XLA-compiled by default: matching is some twenty elementwise passes over [B, K, P] and
    [B, P, C + 4] tensors, which XLA fuses into a few loops. On the default config's batch of 32
    that took 13.8 ms of CPU instead of 70.5 (AMD EPYC, one thread), time the input pipeline
    took from the training step on a 2-core machine (docs/performance.md). XLA compiles once per
    input shape; the pipeline's shapes are static.
    """
    priors = tf.constant(make_priors(config.priors, config.data.image_size).boxes)
    m = config.matching

    @tf.function(jit_compile=jit_compile)
    def targets(boxes: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return match(
            boxes,
            labels,
            priors,
            num_classes=config.model.num_classes,
            iou_threshold=m.iou_threshold,
            force_best=m.force_best,
            variances=m.variances,
            neg_iou=m.neg_iou,
        )

    return targets


def input_pipeline(
    config: Config,
    dataset: TrainData,
    first_step: int,
    last_step: int,
    shard: tuple[int, int] = (0, 1),
    pool: BatchPool | None = None,
) -> tf.data.Dataset:
    """Batches ``(images uint8 [B,S,S,3], y_true float32 [B,P,C+4])`` for steps ``first..last-1``.

    Images are generated in NumPy (in a ``py_function``, or by ``pool``'s processes: the same
    batches) and matched to priors in a vectorised TensorFlow map; both run ahead of the
    training step on the pipeline's threads. ``shard = (i, n)`` gives only the i-th of n equal
    slices of every batch, ``B / n`` samples (a worker's part in multi-worker training,
    :mod:`ssd.distributed`).
    """
    index, num_shards = shard
    b, s, k = config.train.batch_size // num_shards, config.data.image_size, dataset.max_digits
    first_sample = index * b

    def start(step: int) -> int:
        """The first sample of this worker's slice of the batch of ``step``."""
        return step * config.train.batch_size + first_sample

    def generate(step: tf.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images, boxes, labels, _ = dataset.batch(start(int(step)), b)
        return images, boxes, labels

    def load(step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        images, boxes, labels = tf.py_function(generate, [step], [tf.uint8, tf.float32, tf.int32])
        images.set_shape([b, s, s, 3])
        boxes.set_shape([b, k, 4])
        labels.set_shape([b, k])
        return images, boxes, labels

    targets = make_targets_fn(config)
    if pool is None:
        ds = tf.data.Dataset.range(first_step, last_step)
        ds = ds.map(load, num_parallel_calls=2, deterministic=True)
        parallel = 2
    else:

        def made() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            return pool.batches(map(start, range(first_step, last_step)), b)

        signature = (
            tf.TensorSpec([b, s, s, 3], tf.uint8),
            tf.TensorSpec([b, k, 4], tf.float32),
            tf.TensorSpec([b, k], tf.int32),
        )
        ds = tf.data.Dataset.from_generator(made, output_signature=signature)
        parallel = max(2, pool.processes)  # a host with a pool has cores to spare for matching
    ds = ds.map(lambda i, bx, lb: (i, targets(bx, lb)), num_parallel_calls=parallel, deterministic=True)
    return ds.prefetch(2)
