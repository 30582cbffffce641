"""Calibration images, the keyed calibration cache, and Q/DQ INT8 quantization with ONNX Runtime."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from _yolo_models import TEST_IMGSZ, kept_detections, letterbox_images, synthetic_splits, yaml_onnx
from yolov8_trt_ros.core.backends.model_info import int8_sibling, read_model_info
from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolov8_trt_ros.core.calibration import (
    META_QUANTIZATION,
    CalibrationError,
    CalibrationImages,
    CalibrationKey,
    head_tail_nodes,
    image_set_sha256,
    list_images,
    quantize_qdq,
    read_calibration_cache,
    write_calibration_cache,
)
from yolov8_trt_ros.core.config import EngineConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def image_dir(tmp_path: Path, assets_dir: Path) -> Path:
    d = tmp_path / "calib"
    (d / "sub").mkdir(parents=True)
    shutil.copy(assets_dir / "bus.jpg", d / "a.jpg")
    shutil.copy(assets_dir / "zidane.jpg", d / "sub" / "b.jpg")
    (d / "notes.txt").write_text("not an image")
    return d


def test_list_images_is_sorted_recursive_and_evenly_subsampled(tmp_path: Path, image_dir: Path) -> None:
    assert [p.name for p in list_images(image_dir)] == ["a.jpg", "b.jpg"]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(10):
        (many / f"{i:02d}.png").write_bytes(b"x")
    assert [p.stem for p in list_images(many, limit=4)] == ["00", "03", "06", "09"]
    with pytest.raises(CalibrationError, match="not found"):
        list_images(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        list_images(tmp_path / "empty")


def test_image_set_hash_follows_content(image_dir: Path) -> None:
    paths = list_images(image_dir)
    before = image_set_sha256(paths)
    data = bytearray(paths[0].read_bytes())
    data[-10] ^= 1
    paths[0].write_bytes(bytes(data))
    assert image_set_sha256(paths) != before


def test_batches_are_the_letterboxed_images(image_dir: Path) -> None:
    """Each batch holds its own images (not views of one reused buffer), as ultralytics letterboxes them."""
    images = CalibrationImages(image_dir, TEST_IMGSZ, TEST_IMGSZ, batch_size=2)
    (batch,) = list(images)
    assert len(images) == 1 and batch.shape == (2, 3, TEST_IMGSZ, TEST_IMGSZ) and batch.dtype == np.float32
    ref = letterbox_images(list_images(image_dir), TEST_IMGSZ)
    np.testing.assert_allclose(batch, ref, atol=1 / 255 + 1e-6)
    assert not np.allclose(batch[0], batch[1])
    assert len(CalibrationImages(image_dir, TEST_IMGSZ, TEST_IMGSZ, batch_size=3)) == 0  # no partial batch


KEY = CalibrationKey("ab" * 32, (3, 640, 640), "cd" * 32, 500, "entropy2", "8.5.2")


def test_calibration_cache_write_reuse_and_reject(tmp_path: Path, caplog) -> None:
    path = tmp_path / "yolov8n.calib"
    trt_bytes = b"TRT-8502-EntropyCalibration2\nimages: 3c010a14\n" + bytes(range(256))
    assert read_calibration_cache(path, KEY) is None  # absent: calibrate
    write_calibration_cache(path, KEY, trt_bytes)
    assert read_calibration_cache(path, KEY) == trt_bytes
    for change in (
        {"model_sha256": "ef" * 32},
        {"input_shape": (3, 320, 320)},
        {"image_set_sha256": "00" * 32},
    ):
        with caplog.at_level(logging.WARNING):
            assert read_calibration_cache(path, dataclasses.replace(KEY, **change)) is None
        assert next(iter(change)) in caplog.text
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert read_calibration_cache(path, KEY) is None
    assert "checksum" in caplog.text


def test_head_tail_nodes_keep_decode_in_float() -> None:
    model = onnx.load(str(yaml_onnx()))
    tail = set(head_tail_nodes(model))
    by_name = {n.name: n for n in model.graph.node}
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer[model.graph.output[0].name].name in tail  # the final concat
    assert {by_name[n].op_type for n in tail} >= {"Concat", "Sigmoid", "Softmax"}
    branch_convs = [n for n in model.graph.node if n.op_type == "Conv" and "/cv3." in n.name]
    assert branch_convs and not tail & {n.name for n in branch_convs}
    assert all(n.startswith("/model.22/") for n in tail)


@pytest.mark.slow
def test_qdq_model_runs_in_onnxruntime_close_to_fp32(
    tmp_path: Path, image_dir: Path, assets_dir: Path
) -> None:
    fp32 = tmp_path / "m.onnx"
    shutil.copy(yaml_onnx(), fp32)
    images = CalibrationImages(image_dir, TEST_IMGSZ, TEST_IMGSZ)
    out = quantize_qdq(fp32, images)
    assert out == int8_sibling(fp32) and out.name == "m.int8.onnx"
    info = read_model_info(out)
    assert info.is_qdq and info.precision == "int8"
    assert info.metadata["names"] == read_model_info(fp32).metadata["names"]
    meta = json.loads(info.metadata[META_QUANTIZATION])
    assert meta["image_set_sha256"] == images.sha256 and meta["per_channel"] and meta["excluded_nodes"] > 0
    # The untrained network has near-constant activations that ORT's percentile histogram
    # cannot bin: the default falls back to entropy and the metadata says which one ran.
    assert meta["method"] == "entropy"
    # precision=int8 on the FP32 path picks the Q/DQ sibling.
    int8 = OnnxRuntimeBackend(EngineConfig(model_path=str(fp32), precision="int8"))
    assert int8.info.precision == "int8" and "m.int8.onnx" in int8.info.detail
    x = letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"])
    ref = OnnxRuntimeBackend(EngineConfig(model_path=str(fp32), precision="fp32")).infer(x).raw
    got = int8.infer(x).raw
    # Boxes in pixels within a few pixels on average; class scores within 0.01.
    assert np.abs(got[:, :4] - ref[:, :4]).mean() < 2.0
    assert np.abs(got[:, 4:] - ref[:, 4:]).max() < 0.01
    with pytest.raises(CalibrationError, match="already quantized"):
        quantize_qdq(out, images, tmp_path / "again.onnx")
    with pytest.raises(CalibrationError, match="letterboxed"):
        quantize_qdq(fp32, CalibrationImages(image_dir, 640, 640), tmp_path / "wrong.onnx")


@pytest.mark.slow
def test_qdq_trained_model_keeps_its_detections(tmp_path: Path) -> None:
    """On the trained test model, 16 calibration images already keep >= 95 % of FP32 detections."""
    dirs = synthetic_splits(tmp_path, {"calib": 16, "val": 8})
    fp32 = tmp_path / "synth.onnx"
    shutil.copy(REPO / "models/test/yolov8n_synth.onnx", fp32)
    quantize_qdq(fp32, CalibrationImages(dirs["calib"], 640, 640, limit=16))
    images = letterbox_images(sorted(dirs["val"].glob("*.jpg")), 640)
    matched, total = kept_detections(_raw(fp32, "fp32", images), _raw(fp32, "int8", images))
    assert total > 20 and matched >= 0.95 * total, f"{matched}/{total}"


def _raw(path: Path, precision: str, images: np.ndarray) -> np.ndarray:
    return OnnxRuntimeBackend(EngineConfig(model_path=str(path), precision=precision)).infer(images).raw
