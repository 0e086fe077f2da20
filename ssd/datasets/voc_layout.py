"""Where a Pascal VOC dataset keeps its XML files and its images.

Tools lay VOC out in several ways (``ROOT`` is the folder given)::

    ROOT/Annotations/*.xml + ROOT/JPEGImages/        the VOC devkit, CVAT, Label Studio, ssdboard
    ROOT/VOC2007/Annotations/ + VOC2007/JPEGImages/  a VOCdevkit folder (each year its own layout)
    ROOT/annotations/*.xml + ROOT/images/            Kaggle's small sets (any case)
    ROOT/annots/*.xml + ROOT/images/
    ROOT/annotations/train/*.xml + ROOT/images/train/   split folders, mirrored
    ROOT/*.xml beside ROOT/*.jpg                      labelImg's default
    ROOT/{train,valid,test}/*.xml beside the images   Roboflow's Pascal VOC export

**Annotation folders.** The root and its folders down to ``MAX_DEPTH`` levels are searched
(hidden folders and ``__MACOSX`` skipped). A folder holds VOC annotations when it holds ``.xml``
files and either is named ``Annotations`` (the devkit's name: every XML there is read, and one
that is not an ``<annotation>`` fails the import naming it) or one of its first ``PEEK_FILES``
XML files, by name, has ``<annotation>`` as its root element, judged on its first
``PEEK_BYTES`` bytes. So CVAT's ``annotations.xml`` (root ``<annotations>``) and other tools'
XML do not make a COCO or YOLO folder look like VOC.

**The layout an annotation folder belongs to.** The last component of the folder's path (below
the root) named like an annotation folder (``ANNOTATION_FOLDERS``, any case) splits it into a
*base* and a *tail*: ``VOC2007/Annotations`` has base ``VOC2007/``; ``annotations/train`` has base
``ROOT`` and tail ``train``. A folder of XML without such a name (labelImg, Roboflow) is its own
base. ``ImageSets/Main/`` and the image folders belong to the base.

**Images.** An XML's image is looked up by name, in order: its ``<filename>`` (a relative path
with subfolders, or its last component when it is absolute or climbs with ``..``), that
name's last component, the last component of ``<path>`` (labelImg writes the absolute path on
the annotator's machine), then the XML's stem and ``<filename>``'s stem with ``.jpg``,
``.jpeg``, ``.png`` or ``.bmp``. Each name is tried in these folders, in order: the base's image
folders (``IMAGE_FOLDERS``, any case, in that order) with the tail and without it, the XML's own
folder, the base, the root and the root's image folders; names match exactly, else ignoring case
(``IMG_1.JPG`` for ``img_1.jpg``). Folders are listed once each
(:class:`~ssd.datasets.paths.FolderIndex`) and every path stays inside the root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ssd.datasets.paths import FolderIndex, head, relative, safe_relative, walk

MAX_DEPTH = 3
PEEK_FILES = 3
PEEK_BYTES = 4096
ANNOTATION_FOLDERS = frozenset({"annotations", "annotation", "annots", "annot", "xml", "xmls", "labels"})
IMAGE_FOLDERS = ("jpegimages", "images", "imgs", "img", "image")
STEM_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LOOKED_FOR = (
    f"folders of .xml files with an <annotation> root element (Annotations/, annotations/, annots/, or beside"
    f" the images as labelImg saves them), in the folder and its subfolders down to {MAX_DEPTH} levels"
)

_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_FIRST_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)")


@dataclass(frozen=True, eq=False)  # hashed by identity: files may be thousands of names
class XmlFolder:
    """A folder of VOC XML files (``files``: their names, sorted), the ``base`` folder its layout
    hangs from, and the ``tail`` of folders between the annotation folder and it."""

    folder: Path
    base: Path
    tail: tuple[str, ...]
    files: tuple[str, ...]


def is_annotation_xml(path: Path) -> bool:
    """Whether an XML file's first element, within its first ``PEEK_BYTES`` bytes (comments,
    the declaration and a DOCTYPE skipped), is ``<annotation>``."""
    first = _FIRST_ELEMENT.search(_COMMENT.sub(b"", head(path, PEEK_BYTES)))
    return first is not None and first.group(1) == b"annotation"


def find_xml_folders(root: Path) -> list[XmlFolder]:
    """The folders of VOC annotations under ``root`` (see the module's rule), breadth first."""
    found = []
    for folder, names in walk(root, MAX_DEPTH):
        xmls = tuple(n for n in names if n.lower().endswith(".xml"))
        if xmls and (folder.name == "Annotations" or any(is_annotation_xml(folder / n) for n in xmls[:PEEK_FILES])):
            parts = folder.relative_to(root).parts
            marks = [i for i, part in enumerate(parts) if part.lower() in ANNOTATION_FOLDERS]
            if marks:
                found.append(XmlFolder(folder, root.joinpath(*parts[: marks[-1]]), parts[marks[-1] + 1 :], xmls))
            else:
                found.append(XmlFolder(folder, folder, (), xmls))
    return found


class ImageFinder:
    """Resolves the images VOC annotations name, inside ``root`` (see the module's look-up)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = FolderIndex()
        self._dirs: dict[XmlFolder, list[Path]] = {}
        self._prefixes: dict[Path, str] = {}

    def _image_folders(self, base: Path, tail: tuple[str, ...]) -> list[Path]:
        """The existing ``IMAGE_FOLDERS`` of ``base`` (any case, in that order), each with the
        ``tail`` below it first (``images/train`` before ``images``)."""
        dirs: list[Path] = []
        for name in IMAGE_FOLDERS:
            folder = self.index.folder(base, name)
            deeper = folder
            for part in tail:
                deeper = self.index.folder(deeper, part) if deeper is not None else None
            dirs += [d for d in (deeper, folder) if d is not None]
        return list(dict.fromkeys(dirs))

    def search_dirs(self, where: XmlFolder) -> list[Path]:
        """Every folder an annotation's image is looked up in, in order (see the module)."""
        if where not in self._dirs:
            dirs = [*self._image_folders(where.base, where.tail), where.folder, where.base, self.root]
            self._dirs[where] = list(dict.fromkeys([*dirs, *self._image_folders(self.root, ())]))
        return self._dirs[where]

    def prefix(self, folder: Path) -> str:
        """``folder``'s path relative to the root with a trailing ``/`` (``""`` for the root)."""
        if folder not in self._prefixes:
            rel = relative(folder, self.root)
            self._prefixes[folder] = "" if rel == "." else f"{rel}/"
        return self._prefixes[folder]

    def find(self, where: XmlFolder, stem: str, filename: str | None, path: str | None) -> str | None:
        """The image's path relative to the root, or None when no candidate name matches a file."""
        names: list[str] = []
        stems = [stem]
        if filename is not None:
            written = safe_relative(filename).as_posix()
            names += [written, written.rpartition("/")[2]]
            stems.append(os.path.splitext(names[-1])[0])
        if path is not None:
            names.append(safe_relative(path).name)
        dirs = self.search_dirs(where)
        for name in dict.fromkeys(n for n in names if n not in ("", ".")):
            for folder in dirs:
                if (hit := self.index.file(folder, name)) is not None:
                    return self.prefix(hit[0]) + hit[1]
        candidates = list(dict.fromkeys(s + suffix for s in stems if s for suffix in STEM_SUFFIXES))
        for folder in dirs:
            for candidate in candidates:
                if (hit := self.index.file(folder, candidate)) is not None:
                    return self.prefix(hit[0]) + hit[1]
        return None

    def expected(self, where: XmlFolder, name: str) -> str:
        """Where an image named ``name`` that exists nowhere is reported missing: in the first
        image folder, else beside the XML (labelImg), else in the base's ``JPEGImages/``."""
        dirs = self._image_folders(where.base, where.tail)
        folder = dirs[0] if dirs else where.folder if where.base == where.folder else where.base / "JPEGImages"
        return relative(folder / safe_relative(name).as_posix(), self.root)

    def searched(self, where: XmlFolder) -> str:
        """The folders :meth:`find` searches, for a message (``.`` is the root)."""
        return ", ".join(f"{relative(d, self.root)}/" for d in self.search_dirs(where))
