"""Users' own detection datasets: COCO, Pascal VOC and YOLO readers, validation, a registry.

TensorFlow-free (the server imports it). :mod:`ssd.datasets.records` holds the data model,
:mod:`ssd.datasets.report` the validation report, :mod:`ssd.datasets.validate` the rules.
"""
