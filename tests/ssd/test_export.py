"""Exports (ssd.export, ``ssdboard export``) detect what ``Detector.predict`` detects.

One tiny model (4 units, 64 px, float32) is trained for 40 steps per module, enough for real
detections at score > 0.05; each format is exported once and run by its own runtime
(TensorFlow, onnxruntime, LiteRT) on four validation images.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssd import export
from ssd.checkpoint import write_config
from ssd.cli import export as cli_export
from ssd.cli import main
from ssd.config import from_dict
from ssd.data import for_config
from ssd.detect import Detections, Detector, non_max_suppression
from ssd.train import train

CONFIG = {
    "name": "export-test",
    "model": {"num_units": 4},
    "priors": {"strides": [4, 8, 16], "scales": [[8, 12], [16, 20], [24, 32]], "ratios": [0.35, 0.6, 1.0]},
    "data": {"image_size": 64, "scale_range": [0.8, 1.5], "val_images": 16},
    "train": {"steps": 40, "batch_size": 8, "learning_rate": 0.003, "eval_images": 4, "precision": "float32"},
    "detect": {"score_threshold": 0.05, "max_detections": 20},
}
BOX_TOL, SCORE_TOL = 0.5, 1e-3  # the parity targets


@dataclass
class Trained:
    checkpoint: Path
    images: np.ndarray  # uint8 [4, 64, 64, 3]
    reference: list[Detections]  # Detector.predict on them
    num_classes: int
    num_priors: int


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    checkpoint = tmp_path_factory.mktemp("export") / "run"
    config = from_dict(CONFIG)
    train(config, checkpoint)
    detector = Detector.from_checkpoint(checkpoint)
    images, *_ = for_config(config, "val").batch(0, 4)
    reference = detector.predict(images)
    assert sum(len(d) for d in reference) >= 8, "the tiny model should detect something"
    return Trained(checkpoint, images, reference, config.model.num_classes, len(detector.priors(64)))


def padded_to_detections(out: dict[str, np.ndarray]) -> list[Detections]:
    """The padded [N, K] outputs of a SavedModel/ONNX export as Detections (entries < num_detections)."""
    return [
        Detections(out["boxes"][i, :n], out["scores"][i, :n], out["classes"][i, :n])
        for i, n in enumerate(out["num_detections"].tolist())
    ]


def check_padded(out: dict[str, np.ndarray], trained: Trained) -> None:
    k = CONFIG["detect"]["max_detections"]  # type: ignore[index]
    n = len(trained.images)
    assert out["boxes"].shape == (n, k, 4) and out["boxes"].dtype == np.float32
    assert out["scores"].shape == (n, k) and out["scores"].dtype == np.float32
    assert out["classes"].shape == (n, k) and out["classes"].dtype == np.int32
    assert out["num_detections"].shape == (n,)
    for i, count in enumerate(out["num_detections"].tolist()):
        assert not out["boxes"][i, count:].any() and not out["scores"][i, count:].any()
        assert (out["boxes"][i, :count, :2] >= 0).all() and (out["boxes"][i, :count, 2:] <= 64).all()


def assert_parity(trained: Trained, got: list[Detections]) -> None:
    parity = export.compare(trained.reference, got, box_tol=BOX_TOL, score_tol=SCORE_TOL)
    assert parity.same, parity
    assert parity.detections == sum(len(d) for d in trained.reference) > 0
    assert parity.max_box_diff <= BOX_TOL and parity.max_score_diff <= SCORE_TOL


def test_compare_pairs_by_class_box_and_score_by_hand() -> None:
    def dets(*items: tuple[list[float], float, int]) -> Detections:
        return Detections(
            np.array([b for b, _, _ in items], np.float32).reshape(-1, 4),
            np.array([s for _, s, _ in items], np.float32),
            np.array([c for _, _, c in items], np.int32),
        )

    ref = [dets(([0, 0, 10, 10], 0.9, 1), ([20, 20, 30, 30], 0.5, 2))]
    swapped = [dets(([20.25, 20, 30, 30], 0.5004, 2), ([0, 0, 10, 10], 0.9, 1))]  # order ignored
    p = export.compare(ref, swapped)
    assert p.same and p.max_box_diff == 0.25 and p.max_score_diff == pytest.approx(4e-4, abs=1e-6)
    assert not export.compare(ref, [dets(([0, 0, 10, 10], 0.9, 1), ([20, 20, 30, 30], 0.5, 3))]).same  # class
    assert not export.compare(ref, [dets(([0, 0, 10, 10], 0.9, 1), ([21, 20, 30, 30], 0.5, 2))]).same  # 1 px
    p = export.compare(ref, [dets(([0, 0, 10, 10], 0.9, 1))])  # one missing
    assert not p.same and p.unpaired == 1 and p.detections == 2


def test_savedmodel_has_nms_in_the_graph_and_matches_predict(trained: Trained, tmp_path: Path) -> None:
    import tensorflow as tf

    out = export.export(trained.checkpoint, "savedmodel", tmp_path / "saved")
    assert (out / "saved_model.pb").is_file()
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    spec = serve.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 64, 64, 3]
    result = {k: v.numpy() for k, v in serve(images=tf.constant(trained.images)).items()}
    check_padded(result, trained)
    assert_parity(trained, padded_to_detections(result))


def test_onnx_uses_onnx_nms_and_matches_predict(trained: Trained, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    path = export.export(trained.checkpoint, "onnx", tmp_path / "model.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "NonMaxSuppression" in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == ["boxes", "classes", "num_detections", "scores"]
    result = dict(zip(names, session.run(None, {"images": trained.images}), strict=True))
    check_padded(result, trained)
    assert_parity(trained, padded_to_detections(result))


def test_tflite_by_the_cli_has_builtin_ops_only_and_matches_predict(trained: Trained, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "model.tflite"
    assert main(["export", "--checkpoint", str(trained.checkpoint), "--format", "tflite", "--out", str(path)]) == 0
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in ops), ops
    run = interpreter.get_signature_runner("serving_default")
    result = run(images=trained.images)
    assert result["boxes"].shape == (4, trained.num_priors, 4)
    assert result["scores"].shape == (4, trained.num_priors, trained.num_classes)
    assert ((result["scores"] >= 0) & (result["scores"] <= 1)).all()
    config = Detector.from_checkpoint(trained.checkpoint).config.detect
    assert_parity(trained, non_max_suppression(result["boxes"], result["scores"], config=config))
    one = run(images=trained.images[1:2])  # any batch size
    np.testing.assert_allclose(one["scores"][0], result["scores"][1], atol=1e-5)


# ---------------------------------------------------------------------------- the command's errors


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_errors_name_the_option(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = str(trained.checkpoint)
    err = cli_error(capsys, "--checkpoint", str(tmp_path / "nothing"), "--format", "onnx", "--out", "m.onnx")
    assert "option --checkpoint:" in err and "config.json not found" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    err = cli_error(capsys, "--checkpoint", ckpt, "--format", "savedmodel", "--out", str(tmp_path / "full"))
    assert "option --out:" in err and "not empty" in err
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    err = cli_error(capsys, "--checkpoint", ckpt, "--format", "keras", "--out", "m")
    assert "--format" in err and "invalid choice" in err
    assert "Traceback" not in err


def test_cli_a_broken_checkpoint_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, from_dict(CONFIG))
    (tmp_path / "model.weights.h5").write_bytes(b"not HDF5")
    err = cli_error(capsys, "--checkpoint", str(tmp_path), "--format", "tflite", "--out", str(tmp_path / "m.tflite"))
    assert "option --checkpoint:" in err and "could not be loaded" in err
    assert not (tmp_path / "m.tflite").exists()


def test_a_missing_package_names_it_and_the_extra(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "tf2onnx" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    out = tmp_path / "m.onnx"
    err = cli_error(capsys, "--checkpoint", str(trained.checkpoint), "--format", "onnx", "--out", str(out))
    assert "option --format:" in err and "tf2onnx" in err and "pip install 'ssdboard[export]'" in err
    assert not out.exists()


def test_the_cli_knows_every_format() -> None:
    assert cli_export.FORMATS == export.FORMATS


def test_export_is_all_or_nothing(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(detector: Detector, out: Path) -> None:
        out.write_bytes(b"half")
        raise RuntimeError("converter crashed")

    monkeypatch.setitem(export.SAVERS, "tflite", fail)
    with pytest.raises(RuntimeError):
        export.export(trained.checkpoint, "tflite", tmp_path / "m.tflite")
    assert list(tmp_path.iterdir()) == []


def test_a_keras_applications_backbone_converts(tmp_path: Path) -> None:
    """MobileNetV2 with the SSD extra layers (no training: varied random heads) through ONNX and TFLite.

    Before NMS, so that the head's near-equal untrained scores cannot make NMS pick other ties.
    """
    import onnxruntime as ort
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter

    from ssd.model import build_ssd

    config = from_dict({"model": {"backbone": "mobilenet_v2"}, "data": {"image_size": 128}})
    model = build_ssd(config.model, config.priors, 128)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name.endswith(("_clf", "_loc")):
            layer.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in layer.get_weights()])
    model.save_weights(str(tmp_path / "model.weights.h5"))
    write_config(tmp_path, config)
    detector = Detector.from_checkpoint(tmp_path)
    images = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    serve = export.serving_function(detector, nms=False)
    want = {k: v.numpy() for k, v in serve(images).items()}
    assert want["scores"].shape == (2, len(detector.priors(128)), 10)

    tflite = export.export(tmp_path, "tflite", tmp_path / "m.tflite")
    got = Interpreter(model_path=str(tflite)).get_signature_runner()(images=images)
    onnx_model, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=export.ONNX_OPSET)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    got_onnx = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": images}), strict=True))
    for result in (got, got_onnx):
        np.testing.assert_allclose(result["boxes"], want["boxes"], atol=BOX_TOL)
        np.testing.assert_allclose(result["scores"], want["scores"], atol=SCORE_TOL)
