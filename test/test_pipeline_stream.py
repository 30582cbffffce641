"""``Pipeline.process_stream`` against ``Pipeline.process``, and the batched ``postprocess_torch``.

The stream must give exactly what the same sequence of ``process`` calls gives (detections and
tracks, in order), read one batch ahead, and surface a failing batch only after the batch
before it. The ONNX Runtime backend runs it on the CPU; the CUDA backend (``gpu``) checks the
same with real host/device overlap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.image_input import ImageError
from yolov8_trt_ros.core.pipeline import FrameResult, Pipeline, PipelineConfig
from yolov8_trt_ros.core.sources import iter_frames
from yolov8_trt_ros.core.types import EngineOutput, Letterbox

MODEL = Path(__file__).resolve().parents[1] / "models" / "test" / "yolov8n_synth.onnx"
N_FRAMES = 14


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Consecutive frames of synthetic tracking sequence 0 (moving objects of the test model)."""
    return list(iter_frames("synthetic:0", synthetic_frames=N_FRAMES))


def _pipeline(backend: str, precision: str = "fp32") -> Pipeline:
    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend=backend, model_path=str(MODEL), precision=precision, num_threads=1)
    return Pipeline.create(cfg)


def _batches(frames: Sequence[np.ndarray], size: int) -> list[tuple[list[np.ndarray], list[str]]]:
    return [
        (list(frames[i : i + size]), ["bgr8"] * len(frames[i : i + size]))
        for i in range(0, len(frames), size)
    ]


def _assert_same(got: list[list[FrameResult]], ref: list[list[FrameResult]]) -> None:
    assert [len(b) for b in got] == [len(b) for b in ref]
    for g, r in zip((x for b in got for x in b), (x for b in ref for x in b), strict=True):
        np.testing.assert_array_equal(g.detections.boxes, r.detections.boxes)
        np.testing.assert_array_equal(g.detections.scores, r.detections.scores)
        np.testing.assert_array_equal(g.detections.class_ids, r.detections.class_ids)
        assert g.letterbox == r.letterbox
        assert g.tracks is not None and r.tracks is not None
        assert g.tracks == r.tracks  # ids, classes, scores, boxes, velocities, states


def _stream_equals_process(backend: str, precision: str, frames: list[np.ndarray], batch: int) -> None:
    batches = _batches(frames, batch)
    seq = _pipeline(backend, precision)
    stream = _pipeline(backend, precision)
    try:
        ref = [seq.process(images, encodings) for images, encodings in batches]
        got = list(stream.process_stream(batches))
    finally:
        seq.close()
        stream.close()
    _assert_same(got, ref)
    assert sum(len(r.detections) for b in ref for r in b) > N_FRAMES  # the model sees the objects
    assert any(r.tracks for r in ref[-1])  # and tracks are confirmed by the end


@pytest.mark.parametrize("batch", [1, 4])  # 4: the last batch is short (14 = 3 * 4 + 2)
def test_stream_equals_process_onnxruntime(frames, batch):
    _stream_equals_process("onnxruntime", "fp32", frames, batch)


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 4])
def test_stream_equals_process_cuda(frames, batch):
    """On the GPU the next batch's inference runs while the last one is tracked."""
    _stream_equals_process("cuda", "fp16", frames, batch)


def test_stream_reads_one_batch_ahead_and_yields_in_order(frames):
    events: list[str] = []
    batches = _batches(frames[:8], 2)

    def source() -> Iterator[tuple[list[np.ndarray], list[str]]]:
        for k, item in enumerate(batches):
            events.append(f"read {k}")
            yield item

    pipe = _pipeline("onnxruntime")
    try:
        for k, results in enumerate(pipe.process_stream(source())):
            events.append(f"out {k}")
            assert [r.letterbox.src_w for r in results] == [640, 640]
    finally:
        pipe.close()
    assert events == ["read 0", "read 1", "out 0", "read 2", "out 1", "read 3", "out 2", "out 3"]


def test_failing_batch_surfaces_after_the_batch_before_it(frames):
    """Batch 2 holds a bad image: batches 0 and 1 come out (and are tracked), then the error."""
    good = _batches(frames[:6], 2)
    bad = [frames[4].astype(np.float32)], ["bgr8"]  # not uint8
    pipe = _pipeline("onnxruntime")
    ref = _pipeline("onnxruntime")
    got: list[list[FrameResult]] = []
    try:
        with pytest.raises(ImageError):
            for results in pipe.process_stream([good[0], good[1], bad, good[2]]):
                got.append(results)
        expected = [ref.process(*good[0]), ref.process(*good[1])]
        _assert_same(got, expected)
        # The tracker saw exactly those two batches: the next frames continue identically.
        _assert_same([pipe.process(*good[2])], [ref.process(*good[2])])
    finally:
        pipe.close()
        ref.close()


def test_config_update_applies_to_every_batch_not_yet_finished(frames):
    """A raised threshold applies to the batch in flight too: configs are read when finishing."""
    batches = _batches(frames[:4], 1)
    pipe = _pipeline("onnxruntime")
    try:
        stream = pipe.process_stream(batches)
        first = next(stream)  # batches 0 and 1 are launched by now
        pipe.update_postprocess(PostprocessConfig(conf_threshold=0.99))
        rest = list(stream)
    finally:
        pipe.close()
    assert len(first[0].detections) > 0
    assert len(rest) == 3 and all(len(r[0].detections) == 0 for r in rest)


# ---- postprocess_torch over a batch: both NMS paths, per-image caps ---------------------------
def _heads(rng: np.random.Generator, batch: int, classes: int, anchors: int, grid: bool) -> np.ndarray:
    """Random heads whose images get very different candidate counts (one gets none).

    ``grid``: integer boxes and scores on 1/8 steps, so equal scores, classes and IoUs occur.
    """
    raw = np.empty((batch, 4 + classes, anchors), np.float32)
    if grid:
        raw[:, 0:2] = rng.integers(20, 300, (batch, 2, anchors))
        raw[:, 2:4] = rng.integers(1, 40, (batch, 2, anchors)) * 2
        raw[:, 4:] = rng.integers(0, 9, (batch, classes, anchors)) / 8.0
        raw[:, 4:] *= rng.random((batch, 1, anchors)) < rng.uniform(0.05, 0.5, (batch, 1, 1))
    else:
        raw[:, 0:2] = rng.uniform(-20, 660, (batch, 2, anchors))
        raw[:, 2:4] = rng.uniform(1, 120, (batch, 2, anchors))
        raw[:, 4:] = rng.uniform(0, 1, (batch, classes, anchors)) ** rng.uniform(1, 8, (batch, 1, 1))
    raw[int(rng.integers(batch)), 4:] = 0.0
    return raw


def _check_postprocess_torch(seed: int, path: str, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from yolov8_trt_ros.core import postprocess as post

    if device == "cpu":  # ultralytics' pure-torch NMS stands in for torchvision's (same rule)
        from ultralytics.utils.nms import TorchNMS

        monkeypatch.setattr(post, "_torchvision_nms", lambda: TorchNMS.nms)
    # Force the path: no image ever has more than -1 candidates, every image has at most 10**9.
    monkeypatch.setattr(post, "HOST_NMS_MAX_CANDIDATES", -1 if path == "device" else 10**9)
    rng = np.random.default_rng(300 + seed)
    grid = seed % 2 == 0
    batch, classes = int(rng.integers(2, 5)), int(rng.choice([1, 3, 10]))
    raw = _heads(rng, batch, classes, 600, grid)
    cfg = PostprocessConfig(
        conf_threshold=0.25 if grid else 0.2,
        iou_threshold=float(rng.choice([0.3, 0.45, 0.5, 0.7])),
        max_detections=int(rng.choice([5, 20, 60])),
        pre_nms_top_k=int(rng.choice([60, 150, 30000])),
        class_agnostic=bool(seed % 3 == 0),
        num_classes=classes,
    )
    lbs = [
        Letterbox.fit(int(rng.integers(200, 1500)), int(rng.integers(200, 1500)), 640, 640)
        for _ in range(batch)
    ]
    ref = post.postprocess(EngineOutput(raw=raw), lbs, cfg)
    for dtype in (torch.float32, torch.float16) if grid else (torch.float32,):
        got = post.postprocess_torch(torch.from_numpy(raw).to(device, dtype), lbs, cfg)
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(g.boxes, r.boxes)
            np.testing.assert_array_equal(g.scores, r.scores)
            np.testing.assert_array_equal(g.class_ids, r.class_ids)
    counts = [len(r) for r in ref]
    assert 0 in counts and max(counts) > 0


@pytest.mark.parametrize("path", ["host", "device"])
@pytest.mark.parametrize("seed", range(8))
def test_postprocess_torch_paths_match_numpy_on_cpu(seed, path, monkeypatch):
    """Both NMS paths, with per-image ``pre_nms_top_k`` / ``max_detections`` in a batch."""
    _check_postprocess_torch(seed, path, "cpu", monkeypatch)


@pytest.mark.gpu
@pytest.mark.parametrize("path", ["host", "device"])
@pytest.mark.parametrize("seed", range(8))
def test_postprocess_torch_paths_match_numpy_on_gpu(seed, path, monkeypatch):
    _check_postprocess_torch(seed, path, "cuda", monkeypatch)
