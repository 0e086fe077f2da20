"""ssdboard's benchmarks: each module runs one as ``python -m benchmarks.<name>`` (``make bench`` runs all).

- :mod:`benchmarks.train`: training speed of :mod:`ssd.train` against the notebook's naive Keras
  way (:mod:`benchmarks.naive`), FLOPs and the share of this machine's peak (:mod:`benchmarks.flops`);
- :mod:`benchmarks.sse`: live-stream latency with many Server-Sent Events clients;
- :mod:`benchmarks.load`: training speed with and without 200 clients following the job;
- :mod:`benchmarks.priors`: the prior explorer's endpoints, in-process;
- :mod:`benchmarks.detect`: detection and evaluation of a checkpoint.

:mod:`benchmarks.server` starts and stops ``ssdboard serve`` for them and for the tests.
Every benchmark writes its figures as JSON under ``.bench/``. The package is not part of the
wheel: it imports ``ssd`` and ``app``, and they never import it.
"""

import os

# Quiet TensorFlow's C++ logging before any benchmark imports it (as ``ssdboard`` does).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
