"""The debug-image thread reports frames still in its hands, so a run's end can wait for them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS message packages not installed")

from yolov8_trt_ros.core.types import Detections
from yolov8_trt_ros.ros.debug_image import DebugFrame, DebugImagePublisher
from yolov8_trt_ros.ros.serialization import FrameHeader


class _GatedPublisher:
    """Blocks in publish until released, like a slow DDS write."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.published = 0

    def publish(self, msg: object) -> None:
        self.entered.set()
        assert self.release.wait(5.0)
        self.published += 1


def _frame(publisher: _GatedPublisher) -> DebugFrame:
    image = np.zeros((48, 64, 3), np.uint8)
    return DebugFrame(publisher, image, "bgr8", FrameHeader(1, 2, "cam"), Detections.empty(), None, [], [])


def _wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_pending_counts_queued_and_drawing_frames_until_published():
    done: list[str] = []
    debug = DebugImagePublisher(
        lambda: done.append("ok"), lambda: done.append("drop"), lambda e: done.append("err")
    )
    pub = _GatedPublisher()
    try:
        assert debug.pending == 0
        debug.submit(_frame(pub))
        debug.submit(_frame(pub))
        assert pub.entered.wait(5.0)
        # One frame is being published (no longer queued), one waits: both still pending.
        assert debug.pending == 2
        pub.release.set()
        assert _wait_until(lambda: debug.pending == 0)
        assert done == ["ok", "ok"] and pub.published == 2
    finally:
        pub.release.set()
        debug.stop()


def test_a_failed_frame_is_no_longer_pending():
    errors: list[Exception] = []
    debug = DebugImagePublisher(lambda: None, lambda: None, errors.append)

    class Broken:
        def publish(self, msg: object) -> None:
            raise RuntimeError("writer gone")

    try:
        debug.submit(_frame(Broken()))  # type: ignore[arg-type]
        assert _wait_until(lambda: debug.pending == 0 and len(errors) == 1)
        assert "writer gone" in str(errors[0])
    finally:
        debug.stop()
