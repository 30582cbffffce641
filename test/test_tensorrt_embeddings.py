"""TensorRT with embeddings (issue 12): the output plan everywhere, the engine where TensorRT exists.

The engine tests (marked ``tensorrt``, run on a Jetson or a TensorRT container) build the test
model that has an ``embeddings`` output: with NMS in the engine (INMSLayer + gather, see
``backends/tensorrt/plugins.py``), the kept detections' embeddings against ONNX Runtime's on the
same detections (cosine >= 0.99) and against the raw engine's per-anchor embeddings at the
anchor of each kept box; without NMS, the per-anchor embeddings against ONNX Runtime's. A model
without the output still builds EfficientNMS_TRT and gives no embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _embedding_refs import iou_matrix, onnxruntime_detections, synthetic_batch

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.io_plan import (
    EMBEDDINGS_OUTPUT,
    NMS_EMBEDDINGS,
    NMS_OUTPUTS,
    TensorSpec,
    embedding_dim,
    engine_output,
    plan_buffers,
    raw_output_name,
)
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.types import Letterbox

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL = REPO / "models/test/yolov8n_synth.onnx"
F32, I32 = np.dtype(np.float32), np.dtype(np.int32)


# ------------------------------------------------------------------ no TensorRT needed
def test_engine_output_carries_the_embeddings_of_either_form() -> None:
    rng = np.random.default_rng(0)
    nms: dict[str, np.ndarray] = {
        "num_dets": np.array([[2], [1], [0]], np.int32),
        "det_boxes": rng.random((3, 5, 4), dtype=np.float32),
        "det_scores": rng.random((3, 5), dtype=np.float32),
        "det_classes": rng.integers(0, 9, (3, 5)).astype(np.int32),
        NMS_EMBEDDINGS: rng.standard_normal((3, 5, 8)).astype(np.float16),
    }
    out = engine_output(nms, batch=2, raw_name=None)
    assert out.embeddings is not None and out.embeddings.dtype == np.float32
    np.testing.assert_array_equal(out.embeddings, nms[NMS_EMBEDDINGS][:2].astype(np.float32))
    nms[NMS_EMBEDDINGS][:] = 0  # the pinned buffer is reused by the next inference
    assert out.embeddings.any()
    del nms[NMS_EMBEDDINGS]
    assert engine_output(nms, batch=2, raw_name=None).embeddings is None
    raw = {
        "output0": rng.random((2, 14, 21), dtype=np.float32),
        EMBEDDINGS_OUTPUT: rng.random((2, 8, 21), dtype=np.float32),
    }
    res = engine_output(raw, batch=1, raw_name=raw_output_name(list(raw)[::-1], "output0"))
    np.testing.assert_array_equal(res.raw, raw["output0"][:1])
    np.testing.assert_array_equal(res.embeddings, raw[EMBEDDINGS_OUTPUT][:1])
    assert not np.shares_memory(res.embeddings, raw[EMBEDDINGS_OUTPUT])


def test_raw_output_name_is_the_head_never_the_embeddings() -> None:
    assert raw_output_name([EMBEDDINGS_OUTPUT, "output0"], "output0") == "output0"
    assert raw_output_name([EMBEDDINGS_OUTPUT, "head"], "output0") == "head"  # renamed by the parser
    assert raw_output_name(["output0"], "output0") == "output0"
    with pytest.raises(BackendError, match="raw head"):
        raw_output_name([EMBEDDINGS_OUTPUT, "a", "b"], "output0")


def test_embedding_dim_and_buffers_of_an_engine_with_embeddings() -> None:
    nms_specs = [
        TensorSpec("images", True, (-1, 3, 640, 640), np.dtype(np.float16)),
        TensorSpec("num_dets", False, (-1, 1), I32),
        TensorSpec("det_boxes", False, (-1, 300, 4), F32),
        TensorSpec("det_scores", False, (-1, 300), F32),
        TensorSpec("det_classes", False, (-1, 300), I32),
        TensorSpec(NMS_EMBEDDINGS, False, (-1, 300, 64), F32),
    ]
    assert embedding_dim(nms_specs[1:]) == 64
    assert plan_buffers(nms_specs, 4)[NMS_EMBEDDINGS] == 4 * 300 * 64 * 4  # D*4 bytes a slot
    raw_specs = [
        TensorSpec("output0", False, (-1, 84, 8400), F32),
        TensorSpec(EMBEDDINGS_OUTPUT, False, (-1, 64, 8400), F32),
    ]
    assert embedding_dim(raw_specs) == 64
    assert embedding_dim(nms_specs[1:5]) == 0 and embedding_dim(raw_specs[:1]) == 0
    assert NMS_EMBEDDINGS not in NMS_OUTPUTS  # the four EfficientNMS outputs stay as they were


# ------------------------------------------------------------------ TensorRT
def _backend(tmp_path: Path, precision: str, end2end_nms: bool) -> Any:
    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

    if not TEST_MODEL.is_file():
        pytest.skip(f"{TEST_MODEL} is not built")
    post = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45, num_classes=10)
    cfg = EngineConfig(
        model_path=str(TEST_MODEL),
        engine_cache_dir=str(tmp_path),
        precision=precision,
        max_batch_size=4,
        end2end_nms=end2end_nms,
    )
    return TensorRTBackend(cfg, post), post


def _inputs(size: tuple[int, int]) -> np.ndarray:
    frames, _ = synthetic_batch(size, 3)
    noise = np.random.default_rng().random((1, 3, *size), dtype=np.float32)  # a fresh random image
    return np.concatenate((frames, noise))


@pytest.mark.tensorrt
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_nms_embeddings_match_onnxruntime_on_the_same_detections(
    tmp_path: Path, precision: str
) -> None:
    from yolov8_trt_ros.core.postprocess import postprocess

    backend, post = _backend(tmp_path, precision, end2end_nms=True)
    size = (backend.info.input_height, backend.info.input_width)
    x = _inputs(size)
    ref, _ = onnxruntime_detections(TEST_MODEL, x, post)  # skips while the ONNX has no embeddings
    assert backend.embedding_dim > 0
    identity = [Letterbox.fit(size[1], size[0], size[1], size[0])] * len(x)
    images = x.astype(np.float16) if backend.info.input_fp16 else x
    outs = [backend.infer(images) for _ in range(6)]  # more batches in flight than pinned slots
    got = postprocess(outs[-1], identity, post)
    for out in outs[:-1]:
        np.testing.assert_array_equal(postprocess(out, identity, post)[0].embeddings, got[0].embeddings)
    backend.close()
    matched = total = 0
    for (r_boxes, r_classes, r_emb), det in zip(ref, got, strict=True):
        total += len(r_boxes)
        if len(r_boxes) == 0 or len(det) == 0:
            continue
        assert det.embeddings is not None and det.embeddings.shape == (len(det), r_emb.shape[1])
        np.testing.assert_allclose(np.linalg.norm(det.embeddings, axis=1), 1.0, atol=1e-3)
        iou = iou_matrix(r_boxes, det.boxes)
        iou[r_classes[:, None] != det.class_ids[None, :]] = 0
        for i, j in enumerate(iou.argmax(axis=1)):
            if iou[i, j] >= 0.9:
                matched += 1
                assert float(np.dot(r_emb[i], det.embeddings[j])) >= 0.99
    assert total > 0
    assert matched >= 0.95 * total, f"{matched}/{total} ONNX Runtime detections matched"


@pytest.mark.tensorrt
@pytest.mark.slow
def test_engine_gathers_the_per_anchor_embedding_of_each_kept_box(tmp_path: Path) -> None:
    """The gather under NMS: each kept detection's embedding is the raw engine's per-anchor
    embedding at the anchor whose decoded box is the kept box (FP32, two engines)."""
    nms, _ = _backend(tmp_path / "nms", "fp32", end2end_nms=True)
    raw, _ = _backend(tmp_path / "raw", "fp32", end2end_nms=False)
    if raw.embedding_dim == 0:
        pytest.skip(f"{TEST_MODEL.name} has no '{EMBEDDINGS_OUTPUT}' output yet")
    x = _inputs((nms.info.input_height, nms.info.input_width))
    kept = nms.infer(x).wait()
    ref = raw.infer(x).wait()
    nms.close()
    raw.close()
    assert kept.embeddings is not None and ref.embeddings is not None and ref.raw is not None
    total = 0
    for b in range(len(x)):
        n = int(kept.nms_count[b])
        total += n
        cx, cy, w, h = ref.raw[b, :4]
        decoded = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)  # [A, 4]
        for k in range(n):
            anchor = int(np.abs(decoded - kept.nms_boxes[b, k]).sum(axis=1).argmin())
            assert np.abs(decoded[anchor] - kept.nms_boxes[b, k]).max() < 1e-2
            assert float(np.dot(ref.embeddings[b, :, anchor], kept.embeddings[b, k])) >= 0.999
        assert not kept.embeddings[b, n:].any()  # zero past the count
    assert total > 0


@pytest.mark.tensorrt
@pytest.mark.slow
def test_raw_engine_per_anchor_embeddings_match_onnxruntime(tmp_path: Path) -> None:
    raw, post = _backend(tmp_path, "fp16", end2end_nms=False)
    x = _inputs((raw.info.input_height, raw.info.input_width))
    _, ref = onnxruntime_detections(TEST_MODEL, x, post)
    out = raw.infer(x.astype(np.float16) if raw.info.input_fp16 else x).wait()
    raw.close()
    assert out.embeddings is not None and out.embeddings.shape == ref.shape
    cos = np.sum(out.embeddings * ref, axis=1)  # [B, A]
    assert np.quantile(cos, 0.001) >= 0.99, f"cosine min {cos.min():.4f}"


@pytest.mark.tensorrt
@pytest.mark.slow
def test_a_model_without_embeddings_builds_efficient_nms_as_before(tmp_path: Path) -> None:
    from _yolo_models import yaml_onnx
    from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

    cfg = EngineConfig(
        model_path=str(yaml_onnx()), engine_cache_dir=str(tmp_path), precision="fp16", max_batch_size=1
    )
    backend = TensorRTBackend(cfg, PostprocessConfig(conf_threshold=0.001))
    try:
        assert backend.embedding_dim == 0
        assert sorted(s.name for s in backend._outputs) == sorted(NMS_OUTPUTS)
        h, w = backend.info.input_height, backend.info.input_width
        out = backend.infer(np.zeros((1, 3, h, w), np.float16)).wait()
        assert out.has_nms and out.embeddings is None
    finally:
        backend.close()
