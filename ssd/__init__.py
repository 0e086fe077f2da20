"""The SSD detector as a plain library: data, priors, boxes, matching, model, loss, train,
detect and evaluate. Imports TensorFlow and NumPy only, never the web layer.

A TensorFlow-free core, which the web server imports without loading TensorFlow or Keras
(``tests/ssd/test_core_imports.py`` checks it): :mod:`ssd.config`, :mod:`ssd.checkpoint` (the
run directory's file names), :mod:`ssd.geometry` (NumPy box geometry), :mod:`ssd.priors`,
:mod:`ssd.data`, :mod:`ssd.coverage`, :mod:`ssd.evaluate` and :mod:`ssd.analysis` (error
analysis). The modules that build or run a model (boxes, matching, model, loss, train, detect)
import TensorFlow.
"""

__version__ = "0.1.0"
