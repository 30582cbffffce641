"""OnnxRuntimeBackend against PyTorch on real photos, and its handling of bad models and inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from _yolo_models import TEST_IMGSZ, letterbox_images, yaml_onnx, yaml_torch_model
from yolov8_trt_ros.core.backends.base import Backend, BackendError
from yolov8_trt_ros.core.backends.model_info import parse_imgsz, parse_names, read_model_info
from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolov8_trt_ros.core.config import EngineConfig

REPO = Path(__file__).resolve().parents[1]


def _backend(path: Path, **kw) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(EngineConfig(model_path=str(path), **kw))


@pytest.fixture(scope="module")
def photos(assets_dir: Path) -> np.ndarray:
    return letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"])


def test_raw_output_matches_pytorch_on_real_images(photos: np.ndarray) -> None:
    backend = _backend(yaml_onnx())
    assert isinstance(backend, Backend)
    out = backend.infer(photos)
    with torch.no_grad():
        ref = yaml_torch_model()(torch.from_numpy(photos))[0].numpy()
    assert out.raw is not None and not out.has_nms
    anchors = sum((TEST_IMGSZ // stride) ** 2 for stride in (8, 16, 32))
    assert out.raw.shape == ref.shape == (2, 84, anchors)
    assert out.raw.dtype == np.float32
    np.testing.assert_allclose(out.raw, ref, rtol=1e-3, atol=1e-4)


def test_batch_equals_single_images(photos: np.ndarray) -> None:
    backend = _backend(yaml_onnx())
    both = backend.infer(photos).raw
    for i in range(len(photos)):
        np.testing.assert_allclose(backend.infer(photos[i : i + 1]).raw[0], both[i], rtol=1e-4, atol=1e-4)


def test_fixed_batch_model_runs_larger_batches_in_chunks(photos: np.ndarray) -> None:
    fixed = _backend(yaml_onnx(dynamic_batch=False), max_batch_size=4)
    dynamic = _backend(yaml_onnx())
    batch = np.concatenate([photos, photos[::-1], photos[:1]])  # 5 images > max_batch 4 is refused
    with pytest.raises(BackendError, match="batch 5"):
        fixed.infer(batch)
    np.testing.assert_allclose(fixed.infer(batch[:3]).raw, dynamic.infer(batch[:3]).raw, rtol=1e-4, atol=1e-4)


def test_info_comes_from_the_model(tmp_path: Path) -> None:
    backend = _backend(yaml_onnx(), num_threads=1, max_batch_size=3)
    info = backend.info
    assert (info.name, info.device, info.precision, info.has_nms) == ("onnxruntime", "cpu", "fp32", False)
    assert (info.input_width, info.input_height, info.max_batch_size) == (TEST_IMGSZ, TEST_IMGSZ, 3)
    assert info.num_classes == 80 == len(info.class_names) == len(backend.class_names)
    # Names written into the metadata are the ones reported.
    model = onnx.load(str(yaml_onnx()))
    names = {i: f"thing{i}" for i in range(80)}
    for prop in model.metadata_props:
        if prop.key == "names":
            prop.value = repr(names)
    path = tmp_path / "named.onnx"
    onnx.save(model, str(path))
    assert _backend(path).class_names[:3] == ["thing0", "thing1", "thing2"]


def test_metadata_parsing_is_safe() -> None:
    assert parse_names("{0: 'a', 2: 'c'}", 3) == ("a", "1", "c")
    assert parse_names('["x", "y"]', 2) == ("x", "y")
    assert parse_names("__import__('os').system('false')", 2) == ("0", "1")  # never evaluated
    assert parse_names(None, 1) == ("0",)
    assert parse_imgsz("[480, 640]") == (480, 640)
    assert parse_imgsz("320") == (320, 320)
    assert parse_imgsz("[0, -1]") is None and parse_imgsz("nonsense") is None


def test_missing_model_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        _backend(tmp_path / "nope.onnx")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_model_is_a_backend_error(tmp_path: Path, damage: str) -> None:
    data = yaml_onnx().read_bytes()
    path = tmp_path / "bad.onnx"
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        path.write_bytes(b"")
    with pytest.raises(BackendError):
        _backend(path)


def test_non_detection_model_is_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3072])
    graph = helper.make_graph([helper.make_node("Flatten", ["images"], ["y"])], "flat", [x], [y])
    path = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(BackendError, match="YOLOv8 head"):
        _backend(path)


def test_bad_inputs_are_backend_errors(photos: np.ndarray) -> None:
    backend = _backend(yaml_onnx(), max_batch_size=2)
    with pytest.raises(BackendError, match="shape"):
        backend.infer(photos[:, :, :-32])
    with pytest.raises(BackendError, match="shape"):
        backend.infer(photos[0])
    with pytest.raises(BackendError, match="dtype"):
        backend.infer((photos * 255).astype(np.uint8))
    with pytest.raises(BackendError, match="batch"):
        backend.infer(np.concatenate([photos, photos]))
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(photos)


def test_reads_input_size_of_a_dynamic_size_export_from_metadata(tmp_path: Path) -> None:
    """ultralytics' own ``dynamic=True`` export leaves H and W symbolic; ``imgsz`` then decides."""
    model = onnx.load(str(yaml_onnx()))
    for dim in (*model.graph.input[0].type.tensor_type.shape.dim[2:],):
        dim.dim_param = "size"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    info = read_model_info(path)
    assert (info.input_height, info.input_width) == (TEST_IMGSZ, TEST_IMGSZ)


@pytest.mark.slow
def test_trained_test_model_matches_its_pytorch_weights(assets_dir: Path) -> None:
    """The project's trained test model, where it exists: ONNX vs its own ``.pt``."""
    pt, onnx_path = REPO / "models/test/yolov8n_synth.pt", REPO / "models/test/yolov8n_synth.onnx"
    if not (pt.is_file() and onnx_path.is_file()):
        pytest.skip("models/test/yolov8n_synth.{pt,onnx} not built yet")
    from yolov8_trt_ros.core.export import load_torch_model

    backend = _backend(onnx_path)
    images = letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"], backend.info.input_height)
    with torch.no_grad():
        ref = load_torch_model(pt).float().eval()(torch.from_numpy(images))[0].numpy()
    np.testing.assert_allclose(backend.infer(images).raw, ref, rtol=1e-3, atol=1e-3)
