"""One problem of an import's validation report over its image, at the image's own size.

The report keeps a box as the annotation wrote it (COCO ``[x, y, w, h]``, VOC corners already
moved to pixel ``xyxy``, YOLO centre and size as fractions); :func:`problem_view` turns it into
pixel ``xyxy`` with the validator's own :func:`ssd.datasets.validate.to_xyxy` and draws it over
the image with the boxes that were kept. An image that was dropped has nothing to draw.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.figures.dataset import problem_figure
from app.services.dataset_browser import source_path
from ssd.datasets.records import ImageRecord
from ssd.datasets.report import DESCRIPTIONS, NOTES, Reason
from ssd.datasets.validate import to_xyxy

MAX_SHOWN = 1280  # longest side of the image sent to the page (the figure's axes stay in file pixels)


def jpeg_data_url(image: Image.Image, *, max_side: int = MAX_SHOWN) -> tuple[str, int]:
    """A ``data:image/jpeg`` URL of ``image`` shrunk to at most ``max_side`` px, and its width."""
    image = image.convert("RGB")
    if max(image.size) > max_side:
        factor = max_side / max(image.size)
        image = image.resize(
            (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.Resampling.BILINEAR
        )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), image.width


def _boxes(boxes: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"box": [round(v, 2) for v in box], "label": label, "name": classes[label]}
        for box, label in zip(boxes.tolist(), labels.tolist(), strict=True)
    ]


def problem_view(
    root: Path,
    record: ImageRecord | None,
    classes: Sequence[str],
    *,
    reason: Reason,
    box: list[float] | None,
    box_format: str,
) -> dict[str, Any]:
    """``image`` (file, width, height, kept boxes, ignore regions), ``box_xyxy`` (the problem's box
    in pixel ``xyxy``, or None), ``description`` and ``figure`` (None when the image was dropped)."""
    description = DESCRIPTIONS[reason]
    if record is None:
        return {"description": description, "image": None, "box_xyxy": None, "figure": None}
    xyxy = None
    if box is not None:
        xyxy = [round(float(v), 2) for v in to_xyxy(box, box_format, record.width, record.height)]
    with Image.open(root / record.file) as file:
        source, shown_width = jpeg_data_url(file)
    figure = problem_figure(
        source,
        width=record.width,
        height=record.height,
        shown_width=shown_width,
        boxes=record.boxes,
        labels=record.labels,
        class_names=classes,
        ignore=(record.ignore, record.ignore_labels),
        problem_box=xyxy,
        title=reason.value.replace("_", " "),
        kept=reason in NOTES,
    )
    image = {
        "file": source_path(record.file),
        "split": record.split,
        "width": record.width,
        "height": record.height,
        "boxes": _boxes(record.boxes, record.labels, classes),
        "ignore": _boxes(record.ignore, record.ignore_labels, classes),
    }
    return {"description": description, "image": image, "box_xyxy": xyxy, "figure": figure.to_plotly_json()}
