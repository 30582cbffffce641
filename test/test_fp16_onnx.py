"""The FP16 ONNX of scripts/convert_fp16.py: FP16 in the file, float32 I/O, FP32 outputs kept.

Tolerances are about 3x the largest differences seen on the trained test model (ONNX Runtime
CPU, 6 random inputs and 8 real images): boxes 0.45 px, class scores 0.003, embeddings 0.002.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

pytest.importorskip(
    "onnxconverter_common", reason="onnxconverter-common is not installed (requirements/dev.txt)"
)

from scripts.convert_fp16 import main
from yolov8_trt_ros.core.backends.model_info import fp16_sibling, read_model_info
from yolov8_trt_ros.core.fp16_onnx import check_no_fp16_round_trip, fp32_nodes
from yolov8_trt_ros.core.types import Detections

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL = REPO / "models/test/yolov8n_synth.onnx"
BOX_ATOL, SCORE_ATOL, EMBEDDING_ATOL = 1.5, 0.01, 0.006


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(FP32, FP16) of the test model, the FP16 one written by the script's CLI next to the copy."""
    if not TEST_MODEL.is_file():
        pytest.skip("models/test/yolov8n_synth.onnx not built yet")
    fp32 = tmp_path_factory.mktemp("fp16") / TEST_MODEL.name
    shutil.copy(TEST_MODEL, fp32)
    assert main(["--model", str(fp32)]) == 0
    fp16 = fp16_sibling(fp32)
    assert fp16.name == "yolov8n_synth.fp16.onnx" and fp16.is_file()
    return fp32, fp16


def _sessions(models: tuple[Path, Path]) -> list:
    import onnxruntime as ort

    return [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in models]


def test_precision_is_in_the_file(models: tuple[Path, Path]) -> None:
    fp32, fp16 = models
    source, model = onnx.load(str(fp32)), onnx.load(str(fp16))
    kept = set(fp32_nodes(source))
    assert {
        "/model.22/dfl/Softmax",
        "/model.22/dfl/conv/Conv",
        "/model.22/Mul_5",
        "/model.22/Concat_26",
    } <= kept
    assert "/embeddings/ReduceL2" in kept
    inits = {t.name: t for t in model.graph.initializer}
    # Every convolution outside the kept decode has FP16 weights; FP32 is left only to the few
    # constants of kept nodes (DFL's 16 bin weights, anchors, strides, Resize scales).
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.name not in kept]
    assert len(convs) == 63
    assert all(inits[n.input[1]].data_type == TensorProto.FLOAT16 for n in convs)
    sizes = {dtype: 0 for dtype in (TensorProto.FLOAT16, TensorProto.FLOAT)}
    for t in model.graph.initializer:
        if t.data_type in sizes:
            sizes[t.data_type] += int(np.prod(t.dims))
    assert sizes[TensorProto.FLOAT] < 0.01 * sizes[TensorProto.FLOAT16]
    # The decode computes in FP32: the outputs of the kept nodes are float32 tensors.
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
    for node in model.graph.node:
        if node.name in kept:
            assert types[node.output[0]] == TensorProto.FLOAT, node.name
    check_no_fp16_round_trip(model)
    # I/O stays float32: the runtime contract does not change.
    for value in (*model.graph.input, *model.graph.output):
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT, value.name
    info = read_model_info(fp16)
    assert info.precision == "fp16" and not info.input_fp16
    assert info.embedding_dim == read_model_info(fp32).embedding_dim == 64


def test_refuses_a_model_that_is_not_fp32(models: tuple[Path, Path], tmp_path: Path) -> None:
    assert main(["--model", str(models[1]), "--output", str(tmp_path / "again.onnx")]) == 2
    assert not (tmp_path / "again.onnx").exists()


def test_outputs_close_to_fp32_on_random_inputs(models: tuple[Path, Path]) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    x = np.random.default_rng(seed).random((2, 3, 640, 640), dtype=np.float32)
    s32, s16 = _sessions(models)
    assert [i.type for i in s16.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in s16.get_outputs()] == ["tensor(float)"] * 2
    (ref, ref_emb), (got, got_emb) = (s.run(["output0", "embeddings"], {"images": x}) for s in (s32, s16))
    assert got.dtype == got_emb.dtype == np.float32
    np.testing.assert_allclose(got[:, :4], ref[:, :4], atol=BOX_ATOL, rtol=0, err_msg=f"seed {seed}")
    assert np.abs(got[:, :4] - ref[:, :4]).mean() < 0.05, f"seed {seed}"
    np.testing.assert_allclose(got[:, 4:], ref[:, 4:], atol=SCORE_ATOL, rtol=0, err_msg=f"seed {seed}")
    np.testing.assert_allclose(got_emb, ref_emb, atol=EMBEDDING_ATOL, rtol=0, err_msg=f"seed {seed}")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a, area_b = ((x[:, 2:] - x[:, :2]).prod(-1) for x in (a, b))
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _matched(a: Detections, b: Detections, min_score: float) -> bool:
    """Every detection of ``a`` scoring >= ``min_score`` is in ``b``: same class, IoU > 0.9."""
    confident = a.scores >= min_score
    if not confident.any():
        return True
    if len(b) == 0:
        return False
    iou = _iou(a.boxes[confident], b.boxes)
    iou[a.class_ids[confident][:, None] != b.class_ids[None, :]] = 0
    return bool((iou.max(axis=1) > 0.9).all())


def test_same_detections_on_real_images(models: tuple[Path, Path], assets_dir: Path) -> None:
    """bus.jpg and the generator's own val images (seeded), through the project's pre/postprocess."""
    import cv2

    from yolov8_trt_ros.core.config import PostprocessConfig, PreprocessConfig
    from yolov8_trt_ros.core.postprocess import postprocess
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor
    from yolov8_trt_ros.core.types import EngineOutput
    from yolov8_trt_ros.datasets.synthetic import SPLIT_IDS, render_detection_image

    bus = cv2.imread(str(assets_dir / "bus.jpg"), cv2.IMREAD_COLOR)
    assert bus is not None
    frames = [bus] + [render_detection_image(seed=0, split_id=SPLIT_IDS["val"], index=i)[0] for i in range(6)]
    pre = CpuPreprocessor(PreprocessConfig(input_width=640, input_height=640))
    post = PostprocessConfig(conf_threshold=0.25, iou_threshold=0.45, num_classes=10)
    s32, s16 = _sessions(models)
    confident = 0
    for frame in frames:
        tensor, letterboxes = pre([frame], ["bgr8"])
        raw32, raw16 = (s.run(["output0"], {"images": np.asarray(tensor)})[0] for s in (s32, s16))
        np.testing.assert_allclose(raw16[:, :4], raw32[:, :4], atol=BOX_ATOL, rtol=0)
        np.testing.assert_allclose(raw16[:, 4:], raw32[:, 4:], atol=SCORE_ATOL, rtol=0)
        (ref,), (got,) = (postprocess(EngineOutput(raw=raw), letterboxes, post) for raw in (raw32, raw16))
        assert _matched(ref, got, 0.5) and _matched(got, ref, 0.5)
        confident += int((ref.scores >= 0.5).sum())
    assert confident >= 10, "the trained model should find objects on its own val images"


def test_cached_fp16_converts_once_per_source_file(tmp_path: Path) -> None:
    """The build's own conversion: one file per source hash in the cache, reused, never stale."""
    from yolov8_trt_ros.core.fp16_onnx import cached_fp16

    model = tmp_path / "m.onnx"
    shutil.copy(TEST_MODEL, model)
    cache = tmp_path / "engines"
    first = cached_fp16(model, cache)
    assert first.parent == cache and read_model_info(first).weights_fp16
    stamp = first.stat().st_mtime_ns
    assert cached_fp16(model, cache) == first and first.stat().st_mtime_ns == stamp  # reused
    changed = onnx.load(str(model))
    changed.metadata_props.add(key="note", value="another export")
    onnx.save(changed, str(model))
    second = cached_fp16(model, cache)
    assert second != first and second.is_file()  # a changed model is converted again
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, second.name])  # no temp left
