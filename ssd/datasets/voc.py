"""Read a Pascal VOC dataset: one XML file an image, boxes as 1-based pixel corners.

The devkit's layout (``ROOT`` is the folder given; the VOC download's ``VOCdevkit/VOC2007/`` is
one), and what is optional around it::

    ROOT/Annotations/NAME.xml           one <annotation> an image
    ROOT/JPEGImages/<filename>          the images
    ROOT/ImageSets/Main/train.txt ...   optional splits: one image name (XML stem) a line
    ROOT/ImageSets/Main/CLASS_trainval.txt   optional: the class list (the VOC download's)
    ROOT/labels.txt                     optional: the class names in class order, one a line
                                        (ssdboard's export; takes precedence)

Other tools' layouts are found too: ``annotations/`` or ``annots/`` + ``images/`` (any case),
split folders (``annotations/train/`` + ``images/train/``), XML beside its image (labelImg,
Roboflow's ``train/``, ``valid/``, ``test/``), several VOC years side by side;
:mod:`ssd.datasets.voc_layout` says how folders are found and images resolved.

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
names; a box's label is its class name. ``labels.txt`` is read in the root, else in a layout's
base folder; ``ImageSets/Main`` in each base. Splits: ``train.txt`` → train, ``val.txt`` → val,
then images only in ``trainval.txt`` → train and only in ``test.txt`` → val; an unlisted image
takes the split its folders name below the root (``train/``, ``annotations/valid/``: see
:func:`ssd.datasets.paths.split_of`; test counts as validation), else none (split at import).
Per annotation folder, images come in the order of those lists, then the unlisted ones by name.

XML is parsed with defusedxml: a document declaring entities (a billion-laughs bomb, an external
entity) or badly formed raises DatasetError naming the file; so does a root element other than
``<annotation>``. An XML whose image cannot be found and that names no ``<filename>`` (nor
``<path>``) is reported here (``missing_image`` on the XML); a named file that is missing keeps
the path :meth:`~ssd.datasets.voc_layout.ImageFinder.expected` gives, and validation reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ssd.datasets.paths import folder_split, nothing_found, number_or_text, read_text, relative, safe_relative
from ssd.datasets.records import DatasetError, RawBox, RawDataset, RawImage, Split
from ssd.datasets.report import Reason, Report
from ssd.datasets.text import listed, repeated
from ssd.datasets.voc_layout import LOOKED_FOR, ImageFinder, XmlFolder, find_xml_folders

CORNERS = ("xmin", "ymin", "xmax", "ymax")
# Split files in the order they decide: an image listed earlier keeps that split.
SPLIT_FILES: tuple[tuple[str, Split], ...] = (
    ("train", "train"),
    ("val", "val"),
    ("trainval", "train"),
    ("test", "val"),
)


def read_voc(root: Path) -> RawDataset:
    """Read the VOC dataset at ``root`` (see the module's layouts)."""
    root = Path(root)
    folders = find_xml_folders(root)
    if not folders:
        raise nothing_found(root, f"no Pascal VOC annotations: looked for {LOOKED_FOR}")
    bases = list(dict.fromkeys(f.base for f in folders))
    split_lists = {base: _splits(base, root) for base in bases}
    finder = ImageFinder(root)
    report = Report()
    images: list[RawImage] = []
    names: set[str] = set()
    for where in folders:
        splits = split_lists[where.base]
        by_stem = {Path(name).stem: where.folder / name for name in where.files}
        # The order of the split lists (as the VOC devkit iterates them), then the unlisted images.
        order = [stem for stem in splits if stem in by_stem] + [stem for stem in by_stem if stem not in splits]
        named_split = folder_split(where.folder.relative_to(root).parts)
        prefix = finder.prefix(where.folder)
        for stem in order:
            xml = by_stem[stem]
            image = _read_xml(xml, prefix + xml.name, where, finder, splits.get(stem, named_split), report)
            if image is not None:
                images.append(image)
                names.update(b.label for b in image.boxes if isinstance(b.label, str))
    classes, classes_from = _classes(root, bases)
    return RawDataset("voc", root, classes or sorted(names), images, report, classes_from=classes_from)


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


def _read_xml(
    xml: Path, name: str, where: XmlFolder, finder: ImageFinder, split: Split | None, report: Report
) -> RawImage | None:
    tree = parse_xml(xml, name)
    if tree.tag != "annotation":
        raise DatasetError(name, f"the root element is <{tree.tag}>, not <annotation>")
    boxes = [_box(obj, name) for obj in tree.findall("object")]
    filename, path = _text(tree.find("filename")), _text(tree.find("path"))
    file = finder.find(where, xml.stem, filename, path)
    if file is None and filename is None and path is None:
        detail = f"no <filename> nor <path>, and no {xml.stem}.jpg/.jpeg/.png/.bmp in {finder.searched(where)}"
        report.add(Reason.missing_image, name, detail=f"{detail}: {len(boxes)} boxes dropped with it")
        return None
    size = tree.find("size")
    width = _text(size.find("width")) if size is not None else None
    height = _text(size.find("height")) if size is not None else None
    return RawImage(
        file=file or finder.expected(where, filename or safe_relative(path or "").name),
        source=name,
        box_format="xyxy",
        boxes=boxes,
        width=width,
        height=height,
        split=split,
    )


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


def _classes(root: Path, bases: list[Path]) -> tuple[list[str], str]:
    """``labels.txt`` (in order; the root's, else a base's) or the ``ImageSets/Main/CLASS_*.txt``
    names of every base (sorted), or []; and the file (or folder) they come from, or ""."""
    for folder in dict.fromkeys([root, *bases]):
        labels = folder / "labels.txt"
        if labels.is_file():
            where = relative(labels, root)
            names = [line.strip() for line in read_text(labels, where).splitlines()]
            names = [n for n in names if n and not n.startswith("#")]
            duplicates = repeated(names)
            if duplicates:
                raise DatasetError(where, f"names a class more than once: {listed(duplicates)}")
            return names, where
    found: dict[str, str] = {}
    for base in bases:
        for path in (base / "ImageSets" / "Main").glob("*_*.txt"):
            cls, _, kind = path.stem.rpartition("_")
            if cls and kind in ("trainval", "train", "val", "test"):
                found.setdefault(cls, relative(path.parent, root))
    return sorted(found), next(iter(found.values()), "")


def _splits(base: Path, root: Path) -> dict[str, Split]:
    """Image name (XML stem) → split, from ``ImageSets/Main/{train,val,trainval,test}.txt``."""
    main = base / "ImageSets" / "Main"
    splits: dict[str, Split] = {}
    for stem, split in SPLIT_FILES:
        path = main / f"{stem}.txt"
        if path.is_file():
            for line in read_text(path, relative(path, root)).splitlines():
                if line.split():
                    splits.setdefault(line.split()[0], split)
    return splits
