"""The SSD detector as a plain library: data, priors, boxes, matching, model, loss, train,
detect and evaluate. Imports TensorFlow and NumPy only, never the web layer."""

__version__ = "0.1.0"
