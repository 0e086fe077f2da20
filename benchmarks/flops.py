"""FLOPs of a Keras model and this machine's peak: the efficiency figures of :mod:`benchmarks.train`.

:func:`conv_flops` counts the forward FLOPs of each ``Conv2D``, ``DepthwiseConv2D``,
``SeparableConv2D`` and ``Dense`` layer analytically;
:func:`profiler_flops` cross-checks them with TensorFlow's profiler; :func:`matmul_gflops` measures
the machine's peak as the median speed of a large matmul, and :func:`cpu_description` names the
CPU and its bf16 instructions.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from ssd.precision import cpu_info


def conv_flops(model: keras.Model) -> dict[str, int]:
    """Forward FLOPs per image of each convolution and Dense layer of ``model`` (multiply and add count 2).

    - ``Conv2D`` (1x1 ones too): ``2 * H_out * W_out * k_h * k_w * C_in / groups * C_out``.
    - ``DepthwiseConv2D`` (MobileNetV2's blocks): each input channel has its own ``k_h x k_w``
      filters, ``depth_multiplier`` of them: ``2 * H_out * W_out * k_h * k_w * C_in * multiplier``.
      It is not a ``Conv2D`` subclass in Keras 3, so it needs its own case (missing it would
      undercount MobileNetV2 by its depthwise share).
    - ``SeparableConv2D``: its depthwise part plus a 1x1 ``C_in * multiplier -> C_out`` conv.
    - ``Dense``: ``2 * C_in * C_out`` per position.

    Bias adds, BatchNorm and ReLU are one or a few operations per output element, under 1% of a
    3x3 conv with >= 16 input channels, and are left out (the profiler cross-check in
    :func:`profiler_flops` counts them).
    """
    out: dict[str, int] = {}
    for layer in _flat_layers(model):
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            h, w, c_out = _output_hwc(layer)
            kh, kw = layer.kernel_size
            groups = getattr(layer, "groups", 1)
            out[layer.name] = 2 * h * w * kh * kw * (int(layer.input.shape[-1]) // groups) * c_out
        elif isinstance(layer, keras.layers.DepthwiseConv2D | keras.layers.SeparableConv2D):
            h, w, c_out = _output_hwc(layer)
            kh, kw = layer.kernel_size
            depthwise_out = int(layer.input.shape[-1]) * int(layer.depth_multiplier)
            flops = 2 * h * w * kh * kw * depthwise_out
            if isinstance(layer, keras.layers.SeparableConv2D):
                flops += 2 * h * w * depthwise_out * c_out
            out[layer.name] = flops
        elif isinstance(layer, keras.layers.Dense):
            positions = int(np.prod([int(d) for d in layer.output.shape[1:-1]], dtype=np.int64))
            out[layer.name] = 2 * positions * int(layer.input.shape[-1]) * int(layer.units)
    return out


def _output_hwc(layer: keras.layers.Layer) -> tuple[int, int, int]:
    """``(H_out, W_out, C_out)`` of a 2-D conv layer of a model built with a fixed input size."""
    _, h, w, c = layer.output.shape
    return int(h), int(w), int(c)


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


def cpu_description() -> str:
    """The CPU model and its bf16 features (from ``/proc/cpuinfo`` on Linux)."""
    name, flags = cpu_info()
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(bf16) or 'no bf16 instructions'})"
