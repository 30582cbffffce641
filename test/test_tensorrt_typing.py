"""TensorRT builds from the file that carries the precision (strong typing), and custom-layer plugins.

Marked ``tensorrt``: they run where TensorRT and a GPU exist (a Jetson, a TensorRT container);
the decision itself is tested everywhere in ``test_network_typing.py``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _yolo_models import letterbox_images
from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.network_typing import OnnxFile, plan_typing
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.tracking.matching import iou_matrix
from yolov8_trt_ros.core.types import Letterbox

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models/test/yolov8n_synth.onnx"
pytestmark = [pytest.mark.tensorrt, pytest.mark.slow]


def _val(n: int = 6) -> list[Path]:
    images = sorted((REPO / "data/synth/detection/images/val").glob("*.jpg"))[:n]
    if not images or not MODEL.is_file():
        pytest.skip("needs the test model and the synthetic val images (make_synthetic_data.py)")
    return images


def _script(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO, check=True)


def _same_detections(cfg: EngineConfig, reference: Path, images: list[Path], iou: float) -> None:
    """The engine's detections equal ONNX Runtime's on ``reference`` (boxes at IoU >= ``iou``)."""
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend
    from yolov8_trt_ros.core.postprocess import postprocess

    post = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45, num_classes=10)
    backend = TensorRTBackend(cfg, post)
    ort = OnnxRuntimeBackend(EngineConfig(model_path=str(reference), precision="fp32"))
    batch = letterbox_images(images, backend.info.input_height)
    lb = [Letterbox.fit(batch.shape[3], batch.shape[2], batch.shape[3], batch.shape[2])]
    dtype = np.float16 if backend.info.input_fp16 else np.float32
    try:
        for i in range(len(batch)):
            x = batch[i : i + 1]
            got = postprocess(backend.infer(x.astype(dtype)).wait(), lb, post)[0]
            ref = postprocess(ort.infer(x), lb, post)[0]
            assert abs(len(got) - len(ref)) <= max(1, len(ref) // 10)
            for box, cls in zip(ref.boxes, ref.class_ids, strict=True):
                same = got.boxes[got.class_ids == cls]
                assert len(same), (i, cls)
                assert iou_matrix(box, same).max() >= iou
    finally:
        backend.close()


def test_fp16_onnx_builds_strongly_typed_and_matches_onnxruntime(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images = _val()
    model = tmp_path / MODEL.name
    shutil.copy(MODEL, model)
    _script("scripts/convert_fp16.py", "--model", str(model))
    cfg = EngineConfig(model_path=str(model), engine_cache_dir=str(tmp_path / "engines"), precision="fp16")
    with caplog.at_level(logging.INFO):
        _same_detections(cfg, model, images, iou=0.95)  # EfficientNMS_TRT in a strongly typed network
    assert f"(strong typing) from {model.stem}.fp16.onnx" in caplog.text


def test_fp16_without_its_file_is_converted_by_the_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No x.fp16.onnx: TensorRT >= 10 still builds FP16 strongly typed, from its own conversion."""
    images = _val()
    cfg = EngineConfig(model_path=str(MODEL), engine_cache_dir=str(tmp_path), precision="fp16")
    with caplog.at_level(logging.INFO):
        _same_detections(cfg, MODEL, images, iou=0.95)
    assert "FP16 ONNX for the strongly typed build" in caplog.text
    assert "(strong typing)" in caplog.text


def test_int8_qdq_onnx_builds_with_the_typing_its_version_needs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from yolov8_trt_ros.core.backends.tensorrt.common import TRT_VERSION

    images = _val()
    model = tmp_path / MODEL.name
    shutil.copy(MODEL, model)
    calib = REPO / "data/synth/detection/images/calib"
    if not any(calib.glob("*.jpg")):
        pytest.skip("needs the synthetic calib split (make_synthetic_data.py)")
    _script(
        "scripts/quantize_int8.py", "--model", str(model), "--calib-dir", str(calib), "--num-images", "64"
    )
    cfg = EngineConfig(model_path=str(model), engine_cache_dir=str(tmp_path / "engines"), precision="int8")
    with caplog.at_level(logging.INFO):
        _same_detections(cfg, model, images, iou=0.8)
    expected = plan_typing(TRT_VERSION, "int8", OnnxFile(model), int8_sibling=OnnxFile(Path("q"), qdq=True))
    assert f"({expected.typing} typing) from {model.stem}.int8.onnx" in caplog.text


def test_a_missing_plugin_library_is_named(tmp_path: Path) -> None:
    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

    missing = tmp_path / "libnot_there.so"
    cfg = EngineConfig(
        model_path=str(MODEL), engine_cache_dir=str(tmp_path), plugin_libraries=(str(missing),)
    )
    with pytest.raises(BackendError, match=r"libnot_there\.so"):
        TensorRTBackend(cfg, PostprocessConfig())


def test_a_custom_layer_without_its_plugin_says_which_parameter_loads_it(tmp_path: Path) -> None:
    """An ONNX node TensorRT has no importer or plugin for: the error points at plugin_libraries."""
    import onnx

    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

    model = onnx.load(str(MODEL))
    out = model.graph.output[0].name
    node = next(n for n in model.graph.node if out in n.output)
    node.output[0] = "before_custom"
    model.graph.node.append(
        onnx.helper.make_node("MyCustomLayer_TRT", ["before_custom"], [out], domain="custom.ops")
    )
    model.opset_import.append(onnx.helper.make_opsetid("custom.ops", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    cfg = EngineConfig(model_path=str(path), engine_cache_dir=str(tmp_path), precision="fp16")
    with pytest.raises(BackendError, match="MyCustomLayer_TRT"):
        TensorRTBackend(cfg, PostprocessConfig())


def test_inmslayer_builds_the_nms_where_efficientnms_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback NMS path (no EfficientNMS_TRT plugin) gives ONNX Runtime's detections."""
    from yolov8_trt_ros.core.backends.tensorrt import build

    images = _val()
    monkeypatch.setattr(build, "efficient_nms_creator", lambda: None)
    cfg = EngineConfig(model_path=str(MODEL), engine_cache_dir=str(tmp_path), precision="fp16")
    with caplog.at_level(logging.INFO):
        _same_detections(cfg, MODEL, images, iou=0.95)
    assert "INMSLayer (no EfficientNMS_TRT plugin" in caplog.text
