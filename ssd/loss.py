"""The notebook's SSD loss, returned as named parts (the dashboard streams them).

Contract (DESIGN.md): ``loss_components(y_true, y_pred, *, alpha=1.0, pos_neg_ratio=3.0,
from_logits=False)`` -> ``{"pos_clf", "neg_clf", "loc", "total"}`` scalar tensors.

Layout of both ``y_true`` and ``y_pred``: [B, P, num_classes + 1 + 4]; class scores (one-hot in
``y_true``; probabilities, or logits with ``from_logits``) with background **last**, then 4
offsets. By default the notebook's exact formula (seed/NOTES.md):

- ``pos_clf = sum(CE * pos) / (num_pos + eps)``, CE on probabilities clipped to [eps, 1 - eps]
- ``neg_clf = sum(top_k(CE * neg, num_neg)) / (num_neg + eps)``, ``num_neg = min(ratio *
  num_pos, #background)``, mined across the whole flattened batch (SSD paper, sec. 2.2: hard
  negative mining)
- ``loc = sum(smoothL1 * pos) / (num_pos + eps)``; ``total = pos_clf + neg_clf + alpha * loc``

The top-k is ``tf.math.top_k`` with a tensor ``k``; under XLA (``jit_compile=True``), which rejects
dynamic shapes, a sort and a rank mask instead, so the loss compiles there too.
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf

EPSILON = 1e-7  # keras.backend.epsilon(), the notebook's eps


def smooth_l1(diff: tf.Tensor) -> tf.Tensor:
    """Elementwise ``0.5 x^2`` if ``|x| < 1`` else ``|x| - 0.5``."""
    a = tf.abs(diff)
    return tf.where(a < 1.0, 0.5 * tf.square(diff), a - 0.5)


def _in_xla() -> bool:
    """Whether the function being traced is compiled by XLA (``jit_compile=True``), which rejects
    ``top_k`` with a tensor ``k``. TensorFlow says so only through a private module; where that
    is gone, the answer is yes, and the sort below (which works everywhere) is used."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - depends on the TensorFlow version
        return True
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def _top_k_sum(values: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Sum of the ``k`` largest entries along the last axis; ``k`` int32 [...] may be a tensor.

    Outside XLA, ``top_k`` of the largest ``k`` (a partial selection): on the default config's
    258,048 mined values, forward and backward took 4.2 ms against 35.8 ms for a full sort (AMD
    EPYC, 2 cores). Under XLA, a descending sort and a rank mask, whose shapes are static.
    """
    if _in_xla():
        ordered = tf.sort(values, axis=-1, direction="DESCENDING")
        rank = tf.range(tf.shape(values)[-1])
    else:
        most = tf.reduce_max(k)  # one selection for every row; each row keeps its own k below
        ordered, _ = tf.math.top_k(values, k=most)
        rank = tf.range(most)
    keep = tf.cast(rank < k[..., None], values.dtype)
    return tf.reduce_sum(ordered * keep, axis=-1)


def loss_components(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    alpha: float = 1.0,
    pos_neg_ratio: float = 3.0,
    from_logits: bool = False,
    normalization: Literal["notebook", "paper"] = "notebook",
    mining: Literal["batch", "image"] = "batch",
) -> dict[str, tf.Tensor]:
    """SSD loss parts as scalar float32 tensors: ``pos_clf``, ``neg_clf``, ``loc``, ``total``.

    Also returns ``num_pos`` and ``num_neg`` (float32 counts of positives and mined negatives).

    Args:
        y_true: float32 [B, P, C + 4], C = num_classes + 1, background last.
        y_pred: float32 [B, P, C + 4]; probabilities, or logits if ``from_logits``.
        normalization: ``"notebook"`` divides each classification part by its own count;
            ``"paper"`` divides all three parts by the number of positives N (SSD eq. 1).
        mining: ``"batch"`` mines negatives across the flattened batch (notebook);
            ``"image"`` keeps ``ratio * num_pos`` negatives per image (SSD paper).
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    num_channels = tf.shape(y_true)[-1]
    if mining == "batch":  # the notebook flattens batch and priors into one axis
        y_true = tf.reshape(y_true, [1, -1, num_channels])
        y_pred = tf.reshape(y_pred, [1, -1, num_channels])
    # tf.split, not two slices: its gradient is one concat, where each slice's gradient pads a
    # zero tensor of the whole [I, P, C + 4] (StridedSliceGrad was ~3% of a training step).
    true_clf, true_loc = tf.split(y_true, [num_channels - 4, 4], axis=-1)
    pred_clf, pred_loc = tf.split(y_pred, [num_channels - 4, 4], axis=-1)

    neg_mask = true_clf[..., -1]  # [I, P]
    # The one-hot object scores; 1 - neg_mask for one-hot y_true (the notebook's), 0 for a prior
    # an ignore region claims (all-zero scores: neither positive nor negative).
    pos_mask = tf.reduce_sum(true_clf[..., :-1], axis=-1)
    pos_per = tf.reduce_sum(pos_mask, axis=-1)  # [I]
    neg_per = tf.minimum(pos_neg_ratio * pos_per, tf.reduce_sum(neg_mask, axis=-1))
    num_pos = tf.reduce_sum(pos_per)
    num_neg = tf.reduce_sum(neg_per)

    if from_logits:
        log_p = tf.nn.log_softmax(pred_clf, axis=-1)
    else:
        log_p = tf.math.log(tf.clip_by_value(pred_clf, EPSILON, 1.0 - EPSILON))
    ce = -tf.reduce_sum(true_clf * log_p, axis=-1)  # [I, P]

    pos_sum = tf.reduce_sum(ce * pos_mask)
    # tf.cast truncates, as the notebook's top_k(k=tf.cast(num_neg, tf.int32)).
    neg_sum = tf.reduce_sum(_top_k_sum(ce * neg_mask, tf.cast(neg_per, tf.int32)))
    loc_sum = tf.reduce_sum(tf.reduce_sum(smooth_l1(true_loc - pred_loc), axis=-1) * pos_mask)

    if normalization == "paper":
        pos_clf = pos_sum / (num_pos + EPSILON)
        neg_clf = neg_sum / (num_pos + EPSILON)
    else:
        pos_clf = pos_sum / (num_pos + EPSILON)
        neg_clf = neg_sum / (num_neg + EPSILON)
    loc = loc_sum / (num_pos + EPSILON)
    return {
        "pos_clf": pos_clf,
        "neg_clf": neg_clf,
        "loc": loc,
        "total": pos_clf + neg_clf + alpha * loc,
        "num_pos": num_pos,
        "num_neg": num_neg,
    }
