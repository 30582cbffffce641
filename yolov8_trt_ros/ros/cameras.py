"""The node's input cameras and the output topics of each.

One camera (``image_topics`` empty): input ``image`` (``image/compressed`` with
``compressed_input``), outputs ``detections``, ``tracks``, ``debug_image`` — the names every
launch file remaps. Several cameras: each topic's namespace names the camera
(``/front/image_raw`` → ``front``; a topic without one is its own name) and its outputs are
``<camera>/detections``, ``<camera>/tracks``, ``<camera>/debug_image``, relative to the node's
namespace. With ``compressed_input`` a camera is subscribed on ``<topic>/compressed`` *instead
of* the raw topic (as image_transport does): one transport per camera, so a frame is never
counted, tracked or answered twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yolov8_trt_ros.core.config import ConfigError
from yolov8_trt_ros.ros.frame_gate import SequenceGaps
from yolov8_trt_ros.ros.serialization import FrameInterval


@dataclass
class Camera:
    topic: str  # what is subscribed
    prefix: str  # "" for the single camera, else "<camera>/"
    compressed: bool
    detections: Any = None
    tracks: Any = None
    debug_image: Any = None
    #: Time between this camera's processed frames (stamps), for track velocities.
    interval: FrameInterval = field(default_factory=FrameInterval)
    #: Frames the middleware overwrote before the node took them (publisher sequence gaps).
    gaps: SequenceGaps = field(default_factory=SequenceGaps)

    def output(self, name: str) -> str:
        return f"{self.prefix}{name}"


def camera_name(topic: str) -> str:
    """``/front/image_raw`` → ``front``; ``cam0`` → ``cam0``."""
    path = topic.strip("/")
    return path.rsplit("/", 1)[0] if "/" in path else path


def cameras_from(image_topics: list[str], compressed: bool) -> list[Camera]:
    """The cameras of the ``image_topics`` parameter; ConfigError for empty or clashing names."""
    suffix = "/compressed" if compressed else ""
    if not image_topics:
        return [Camera(f"image{suffix}", "", compressed)]
    if any(not t.strip("/ ") for t in image_topics):
        raise ConfigError(f"image_topics has an empty topic: {image_topics}")
    names = [camera_name(t) for t in image_topics]
    if len(set(names)) != len(names):
        raise ConfigError(f"image_topics {image_topics} give clashing camera names {names}")
    return [Camera(f"{t}{suffix}", f"{n}/", compressed) for t, n in zip(image_topics, names, strict=True)]
