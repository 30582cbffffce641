"""Writes the annotated ``debug_image`` stream to a video file (the demo's output).

Subscribing is what makes the detector draw: it only annotates while someone listens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from yolov8_trt_ros.ros.conversions import image_to_array


class VideoRecorderNode(Node):
    """Appends every ``debug_image`` frame (bgr8) to ``path`` at ``fps``."""

    def __init__(
        self, path: str, fps: float = 30.0, node_name: str = "video_recorder", **kwargs: Any
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        # Reliable, deep enough to keep every annotated frame the detector produces.
        self.create_subscription(
            Image, "debug_image", self._on_image, QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE)
        )

    def _on_image(self, msg: Image) -> None:
        frame, _ = image_to_array(msg, max_pixels=msg.width * msg.height)
        if self._writer is None:
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (msg.width, msg.height))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write video {self.path}")
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
