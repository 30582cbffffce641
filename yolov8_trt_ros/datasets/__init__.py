"""Synthetic, seeded data for the test model: detection images (YOLO + COCO) and MOT sequences."""

from yolov8_trt_ros.datasets.synthetic import (
    CLASS_NAMES,
    GENERATOR_VERSION,
    NUM_CLASSES,
    ImageLabels,
    SceneConfig,
    generate_detection_dataset,
    label_digest,
    render_detection_image,
)
from yolov8_trt_ros.datasets.tracking import (
    SEQUENCE_KINDS,
    TRACKING_GENERATOR_VERSION,
    TrackingGroundTruth,
    generate_tracking_sequences,
    render_tracking_frame,
    tracking_ground_truth,
)

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "NUM_CLASSES",
    "SEQUENCE_KINDS",
    "TRACKING_GENERATOR_VERSION",
    "ImageLabels",
    "SceneConfig",
    "TrackingGroundTruth",
    "generate_detection_dataset",
    "generate_tracking_sequences",
    "label_digest",
    "render_detection_image",
    "render_tracking_frame",
    "tracking_ground_truth",
]
