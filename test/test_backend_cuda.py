"""CudaBackend (PyTorch + CUDA graphs) against ONNX Runtime FP32: raw head and detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _yolo_models import TEST_IMGSZ, letterbox_images
from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.postprocess import postprocess
from yolov8_trt_ros.core.types import EngineOutput, Letterbox

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL = REPO / "models/test/yolov8n_synth.onnx"
VAL_IMAGES = REPO / "data/synth/detection/images/val"


def test_without_a_gpu_it_is_a_backend_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

    with pytest.raises(BackendError, match="no CUDA GPU"):
        CudaBackend(EngineConfig(model_path=str(tmp_path / "m.onnx")))


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> tuple[Path, np.ndarray]:
    """The trained test model on val images if present, else a seeded yolov8n saved as .pt + ONNX."""
    if TEST_MODEL.is_file() and TEST_MODEL.with_suffix(".pt").is_file():
        paths = sorted(VAL_IMAGES.glob("*.jpg"))[:16] or [assets_dir / "bus.jpg", assets_dir / "zidane.jpg"]
        size = OnnxRuntimeBackend(EngineConfig(model_path=str(TEST_MODEL))).info.input_height
        return TEST_MODEL, letterbox_images(paths, size)
    from ultralytics import YOLO

    from yolov8_trt_ros.core.export import export_onnx

    tmp = tmp_path_factory.mktemp("cuda_model")
    torch.manual_seed(0)
    YOLO("yolov8n.yaml").save(str(tmp / "seeded.pt"))
    onnx_path = export_onnx(tmp / "seeded.pt", tmp / "seeded.onnx", imgsz=TEST_IMGSZ)
    return onnx_path, letterbox_images([assets_dir / "bus.jpg", assets_dir / "zidane.jpg"])


def _backends(onnx_path: Path, precision: str, **kw):
    """The CUDA backend in its raw-head form (``end2end_nms=False``) and ONNX Runtime FP32."""
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

    kw.setdefault("end2end_nms", False)
    cuda = CudaBackend(EngineConfig(model_path=str(onnx_path), precision=precision, max_batch_size=16, **kw))
    ort = OnnxRuntimeBackend(EngineConfig(model_path=str(onnx_path), precision="fp32", max_batch_size=16))
    return cuda, ort


@pytest.mark.gpu
def test_fp32_raw_head_matches_onnxruntime(model_and_images) -> None:
    onnx_path, images = model_and_images
    cuda, ort = _backends(onnx_path, "fp32")
    ref = ort.infer(images).raw
    for graph_batch in (images, images[:1]):  # two batch sizes: two captured graphs
        out = cuda.infer(torch.from_numpy(graph_batch).cuda()).raw
        assert isinstance(out, torch.Tensor) and out.is_cuda and out.dtype == torch.float32
        n = len(graph_batch)
        np.testing.assert_allclose(out.cpu().numpy(), ref[:n], rtol=1e-3, atol=2e-3)
    cuda.close()


@pytest.mark.gpu
def test_outputs_are_not_overwritten_by_the_next_replay(model_and_images) -> None:
    onnx_path, images = model_and_images
    cuda, _ = _backends(onnx_path, "fp16")
    x = torch.from_numpy(images).cuda().half()
    first = cuda.infer(x).raw
    kept = first.clone()
    second = cuda.infer(torch.flip(x, dims=[0])).raw  # different input, same batch: same graph
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    torch.testing.assert_close(second, torch.flip(kept, dims=[0]), rtol=2e-2, atol=0.5)
    cuda.close()
    with pytest.raises(BackendError, match="closed"):
        cuda.infer(x)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_detections_match_onnxruntime_fp32(model_and_images, precision: str) -> None:
    """Every ORT FP32 detection has a same-class CUDA detection with IoU >= 0.95."""
    from ultralytics.utils.metrics import box_iou
    from ultralytics.utils.nms import non_max_suppression

    onnx_path, images = model_and_images
    if onnx_path != TEST_MODEL:
        pytest.skip("needs the trained test model: an untrained one detects nothing")
    cuda, ort = _backends(onnx_path, precision)
    ref = non_max_suppression(torch.from_numpy(ort.infer(images).raw), 0.25, 0.45)
    got = non_max_suppression(cuda.infer(torch.from_numpy(images).cuda()).raw.cpu(), 0.25, 0.45)
    matched = total = 0
    for r, g in zip(ref, got, strict=True):
        assert abs(len(r) - len(g)) <= max(1, len(r) // 10)
        if len(r) == 0 or len(g) == 0:
            continue
        iou = box_iou(r[:, :4], g[:, :4])
        iou[r[:, 5][:, None] != g[:, 5][None, :]] = 0
        matched += int((iou.max(dim=1).values >= 0.95).sum())
        total += len(r)
    assert total > 0
    assert matched >= 0.98 * total, f"{matched}/{total} detections matched"
    cuda.close()


@pytest.mark.gpu
def test_input_checks(model_and_images) -> None:
    onnx_path, images = model_and_images
    cuda, _ = _backends(onnx_path, "fp16")
    with pytest.raises(BackendError, match="shape"):
        cuda.infer(torch.zeros((1, 3, 32, 32), device="cuda"))
    with pytest.raises(BackendError, match="dtype"):
        cuda.infer(torch.zeros((1, *images.shape[1:]), dtype=torch.uint8, device="cuda"))
    cuda.close()


@pytest.mark.gpu
def test_missing_weights_is_a_backend_error(tmp_path: Path) -> None:
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

    with pytest.raises(BackendError, match=r"\.pt"):
        CudaBackend(EngineConfig(model_path=str(tmp_path / "nothing.onnx")))


# ---- the end-to-end form: GPU NMS in the graph, asynchronous outputs ------------------------
def _identity_letterboxes(images: np.ndarray) -> list[Letterbox]:
    h, w = images.shape[2:]
    return [Letterbox.fit(w, h, w, h) for _ in range(len(images))]


@pytest.mark.gpu
def test_gpu_nms_on_real_heads_matches_numpy(model_and_images) -> None:
    """The detection end on the network's own heads (real images), bit for bit."""
    from yolov8_trt_ros.core.postprocess_gpu import GpuNms, unpack

    onnx_path, images = model_and_images
    cuda, _ = _backends(onnx_path, "fp16")
    head = cuda.infer(torch.from_numpy(images).cuda()).raw
    lbs = _identity_letterboxes(images)
    for cfg in (
        PostprocessConfig(num_classes=cuda.info.num_classes),
        PostprocessConfig(num_classes=cuda.info.num_classes, conf_threshold=0.01, class_agnostic=True),
        PostprocessConfig(num_classes=cuda.info.num_classes, conf_threshold=0.001, iou_threshold=0.7),
    ):
        nms = GpuNms(cfg, cfg.num_classes, int(head.shape[-1]), len(images), cuda.device)
        count, boxes, scores, classes = unpack(nms.enqueue(head).cpu().numpy(), cfg.max_detections)
        nms.close()
        got = postprocess(EngineOutput(None, count, boxes, scores, classes), lbs, cfg)
        ref = postprocess(EngineOutput(raw=head.cpu().numpy()), lbs, cfg)
        assert [len(g) for g in got] == [len(r) for r in ref]
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(g.boxes, r.boxes)
            np.testing.assert_array_equal(g.scores, r.scores)
            np.testing.assert_array_equal(g.class_ids, r.class_ids)
    cuda.close()


@pytest.mark.gpu
@pytest.mark.parametrize("graph", [True, False])
def test_end_to_end_outputs_are_asynchronous_and_never_overwritten(model_and_images, graph: bool) -> None:
    """More batches in flight than pinned slots, none waited for: each still gets its own results."""
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

    onnx_path, images = model_and_images
    post = PostprocessConfig(conf_threshold=0.05)
    nms = CudaBackend(
        EngineConfig(model_path=str(onnx_path), precision="fp16", max_batch_size=4, cuda_graph=graph), post
    )
    assert nms.info.has_nms
    post = post.replace(num_classes=nms.info.num_classes)
    x = torch.from_numpy(images[:4]).cuda().half()
    inputs = [x, torch.flip(x, dims=[0]), x[:2], x[1:4]]
    lbs = [_identity_letterboxes(i) for i in inputs]
    refs = [postprocess(nms.infer(i).wait(), lb, post) for i, lb in zip(inputs, lbs, strict=True)]
    assert sum(len(d) for d in refs[0]) > 0
    outputs = [nms.infer(inputs[k % 4]) for k in range(10)]
    assert all(o.pending is not None for o in outputs[-3:])  # infer did not wait for them
    for k, out in enumerate(outputs):
        got = postprocess(out, lbs[k % 4], post)
        assert [len(g) for g in got] == [len(r) for r in refs[k % 4]]
        for g, r in zip(got, refs[k % 4], strict=True):
            np.testing.assert_array_equal(g.boxes, r.boxes)
            np.testing.assert_array_equal(g.scores, r.scores)
            np.testing.assert_array_equal(g.class_ids, r.class_ids)
    nms.close()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_end_to_end_detections_match_ultralytics_on_onnxruntime(model_and_images, precision: str) -> None:
    """GPU NMS detections vs ultralytics' NMS on ONNX Runtime FP32 heads (same-class IoU >= 0.95)."""
    from ultralytics.utils.metrics import box_iou
    from ultralytics.utils.nms import non_max_suppression

    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

    onnx_path, images = model_and_images
    if onnx_path != TEST_MODEL:
        pytest.skip("needs the trained test model: an untrained one detects nothing")
    post = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45)
    cuda = CudaBackend(EngineConfig(model_path=str(onnx_path), precision=precision, max_batch_size=16), post)
    _, ort = _backends(onnx_path, "fp32")
    ref = non_max_suppression(torch.from_numpy(ort.infer(images).raw), 0.25, 0.45)
    got = postprocess(
        cuda.infer(torch.from_numpy(images).cuda()),
        _identity_letterboxes(images),
        post.replace(num_classes=cuda.info.num_classes),
    )
    matched = total = 0
    for r, g in zip(ref, got, strict=True):
        assert abs(len(r) - len(g)) <= max(1, len(r) // 10)
        if len(r) == 0 or len(g) == 0:
            continue
        iou = box_iou(r[:, :4], torch.from_numpy(g.boxes))
        iou[r[:, 5][:, None] != torch.from_numpy(g.class_ids)[None, :].float()] = 0
        matched += int((iou.max(dim=1).values >= 0.95).sum())
        total += len(r)
    assert total > 0
    assert matched >= 0.98 * total, f"{matched}/{total} detections matched"
    cuda.close()


@pytest.mark.gpu
def test_fast_path_for_the_preprocessor_output_equals_the_general_path() -> None:
    """The preprocessor's buffer on the engine stream skips torch on the host: same detections."""
    from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend
    from yolov8_trt_ros.core.config import PreprocessConfig
    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor
    from yolov8_trt_ros.core.sources import iter_frames

    post = PostprocessConfig(conf_threshold=0.05)
    backend = CudaBackend(EngineConfig(model_path=str(TEST_MODEL), precision="fp16", max_batch_size=4), post)
    info = backend.info
    pre = CudaPreprocessor(
        PreprocessConfig(input_width=info.input_width, input_height=info.input_height, fp16=True),
        stream=backend.stream,
    )
    post = post.replace(num_classes=info.num_classes)
    try:
        frames = list(iter_frames("synthetic:0", synthetic_frames=3))
        tensor, lbs = pre(frames, ["bgr8"] * 3)
        general = postprocess(backend.infer(torch.as_tensor(tensor, device="cuda").clone()), lbs, post)
        fast_out = backend._fast_infer(tensor)  # the graph for batch 3 exists now
        assert fast_out is not None
        fast = postprocess(fast_out, lbs, post)
        assert sum(len(d) for d in general) > 0
        for g, f in zip(general, fast, strict=True):
            np.testing.assert_array_equal(f.boxes, g.boxes)
            np.testing.assert_array_equal(f.scores, g.scores)
            np.testing.assert_array_equal(f.class_ids, g.class_ids)
    finally:
        pre.close()
        backend.close()


@pytest.mark.gpu
def test_a_batch_sizes_graph_survives_the_capture_of_another(model_and_images) -> None:
    """Regression: ultralytics' Detect replaces its cached anchors when the batch size changes;
    the batch-4 graph, replayed after the batch-2 graph was captured, read freed memory."""
    onnx_path, images = model_and_images
    cuda, _ = _backends(onnx_path, "fp16")
    x = torch.from_numpy(images[:4]).cuda().half()
    first = cuda.infer(x).raw.clone()
    cuda.infer(x[:2])  # captures batch 2: Detect recomputes its anchors
    anchors = first.shape[-1]
    junk = [  # take the freed anchor/stride blocks (their sizes) and fill them with nonsense
        torch.full((n,), 1e4, dtype=dtype, device="cuda")
        for n in (2 * anchors, anchors)
        for dtype in (torch.float16, torch.float32)
        for _ in range(8)
    ]
    again = cuda.infer(x).raw
    del junk
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    cuda.close()
