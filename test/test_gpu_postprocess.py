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
