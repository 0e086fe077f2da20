"""ssd.datasets.voc: VOC folders, the 1-based pixel convention, class lists and splits, XML that
must be refused, and a cross-check against globox reading the same files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dataset_writers import image, voc_xml, write

from ssd.datasets.records import DatasetError
from ssd.datasets.report import Reason
from ssd.datasets.sources import read
from ssd.datasets.validate import validate
from ssd.datasets.voc import read_voc


def annotation(root: Path, stem: str, objects: Sequence[tuple[str, tuple[Any, ...], int]], **kw: Any) -> Path:
    return write(root / "Annotations" / f"{stem}.xml", voc_xml(kw.pop("filename", f"{stem}.jpg"), list(objects), **kw))


def test_the_voc_layout_and_the_one_based_convention(tmp_path: Path) -> None:
    """xmin=1..xmax=W covers the whole image: pixel xyxy (xmin - 1, ymin - 1, xmax, ymax)."""
    image(tmp_path / "JPEGImages" / "000001.jpg", (40, 30))
    annotation(tmp_path, "000001", [("dog", (1, 1, 40, 30), 0), ("cat", ("2.5", 3, 20, 25), 1)])
    raw = read(tmp_path)
    assert raw.format == "voc" and raw.classes == ["cat", "dog"]
    (img,) = raw.images
    assert (img.file, img.source, img.box_format, img.width, img.height) == (
        "JPEGImages/000001.jpg",
        "Annotations/000001.xml",
        "xyxy",
        "40",
        "30",
    )
    assert [(b.values, b.label, b.difficult) for b in img.boxes] == [
        ((0.0, 0.0, 40.0, 30.0), "dog", False),
        ((1.5, 2.0, 20.0, 25.0), "cat", True),
    ]
    index, report = validate(raw)
    np.testing.assert_array_equal(index.images[0].boxes, [[0, 0, 40, 30]])  # the whole image, not clipped
    assert report.counts[Reason.clipped] == 0 and report.counts[Reason.difficult] == 1


def test_values_pass_as_written(tmp_path: Path) -> None:
    image(tmp_path / "JPEGImages" / "a.jpg")
    annotation(
        tmp_path,
        "a",
        [
            ("cat", ("ten", 3, 20, 25), 0),
            ("cat", (2, 3, 20), 0),
            ("cat", ("nan", 3, 20, 25), 0),
            ("", (2, 3, 20, 25), 0),
        ],
    )
    write(
        tmp_path / "Annotations" / "b.xml",
        "<annotation><filename>a.jpg</filename><object><name>x</name></object></annotation>",
    )
    a, b = read(tmp_path).images
    assert [b.values for b in a.boxes][:2] == [("ten", "3", "20", "25"), ("2", "3", "20")]
    assert np.isnan(a.boxes[2].values[0])
    assert (a.boxes[3].label, a.boxes[3].label_text) == (None, "an <object> without <name>")
    assert (b.boxes[0].values, b.width) == ((), None)


def test_image_lookup_fallbacks(tmp_path: Path) -> None:
    """<filename> in JPEGImages/ or images/, else the XML's stem with a common suffix; labelme's
    empty <difficult/>; an XML that names no image and has none by its stem is reported."""
    image(tmp_path / "JPEGImages" / "renamed.png")
    image(tmp_path / "images" / "b.jpg")
    annotation(tmp_path, "renamed", [("cat", (2, 3, 20, 25), 0)], filename="renamed.jpg")
    annotation(tmp_path, "b", [("cat", (2, 3, 20, 25), 0)])
    annotation(tmp_path, "c", [("cat", (2, 3, 20, 25), 0)])
    annotation(tmp_path, "d", [("cat", (2, 3, 20, 25), 0)], filename=None)
    annotation(tmp_path, "e", [], filename="../../etc/passwd")
    xml = (tmp_path / "Annotations" / "b.xml").read_text().replace("<difficult>0</difficult>", "<difficult/>")
    (tmp_path / "Annotations" / "b.xml").write_text(xml)
    raw = read_voc(tmp_path)
    assert [(i.file, i.source) for i in raw.images] == [
        ("images/b.jpg", "Annotations/b.xml"),
        ("JPEGImages/c.jpg", "Annotations/c.xml"),
        ("JPEGImages/passwd", "Annotations/e.xml"),
        ("JPEGImages/renamed.png", "Annotations/renamed.xml"),
    ]
    assert raw.images[0].boxes[0].difficult is False
    assert [(p.reason, p.file) for p in raw.report.problems] == [(Reason.missing_image, "Annotations/d.xml")]
    _, report = validate(raw)
    assert report.counts[Reason.missing_image] == 3  # c, d (the reader's), e


def test_class_lists_and_splits(tmp_path: Path) -> None:
    for stem in ("a", "b", "c", "d", "e"):
        image(tmp_path / "JPEGImages" / f"{stem}.jpg")
        annotation(tmp_path, stem, [("zebra", (2, 3, 20, 25), 0)])
    main = tmp_path / "ImageSets" / "Main"
    write(main / "train.txt", "d\nb\n")
    write(main / "val.txt", "a\n")
    write(main / "trainval.txt", "a\nb\nd\ne\n")
    write(main / "test.txt", "c\n\n")
    for cls in ("zebra", "ant", "traffic_light"):
        write(main / f"{cls}_trainval.txt", "a 1\n")
    raw = read_voc(tmp_path)
    assert raw.classes == ["ant", "traffic_light", "zebra"]
    assert [(i.file, i.split) for i in raw.images] == [
        ("JPEGImages/d.jpg", "train"),
        ("JPEGImages/b.jpg", "train"),
        ("JPEGImages/a.jpg", "val"),
        ("JPEGImages/e.jpg", "train"),
        ("JPEGImages/c.jpg", "val"),
    ]
    write(tmp_path / "labels.txt", "zebra\nant\n")
    assert read_voc(tmp_path).classes == ["zebra", "ant"]
    write(tmp_path / "labels.txt", "zebra\nzebra\n")
    with pytest.raises(DatasetError, match="names a class more than once: zebra"):
        read_voc(tmp_path)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>&lol9;</filename></annotation>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>a.jpg</filename><object><name>&xxe;</name></object></annotation>
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BILLION_LAUGHS, "refused: the XML declares entities"),
        (EXTERNAL_ENTITY, "refused: the XML declares entities"),
        ("<annotation><filename>a.jpg</filename>", "not well-formed XML: no element found: line 1"),
        ("<annotation><object></annotation>", "not well-formed XML: mismatched tag"),
        ("<html><body/></html>", "the root element is <html>, not <annotation>"),
    ],
)
def test_bad_xml_raises_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    image(tmp_path / "JPEGImages" / "a.jpg")
    annotation(tmp_path, "a", [("cat", (2, 3, 20, 25), 0)])
    write(tmp_path / "Annotations" / "z.xml", text)
    with pytest.raises(DatasetError, match=message) as caught:
        read(tmp_path)
    assert caught.value.file == "Annotations/z.xml"


def test_no_annotations_says_where_it_looked_and_what_is_there(tmp_path: Path) -> None:
    write(tmp_path / "annotations.xml", "<annotations><image name='a.jpg'/></annotations>")  # CVAT's own XML
    image(tmp_path / "images" / "a.jpg")
    with pytest.raises(DatasetError, match="no Pascal VOC annotations: looked for folders of .xml files") as caught:
        read(tmp_path, "voc")
    assert caught.value.message.endswith("the folder holds 'annotations.xml', 'images/'")


def test_same_boxes_as_globox(tmp_path: Path) -> None:
    """globox reads the corners as written; ours are those minus one at the top left."""
    from globox import AnnotationSet

    rng = np.random.default_rng(5)
    for i in range(6):
        width, height = int(rng.integers(30, 90)), int(rng.integers(30, 90))
        image(tmp_path / "JPEGImages" / f"{i:06d}.jpg", (width, height))
        objects = []
        for _ in range(int(rng.integers(1, 5))):
            x1, y1 = int(rng.integers(1, width - 5)), int(rng.integers(1, height - 5))
            x2, y2 = int(rng.integers(x1 + 1, width + 1)), int(rng.integers(y1 + 1, height + 1))
            objects.append((str(rng.choice(["cat", "dog", "bird"])), (x1, y1, x2, y2), 0))
        annotation(tmp_path, f"{i:06d}", objects, size=(width, height))
    index, report = validate(read(tmp_path))
    assert report.counts.total() == 0
    reference = AnnotationSet.from_pascal_voc(tmp_path / "Annotations")
    ours = {Path(r.file).name: r for r in index.images}
    assert sorted(ours) == sorted(a.image_id for a in reference)
    for ann in reference:
        record = ours[ann.image_id]
        assert (record.width, record.height) == ann.image_size
        expected = np.array([b.ltrb for b in ann.boxes]) - [1, 1, 0, 0]
        np.testing.assert_allclose(record.boxes, expected)
        assert [index.classes[k] for k in record.labels] == [b.label for b in ann.boxes]
