"""ROS 2 messages as serialized CDR bytes: written from NumPy arrays, read without copying pixels.

``Publisher.publish(bytes)`` sends serialized bytes as they are and a subscription made with
``raw=True`` hands its callback the bytes it received, so the node can skip rclpy's per-field
(and, for images, per-byte) conversion between Python message objects and CDR.
"""

from yolov8_trt_ros.ros.serialization.cdr import FrameHeader
from yolov8_trt_ros.ros.serialization.conventions import (
    TRACK_STATE_CODES,
    FrameInterval,
    class_label,
    detection_id,
    velocity_scale,
)
from yolov8_trt_ros.ros.serialization.detections import DetectionArrayWriter
from yolov8_trt_ros.ros.serialization.images import (
    CompressedImageView,
    ImageView,
    image_bytes,
    parse_compressed_image,
    parse_image,
)
from yolov8_trt_ros.ros.serialization.tracks import TrackArrayWriter

__all__ = [
    "TRACK_STATE_CODES",
    "CompressedImageView",
    "DetectionArrayWriter",
    "FrameHeader",
    "FrameInterval",
    "ImageView",
    "TrackArrayWriter",
    "class_label",
    "detection_id",
    "image_bytes",
    "parse_compressed_image",
    "parse_image",
    "velocity_scale",
]
