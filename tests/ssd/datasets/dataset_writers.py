"""Tiny on-disk datasets for the reader tests: images (Pillow), COCO JSON, VOC XML, YOLO files.

Everything is written by hand here (not by ``ssd.datasets.export``) so that the readers are
checked against files in the shapes other tools write, including their quirks.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image


def image(path: Path, size: tuple[int, int] = (40, 30), kind: str | None = None) -> Path:
    """A ``size`` (width, height) RGB image at ``path``, its type from the suffix unless ``kind``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 140, 200)).save(path, format=kind)
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def coco(
    images: list[tuple[int, str, int, int]],
    annotations: list[dict[str, Any]],
    categories: list[tuple[int, str]],
) -> dict[str, Any]:
    """A COCO instances document: images as ``(id, file_name, width, height)``, annotations as
    given (``id`` filled in), categories as ``(id, name)``."""
    return {
        "info": {"description": "test"},
        "licenses": [],
        "images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
        "annotations": [{"id": k + 1, "iscrowd": 0, **a} for k, a in enumerate(annotations)],
        "categories": [{"id": i, "name": n, "supercategory": "thing"} for i, n in categories],
    }


def voc_xml(
    filename: str | None,
    objects: list[tuple[str, tuple[Any, ...], int]],
    size: tuple[int, int] | None = (40, 30),
    path: str | None = None,
) -> str:
    """A VOC annotation: objects as ``(name, (xmin, ymin, xmax, ymax), difficult)``; ``path`` as
    labelImg writes it (the image's absolute path on the annotator's machine)."""
    parts = ["<annotation>", "<folder>VOC2007</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if path is not None:
        parts.append(f"<path>{path}</path>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, corners, difficult in objects:
        box = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=False))
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox>{box}</bndbox></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def zip_folder(folder: Path, out: Path, arcroot: str = "") -> Path:
    """``out``: every file under ``folder``, stored under ``arcroot/`` (or at the top)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                archive.write(path, f"{arcroot}/{name}" if arcroot else name)
    return out
