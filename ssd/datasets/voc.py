"""Read a Pascal VOC folder: one XML file an image, boxes as 1-based pixel corners.

Layout (``ROOT`` is the folder given; the VOC download's ``VOCdevkit/VOC2007/`` is one)::

    ROOT/Annotations/NAME.xml           required: one <annotation> an image
    ROOT/JPEGImages/<filename>          the images (else ROOT/images/<filename>; else, by the
                                        XML's stem, NAME.jpg/.jpeg/.png/.bmp in either folder)
    ROOT/ImageSets/Main/train.txt ...   optional splits: one image name (XML stem) a line
    ROOT/ImageSets/Main/CLASS_trainval.txt   optional: the class list (the VOC download's)
    ROOT/labels.txt                     optional: the class names in class order, one a line
                                        (ssdboard's export; takes precedence)

Each XML::

    <annotation>
      <filename>000001.jpg</filename>
      <size><width>353</width><height>500</height><depth>3</depth></size>
      <object>
        <name>dog</name> <difficult>0</difficult>
        <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox>
      </object> ...
    </annotation>

Coordinates follow VOC's 1-based pixel convention: ``xmin = 1`` is the first pixel column and
``xmax = W`` the last, inclusive. Like detectron2's ``load_voc_instances`` (and the 1-based rule
of the VOC devkit), a box becomes pixel ``xyxy`` as ``(xmin - 1, ymin - 1, xmax, ymax)``
(``box_format="xyxy"``), so ``1..W`` covers ``[0, W]``; ssd.pytorch subtracts 1 from all four,
which shrinks every box by a pixel. Non-numeric coordinates pass as written (validation counts
them); an object without ``<bndbox>`` or with missing corners passes fewer than four values.
``<difficult>1</difficult>`` marks a difficult object (an ignore region); an empty
``<difficult/>`` (labelme) means 0. Classes: ``labels.txt``, else the ``CLASS_trainval.txt``
(or ``CLASS_train.txt`` ...) names of ``ImageSets/Main`` sorted, else the sorted set of object
names; a box's label is its class name. Splits: ``train.txt`` → train, ``val.txt`` → val, then
images only in ``trainval.txt`` → train and only in ``test.txt`` → val; unlisted images get none.
Images come in the order of those lists, then the unlisted ones by name.

XML is parsed with defusedxml: a document declaring entities (a billion-laughs bomb, an external
entity) or badly formed raises DatasetError naming the file; so does a root element other than
``<annotation>``. An XML whose image cannot be found and that names no ``<filename>`` is reported
here (``missing_image`` on the XML); a named file that is missing is left to validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ssd.datasets.paths import number_or_text, read_text, safe_relative
from ssd.datasets.records import DatasetError, RawBox, RawDataset, RawImage, Split
from ssd.datasets.report import Reason, Report

IMAGE_FOLDERS = ("JPEGImages", "images")
STEM_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG", ".BMP")
CORNERS = ("xmin", "ymin", "xmax", "ymax")
# Split files in the order they decide: an image listed earlier keeps that split.
SPLIT_FILES: tuple[tuple[str, Split], ...] = (
    ("train", "train"),
    ("val", "val"),
    ("trainval", "train"),
    ("test", "val"),
)


def is_voc(folder: Path) -> bool:
    """Whether ``folder`` has an ``Annotations/`` folder with ``.xml`` files."""
    annotations = folder / "Annotations"
    return annotations.is_dir() and any(p.suffix.lower() == ".xml" for p in annotations.iterdir())


def read_voc(root: Path) -> RawDataset:
    """Read the VOC folder ``root`` (see the module's layout)."""
    root = Path(root)
    if not (root / "Annotations").is_dir():
        raise DatasetError(root.name, "no Annotations/ folder: a Pascal VOC dataset has Annotations/*.xml")
    splits = _splits(root)
    by_stem = {
        p.stem: p for p in sorted((root / "Annotations").iterdir()) if p.suffix.lower() == ".xml" and p.is_file()
    }
    # The order of the split lists (as the VOC devkit iterates them), then the unlisted images.
    order = [stem for stem in splits if stem in by_stem] + [stem for stem in by_stem if stem not in splits]
    xmls = [by_stem[stem] for stem in order]
    report = Report()
    images: list[RawImage] = []
    names: set[str] = set()
    for xml in xmls:
        image = _read_xml(root, xml, splits.get(xml.stem), report)
        if image is not None:
            images.append(image)
            names.update(b.label for b in image.boxes if isinstance(b.label, str))
    return RawDataset("voc", root, _classes(root) or sorted(names), images, report)


def parse_xml(path: Path, name: str) -> Element:
    """The root element of an XML file, parsed safely; DatasetError for bombs and bad XML."""
    try:
        return SafeET.parse(path).getroot()
    except DefusedXmlException as error:
        raise DatasetError(
            name,
            f"refused: the XML declares entities or external references ({type(error).__name__}),"
            " as an entity-expansion bomb or an external-entity attack does",
        ) from None
    except ParseError as error:
        raise DatasetError(name, f"not well-formed XML: {error}") from None
    except OSError as error:
        raise DatasetError(name, f"cannot be read: {error.strerror or error}") from None


def _text(element: Element | None) -> str | None:
    """The stripped text of an element; None when the element is absent or empty."""
    if element is None or element.text is None or not element.text.strip():
        return None
    return element.text.strip()


def _read_xml(root: Path, xml: Path, split: Split | None, report: Report) -> RawImage | None:
    name = f"Annotations/{xml.name}"
    tree = parse_xml(xml, name)
    if tree.tag != "annotation":
        raise DatasetError(name, f"the root element is <{tree.tag}>, not <annotation>")
    boxes = [_box(obj, name) for obj in tree.findall("object")]
    filename = _text(tree.find("filename"))
    file = _find_image(root, filename, xml.stem)
    if file is None and filename is None:
        detail = f"no <filename>, and no {xml.stem}.jpg/.jpeg/.png/.bmp in JPEGImages/ or images/"
        report.add(Reason.missing_image, name, detail=f"{detail}: {len(boxes)} boxes dropped with it")
        return None
    size = tree.find("size")
    width = _text(size.find("width")) if size is not None else None
    height = _text(size.find("height")) if size is not None else None
    return RawImage(
        file=file or f"{IMAGE_FOLDERS[0]}/{safe_relative(filename or '').as_posix()}",
        source=name,
        box_format="xyxy",
        boxes=boxes,
        width=width,
        height=height,
        split=split,
    )


def _find_image(root: Path, filename: str | None, stem: str) -> str | None:
    """The image's path relative to ``root``: ``<filename>`` in an image folder, else by stem."""
    if filename is not None:
        rel = safe_relative(filename).as_posix()
        for folder in IMAGE_FOLDERS:
            if rel != "." and (root / folder / rel).is_file():
                return f"{folder}/{rel}"
    for folder in IMAGE_FOLDERS:
        for suffix in STEM_SUFFIXES:
            if (root / folder / (stem + suffix)).is_file():
                return f"{folder}/{stem}{suffix}"
    return None


def _box(obj: Element, name: str) -> RawBox:
    label = _text(obj.find("name"))
    difficult = number_or_text(_text(obj.find("difficult")) or "0") == 1.0
    bndbox = obj.find("bndbox")
    values: tuple[Any, ...] = ()
    if bndbox is not None:
        written = [_text(bndbox.find(corner)) for corner in CORNERS]
        present = tuple(v for v in written if v is not None)
        values = present if len(present) < 4 else one_based_to_pixels(present)
    return RawBox(values, label, name, difficult=difficult, label_text="" if label else "an <object> without <name>")


def one_based_to_pixels(corners: tuple[str, ...]) -> tuple[Any, ...]:
    """``(xmin - 1, ymin - 1, xmax, ymax)`` of four corners as written; corners that are not all
    numbers stay as written, for validation to report."""
    numbers = [number_or_text(c) for c in corners]
    if any(isinstance(n, str) for n in numbers):
        return tuple(corners)
    xmin, ymin, xmax, ymax = (float(n) for n in numbers)
    return (xmin - 1.0, ymin - 1.0, xmax, ymax)


def _classes(root: Path) -> list[str]:
    """``labels.txt`` (in order) or the ``ImageSets/Main/CLASS_*.txt`` names (sorted), or []."""
    labels = root / "labels.txt"
    if labels.is_file():
        names = [line.strip() for line in read_text(labels, "labels.txt").splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DatasetError("labels.txt", f"names a class more than once: {', '.join(duplicates)}")
        return names
    main = root / "ImageSets" / "Main"
    if not main.is_dir():
        return []
    found = set()
    for path in main.glob("*_*.txt"):
        cls, _, kind = path.stem.rpartition("_")
        if cls and kind in ("trainval", "train", "val", "test"):
            found.add(cls)
    return sorted(found)


def _splits(root: Path) -> dict[str, Split]:
    """Image name (XML stem) → split, from ``ImageSets/Main/{train,val,trainval,test}.txt``."""
    main = root / "ImageSets" / "Main"
    splits: dict[str, Split] = {}
    for stem, split in SPLIT_FILES:
        path = main / f"{stem}.txt"
        if path.is_file():
            for line in read_text(path, f"ImageSets/Main/{stem}.txt").splitlines():
                if line.split():
                    splits.setdefault(line.split()[0], split)
    return splits
