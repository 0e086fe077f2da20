"""The detections viewer's API: a stub predictor on hand-made images (TP/FP/missed and IoUs
worked out by hand), evaluation against pycocotools, uploads, missing and broken checkpoints,
and one real tiny checkpoint end to end."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import app.services.detections as detections_module
from app.main import create_app
from app.settings import Settings
from ssd.config import Config, from_dict
from ssd.data import Sample
from ssd.datasets.source import GeneratedSource, SplitData, no_regions

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
    "train": {"steps": 2, "batch_size": 2, "eval_images": 4},
}
CONFIG = from_dict(TINY)

# ---------------------------------------------------------------------------- the hand-made case
# Image 0 (32x32): three ground truths.
GT0 = {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [0, 20, 10, 30]], "labels": [3, 5, 1]}
# Its detections, by descending score, and what each is at IoU 0.5 with a score cut of 0.5:
DET0 = [
    ([0, 0, 10, 10], 0.9, 3),  # 0: exactly GT 0, same class -> TP, IoU 1
    ([5, 0, 15, 10], 0.8, 3),  # 1: GT 0 shifted half a width: 50 / (100 + 100 - 50) = 1/3 -> FP
    ([20, 20, 30, 28], 0.6, 5),  # 2: 80 / 100 = 0.8 with GT 1 -> TP
    ([20, 20, 30, 30], 0.55, 5),  # 3: exactly GT 1 (IoU 1) but GT 1 went to the higher score -> FP
    ([0, 20, 10, 30], 0.4, 7),  # 4: exactly GT 2 but class 7 != 1 -> FP (below a 0.5 cut)
    ([0, 0, 10, 10], 0.2, 3),  # 5: a duplicate of detection 0 -> FP (below a 0.5 cut)
]
# GT 2 (class 1) is missed at every cut; image 1 has one ground truth and no detection.
GT1 = {"boxes": [[4, 4, 20, 20]], "labels": [0]}


@dataclass(frozen=True, eq=False)
class Dets:
    """Duck-typed ssd.detect.Detections (no TensorFlow import for the stub tests)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def dets(items: list[tuple[list[float], float, int]]) -> Dets:
    return Dets(
        np.array([b for b, _, _ in items], np.float32).reshape(-1, 4),
        np.array([s for _, s, _ in items], np.float32),
        np.array([c for _, _, c in items], np.int32),
    )


def image_with_id(index: int, size: int = 32) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[0, 0, 0] = index  # the stub reads the image id back from here
    return image


class FakeDataset:
    """Images whose ground truth and detections are written out above."""

    def __init__(self, gts: list[dict[str, Any]]) -> None:
        self.gts = gts

    def __getitem__(self, index: int) -> Sample:
        gt = self.gts[index % len(self.gts)]
        return Sample(
            image=image_with_id(index),
            boxes=np.array(gt["boxes"], np.float32).reshape(-1, 4),
            labels=np.array(gt["labels"], np.int32),
        )

    def ignore_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return no_regions()


class FakeSource(GeneratedSource):
    """The generator's dataset (endless, ``data.val_images`` shown) whose splits are ``data``."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def split(self, config: Config, split: Any, *, augment: bool = True, cache_bytes: int = 0) -> SplitData:
        return self.data  # type: ignore[no-any-return]


def fake_data(data: Any) -> Callable[..., FakeSource]:
    """A stand-in for :func:`ssd.datasets.resolve.resolve` as the viewer calls it."""
    return lambda config, data_dir=None: FakeSource(data)


class StubPredictor:
    """``.config`` and ``.predict()`` like ssd.detect.Detector, with known detections."""

    def __init__(self, config: Config, by_image: Callable[[np.ndarray], Dets]) -> None:
        self.config = config
        self.by_image = by_image
        self.calls = 0
        self.images = 0

    def predict(self, images: np.ndarray, batch_size: int = 32) -> list[Dets]:
        self.calls += 1
        self.images += len(images)
        assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
        return [self.by_image(image) for image in images]


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        yield client


def jobs_dir(client: TestClient) -> Path:
    return Path(client.app.state.runner.settings.jobs_dir)  # type: ignore[attr-defined]


def make_job(client: TestClient, status: str = "succeeded", *, weights: bytes | None = b"stub") -> str:
    """A job straight in the store (the runner never sees it), with a checkpoint file if ``weights``."""
    store = client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="viewer", config=CONFIG.to_dict(), total_steps=2)
    store.set_status(job.id, status)
    if weights is not None:
        job_dir = jobs_dir(client) / job.id
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "config.json").write_text(json.dumps(CONFIG.to_dict()))
        (job_dir / "model.weights.h5").write_bytes(weights)
    return job.id


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubPredictor:
    """The detector loader and the dataset replaced: images 0 and 1 of the hand-made case."""

    def by_image(image: np.ndarray) -> Dets:
        return dets(DET0) if image[0, 0, 0] % 2 == 0 else dets([])

    predictor = StubPredictor(CONFIG, by_image)
    monkeypatch.setattr(detections_module, "load_detector", lambda directory, weights="best": predictor)
    monkeypatch.setattr(detections_module, "resolve", fake_data(FakeDataset([GT0, GT1])))
    return predictor


# ---------------------------------------------------------------------------- detections


def test_detections_tp_fp_missed_and_iou_worked_by_hand(app_client: TestClient, stub: StubPredictor) -> None:
    job_id = make_job(app_client)
    response = app_client.get(f"/api/jobs/{job_id}/detections", params={"offset": 0, "limit": 2, "score": 0.5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["score_threshold"] == 0.01 and body["iou_threshold"] == 0.5 and body["total"] == 8
    first, second = body["images"]
    assert first["image_url"] == f"/api/datasets/val/images/0.png?job={job_id}"
    got = [(d["label"], d["score"], d["status"], d["iou"], d["best_gt"], d["matched_gt"]) for d in first["detections"]]
    assert got == [
        (3, 0.9, "tp", 1.0, 0, 0),
        (3, 0.8, "fp", 0.3333, 0, -1),
        (5, 0.6, "tp", 0.8, 1, 1),
        (5, 0.55, "fp", 1.0, 1, -1),
        (7, 0.4, None, 1.0, 2, -1),  # every detection is sent, even below the cut
        (3, 0.2, None, 1.0, 0, -1),
    ]
    assert [g["matched"] for g in first["gt"]] == [True, True, False]
    assert np.allclose(first["iou"][1], [1 / 3, 0, 0]) and np.allclose(first["iou"][2], [0, 0.8, 0])
    assert second["detections"] == [] and [g["matched"] for g in second["gt"]] == [False]

    # The figure: ground truth first (dashed), then detections; only those >= the cut visible.
    shapes = first["figure"]["layout"]["shapes"]
    assert [s["name"] for s in shapes] == ["gt:0", "gt:1", "gt:2", *(f"det:{i}" for i in range(6))]
    assert [s["visible"] for s in shapes[3:]] == [True, True, True, True, False, False]
    colors = first["figure"]["layout"]["meta"]["colors"]
    assert shapes[2]["line"] == {"color": colors["missed"], "width": 1.5, "dash": "dash"}
    assert [s["line"]["color"] for s in shapes[3:7]] == [colors["tp"], colors["fp"], colors["tp"], colors["fp"]]
    assert len({colors["tp"], colors["fp"], colors["missed"], colors["gt"]}) == 4

    # A higher cut drops detection 2, so GT 1 is missed; its fellow at 0.55 is not shown either.
    high = app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 1, "score": 0.7}).json()["images"][0]
    assert [d["status"] for d in high["detections"]] == ["tp", "fp", None, None, None, None]
    assert [g["matched"] for g in high["gt"]] == [True, False, False]
    # Cut 0: everything is judged; the wrong-class and the duplicate detections are FPs.
    low = app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 1, "score": 0}).json()["images"][0]
    assert [d["status"] for d in low["detections"]] == ["tp", "fp", "tp", "fp", "fp", "fp"]


def test_detections_paging_and_the_image(app_client: TestClient, stub: StubPredictor) -> None:
    job_id = make_job(app_client)
    body = app_client.get(f"/api/jobs/{job_id}/detections", params={"offset": 6, "limit": 12}).json()
    assert [image["index"] for image in body["images"]] == [6, 7]  # val_images = 8
    png = app_client.get(body["images"][1]["image_url"])  # the dataset browser's, for this job's config
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(png.content))).shape == (32, 32, 3)
    assert app_client.get(f"/api/jobs/{job_id}/detections", params={"split": "test"}).status_code == 422
    assert app_client.get("/api/jobs/nope/detections").status_code == 404


def test_the_detector_is_cached_per_checkpoint_file(app_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Path] = []

    def load(directory: Path, weights: str = "best") -> StubPredictor:
        loads.append(directory)
        return StubPredictor(CONFIG, lambda image: dets([]))

    monkeypatch.setattr(detections_module, "load_detector", load)
    monkeypatch.setattr(detections_module, "resolve", fake_data(FakeDataset([GT1])))
    job_id = make_job(app_client)
    for _ in range(2):
        assert app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 1}).status_code == 200
    assert len(loads) == 1
    weights = jobs_dir(app_client) / job_id / "model.weights.h5"
    weights.write_bytes(b"a newer checkpoint")  # a new size and mtime, as a training save gives
    assert app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 1}).status_code == 200
    assert len(loads) == 2


def test_the_viewer_runs_the_best_weights_and_follows_that_file(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []

    def load(directory: Path, weights: str = "best") -> StubPredictor:
        loads.append(weights)
        return StubPredictor(CONFIG, lambda image: dets([]))

    monkeypatch.setattr(detections_module, "load_detector", load)
    monkeypatch.setattr(detections_module, "resolve", fake_data(FakeDataset([GT1])))
    job_id = make_job(app_client)
    url, params = f"/api/jobs/{job_id}/detections", {"limit": 1}
    first = app_client.get(url, params=params)
    assert first.status_code == 200 and first.json()["checkpoint"]["weights"] == "last" and loads == ["last"]
    job_dir = jobs_dir(app_client) / job_id
    (job_dir / "best.weights.h5").write_bytes(b"the best so far")
    (job_dir / "best.json").write_text(json.dumps({"step": 7, "map50": 0.5, "map": 0.3}))
    best = app_client.get(url, params=params).json()["checkpoint"]
    assert (best["weights"], best["step"], loads) == ("best", 7, ["last", "best"])
    (job_dir / "model.weights.h5").write_bytes(b"a newer last checkpoint")  # not the file the viewer uses
    assert app_client.get(url, params=params).status_code == 200 and len(loads) == 2
    (job_dir / "best.weights.h5").write_bytes(b"a newer best")  # a new best is loaded again
    assert app_client.get(url, params=params).status_code == 200 and loads == ["last", "best", "best"]


# ---------------------------------------------------------------------------- evaluation

# Four images; the stub finds every ground truth exactly (score 0.9), and on image 3 adds one
# false positive of class 4 where there is nothing, scoring above all of class 4's true hits.
EVAL_GTS = [
    {"boxes": [[2, 2, 12, 14], [16, 4, 28, 18]], "labels": [4, 7]},
    {"boxes": [[1, 1, 15, 15]], "labels": [4]},
    {"boxes": [[10, 10, 24, 26], [0, 18, 9, 30]], "labels": [2, 4]},
    {"boxes": [[3, 5, 13, 17]], "labels": [7]},
]
FALSE_POSITIVE = ([20, 20, 30, 30], 0.95, 4)


def eval_by_image(image: np.ndarray) -> Dets:
    index = int(image[0, 0, 0])
    gt = EVAL_GTS[index]
    found = [(box, 0.9, label) for box, label in zip(gt["boxes"], gt["labels"], strict=True)]
    return dets([FALSE_POSITIVE, *found] if index == 3 else found)


def pycocotools_direct() -> COCOeval:
    """The same case fed to pycocotools by hand, without ssd.evaluate."""
    images = [{"id": i, "width": 32, "height": 32} for i in range(len(EVAL_GTS))]
    anns, results = [], []
    for i, gt in enumerate(EVAL_GTS):
        for (x1, y1, x2, y2), label in zip(gt["boxes"], gt["labels"], strict=True):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": label,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
            results.append({"image_id": i, "category_id": label, "bbox": bbox, "score": 0.9})
    x1, y1, x2, y2 = FALSE_POSITIVE[0]
    results.append({"image_id": 3, "category_id": 4, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.95})
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco = COCO()
        gt_coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(10)]}
        gt_coco.createIndex()
        evaluation = COCOeval(gt_coco, gt_coco.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def test_evaluation_matches_pycocotools_and_the_hand_count(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        detections_module, "load_detector", lambda directory, weights="best": StubPredictor(CONFIG, eval_by_image)
    )
    monkeypatch.setattr(detections_module, "resolve", fake_data(FakeDataset(EVAL_GTS)))
    job_id = make_job(app_client)
    response = app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 4, "score": 0.5})
    assert response.status_code == 200, response.text
    body = response.json()
    direct = pycocotools_direct()
    assert body["map50"] == pytest.approx(direct.stats[1]) and body["map"] == pytest.approx(direct.stats[0])
    # By hand: class 4 has 3 ground truths and ranks the FP first: precisions 0, 1/2, 2/3, 3/4;
    # interpolated (max to the right) that is 3/4 at every recall point -> AP 0.75. Classes 2 and
    # 7 are perfect (AP 1); the others have no ground truth and stay out of the mean.
    ap50 = {c["class"]: c["ap50"] for c in body["classes"]}
    assert ap50[4] == pytest.approx(0.75) and ap50[2] == pytest.approx(1.0) and ap50[7] == pytest.approx(1.0)
    assert ap50[0] is None and body["classes"][4]["num_gt"] == 3
    assert body["map50"] == pytest.approx((0.75 + 1 + 1) / 3)
    assert body["num_detections"] == 7 and body["num_images"] == 4

    matrix = np.array(body["confusion"]["matrix"])
    assert body["confusion"]["rows"][-1] == "background" and body["confusion"]["columns"][-1] == "missed"
    expected = np.zeros((11, 11), int)
    expected[2, 2], expected[4, 4], expected[7, 7], expected[10, 4] = 1, 3, 2, 1
    assert (matrix == expected).all()
    # At a cut above every score nothing is detected: all 6 ground truths are missed.
    empty = app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 4, "score": 0.99}).json()
    assert np.array(empty["confusion"]["matrix"])[:, 10].sum() == 6

    # Figures: one PR trace per class (classes without ground truth hidden), counts in the heatmap.
    traces = body["pr_figure"]["data"]
    assert len(traces) == 10 and traces[4]["name"] == "4 (AP 0.75)" and traces[0]["visible"] == "legendonly"
    assert body["confusion_figure"]["data"][0]["type"] == "heatmap"
    assert body["confusion_figure"]["data"][0]["z"][10][4] == 1
    assert app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 9}).status_code == 404  # > val_images


def test_each_image_is_predicted_once_per_checkpoint(app_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = StubPredictor(CONFIG, eval_by_image)
    monkeypatch.setattr(detections_module, "load_detector", lambda directory, weights="best": predictor)
    monkeypatch.setattr(detections_module, "resolve", fake_data(FakeDataset(EVAL_GTS)))
    job_id = make_job(app_client)
    assert app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 2}).json()["num_images"] == 2
    assert predictor.calls == 1
    for score in (0.5, 0.5, 0.95):  # images 0-1 come from the cache: one call predicts 2-3 only
        assert app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 4, "score": score}).status_code == 200
    assert predictor.calls == 2 and predictor.images == 4
    # Another n, or the detections of the same images, runs no model: what it needs is cached.
    assert app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 3}).json()["num_images"] == 3
    assert app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 4}).status_code == 200
    assert predictor.calls == 2
    weights = jobs_dir(app_client) / job_id / "model.weights.h5"
    weights.write_bytes(b"a newer checkpoint")  # a new checkpoint: nothing cached applies
    app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 3})
    assert predictor.calls == 3 and predictor.images == 7


# ---------------------------------------------------------------------------- uploads


def encode(image: np.ndarray, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def upload_stub(monkeypatch: pytest.MonkeyPatch) -> StubPredictor:
    seen: list[np.ndarray] = []

    def by_image(image: np.ndarray) -> Dets:
        seen.append(image.copy())
        # One box in the letterboxed image, one wholly inside the padding (dropped).
        return dets([([0, 8, 16, 24], 0.8, 6), ([0, 0, 10, 4], 0.5, 1)])

    predictor = StubPredictor(CONFIG, by_image)
    predictor.seen = seen  # type: ignore[attr-defined]
    monkeypatch.setattr(detections_module, "load_detector", lambda directory, weights="best": predictor)
    return predictor


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_upload_letterboxes_and_maps_boxes_back(app_client: TestClient, upload_stub: Any, fmt: str) -> None:
    job_id = make_job(app_client)
    image = np.full((32, 64, 3), 200, np.uint8)  # 64 wide, 32 high
    files = {"file": (f"digits.{fmt.lower()}", encode(image, fmt), "application/octet-stream")}
    response = app_client.post(f"/api/jobs/{job_id}/detections/upload", files=files, data={"score": "0.3"})
    assert response.status_code == 200, response.text
    body = response.json()
    # Scale 32/64 = 0.5 -> 32x16, centred: 8 black rows above and below.
    assert body["width"] == 64 and body["height"] == 32 and body["image_size"] == 32
    assert body["letterbox"] == {"scale": 0.5, "pad_x": 0, "pad_y": 8}
    square = upload_stub.seen[0]
    assert square[:8].max() == 0 and square[24:].max() == 0 and square[8:24].min() > 150
    # [0, 8, 16, 24] in the square -> ((x - 0) / 0.5, (y - 8) / 0.5) = [0, 0, 32, 32] in the upload.
    assert body["detections"] == [
        {"box": [0.0, 0.0, 32.0, 32.0], "label": 6, "score": 0.8, "iou": None, "status": None}
    ]
    layout = body["figure"]["layout"]
    assert layout["images"][0]["source"].startswith("data:image/png;base64,")
    assert layout["xaxis"]["range"] == [0, 64] and layout["yaxis"]["range"] == [32, 0]
    assert [s["name"] for s in layout["shapes"]] == ["det:0"]


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (encode(np.zeros((8, 8, 3), np.uint8), "GIF"), 415),
        (b"hello, I am text pretending to be a picture", 415),
        (b"", 415),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024), 413),  # a PNG header, over 5 MB
        (encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "PNG")[:400], 422),
        (encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "JPEG")[:300], 422),
        (b"\xff\xd8\xff" + b"garbage" * 10, 422),
    ],
    ids=["gif", "text", "empty", "too-large", "truncated-png", "truncated-jpeg", "fake-jpeg"],
)
def test_upload_rejects_with_a_clear_4xx(app_client: TestClient, upload_stub: Any, content: bytes, status: int) -> None:
    job_id = make_job(app_client)
    files = {"file": ("x.png", content, "image/png")}  # the content type lies; the bytes decide
    response = app_client.post(f"/api/jobs/{job_id}/detections/upload", files=files)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert upload_stub.calls == 0


def test_the_upload_limit_setting_is_the_one_the_route_applies(tmp_path: Path, upload_stub: Any) -> None:
    """SSDBOARD_MAX_UPLOAD_BYTES moves the limit both ways: middleware, route and decoder agree."""
    noise = np.random.default_rng(1).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    big = encode(noise, "PNG")  # incompressible: about 2.4 MB, a valid image
    assert 2 << 20 < len(big) < 5 << 20
    files = {"file": ("big.png", big, "image/png")}

    # 1 MiB: the same image is refused, by the route and not only by the body-size middleware.
    small = Settings(data_dir=tmp_path / "small", max_upload_bytes=1 << 20)
    with TestClient(create_app(small)) as client:
        response = client.post(f"/api/jobs/{make_job(client)}/detections/upload", files=files)
        assert response.status_code == 413, response.text
        assert "1 MiB" in client.get("/openapi.json").json()["info"]["description"]

    # 8 MiB: a file over the old hard-coded 5 MiB constant passes every layer and is decoded.
    huge = encode(np.random.default_rng(2).integers(0, 255, (1400, 1400, 3), dtype=np.uint8), "PNG")
    assert len(huge) > 5 << 20
    raised = Settings(data_dir=tmp_path / "raised", max_upload_bytes=8 << 20)
    with TestClient(create_app(raised)) as client:
        response = client.post(
            f"/api/jobs/{make_job(client)}/detections/upload", files={"file": ("huge.png", huge, "image/png")}
        )
        assert response.status_code == 200, response.text
        assert response.json()["width"] == 1400 and upload_stub.calls == 1


def test_upload_without_a_file_is_422(app_client: TestClient, upload_stub: Any) -> None:
    job_id = make_job(app_client)
    assert app_client.post(f"/api/jobs/{job_id}/detections/upload").status_code == 422


# ---------------------------------------------------------------------------- no or broken checkpoint


def test_a_job_without_a_checkpoint(app_client: TestClient) -> None:
    running = make_job(app_client, "running", weights=None)
    for path in ("detections", "evaluation"):
        response = app_client.get(f"/api/jobs/{running}/{path}")
        assert response.status_code == 409
        assert "no checkpoint yet" in response.json()["detail"] and "every 200 steps" in response.json()["detail"]
    failed = make_job(app_client, "failed", weights=None)
    response = app_client.get(f"/api/jobs/{failed}/detections")
    assert response.status_code == 404 and response.json()["detail"] == f"job {failed} (failed) has no checkpoint"


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_a_clear_error_and_the_server_keeps_serving(app_client: TestClient) -> None:
    job_id = make_job(app_client, weights=b"this is not an HDF5 file")  # the real loader
    response = app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 1})
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith(f"the checkpoint of job {job_id} cannot be loaded")
    assert f"jobs/{job_id}/model.weights.h5" in detail and str(jobs_dir(app_client)) not in detail
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get(f"/api/jobs/{job_id}/evaluation").status_code == 500  # not cached as a success


# ---------------------------------------------------------------------------- the page's JS matcher


def test_the_page_matcher_agrees_with_the_server(app_client: TestClient, stub: StubPredictor, tmp_path: Path) -> None:
    """static/js/lib/match.js on the hand-made case, at several cuts, run by node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser test covers the page)")
    job_id = make_job(app_client)
    cuts = [0, 0.2, 0.5, 0.58, 0.7, 0.95]
    server = [app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 1, "score": c}).json() for c in cuts]
    image = server[0]["images"][0]
    module = tmp_path / "match.mjs"
    module.write_text((ROOT / "static/js/lib/match.js").read_text())
    script = (
        f"import {{ matchDetections }} from {json.dumps(module.as_uri())};\n"
        f"const image = {json.dumps(image)};\n"
        f"const out = {json.dumps(cuts)}.map(\n"
        "  (score) => matchDetections(image.detections, image.gt, image.iou, { score }));\n"
        "console.log(JSON.stringify(out));\n"
    )
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    browser = json.loads(result.stdout)
    for cut, js, body in zip(cuts, browser, server, strict=True):
        page = body["images"][0]
        assert js["status"] == [d["status"] for d in page["detections"]], cut
        assert js["gtMatched"] == [g["matched"] for g in page["gt"]], cut
        assert js["matchedGt"] == [d["matched_gt"] for d in page["detections"]], cut
    assert browser[2]["status"] == ["tp", "fp", "tp", "fp", None, None]  # by hand, above


# ---------------------------------------------------------------------------- a real checkpoint


@pytest.mark.slow
def test_a_real_tiny_checkpoint_end_to_end(app_client: TestClient) -> None:
    from ssd.train import Trainer

    job_id = make_job(app_client, weights=None)
    job_dir = jobs_dir(app_client) / job_id
    Trainer(CONFIG, job_dir).fit()
    assert (job_dir / "model.weights.h5").exists()

    body = app_client.get(f"/api/jobs/{job_id}/detections", params={"limit": 3, "score": 0}).json()
    assert [image["index"] for image in body["images"]] == [0, 1, 2]
    for image in body["images"]:
        assert image["gt"], "every validation image holds a digit (min_digits 1)"
        assert len(image["iou"]) == len(image["detections"])
        for d in image["detections"]:
            assert d["score"] > 0.01 and 0 <= d["label"] < 10 and d["status"] in ("tp", "fp")
            assert 0 <= d["iou"] <= 1
    png = app_client.get(body["images"][0]["image_url"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

    evaluation = app_client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 8})
    assert evaluation.status_code == 200, evaluation.text
    assert evaluation.json()["num_images"] == 8 and len(evaluation.json()["classes"]) == 10

    files = {"file": ("x.jpg", encode(np.full((40, 50, 3), 90, np.uint8), "JPEG"), "image/jpeg")}
    upload = app_client.post(f"/api/jobs/{job_id}/detections/upload", files=files)
    assert upload.status_code == 200, upload.text
    for d in upload.json()["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 50 and 0 <= y1 < y2 <= 40
