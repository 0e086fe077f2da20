"""ssd.datasets.sources: opening folders, JSON files and zips safely; telling the formats apart."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest
from dataset_writers import coco, image, voc_xml, write, write_json, zip_folder

from ssd.datasets import sources
from ssd.datasets.records import DatasetError
from ssd.datasets.sources import detect_format, open_source, read

LIMIT = 10_000_000


def tiny_voc(root: Path) -> Path:
    image(root / "JPEGImages" / "a.jpg")
    write(root / "Annotations" / "a.xml", voc_xml("a.jpg", [("cat", (2, 3, 20, 25), 0)]))
    return root


def tiny_yolo(root: Path) -> Path:
    image(root / "images" / "train" / "a.png")
    write(root / "labels" / "train" / "a.txt", "0 0.5 0.5 0.2 0.2\n")
    write(root / "data.yaml", "train: images/train\nval: images/train\nnames: [cat]\n")
    return root


def tiny_coco(path: Path) -> Path:
    image(path.parent / "a.png")
    return write_json(
        path, coco([(1, "a.png", 40, 30)], [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}], [(1, "cat")])
    )


# -- open_source -------------------------------------------------------------------------------


def test_folders_and_json_files_open_as_they_are(tmp_path: Path) -> None:
    folder = tiny_voc(tmp_path / "voc")
    assert open_source(folder, tmp_path / "work", max_unpacked_bytes=LIMIT) == folder
    json_file = tiny_coco(tmp_path / "c" / "x.json")
    assert open_source(json_file, tmp_path / "work", max_unpacked_bytes=LIMIT) == json_file
    assert not (tmp_path / "work").exists()
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_source(tmp_path / "nothing", tmp_path / "work", max_unpacked_bytes=LIMIT)
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DatasetError, match="expected a dataset folder, a COCO .json file or a .zip"):
        open_source(tmp_path / "notes.txt", tmp_path / "work", max_unpacked_bytes=LIMIT)


def test_a_zip_of_one_folder_opens_that_folder(tmp_path: Path) -> None:
    tiny_voc(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "voc.zip", arcroot="my voc")
    with zipfile.ZipFile(archive, "a") as z:  # what macOS's archiver adds
        z.writestr("__MACOSX/my voc/._a.jpg", b"junk")
    opened = open_source(archive, tmp_path / "work", max_unpacked_bytes=LIMIT)
    assert opened == tmp_path / "work" / "my voc"
    assert not (tmp_path / "work" / "__MACOSX").exists()
    assert read(opened).images[0].file == "JPEGImages/a.jpg"


def test_nested_folders_unwrap_but_not_into_a_layout_folder(tmp_path: Path) -> None:
    tiny_voc(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "devkit.zip", arcroot="VOCdevkit/VOC2007")
    assert open_source(archive, tmp_path / "w1", max_unpacked_bytes=LIMIT) == tmp_path / "w1" / "VOCdevkit" / "VOC2007"
    only = tmp_path / "only"
    write(only / "annotations" / "instances_train.json", "{}")
    archive = zip_folder(only, tmp_path / "only.zip")
    assert open_source(archive, tmp_path / "w2", max_unpacked_bytes=LIMIT) == tmp_path / "w2"


def test_a_zip_of_one_json_opens_the_json(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("export.json", '{"images": [], "annotations": [], "categories": []}')
    assert open_source(tmp_path / "c.zip", tmp_path / "w", max_unpacked_bytes=LIMIT) == tmp_path / "w" / "export.json"


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.txt", "climbs out of the archive"),
        ("data/../../evil.txt", "climbs out of the archive"),
        ("/etc/evil.txt", "absolute path"),
        ("C:/Windows/evil.txt", "drive letter"),
        ("..\\evil.txt", "backslash"),
    ],
)
def test_unsafe_member_names_are_refused_before_anything_is_written(tmp_path: Path, member: str, why: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data/ok.txt", "fine")
        z.writestr(zipfile.ZipInfo(member), "gotcha")
    with zipfile.ZipFile(archive) as z:
        assert z.namelist()[1] == member  # the archive really holds the name
    with pytest.raises(DatasetError, match=why) as caught:
        open_source(archive, tmp_path / "work", max_unpacked_bytes=LIMIT)
    assert caught.value.file == "bad.zip" and repr(member) in caught.value.message
    assert not (tmp_path / "work").exists() and not (tmp_path / "evil.txt").exists()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("data/passwd.jpg")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as z:
        z.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="'data/passwd.jpg' is a symbolic link"):
        open_source(tmp_path / "link.zip", tmp_path / "work", max_unpacked_bytes=LIMIT)
    assert not (tmp_path / "work").exists()


def test_a_zip_declaring_more_than_the_limit_is_refused_unwritten(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.bin", bytes(600))
        z.writestr("b.bin", bytes(700))
    assert (tmp_path / "big.zip").stat().st_size < 1000  # zeros compress: the archive itself is small
    with pytest.raises(DatasetError, match=r"declares 1300 bytes unpacked .*'b.bin'.* over the limit of 1000"):
        open_source(tmp_path / "big.zip", tmp_path / "work", max_unpacked_bytes=1000)
    assert not (tmp_path / "work").exists()
    assert open_source(tmp_path / "big.zip", tmp_path / "ok", max_unpacked_bytes=1300) == tmp_path / "ok"


def _lie_about_sizes(archive: Path, size: int) -> None:
    """Rewrite every uncompressed-size field (local headers and central directory) to ``size``."""
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset : at + offset + 4] = struct.pack("<I", size)
            at = data.find(signature, at + 4)
    archive.write_bytes(bytes(data))


def test_a_zip_bomb_with_lying_headers_writes_no_more_than_declared(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("images/a.png", bytes(1_000_000))  # 1 MB of zeros: about 1 kB compressed
    _lie_about_sizes(archive, 10)
    with zipfile.ZipFile(archive) as z:
        assert z.getinfo("images/a.png").file_size == 10
    with pytest.raises(DatasetError, match="'images/a.png'") as caught:
        open_source(archive, tmp_path / "work", max_unpacked_bytes=1000)
    assert caught.value.file == "bomb.zip"
    assert not (tmp_path / "work").exists()  # what was written is removed


def test_the_byte_counter_stops_a_member_longer_than_its_header(tmp_path: Path) -> None:
    """The counter itself, under zipfile's own truncation: a member read past its declared size or
    past the limit stops the unpacking."""
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.bin", bytes(4000))
    with zipfile.ZipFile(tmp_path / "z.zip") as z:
        members = z.infolist()
        (tmp_path / "out").mkdir()
        with pytest.raises(DatasetError, match="'a.bin' unpacks to more than its header declares"):
            sources._write_members(z, members, "z.zip", tmp_path / "out", limit=3000)
        members[0].file_size = 100  # a lying header that zipfile trusts up to the CRC check
        with pytest.raises(DatasetError, match="'a.bin'"):
            sources._write_members(z, members, "z.zip", tmp_path / "out", limit=10_000)


def test_broken_and_encrypted_zips(tmp_path: Path) -> None:
    write(tmp_path / "broken.zip", "PK\x03\x04 not really")
    with pytest.raises(DatasetError, match="not a readable zip archive"):
        open_source(tmp_path / "broken.zip", tmp_path / "work", max_unpacked_bytes=LIMIT)
    with zipfile.ZipFile(tmp_path / "enc.zip", "w") as z:
        z.writestr("a.txt", "x")
    data = bytearray((tmp_path / "enc.zip").read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general-purpose flag bit 0
        at = data.find(signature)
        data[at + offset] |= 1
    (tmp_path / "enc.zip").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="'a.txt' is encrypted"):
        open_source(tmp_path / "enc.zip", tmp_path / "work", max_unpacked_bytes=LIMIT)


# -- detect_format ------------------------------------------------------------------------------


def test_detect_each_format(tmp_path: Path) -> None:
    assert detect_format(tiny_coco(tmp_path / "c" / "any name.json")) == "coco"
    assert detect_format(tmp_path / "c") == "coco"
    assert detect_format(tiny_voc(tmp_path / "v")) == "voc"
    assert detect_format(tiny_yolo(tmp_path / "y")) == "yolo"
    other = tmp_path / "y2"
    image(other / "images" / "a.png")
    write(other / "coco8.yaml", "path: .\ntrain: images\nval: images\nnames: {0: cat}\n")
    write(other / "notes.yaml", "just: notes\n")
    assert detect_format(other) == "yolo"


def test_detect_real_coco_layouts(tmp_path: Path) -> None:
    """COCO's download: annotations/ holds instances, captions and keypoints files; Roboflow: one
    _annotations.coco.json per split folder."""
    download = tmp_path / "coco"
    for name in ("instances_train2017", "instances_val2017", "captions_val2017", "person_keypoints_val2017"):
        tiny_coco(download / "annotations" / f"{name}.json")
    assert detect_format(download) == "coco"
    assert [f.name for f in sources.find_coco_files(download)] == ["instances_train2017.json", "instances_val2017.json"]
    roboflow = tmp_path / "rf"
    for split in ("train", "valid", "test"):
        tiny_coco(roboflow / split / "_annotations.coco.json")
    write(roboflow / "README.roboflow.txt", "exported")
    assert detect_format(roboflow) == "coco"


def test_detect_says_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "package.json", '{"name": "not a dataset"}')
    with pytest.raises(DatasetError, match="looked for COCO instances JSON .* VOC Annotations/ .* YOLO data.yaml"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not a COCO .json file"):
        detect_format(write(tmp_path / "a.txt", ""))


def test_detect_refuses_ambiguous_folders(tmp_path: Path) -> None:
    both = tiny_yolo(tiny_voc(tmp_path / "both"))
    with pytest.raises(DatasetError, match=r"more than one format found: VOC .*; YOLO .*--format"):
        detect_format(both)
    assert read(both, "voc").format == "voc" and read(both, "yolo").format == "yolo"
    two = tmp_path / "two"
    tiny_coco(two / "a.json")
    tiny_coco(two / "b.json")
    assert detect_format(two) == "coco"
    with pytest.raises(DatasetError, match=r"several COCO files \(a.json, b.json\).*says no split"):
        read(two)


def test_read_checks_the_format_name_and_the_path_kind(tmp_path: Path) -> None:
    json_file = tiny_coco(tmp_path / "x.json")
    with pytest.raises(DatasetError, match="unknown format 'kitti'"):
        read(tmp_path, "kitti")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="a VOC dataset is a folder, not a file"):
        read(json_file, "voc")
