"""The annotated debug image, drawn and published on its own thread, never on the inference path.

Drawing and publishing a VGA frame costs about a millisecond (far more where generated message
setters check every field), which the inference thread would otherwise spend per frame. The
worker hands the newest frame over (keep-last: a frame not drawn yet is replaced, so the
debug stream shows the latest result and never falls behind) and goes on.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolov8_trt_ros.core.types import Detections, Track
from yolov8_trt_ros.ros import conversions
from yolov8_trt_ros.ros.serialization import FrameHeader, image_bytes


@dataclass
class DebugFrame:
    publisher: Any  # the camera's debug_image publisher
    image: np.ndarray
    encoding: str
    header: FrameHeader
    detections: Detections
    tracks: Sequence[Track] | None
    names: Sequence[str]
    roi: Sequence[float]


QUEUE_DEPTH = 8


class DebugImagePublisher:
    """One drawing thread for all cameras, fed through a short FIFO."""

    def __init__(
        self,
        on_published: Callable[[], None],
        on_dropped: Callable[[], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        self._on_published = on_published
        self._on_dropped = on_dropped
        self._on_error = on_error
        self._cond = threading.Condition()
        self._waiting: deque[DebugFrame] = deque()
        self._drawing = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="yolov8_debug_image", daemon=True)
        self._thread.start()

    @staticmethod
    def wanted(publisher: Any) -> bool:
        """Someone subscribes to this publisher (drawing is skipped otherwise)."""
        return bool(publisher.get_subscription_count() > 0)

    @property
    def pending(self) -> int:
        """Frames handed over and not yet published, dropped or failed (a run ending waits for 0)."""
        with self._cond:
            return len(self._waiting) + int(self._drawing)

    def submit(self, frame: DebugFrame) -> None:
        with self._cond:
            if len(self._waiting) >= QUEUE_DEPTH:
                self._waiting.popleft()
                self._on_dropped()
            self._waiting.append(frame)
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._waiting.clear()
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                frame = self._waiting.popleft()
                self._drawing = True
            try:
                canvas = conversions.annotate(
                    frame.image, frame.encoding, frame.detections, frame.tracks, frame.names, frame.roi
                )
                frame.publisher.publish(image_bytes(canvas, "bgr8", frame.header))
                self._on_published()
            except Exception as exc:  # a drawing error must not end the thread
                self._on_error(exc)
            finally:
                with self._cond:
                    self._drawing = False
