"""TensorRT backend: its TensorRT-free bookkeeping everywhere, the engine itself where TensorRT exists."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _yolo_models import TEST_IMGSZ, letterbox_images, yaml_onnx
from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.io_plan import (
    NMS_OUTPUTS,
    TensorSpec,
    check_input,
    cuda_array_view,
    engine_output,
    plan_buffers,
)
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.types import Letterbox

REPO = Path(__file__).resolve().parents[1]
F32, F16, I32 = np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int32)


# ------------------------------------------------------------------ no TensorRT needed


def test_buffers_are_sized_for_the_largest_batch() -> None:
    specs = [
        TensorSpec("images", True, (-1, 3, 640, 640), F16),
        TensorSpec("num_dets", False, (-1, 1), I32),
        TensorSpec("det_boxes", False, (-1, 300, 4), F32),
    ]
    sizes = plan_buffers(specs, max_batch=8)
    assert sizes == {"images": 8 * 3 * 640 * 640 * 2, "num_dets": 8 * 4, "det_boxes": 8 * 300 * 4 * 4}
    assert specs[0].nbytes(3) == 3 * 3 * 640 * 640 * 2
    fixed = TensorSpec("out", False, (1, 84, 8400), F32)
    assert fixed.shape_for(5) == (1, 84, 8400)  # a static batch stays as built
    with pytest.raises(BackendError, match="dynamic non-batch"):
        TensorSpec("x", True, (-1, 3, -1, 640), F32).shape_for(1)
    with pytest.raises(BackendError):
        plan_buffers(specs, 0)


class _FakeCudaArray:
    """Just the CUDA Array Interface, as torch/CuPy expose it."""

    def __init__(self, shape, typestr="<f4", strides=None, stream=None, ptr=0xDEAD000) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": typestr,
            "data": (ptr, False),
            "strides": strides,
            "version": 3,
            "stream": stream,
        }


def test_cuda_array_view_reads_pointer_shape_dtype_and_stream() -> None:
    view = cuda_array_view(_FakeCudaArray((2, 3, 64, 64), "<f2", stream=7))
    assert (view.ptr, view.shape, view.dtype, view.stream) == (0xDEAD000, (2, 3, 64, 64), F16, 7)
    contiguous = (3 * 64 * 64 * 4, 64 * 64 * 4, 64 * 4, 4)
    assert cuda_array_view(_FakeCudaArray((1, 3, 64, 64), strides=contiguous)).stream is None
    with pytest.raises(BackendError, match="C-contiguous"):
        cuda_array_view(_FakeCudaArray((1, 3, 64, 64), strides=(4, 4, 4, 4)))
    with pytest.raises(BackendError, match="not a CUDA array"):
        cuda_array_view(np.zeros((1, 3, 64, 64), np.float32))


def test_check_input_names_the_problem() -> None:
    spec = TensorSpec("images", True, (-1, 3, 64, 64), F16)
    assert check_input((4, 3, 64, 64), F16, spec, max_batch=4) == 4
    with pytest.raises(BackendError, match="shape"):
        check_input((4, 3, 64, 32), F16, spec, 4)
    with pytest.raises(BackendError, match="batch 5"):
        check_input((5, 3, 64, 64), F16, spec, 4)
    with pytest.raises(BackendError, match="dtype"):
        check_input((1, 3, 64, 64), F32, spec, 4)


def test_engine_output_maps_nms_tensors_and_copies() -> None:
    rng = np.random.default_rng(0)
    host = {
        "num_dets": np.array([[2], [0], [9]], np.int32),
        "det_boxes": rng.random((3, 5, 4)).astype(np.float32),
        "det_scores": rng.random((3, 5)).astype(np.float16),
        "det_classes": rng.integers(0, 80, (3, 5)).astype(np.int32),
    }
    out = engine_output(host, batch=2, raw_name=None)
    assert out.has_nms and out.nms_count.tolist() == [2, 0]
    assert out.nms_boxes.shape == (2, 5, 4) and out.nms_scores.dtype == np.float32
    np.testing.assert_array_equal(out.nms_classes, host["det_classes"][:2])
    host["det_boxes"][:] = -1  # the pinned buffer is reused by the next inference
    assert (out.nms_boxes >= 0).all()
    raw = {"output0": rng.random((4, 84, 10)).astype(np.float32)}
    res = engine_output(raw, batch=3, raw_name="output0")
    assert res.raw.shape == (3, 84, 10) and not np.shares_memory(res.raw, raw["output0"])
    with pytest.raises(BackendError):
        engine_output({"something": raw["output0"]}, 1, raw_name="output0")
    assert set(NMS_OUTPUTS) == {"num_dets", "det_boxes", "det_scores", "det_classes"}


# ------------------------------------------------------------------ TensorRT


def _ort_raw(onnx_path: Path, images: np.ndarray) -> np.ndarray:
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(EngineConfig(model_path=str(onnx_path), precision="fp32")).infer(images).raw


def _raw_fp16_engine(tmp_path: Path) -> Any:
    """The seeded yolov8n as an FP16 engine without NMS (raw head out), batch 1..2, CUDA graphs on."""
    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

    cfg = EngineConfig(
        model_path=str(yaml_onnx()),
        engine_cache_dir=str(tmp_path),
        precision="fp16",
        end2end_nms=False,
        max_batch_size=2,
    )
    return TensorRTBackend(cfg, PostprocessConfig())


@pytest.mark.tensorrt
@pytest.mark.slow
def test_fp16_engine_raw_head_matches_onnxruntime(tmp_path: Path, assets_dir: Path) -> None:
    images = letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"], TEST_IMGSZ)
    backend = _raw_fp16_engine(tmp_path)
    try:
        assert backend.info.input_fp16 and not backend.info.has_nms
        out = backend.infer(images.astype(np.float16)).wait().raw
        again = backend.infer(images.astype(np.float16)).wait().raw  # second run: from the CUDA graph
    finally:
        backend.close()
    ref = _ort_raw(yaml_onnx(), images)
    np.testing.assert_allclose(out[:, :4], ref[:, :4], rtol=1e-2, atol=0.5)  # pixels, FP16
    np.testing.assert_allclose(out[:, 4:], ref[:, 4:], rtol=5e-2, atol=1e-3)
    np.testing.assert_array_equal(out, again)


@pytest.mark.tensorrt
@pytest.mark.slow
def test_infer_returns_before_the_outputs_and_never_overwrites_them(tmp_path: Path, assets_dir: Path) -> None:
    """More batches in flight than pinned slots, none waited for: each keeps its own head."""
    images = letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"], TEST_IMGSZ).astype(
        np.float16
    )
    inputs = [images, images[::-1].copy(), images[:1], images[1:]]
    backend = _raw_fp16_engine(tmp_path)
    try:
        refs = [backend.infer(x).wait().raw for x in inputs]
        outputs = [backend.infer(inputs[k % 4]) for k in range(10)]
        assert outputs[-1].pending is not None  # infer did not wait
        for k, out in enumerate(outputs):
            np.testing.assert_array_equal(out.wait().raw, refs[k % 4])
        held = backend.infer(images)
    finally:
        backend.close()
    np.testing.assert_array_equal(held.wait().raw, refs[0])  # close() kept a copy for it


@pytest.mark.tensorrt
@pytest.mark.slow
def test_fp16_engine_with_nms_matches_onnxruntime_detections(
    tmp_path: Path, assets_dir: Path, caplog
) -> None:
    """Same detections as ONNX Runtime + the CPU postprocess on the trained test model, cache reused."""
    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend
    from yolov8_trt_ros.core.postprocess import postprocess

    model = REPO / "models/test/yolov8n_synth.onnx"
    if not model.is_file():
        pytest.skip("the trained test model models/test/yolov8n_synth.onnx is not built")
    val = sorted((REPO / "data/synth/detection/images/val").glob("*.jpg"))[:8]
    if not val:
        pytest.skip("regenerate the synthetic data set (scripts/make_synthetic_data.py)")
    post = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45, num_classes=10)
    cfg = EngineConfig(
        model_path=str(model), engine_cache_dir=str(tmp_path), precision="fp16", max_batch_size=1
    )
    backend = TensorRTBackend(cfg, post)
    images = letterbox_images(val, backend.info.input_height)
    try:
        trt_out = [backend.infer(images[i : i + 1].astype(np.float16)) for i in range(len(images))]
    finally:
        backend.close()
    with caplog.at_level(logging.INFO):
        TensorRTBackend(cfg, post).close()
    assert "no cached engine" not in caplog.text  # second start: loaded from the cache
    lb = [Letterbox.fit(images.shape[3], images.shape[2], images.shape[3], images.shape[2])]
    for i, out in enumerate(trt_out):
        ref = postprocess(_ort_output(model, images[i : i + 1]), lb, post)[0]
        got = postprocess(out, lb, post)[0]
        assert abs(len(got) - len(ref)) <= max(1, len(ref) // 10)
        for box, cls in zip(ref.boxes, ref.class_ids, strict=True):
            same = got.boxes[got.class_ids == cls]
            assert len(same) and _iou(box, same).max() >= 0.95


def _ort_output(model: Path, image: np.ndarray):
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(EngineConfig(model_path=str(model), precision="fp32")).infer(image)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


# --- TensorRT layer timing: core/profiling.py's LayerProfiler through the backend -----------
@pytest.mark.tensorrt
@pytest.mark.slow
def test_tensorrt_backend_reports_layer_times_of_every_inference(tmp_path, assets_dir):
    from yolov8_trt_ros.core.profiling import LayerProfiler

    images = letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"], TEST_IMGSZ)
    images = images.astype(np.float16)
    backend = _raw_fp16_engine(tmp_path)
    try:
        plain = backend.infer(images).wait().raw
        backend.infer(images)  # a CUDA graph for batch 2 exists from here on
        layers = LayerProfiler()
        backend.enable_layer_profiling(layers)
        assert backend.layer_profiler is layers
        runs, walls = 5, []
        for _ in range(runs):
            start = time.perf_counter()
            out = backend.infer(images).wait().raw
            walls.append((time.perf_counter() - start) * 1e3)
            np.testing.assert_array_equal(out, plain)  # profiling changes timing, not results
        # Every inference reported (the graph would have bypassed the profiler), every layer once each.
        assert layers.runs == runs
        medians = layers.medians()
        assert len(medians) >= 10  # YOLOv8n has dozens of layers even after TensorRT's fusions
        table = layers.markdown().splitlines()[4:]
        assert {int(row.split("|")[4]) for row in table} == {runs}
        # Layer times are device time inside the call, which also uploads and downloads.
        assert 0.0 < layers.total_median_ms() <= float(np.median(walls)) * 1.05
        backend.disable_layer_profiling()
        np.testing.assert_array_equal(backend.infer(images).wait().raw, plain)
        assert layers.runs == runs and backend.layer_profiler is None  # detached: no more reports
    finally:
        backend.close()
