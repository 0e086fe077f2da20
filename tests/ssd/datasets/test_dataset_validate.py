"""The validation rules on hand-made raw records: every fault counted once, with its file, and
every valid box of the same image kept (coordinates worked out by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssd.datasets.records import RawBox, RawDataset, RawImage
from ssd.datasets.report import DESCRIPTIONS, Reason, Report
from ssd.datasets.validate import MAX_IMAGE_PIXELS, read_image_size, validate

CLASSES = ["cat", "dog"]


def box(values: tuple[object, ...], label: int | str | None = 0, **flags: bool) -> RawBox:
    return RawBox(values=values, label=label, source="ann.json", **flags)


def sizes(table: dict[str, tuple[int, int] | Reason]):  # type: ignore[no-untyped-def]
    return lambda path: table[path.name]


def run(images: list[RawImage], table: dict[str, tuple[int, int] | Reason]):  # type: ignore[no-untyped-def]
    raw = RawDataset(format="coco", root=Path("/data/set"), classes=CLASSES, images=images)
    return validate(raw, image_size=sizes(table))


def test_one_image_every_box_fault_and_the_good_boxes_kept() -> None:
    """A 100x50 image, COCO xywh boxes: two good, one clipped, and one of every box fault."""
    image = RawImage(
        file="a.png",
        source="ann.json",
        box_format="xywh",
        width=100,
        height=50,
        boxes=[
            box((10, 5, 20, 10), 0),  # good: [10, 5, 30, 15]
            box((50, 20, 10, 10), "dog"),  # good, by name: [50, 20, 60, 30]
            box((90, 40, 20, 20), 1),  # past the corner: clipped to [90, 40, 100, 50]
            box((10, 5, 20, 10), 0),  # exact duplicate of the first
            box((10, 5, 20, 10), 1),  # same place, other class: kept
            box((200, 5, 10, 10), 0),  # entirely outside
            box((10, 5, 0, 10), 0),  # zero width
            box((10, 5, -3, 10), 0),  # negative width
            box((10, "five", 20, 10), 0),  # not a number
            box((10, float("nan"), 20, 10), 0),  # NaN
            box((10, 5, 20), 0),  # three values
            box((10, 5, 20, 10), 7),  # class index out of range
            box((10, 5, 20, 10), "bird"),  # unknown name
            box((0, 0, 100, 50), 0, crowd=True),  # a crowd region: ignored, not a box
        ],
    )
    index, report = run([image], {"a.png": (100, 50)})
    (record,) = index.images
    np.testing.assert_allclose(record.boxes, [[10, 5, 30, 15], [50, 20, 60, 30], [90, 40, 100, 50], [10, 5, 30, 15]])
    assert record.labels.tolist() == [0, 1, 1, 1]
    np.testing.assert_allclose(record.ignore, [[0, 0, 100, 50]])
    assert (record.width, record.height, record.split) == (100, 50, "train")
    dropped = report.dropped()["boxes"]
    assert dropped == {
        "outside_image": 1,
        "zero_or_negative_size": 2,
        "not_numeric": 2,
        "malformed_annotation": 1,
        "unknown_class": 2,
        "duplicate": 1,
    }
    assert report.notes() == {"clipped": 1, "crowd": 1, "difficult": 0, "background_image": 0}
    assert (report.images, report.boxes, report.ignored) == (1, 4, 1)
    assert all(p.file == "ann.json" and p.image == "a.png" for p in report.problems)
    assert len(report.problems) == 9 + 2  # nine drops, one clip, one crowd


def test_image_faults_drop_the_image_and_say_which_file() -> None:
    images = [
        RawImage("gone.png", "ann.json", "xyxy", [box((1, 1, 5, 5))]),
        RawImage("broken.png", "ann.json", "xyxy", [box((1, 1, 5, 5))]),
        RawImage("anim.gif", "ann.json", "xyxy", [box((1, 1, 5, 5))]),
        RawImage("small.png", "ann.json", "xyxy", [box((1, 1, 5, 5))], width=64, height=64),
        RawImage("empty.png", "ann.json", "xyxy", []),
        RawImage("ok.png", "ann.json", "xyxy", [box((1, 1, 5, 5))], width="32", height=32.0, split="val"),
    ]
    table = {
        "gone.png": Reason.missing_image,
        "broken.png": Reason.unreadable_image,
        "anim.gif": Reason.unsupported_image_type,
        "small.png": (32, 32),
        "empty.png": (32, 32),
        "ok.png": (32, 32),
    }
    index, report = run(images, table)
    assert [r.file for r in index.images] == ["empty.png", "ok.png"]
    assert index.images[1].split == "val" and len(index.images[0].labels) == 0
    assert report.dropped()["images"] == {
        "missing_image": 1,
        "unreadable_image": 1,
        "unsupported_image_type": 1,
        "size_mismatch": 1,
        "bad_file_name": 0,
        "too_large_image": 0,
    }
    files = {p.reason: p.file for p in report.problems}
    # A missing image is the annotation's fault; a broken one the image file's.
    assert files[Reason.missing_image] == "ann.json" and files[Reason.unreadable_image] == "broken.png"
    assert files[Reason.background] == "ann.json" and report.counts[Reason.background] == 1


@pytest.mark.parametrize(
    ("fmt", "values", "expected"),
    [
        ("xyxy", (10, 20, 30, 40), [10, 20, 30, 40]),
        ("xywh", (10, 20, 30, 40), [10, 20, 40, 60]),
        # YOLO on a 200x100 image: centre (0.5, 0.5), size (0.2, 0.4) -> 40 x 40 px around (100, 50).
        ("cxcywh_normalized", ("0.5", "0.5", "0.2", "0.4"), [80, 30, 120, 70]),
    ],
)
def test_box_formats_become_pixel_xyxy(fmt: str, values: tuple[object, ...], expected: list[float]) -> None:
    image = RawImage("a.png", "a.txt", fmt, [box(values)])  # type: ignore[arg-type]
    index, _ = run([image], {"a.png": (200, 100)})
    np.testing.assert_allclose(index.images[0].boxes, [expected], atol=1e-4)


def test_difficult_objects_become_ignore_regions() -> None:
    image = RawImage("a.png", "a.xml", "xyxy", [box((1, 1, 5, 5), difficult=True), box((6, 6, 9, 9))])
    index, report = run([image], {"a.png": (10, 10)})
    assert len(index.images[0].labels) == 1 and len(index.images[0].ignore) == 1
    assert report.counts[Reason.difficult] == 1 and report.counts[Reason.background] == 0


def test_the_readers_own_problems_come_first_and_the_report_round_trips() -> None:
    raw = RawDataset(format="coco", root=Path("/x"), classes=CLASSES, images=[], report=Report())
    raw.report.add(Reason.malformed, "ann.json", detail="annotation 7 names image 99, which is not in images")
    index, report = validate(raw, image_size=sizes({}))
    assert index.images == [] and report.dropped()["boxes"]["malformed_annotation"] == 1
    assert Report.from_dict(report.to_dict()).to_dict() == report.to_dict()


def test_read_image_size_decodes_the_whole_file(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "ok.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "ok.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.gif")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:-2000])  # header intact, data cut
    (tmp_path / "text.png").write_text("not an image")
    assert read_image_size(tmp_path / "ok.png") == (40, 30) and read_image_size(tmp_path / "ok.jpg") == (40, 30)
    assert read_image_size(tmp_path / "x.gif") == Reason.unsupported_image_type
    assert read_image_size(tmp_path / "cut.png") == Reason.unreadable_image
    assert read_image_size(tmp_path / "text.png") == Reason.unreadable_image
    assert read_image_size(tmp_path / "nope.png") == Reason.missing_image


def test_an_image_over_the_pixel_bound_is_dropped_before_it_is_decoded(tmp_path: Path) -> None:
    """The probe's 12000x12000 PNGs were 17 KB each and imported ready; every anonymous view of
    them then decoded 144 megapixels (the server went from 127 MB to 1.5 GB)."""
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow warns from this bound on
        assert read_image_size(tmp_path / "bomb.png") == Reason.too_large_image
    assert f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels" in DESCRIPTIONS[Reason.too_large_image]
    Image.new("1", (20000, 20000)).save(tmp_path / "past_pillow.png")  # Pillow's own bound: was unreadable_image
    assert read_image_size(tmp_path / "past_pillow.png") == Reason.too_large_image
    Image.new("1", (8160, 6144)).save(tmp_path / "phone.png")  # a 50-megapixel phone photo is admitted
    assert read_image_size(tmp_path / "phone.png") == (8160, 6144) and 8160 * 6144 < MAX_IMAGE_PIXELS
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    assert read_image_size(tmp_path / "small.png", max_pixels=1199) == Reason.too_large_image
    raw = RawDataset("coco", tmp_path, CLASSES, [RawImage("bomb.png", "ann.json", "xywh", [box((1, 1, 5, 5))])])
    with pytest.warns(Image.DecompressionBombWarning):
        index, report = validate(raw)
    assert index.images == [] and report.dropped()["images"]["too_large_image"] == 1
    assert report.problems[0].file == "bomb.png" and "1 boxes dropped" in report.problems[0].detail
