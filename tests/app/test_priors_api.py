"""The prior explorer's JSON: explore one image, coverage report, 422s naming the field."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient

from ssd.config import from_dict

NOTEBOOK = {"preset": "notebook"}


def explore(client: TestClient, **body: Any) -> Any:
    return client.post("/api/priors/explore", json={"config": NOTEBOOK, **body})


def test_explore_notebook_priors(client: TestClient) -> None:
    r = explore(client, index=3, layer=1, cell=[5, 6])
    assert r.status_code == 200
    body = r.json()
    assert body["num_priors"] == 4032
    assert [layer["grid"] for layer in body["layers"]] == [[32, 32], [16, 16], [8, 8]]
    assert body["layers"][2]["shapes"] == [[25, 63], [36, 45], [44, 37]]
    assert [layer["first_prior"] for layer in body["layers"]] == [0, 3072, 3840]
    # The cell's three priors: centred at (4 + 6 * 8, 4 + 5 * 8) = (52, 44) on layer 1.
    cell = body["selection"]["priors"]
    assert [p["index"] for p in cell] == [3072 + (5 * 16 + 6) * 3 + k for k in range(3)]
    assert cell[1]["box"] == [52 - 11, 44 - 14, 52 + 11, 44 + 14]  # 22x28
    for gt in body["ground_truths"]:
        assert gt["matched"] == bool(gt["priors"]) == (gt["best_iou"] >= 0.5)
        assert all(p["iou"] >= 0.5 for p in gt["priors"])
        if gt["priors"]:
            assert gt["priors"][0]["iou"] == gt["best_iou"]
    assert body["positives"] == sum(len(gt["priors"]) for gt in body["ground_truths"])
    fig = go.Figure(body["figure"])  # validates
    assert fig.data[0].type == "image"
    assert len(fig.layout.shapes) == 1 + 3  # the cell and its priors


def test_unmatched_ground_truth_is_marked(client: TestClient) -> None:
    # Scales of 60 px everywhere: the small digits of image 0 find no prior at 0.5.
    body = client.post(
        "/api/priors/explore", json={"config": {**NOTEBOOK, "priors": {"scales": [60, 60, 60]}}, "index": 0}
    ).json()
    assert body["unmatched"], "expected a digit without a prior"
    k = body["unmatched"][0]
    gt = body["ground_truths"][k]
    assert not gt["matched"] and gt["priors"] == [] and gt["best_iou"] < 0.5
    text = " ".join(a["text"] for a in body["figure"]["layout"]["annotations"])
    assert f"no prior ≥ 0.5 (best IoU {gt['best_iou']:.2f})" in text
    forced = client.post(
        "/api/priors/explore",
        json={"config": {**NOTEBOOK, "priors": {"scales": [60, 60, 60]}, "matching": {"force_best": True}}},
    ).json()
    gt = forced["ground_truths"][k]
    assert gt["matched_forced"] and [p["forced"] for p in gt["priors"]] == [True]
    assert gt["priors"][0]["index"] == gt["best_prior"]["index"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"config": {"priors": {"scales": [10, 20]}}}, ["body", "config", "priors", "scales"]),
        ({"config": {"priors": {"ratios": [0]}}}, ["body", "config", "priors", "ratios"]),
        ({"config": {"matching": {"iou_threshold": 1.5}}}, ["body", "config", "matching", "iou_threshold"]),
        ({"config": {"preset": "nope"}}, ["body", "config", "preset"]),
        ({"layer": 3}, ["body", "layer"]),
        ({"layer": 2, "cell": [8, 0]}, ["body", "cell"]),
        ({"layer": 0, "shape": 6}, ["body", "shape"]),  # default preset: 2 scales x 3 ratios
        ({"index": -1}, ["body", "index"]),
    ],
)
def test_bad_explore_is_422_naming_the_field(client: TestClient, body: dict[str, Any], loc: list[str]) -> None:
    r = client.post("/api/priors/explore", json=body)
    assert r.status_code == 422
    assert [d["loc"][: len(loc)] for d in r.json()["detail"]][0] == loc


def test_unknown_job_and_image_are_404(client: TestClient) -> None:
    assert client.post("/api/priors/explore", json={"job": "nosuchjob"}).status_code == 404
    assert client.post("/api/priors/explore", json={"index": 500}).status_code == 404
    assert client.get("/priors?job=nosuchjob").status_code == 404


def test_coverage_report_says_the_notebook_gap_in_words(client: TestClient) -> None:
    r = client.post("/api/priors/coverage", json={"config": NOTEBOOK, "n": 300})
    assert r.status_code == 200
    body = r.json()
    assert body["num_images"] == 300 and body["num_priors"] == 4032
    assert 0.05 < 1 - body["share_matched"] < 0.15
    assert body["share_matched_forced"] == 1.0
    assert sum(b["count"] for b in body["buckets"]) == body["num_gt"]
    assert sum(b["unmatched"] for b in body["buckets"]) == body["unmatched"] > 0
    gap = f"{100 * body['unmatched'] / body['num_gt']:.1f}% of ground truths ({body['unmatched']} of {body['num_gt']})"
    assert body["words"][0].startswith(gap + " have no prior with IoU ≥ 0.5")
    assert "bucket" in body["words"][0]
    assert any("never learned" in w for w in body["words"])
    assert len(body["positives_per_image"]["counts"]) > 1
    for fig in body["figures"].values():
        go.Figure(fig)


def test_coverage_changes_with_the_scales_and_job_base(client: TestClient) -> None:
    small = client.post(
        "/api/priors/coverage", json={"config": {**NOTEBOOK, "priors": {"scales": [14, 25, 40]}}, "n": 100}
    )
    base = client.post("/api/priors/coverage", json={"config": NOTEBOOK, "n": 100})
    assert small.json()["buckets"][0]["matched"] > base.json()["buckets"][0]["matched"]
    config = from_dict({"preset": "notebook", "matching": {"iou_threshold": 0.3}}).to_dict()
    job, _ = client.app.state.store.create_job(name="nb", config=config, total_steps=1)  # type: ignore[attr-defined]
    from_job = client.post("/api/priors/coverage", json={"job": job.id, "n": 100}).json()
    assert from_job["iou_threshold"] == 0.3
    # The draft goes over the job's config.
    draft = client.post(
        "/api/priors/coverage", json={"job": job.id, "config": {"matching": {"iou_threshold": 0.6}}, "n": 100}
    ).json()
    assert draft["iou_threshold"] == 0.6
    assert client.post("/api/priors/coverage", json={"n": 0}).status_code == 422
    assert client.post("/api/priors/coverage", json={"n": 2001}).status_code == 422


def test_cells_of_a_size_the_strides_do_not_divide(client: TestClient) -> None:
    """At 120 px, stride 16 gives 8 cells spread over the image (pitch 15, centres 7.5 + 15 k):
    the layers the page draws from put every cell's priors where make_priors does."""
    draft = {"data": {"image_size": 120, "scale_range": [0.8, 2.0]}}
    body = client.post("/api/priors/explore", json={"config": draft, "index": 0, "layer": 2, "cell": [7, 3]}).json()
    layer = body["layers"][2]
    assert layer["stride"] == 16 and layer["grid"] == [8, 8]
    assert (layer["step"], layer["offset"]) == (15.0, 7.5)
    assert [(lay["step"], lay["offset"]) for lay in body["layers"][:2]] == [(4.0, 2.0), (8.0, 4.0)]  # they divide
    cx, cy = 7.5 + 3 * 15, 7.5 + 7 * 15
    for prior, (w, h) in zip(body["selection"]["priors"], layer["shapes"], strict=True):
        assert prior["box"] == [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
