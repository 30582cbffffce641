"""GPU decode + NMS (torch/torchvision) against the NumPy path, on fresh random heads."""

from __future__ import annotations

import numpy as np
import pytest

from yolov8_trt_ros.core.config import PostprocessConfig
from yolov8_trt_ros.core.postprocess import postprocess, postprocess_torch
from yolov8_trt_ros.core.types import EngineOutput, Letterbox

pytestmark = pytest.mark.gpu


def _random_raw(rng: np.random.Generator, batch: int, classes: int, anchors: int, grid: bool) -> np.ndarray:
    raw = np.empty((batch, 4 + classes, anchors), np.float32)
    if grid:  # integer boxes, scores on 1/8 steps: ties of scores, classes and exact IoUs
        raw[:, 0:2] = rng.integers(20, 300, (batch, 2, anchors))
        raw[:, 2:4] = rng.integers(1, 40, (batch, 2, anchors)) * 2
        raw[:, 4:] = rng.integers(0, 9, (batch, classes, anchors)) / 8.0
    else:
        raw[:, 0:2] = rng.uniform(-20, 660, (batch, 2, anchors))
        raw[:, 2:4] = rng.uniform(1, 200, (batch, 2, anchors))
        raw[:, 4:] = rng.uniform(0, 1, (batch, classes, anchors)) ** 4
    return raw


def _letterboxes(rng: np.random.Generator, batch: int) -> list[Letterbox]:
    return [
        Letterbox.fit(int(rng.integers(100, 2000)), int(rng.integers(100, 2000)), 640, 640)
        for _ in range(batch)
    ]


def test_torchvision_is_used_on_this_machine():
    from yolov8_trt_ros.core.postprocess import _torchvision_nms

    assert _torchvision_nms() is not None


@pytest.mark.parametrize("seed", range(12))
def test_gpu_matches_numpy_on_random_heads(seed):
    import torch

    rng = np.random.default_rng(seed)
    grid = seed % 2 == 0
    classes = int(rng.choice([1, 3, 80]))
    batch = int(rng.integers(1, 5))
    raw = _random_raw(rng, batch, classes, 8400, grid)
    cfg = PostprocessConfig(
        conf_threshold=float(rng.choice([0.25, 0.5])) if grid else float(rng.uniform(0.05, 0.5)),
        iou_threshold=float(rng.choice([0.3, 0.45, 0.5, 0.7])),
        max_detections=int(rng.choice([10, 100, 300])),
        pre_nms_top_k=int(rng.choice([300, 1000, 30000])),
        class_agnostic=bool(seed % 3 == 0),
        num_classes=classes,
    )
    lbs = _letterboxes(rng, batch)
    ref = postprocess(EngineOutput(raw=raw), lbs, cfg)
    for dtype in (torch.float32, torch.float16) if grid else (torch.float32,):
        got = postprocess_torch(torch.from_numpy(raw).to("cuda", dtype), lbs, cfg)
        for g, r in zip(got, ref, strict=True):
            assert len(g) == len(r)
            np.testing.assert_array_equal(g.boxes, r.boxes)
            np.testing.assert_array_equal(g.scores, r.scores)
            np.testing.assert_array_equal(g.class_ids, r.class_ids)
    assert sum(len(r) for r in ref) > 0


def test_gpu_empty_and_single_candidate():
    import torch

    lb = Letterbox.fit(640, 480, 640, 640)
    cfg = PostprocessConfig(num_classes=2)
    raw = torch.zeros((2, 6, 100), device="cuda")
    raw[1, :, 7] = torch.tensor([100.0, 100.0, 20.0, 30.0, 0.1, 0.9])
    dets = postprocess_torch(raw, [lb, lb], cfg)
    assert len(dets[0]) == 0 and len(dets[1]) == 1
    assert dets[1].class_ids[0] == 1 and dets[1].scores[0] == np.float32(0.9)


# ---- the CUDA backend's detection end (core/postprocess_gpu.py) against the NumPy path -------
def _gpu_nms_detections(nms, head, lbs: list[Letterbox], cfg: PostprocessConfig):
    """``GpuNms`` on ``head`` (eagerly), unpacked and mapped back as the pipeline does."""
    from yolov8_trt_ros.core.postprocess_gpu import unpack

    nms.configure(cfg)
    rows = nms.enqueue(head).cpu().numpy()
    count, boxes, scores, classes = unpack(rows, nms.max_detections)
    out = EngineOutput(nms_count=count, nms_boxes=boxes, nms_scores=scores, nms_classes=classes)
    return postprocess(out, lbs, cfg)


def _assert_same_detections(got, ref) -> None:
    assert [len(g) for g in got] == [len(r) for r in ref]
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g.boxes, r.boxes)
        np.testing.assert_array_equal(g.scores, r.scores)
        np.testing.assert_array_equal(g.class_ids, r.class_ids)


def _random_cfg(rng: np.random.Generator, seed: int, classes: int, grid: bool) -> PostprocessConfig:
    return PostprocessConfig(
        conf_threshold=float(rng.choice([0.25, 0.5])) if grid else float(rng.uniform(0.05, 0.5)),
        iou_threshold=float(rng.choice([0.3, 0.45, 0.5, 0.7])),
        max_detections=int(rng.choice([10, 100, 300])),
        pre_nms_top_k=int(rng.choice([300, 1000, 30000])),
        class_agnostic=bool(seed % 3 == 0),
        num_classes=classes,
    )


@pytest.mark.parametrize("seed", range(12))
def test_gpu_nms_matches_numpy_on_random_heads(seed):
    """Crowded heads (thousands of candidates), score/IoU ties (grid), 1-80 classes, batch 1-4."""
    import torch

    from yolov8_trt_ros.core.postprocess_gpu import GpuNms

    rng = np.random.default_rng(1000 + seed)
    grid = seed % 2 == 0
    classes = int(rng.choice([1, 3, 80]))
    batch = int(rng.integers(1, 5))
    raw = _random_raw(rng, batch, classes, 8400, grid)
    raw[int(rng.integers(batch)), 4:, : int(rng.integers(8400))] = 0.0  # one image: fewer candidates
    cfg = _random_cfg(rng, seed, classes, grid)
    lbs = _letterboxes(rng, batch)
    ref = postprocess(EngineOutput(raw=raw), lbs, cfg)
    nms = GpuNms(cfg, classes, 8400, max_batch=4, device=torch.device("cuda"))
    try:
        for dtype in (torch.float32, torch.float16) if grid else (torch.float32,):
            head = torch.from_numpy(raw).to("cuda", dtype)
            _assert_same_detections(_gpu_nms_detections(nms, head, lbs, cfg), ref)
    finally:
        nms.close()
    assert sum(len(r) for r in ref) > 0


def test_gpu_nms_in_cuda_graphs_takes_new_thresholds_without_recapture():
    """Two graphs (batch 3 and 1) on one GpuNms, replayed in turn with new heads and new
    conf / IoU / agnostic / top-k / max_det values, float16 and float32 heads."""
    import torch

    from yolov8_trt_ros.core.postprocess_gpu import GpuNms, unpack

    rng = np.random.default_rng(7)
    classes, anchors = 10, 8400
    first = PostprocessConfig(num_classes=classes, max_detections=100, pre_nms_top_k=8000)
    nms = GpuNms(first, classes, anchors, max_batch=3, device=torch.device("cuda"))
    stream = torch.cuda.Stream()
    graphs = {}
    try:
        for batch, dtype in ((3, torch.float16), (1, torch.float32)):
            static_head = torch.zeros((batch, 4 + classes, anchors), dtype=dtype, device="cuda")
            with torch.cuda.stream(stream):
                nms.enqueue(static_head)  # warm-up outside the capture
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=stream):
                    static_out = nms.enqueue(static_head)
            graphs[batch] = (graph, static_head, static_out)
        checked = 0
        for k in range(10):
            batch = (3, 1)[k % 2]
            graph, static_head, static_out = graphs[batch]
            raw = _random_raw(rng, batch, classes, anchors, grid=True)  # exact in float16
            raw[:, 4:] *= rng.random((batch, 1, anchors)) < 0.1
            cfg = first.replace(
                conf_threshold=float(rng.choice([0.125, 0.25, 0.5])),
                iou_threshold=float(rng.choice([0.3, 0.45, 0.7])),
                class_agnostic=bool(k % 3 == 0),
                max_detections=int(rng.choice([5, 50, 100])),
                pre_nms_top_k=int(rng.choice([100, 8000])),
            )
            lbs = _letterboxes(rng, batch)
            with torch.cuda.stream(stream):
                static_head.copy_(torch.from_numpy(raw).to("cuda", static_head.dtype))
                nms.configure(cfg)
                graph.replay()
                rows = static_out.cpu().numpy()
            count, boxes, scores, classes_out = unpack(rows, nms.max_detections)
            got = postprocess(EngineOutput(None, count, boxes, scores, classes_out), lbs, cfg)
            ref = postprocess(EngineOutput(raw=raw), lbs, cfg)
            _assert_same_detections(got, ref)
            assert np.all(scores[np.arange(nms.max_detections)[None] >= count[:, None]] == 0)  # zero padding
            checked += sum(len(r) for r in ref)
        assert checked > 0
    finally:
        nms.close()


def test_gpu_nms_more_candidates_than_top_k_keeps_the_best_k():
    """Today's rule: past ``pre_nms_top_k`` candidates, the best k (stable) enter NMS."""
    import torch

    from yolov8_trt_ros.core.postprocess_gpu import GpuNms

    rng = np.random.default_rng(3)
    raw = _random_raw(rng, 2, 2, 4000, grid=True)
    cfg = PostprocessConfig(num_classes=2, conf_threshold=0.125, pre_nms_top_k=50, max_detections=50)
    lbs = _letterboxes(rng, 2)
    nms = GpuNms(cfg, 2, 4000, max_batch=2, device=torch.device("cuda"))
    try:
        ref = postprocess(EngineOutput(raw=raw), lbs, cfg)
        got = _gpu_nms_detections(nms, torch.from_numpy(raw).cuda(), lbs, cfg)
        _assert_same_detections(got, ref)
    finally:
        nms.close()
    assert all(len(r) > 0 for r in ref)
