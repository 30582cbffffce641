"""ONNX export: shapes, metadata, reproducibility, and agreement with the PyTorch model."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from _yolo_models import TEST_IMGSZ, yaml_onnx, yaml_torch_model
from yolov8_trt_ros.core.backends.model_info import META_EXPORT_ARGS, META_SOURCE_SHA256, read_model_info
from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.core.export import export_onnx

REPO = Path(__file__).resolve().parents[1]


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_has_dynamic_batch_fixed_size_and_opset_17() -> None:
    model = onnx.load(str(yaml_onnx()))
    anchors = sum((TEST_IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert _dims(model.graph.input[0]) == ["batch", 3, TEST_IMGSZ, TEST_IMGSZ]
    assert _dims(model.graph.output[0]) == ["batch", 84, anchors]
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    onnx.checker.check_model(model, full_check=True)


def test_metadata_is_ultralytics_compatible_and_ours() -> None:
    info = read_model_info(yaml_onnx())
    assert info.class_names == tuple(str(i) for i in range(80))  # yaml models name classes by index
    assert info.stride == 32 and info.metadata["task"] == "detect"
    assert json.loads(info.metadata[META_EXPORT_ARGS])["opset"] == 17
    assert len(info.metadata[META_SOURCE_SHA256]) == 64
    assert "date" not in info.metadata  # would break reproducibility


def test_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    """A second export in a fresh process (fresh RNG, fresh tracer state) is byte-identical."""
    out = tmp_path / "again.onnx"
    cmd = [sys.executable, str(REPO / "scripts/export_onnx.py"), "--weights", "yolov8n.yaml"]
    subprocess.run([*cmd, "--imgsz", str(TEST_IMGSZ), "--output", str(out)], check=True, capture_output=True)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(yaml_onnx().read_bytes()).digest()


def test_pt_checkpoint_exports_like_its_architecture(tmp_path: Path) -> None:
    """A saved ``.pt`` of the seeded model exports to the same network, hashed by file."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    pt = tmp_path / "seeded.pt"
    YOLO("yolov8n.yaml").save(str(pt))
    onnx_path = export_onnx(pt, tmp_path / "seeded.onnx", imgsz=TEST_IMGSZ)
    info = read_model_info(onnx_path)
    assert info.metadata[META_SOURCE_SHA256] == hashlib.sha256(pt.read_bytes()).hexdigest()
    x = np.random.default_rng(1).random((3, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    out = OnnxRuntimeBackend(EngineConfig(model_path=str(onnx_path))).infer(x).raw
    with torch.no_grad():
        ref = yaml_torch_model()(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx("yolov8n.yaml", tmp_path / "x.onnx", imgsz=100)
    assert not (tmp_path / "x.onnx").exists()
