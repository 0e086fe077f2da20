"""Training-speed benchmark: :mod:`ssd.train` against the notebook's naive Keras way.

``ssdboard bench`` (``make bench``) measures, in one run on this machine:

1. **Trainer**: training images/s of :class:`ssd.train.Trainer` with the ``default`` preset at
   batch 32 on 128x128 images (its precision is whatever the preset says; printed).
2. **Naive**: the same architecture and priors in float32 (the notebook had no mixed
   precision), a softmax on the class channels, the notebook's loss verbatim (a Keras loss
   function with ``tf.nn.top_k(k=tf.cast(num_neg, tf.int32))``), ``model.compile(Adam(1e-3))``
   and ``model.fit`` on a :class:`keras.utils.PyDataset` whose targets are built per image in a
   Python loop with NumPy, as the notebook's ``DetectionGenerator`` did.
3. The ratio of the two. The machine is shared and noisy, so the two are measured side by
   side, interleaved (trainer, naive, trainer, naive, ...), and medians are reported.
4. Training FLOPs per image (counted from the Keras layers, cross-checked with TensorFlow's
   profiler) and the share of this machine's peak, measured in the same run as the median
   time of a large fp32 and bf16 matmul.
5. The data generator's single-threaded images/s against what the trainer consumes.

Results are printed and written as JSON to ``.bench/train_bench.json`` (``--quick``:
``.bench/train_bench_quick.json``, so a smoke run never overwrites a measurement).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ssd.config import Config, from_dict
from ssd.data import DetectionDataset, for_config
from ssd.model import build_ssd
from ssd.priors import make_priors
from ssd.train import Trainer

BATCH_SIZE = 32
IMAGE_SIZE = 128
TARGET_RATIO = 2.0  # the target: the trainer at >= 2x the naive way
OUT_DIR = Path(".bench")
EPSILON = 1e-7  # keras.backend.epsilon(), the notebook's eps


@dataclass(frozen=True)
class BenchPlan:
    """How much to measure: repeats of (trainer, naive), steps per measurement and sizes."""

    repeats: int
    warmup_steps: int
    timed_steps: int
    generator_images: int
    matmul_size: int
    matmul_runs: int


FULL = BenchPlan(repeats=3, warmup_steps=3, timed_steps=20, generator_images=500, matmul_size=4096, matmul_runs=5)
QUICK = BenchPlan(repeats=1, warmup_steps=3, timed_steps=3, generator_images=50, matmul_size=2048, matmul_runs=2)


def bench_config() -> Config:
    """The ``default`` preset at batch 32 on 128x128 images."""
    return from_dict({"train": {"batch_size": BATCH_SIZE}, "data": {"image_size": IMAGE_SIZE}})


# --------------------------------------------------------------------------------------- FLOPs
def conv_flops(model: keras.Model) -> dict[str, int]:
    """Forward FLOPs per image of each ``Conv2D`` layer of ``model`` (multiply and add count 2).

    ``2 * H_out * W_out * k_h * k_w * C_in / groups * C_out``. Bias adds, BatchNorm and ReLU are
    one or a few operations per output element, under 1% of a 3x3 conv with >= 16 input
    channels, and are left out (the profiler cross-check in :func:`profiler_flops` counts them).
    Dense layers are counted too (``2 * C_in * C_out`` per position), should a model have one.
    """
    out: dict[str, int] = {}
    for layer in _flat_layers(model):
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            groups = getattr(layer, "groups", 1)
            out[layer.name] = 2 * int(h) * int(w) * kh * kw * (int(c_in) // groups) * int(c_out)
        elif isinstance(layer, keras.layers.Dense):
            positions = int(np.prod([int(d) for d in layer.output.shape[1:-1]], dtype=np.int64))
            out[layer.name] = 2 * positions * int(layer.input.shape[-1]) * int(layer.units)
    return out


def _flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers of ``model``, nested models expanded."""
    layers: list[keras.layers.Layer] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers += _flat_layers(layer)
        else:
            layers.append(layer)
    return layers


def forward_flops(model: keras.Model) -> int:
    """Analytic forward FLOPs per image (see :func:`conv_flops`); the input shape must be fixed."""
    return sum(conv_flops(model).values())


def profiler_flops(model: keras.Model, image_size: int) -> dict[str, int] | None:
    """TensorFlow profiler's float-op count of one forward pass at batch 1, by op type.

    ``{"total": ..., "Conv2D": ..., ...}``, or ``None`` when the profiler fails (it is a TF1
    tool and not guaranteed to keep working). Its ``Conv2D`` entry uses the same formula as
    :func:`conv_flops`, so the two must agree exactly; the total adds bias, BatchNorm, ReLU and
    rescaling.
    """
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the TF1 profiler warns about its own deprecated helpers
    try:
        fn = tf.function(lambda x: model(x, training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec([1, image_size, image_size, 3], tf.float32))
        builder = tf.compat.v1.profiler.ProfileOptionBuilder
        options = builder(builder.float_operation()).with_empty_output().build()
        profile = tf.compat.v1.profiler.profile(
            graph=concrete.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
        out = {"total": int(profile.total_float_ops)}
        # The "op" view nests each op type under the previous one, with cumulative totals:
        # walk the chain and take every node's own ``float_ops``.
        nodes = list(profile.children)
        while nodes:
            node = nodes.pop()
            if node.float_ops:
                out[str(node.name)] = out.get(str(node.name), 0) + int(node.float_ops)
            nodes += list(node.children)
        return out
    except Exception as exc:  # noqa: BLE001 - a cross-check only; report and go on
        print(f"  (TF profiler cross-check unavailable: {type(exc).__name__}: {exc})")
        return None
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------------------------ the naive way
def naive_iou(gt: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """float32 [K, P] IoU of ground truths [K, 4] and priors [P, 4], both pixel ``xyxy``."""
    lt = np.maximum(gt[:, None, :2], priors[None, :, :2])
    rb = np.minimum(gt[:, None, 2:], priors[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_g = np.clip(gt[:, 2] - gt[:, 0], 0.0, None) * np.clip(gt[:, 3] - gt[:, 1], 0.0, None)
    area_p = np.clip(priors[:, 2] - priors[:, 0], 0.0, None) * np.clip(priors[:, 3] - priors[:, 1], 0.0, None)
    union = area_g[:, None] + area_p[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float32)


def naive_targets(
    boxes: np.ndarray, labels: np.ndarray, priors: np.ndarray, num_classes: int, iou_threshold: float = 0.5
) -> np.ndarray:
    """The notebook's ``DetectionGenerator`` targets, one image at a time in a Python loop.

    Threshold matching only (no forced best prior, no variances): a prior is positive when its
    best IoU is ``>= iou_threshold`` and takes that ground truth (highest IoU wins, as in
    :func:`ssd.matching.match`; the notebook let the last one win). Unmatched priors are
    one-hot background (last class) with zero offsets.

    Args:
        boxes: float32 [B, K, 4] pixel ``xyxy``; labels: int32 [B, K], -1 for padding.
        priors: float32 [P, 4] pixel ``xyxy``.

    Returns:
        float32 [B, P, num_classes + 1 + 4] ``y_true``.
    """
    priors = np.asarray(priors, np.float32)
    p_wh = priors[:, 2:] - priors[:, :2]
    p_c = (priors[:, :2] + priors[:, 2:]) / 2
    y = np.zeros((len(boxes), len(priors), num_classes + 1 + 4), np.float32)
    for b in range(len(boxes)):  # the naive part: a Python loop over images
        y[b, :, num_classes] = 1.0
        valid = labels[b] >= 0
        gt, gt_labels = np.asarray(boxes[b][valid], np.float32), labels[b][valid]
        if len(gt) == 0:
            continue
        iou = naive_iou(gt, priors)
        best = iou.argmax(axis=0)
        positive = np.flatnonzero(iou.max(axis=0) >= iou_threshold)
        if positive.size == 0:
            continue
        g = gt[best[positive]]
        g_wh = g[:, 2:] - g[:, :2]
        g_c = (g[:, :2] + g[:, 2:]) / 2
        y[b, positive, num_classes] = 0.0
        y[b, positive, gt_labels[best[positive]]] = 1.0
        y[b, positive, num_classes + 1 : num_classes + 3] = (g_c - p_c[positive]) / p_wh[positive]
        y[b, positive, num_classes + 3 :] = np.log(np.maximum(g_wh, 1e-6) / p_wh[positive])
    return y


def notebook_loss(alpha: float = 1.0, pos_neg_ratio: float = 3.0) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The notebook's ``SSDLoss`` as written (TF1 names updated): probabilities in, dynamic ``top_k``.

    ``tf.nn.top_k`` with a tensor ``k`` has a data-dependent output shape, so this loss cannot
    be compiled with XLA; :mod:`ssd.loss` replaces it with a sort and a rank mask.
    """

    def ssd_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        num_classes = tf.shape(y_true)[2] - 4
        y_true = tf.reshape(y_true, [-1, num_classes + 4])
        y_pred = tf.reshape(y_pred, [-1, num_classes + 4])
        eps = EPSILON

        y_true_clf, y_true_loc = tf.split(y_true, [num_classes, 4], axis=-1)
        y_pred_clf, y_pred_loc = tf.split(y_pred, [num_classes, 4], axis=-1)

        neg_mask = y_true_clf[:, -1]
        pos_mask = 1 - neg_mask
        num_pos = tf.reduce_sum(pos_mask)
        num_neg = tf.reduce_sum(neg_mask)
        num_neg = tf.minimum(pos_neg_ratio * num_pos, num_neg)

        y_pred_clf = tf.clip_by_value(y_pred_clf, eps, 1.0 - eps)
        clf_loss = -tf.reduce_sum(y_true_clf * tf.math.log(y_pred_clf), axis=-1)
        pos_clf_loss = tf.reduce_sum(clf_loss * pos_mask) / (num_pos + eps)
        neg_clf_loss = clf_loss * neg_mask
        values, _ = tf.nn.top_k(neg_clf_loss, k=tf.cast(num_neg, tf.int32))
        neg_clf_loss = tf.reduce_sum(values) / (num_neg + eps)
        clf_loss = pos_clf_loss + neg_clf_loss

        l1_loss = tf.abs(y_true_loc - y_pred_loc)
        l2_loss = 0.5 * (y_true_loc - y_pred_loc) ** 2
        loc_loss = tf.where(tf.less(l1_loss, 1.0), l2_loss, l1_loss - 0.5)
        loc_loss = tf.reduce_sum(loc_loss, axis=-1)
        loc_loss = tf.reduce_sum(loc_loss * pos_mask) / (num_pos + eps)
        return clf_loss + alpha * loc_loss

    return ssd_loss


class ClassSoftmax(keras.layers.Layer):
    """Softmax over the first ``num_scores`` channels (classes + background); offsets pass through."""

    def __init__(self, num_scores: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_scores = num_scores

    def call(self, x: Any) -> Any:
        scores = keras.ops.softmax(x[..., : self.num_scores], axis=-1)
        return keras.ops.concatenate([scores, x[..., self.num_scores :]], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_scores": self.num_scores}


def build_naive_model(config: Config, fused_batchnorm: bool = False) -> keras.Model:
    """The config's architecture in float32 with softmax probabilities out (the notebook's head).

    By default with Keras' own BatchNormalization, as the notebook's code builds it;
    ``fused_batchnorm`` swaps in ssdboard's fused layer to isolate what else the trainer gains.
    """
    logits = build_ssd(config.model, config.priors, config.data.image_size, None, fused_batchnorm)
    probs = ClassSoftmax(config.model.num_classes + 1, name="softmax", dtype="float32")(logits.output)
    return keras.Model(logits.input, probs, name="ssd_naive")


class NaiveBatches(keras.utils.PyDataset):
    """Batches ``(images, y_true)``: images from the dataset, targets by :func:`naive_targets`."""

    def __init__(
        self, dataset: DetectionDataset, priors: np.ndarray, num_classes: int, first: int, steps: int, batch: int
    ) -> None:
        super().__init__()  # Keras defaults: workers=1, no multiprocessing
        self.dataset, self.priors, self.num_classes = dataset, priors, num_classes
        self.first, self.steps, self.batch_size = first, steps, batch

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        images, boxes, labels, _ = self.dataset.batch((self.first + index) * self.batch_size, self.batch_size)
        return images, naive_targets(boxes, labels, self.priors, self.num_classes)


class BatchTimes(keras.callbacks.Callback):
    """``perf_counter`` at the end of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if logs and "loss" in logs:
            float(logs["loss"])  # make sure the step has finished
        self.times.append(time.perf_counter())


def images_per_sec(times: Sequence[float], warmup: int, timed: int, batch: int) -> float:
    """Throughput over steps ``warmup + 1 .. warmup + timed`` from per-step end times."""
    if warmup < 1 or timed < 1:
        raise ValueError("need at least one warm-up step (its end starts the clock) and one timed step")
    if len(times) < warmup + timed:
        raise RuntimeError(f"expected {warmup + timed} step times, got {len(times)}")
    return timed * batch / (times[warmup + timed - 1] - times[warmup - 1])


class NaiveRun:
    """The naive model, compiled once; each :meth:`measure` is one ``model.fit`` call."""

    def __init__(self, config: Config, fused_batchnorm: bool = False) -> None:
        keras.utils.set_random_seed(config.seed)
        self.config = config
        self.model = build_naive_model(config, fused_batchnorm)
        # jit_compile=False: the dynamic top_k cannot be XLA-compiled (Keras' "auto" is off on CPU anyway).
        self.model.compile(keras.optimizers.Adam(1e-3), loss=notebook_loss(), jit_compile=False)
        self.dataset = for_config(config, "train")
        self.priors = make_priors(config.priors, config.data.image_size).boxes
        self.next_step = 0

    def measure(self, warmup: int, timed: int) -> float:
        """Images/s of ``timed`` steps after ``warmup`` steps (first call: tracing included there)."""
        b = self.config.train.batch_size
        data = NaiveBatches(self.dataset, self.priors, self.config.model.num_classes, self.next_step, warmup + timed, b)
        timer = BatchTimes()
        self.model.fit(data, epochs=1, verbose=0, callbacks=[timer])
        self.next_step += warmup + timed
        return images_per_sec(timer.times, warmup, timed, b)


class TrainerRun:
    """One :class:`ssd.train.Trainer`; each :meth:`measure` is one ``fit`` call continuing it."""

    def __init__(self, config: Config, out_dir: str) -> None:
        self.trainer = Trainer(config, out_dir)
        # Trainer.fit evaluates (val loss + COCO mAP) at its last step. That happens after the
        # last on_step timestamp, so it would not bias the timing, but it costs time: skip it.
        self.trainer.evaluate = lambda num_images: {"step": self.trainer.step}  # type: ignore[method-assign]

    def measure(self, warmup: int, timed: int) -> float:
        """Images/s of ``timed`` steps after ``warmup`` steps, from ``on_step`` timestamps."""
        times: list[float] = []
        self.trainer.fit(
            steps=self.trainer.step + warmup + timed, on_step=lambda _record: times.append(time.perf_counter())
        )
        return images_per_sec(times, warmup, timed, self.trainer.config.train.batch_size)


# --------------------------------------------------------------------------- peak and data
def matmul_gflops(size: int, dtype: tf.DType, runs: int) -> float:
    """Median GFLOP/s of a ``size x size @ size x size`` matmul on CPU, after one warm-up run."""
    with tf.device("/CPU:0"):
        rng = tf.random.Generator.from_seed(0)
        a = tf.cast(rng.normal([size, size]), dtype)
        b = tf.cast(rng.normal([size, size]), dtype)
        seconds = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            c = tf.linalg.matmul(a, b)
            float(c[0, 0])  # wait for the result
            if i:  # the first run is a warm-up
                seconds.append(time.perf_counter() - t0)
    return 2.0 * size**3 / statistics.median(seconds) / 1e9


def generator_images_per_sec(config: Config, num_images: int) -> float:
    """Single-threaded ``DetectionDataset("train")[i]`` images/s over ``num_images`` images."""
    ds = for_config(config, "train")
    ds[0]  # load the digit pool
    t0 = time.perf_counter()
    for i in range(1, num_images + 1):
        ds[i]
    return num_images / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------- the run
def cpu_description() -> str:
    """The CPU model and its bf16 features (from ``/proc/cpuinfo`` on Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name or platform.machine()} ({', '.join(bf16) or 'no bf16 instructions'})"


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def run_bench(quick: bool = False) -> int:
    """Measure, print and write ``.bench/train_bench.json``; returns the exit code (0).

    ``quick``: one repeat of 3 timed steps each and smaller peak/generator runs, a smoke run
    rather than a measurement (written to ``.bench/train_bench_quick.json``).
    """
    plan = QUICK if quick else FULL
    config = bench_config()
    started = time.time()
    print(f"ssdboard bench{' --quick (smoke run, not a measurement)' if quick else ''}")
    print(
        f"  machine: {cpu_description()}, {os.cpu_count()} CPUs; TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    print(
        f"  trainer: preset 'default', batch {config.train.batch_size}, {config.data.image_size}x"
        f"{config.data.image_size}, precision {config.train.precision}; naive: same model in float32"
    )

    # FLOPs (analytic on the float32 model; the architecture is the same whatever the precision).
    naive = NaiveRun(config)
    naive_fused = NaiveRun(config, fused_batchnorm=True)
    logits_model = build_ssd(config.model, config.priors, config.data.image_size, None)
    per_layer = conv_flops(logits_model)
    fwd = sum(per_layer.values())
    # Training ~ 3x forward: the backward pass computes, per conv, an input gradient and a weight
    # gradient, each as costly as the forward conv (the first conv needs no input gradient, so
    # this slightly over-counts; bias/BN/ReLU/loss/optimizer are left out, so it under-counts).
    train_flops = 3 * fwd
    prof = profiler_flops(logits_model, config.data.image_size)
    num_priors = len(make_priors(config.priors, config.data.image_size))

    gen_ips = generator_images_per_sec(config, plan.generator_images)

    trainer_ips: list[float] = []
    naive_ips: list[float] = []
    fused_ips: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ssd-bench-") as tmp:
        trainer = TrainerRun(config, tmp)
        for r in range(plan.repeats):
            trainer_ips.append(trainer.measure(plan.warmup_steps, plan.timed_steps))
            naive_ips.append(naive.measure(plan.warmup_steps, plan.timed_steps))
            fused_ips.append(naive_fused.measure(plan.warmup_steps, plan.timed_steps))
            print(
                f"  repeat {r + 1}/{plan.repeats}: trainer {trainer_ips[-1]:.1f} img/s, naive {naive_ips[-1]:.1f} "
                f"img/s, naive with fused BatchNorm {fused_ips[-1]:.1f} img/s"
            )

    peak_fp32 = matmul_gflops(plan.matmul_size, tf.float32, plan.matmul_runs)
    peak_bf16 = matmul_gflops(plan.matmul_size, tf.bfloat16, plan.matmul_runs)

    ratios = [t / n for t, n in zip(trainer_ips, naive_ips, strict=True)]
    t_med, n_med, ratio = _median(trainer_ips), _median(naive_ips), _median(ratios)
    fused_ratios = [t / n for t, n in zip(trainer_ips, fused_ips, strict=True)]
    f_med, f_ratio = _median(fused_ips), _median(fused_ratios)
    achieved = train_flops * t_med / 1e9
    naive_achieved = train_flops * n_med / 1e9

    print()
    print(f"{'':<24}{'median img/s':>14}  per repeat")
    print(f"{'trainer (ssd.train)':<24}{t_med:>14.1f}  {', '.join(f'{v:.1f}' for v in trainer_ips)}")
    print(f"{'naive (compile + fit)':<24}{n_med:>14.1f}  {', '.join(f'{v:.1f}' for v in naive_ips)}")
    print(f"{'ratio trainer / naive':<24}{ratio:>13.2f}x  {', '.join(f'{v:.2f}' for v in ratios)}")
    print(f"{'naive + fused BatchNorm':<24}{f_med:>14.1f}  {', '.join(f'{v:.1f}' for v in fused_ips)}")
    print(f"{'ratio trainer / that':<24}{f_ratio:>13.2f}x  {', '.join(f'{v:.2f}' for v in fused_ratios)}")
    print("  naive: the notebook's code under Keras 3 (Keras' BatchNormalization, float32, model.fit,")
    print("  per-image NumPy targets, dynamic top_k); 'naive + fused BatchNorm' isolates the rest of the gain")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"  target >= {TARGET_RATIO:.0f}x: {verdict}  ({plan.repeats} interleaved repeats of {plan.timed_steps} "
        f"timed steps after {plan.warmup_steps} warm-up steps, batch {config.train.batch_size})"
    )
    print()
    print(f"model: {num_priors} priors, forward {fwd / 1e6:.1f} MFLOP/image (Conv2D layers; bias/BN/ReLU left out)")
    if prof is not None:
        conv = prof.get("Conv2D", 0)
        check = "agrees" if conv == fwd else f"DIFFERS by {conv - fwd:+d}"
        print(f"  TF profiler: Conv2D {conv / 1e6:.1f} MFLOP ({check}), all ops {prof['total'] / 1e6:.1f} MFLOP")
    print(f"  training ~ 3x forward (backward: input and weight gradients) = {train_flops / 1e6:.1f} MFLOP/image")
    print(
        f"peak ({plan.matmul_size}^3 matmul, median of {plan.matmul_runs}): fp32 {peak_fp32:.0f} GFLOP/s, "
        f"bf16 {peak_bf16:.0f} GFLOP/s"
    )
    print(
        f"  trainer reaches {achieved:.1f} GFLOP/s = {100 * achieved / peak_fp32:.1f}% of fp32 peak, "
        f"{100 * achieved / peak_bf16:.1f}% of bf16 peak (naive: {naive_achieved:.1f} GFLOP/s)"
    )
    print(
        f"data generator: {gen_ips:.0f} img/s on one thread vs trainer {t_med:.0f} img/s: "
        f"{gen_ips / t_med:.1f}x headroom (it needs {100 * t_med / gen_ips:.0f}% of one core)"
    )

    result: dict[str, Any] = {
        "quick": quick,
        "started": started,
        "seconds": time.time() - started,
        "machine": {
            "processor": cpu_description(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "plan": asdict(plan),
        "config": {
            "preset": "default",
            "batch_size": config.train.batch_size,
            "image_size": config.data.image_size,
            "precision": config.train.precision,
            "num_priors": num_priors,
        },
        "throughput": {
            "trainer_images_per_sec": trainer_ips,
            "naive_images_per_sec": naive_ips,
            "ratios": ratios,
            "trainer_median": t_med,
            "naive_median": n_med,
            "naive_fused_bn_images_per_sec": fused_ips,
            "naive_fused_bn_median": f_med,
            "ratio_vs_naive_fused_bn_median": f_ratio,
            "ratio_median": ratio,
            "target_ratio": TARGET_RATIO,
            "target_met": ratio >= TARGET_RATIO,
        },
        "flops": {
            "forward_per_image": fwd,
            "train_per_image": train_flops,
            "per_layer_forward": per_layer,
            "profiler_forward": prof,
        },
        "peak": {
            "matmul_size": plan.matmul_size,
            "fp32_gflops": peak_fp32,
            "bf16_gflops": peak_bf16,
            "trainer_gflops": achieved,
            "naive_gflops": naive_achieved,
            "trainer_share_fp32": achieved / peak_fp32,
            "trainer_share_bf16": achieved / peak_bf16,
        },
        "generator": {
            "images_per_sec_single_thread": gen_ips,
            "images": plan.generator_images,
            "headroom": gen_ips / t_med,
        },
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / ("train_bench_quick.json" if quick else "train_bench.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {path}")
    return 0
