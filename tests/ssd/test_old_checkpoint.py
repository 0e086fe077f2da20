"""A checkpoint written before ``model.backbone``, ``model.extra_layers`` and ``priors.scales =
"auto"`` existed still loads and detects as it did.

``tests/fixtures/checkpoint_v1`` was trained for 40 steps by the code of commit e3640ab (a
4-unit notebook network at 64 px); ``expected_detections.json`` holds what that code detected on
the first four validation images (score >= 0.05, 10 a image).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ssd.checkpoint import read_config
from ssd.data import for_config
from ssd.detect import Detector

FIXTURE = Path(__file__).parent.parent / "fixtures" / "checkpoint_v1"


def test_a_checkpoint_from_before_backbones_loads_and_detects_the_same(tmp_path: Path) -> None:
    checkpoint = tmp_path / "v1"
    shutil.copytree(FIXTURE, checkpoint)
    raw = json.loads((checkpoint / "config.json").read_text())
    assert "backbone" not in raw["model"]  # really the old format
    config = read_config(checkpoint)
    assert config.model.backbone == "notebook" and config.model.extra_layers == 0
    detector = Detector.from_checkpoint(checkpoint)
    detector.config = replace(
        detector.config, detect=replace(detector.config.detect, score_threshold=0.05, max_detections=10)
    )
    images, *_ = for_config(detector.config, "val").batch(0, 4)
    expected = json.loads((checkpoint / "expected_detections.json").read_text())
    for got, want in zip(detector.predict(images), expected, strict=True):
        np.testing.assert_allclose(got.boxes, np.asarray(want["boxes"], np.float32).reshape(-1, 4), atol=0.01)
        np.testing.assert_allclose(got.scores, want["scores"], atol=1e-5)
        assert got.labels.tolist() == want["labels"]
