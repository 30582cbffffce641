"""The TensorRT backend's import path (factory, scripts, tests); the code lives in ``backends/tensorrt/``."""

from __future__ import annotations

from yolov8_trt_ros.core.backends.tensorrt.build import BuildPlan, build_engine
from yolov8_trt_ros.core.backends.tensorrt.calibrator import EntropyCalibrator
from yolov8_trt_ros.core.backends.tensorrt.common import TRT_VERSION
from yolov8_trt_ros.core.backends.tensorrt.plugins import EFFICIENT_NMS_MAX_CANDIDATES
from yolov8_trt_ros.core.backends.tensorrt.runtime import TensorRTBackend

__all__ = [
    "EFFICIENT_NMS_MAX_CANDIDATES",
    "TRT_VERSION",
    "BuildPlan",
    "EntropyCalibrator",
    "TensorRTBackend",
    "build_engine",
]
