"""Why a detector misses: error analysis of its detections on a split (issue 23).

TensorFlow-free, NumPy (and pycocotools for AP by size) only. :mod:`ssd.analysis.tide` holds
TIDE's error breakdown, :mod:`ssd.analysis.sizes` COCO's AP by object size and by the coverage
report's size buckets, :mod:`ssd.analysis.story` every ground truth's outcome joined with its
prior matching (misses no prior can match apart), :mod:`ssd.analysis.report` the whole document
that ``ssdboard analyze`` prints and writes.
"""
