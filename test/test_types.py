"""Letterbox geometry shared by every stage."""

from __future__ import annotations

import numpy as np
import pytest

from yolov8_trt_ros.core.types import Detections, Letterbox


@pytest.mark.parametrize("src", [(810, 1080), (1280, 720), (1, 1999), (640, 640), (33, 17)])
def test_fit_keeps_aspect_and_centres(src):
    lb = Letterbox.fit(*src, 640, 640)
    assert 1 <= lb.resized_w <= 640 and 1 <= lb.resized_h <= 640
    assert max(lb.resized_w, lb.resized_h) == 640
    assert abs(lb.pad_x - (640 - lb.resized_w) / 2) <= 0.5
    assert abs(lb.pad_y - (640 - lb.resized_h) / 2) <= 0.5


def test_to_source_inverts_the_placement_and_clips():
    rng = np.random.default_rng()
    lb = Letterbox.fit(810, 1080, 640, 640)
    src = rng.uniform(0, 800, (50, 4)).astype(np.float32)
    src[:, 2:] = np.minimum(src[:, :2] + rng.uniform(1, 200, (50, 2)), [810, 1080])
    net = np.empty_like(src)
    net[:, 0::2] = src[:, 0::2] * lb.scale + lb.pad_x
    net[:, 1::2] = src[:, 1::2] * lb.scale + lb.pad_y
    np.testing.assert_allclose(lb.to_source(net), src, atol=1e-3)
    outside = np.array([[-50.0, -50.0, 700.0, 700.0]], np.float32)
    np.testing.assert_array_equal(lb.to_source(outside), [[0.0, 0.0, 810.0, 1080.0]])


def test_detections_validate_and_select():
    d = Detections(np.arange(8).reshape(2, 4), [0.9, 0.5], [1, 2])
    assert len(d) == 2 and d.boxes.dtype == np.float32 and d.class_ids.dtype == np.int32
    assert d.select(np.array([False, True])).class_ids.tolist() == [2]
    with pytest.raises(ValueError, match="inconsistent"):
        Detections(np.zeros((2, 4)), [0.1], [0, 1])
