"""One configuration dataclass per pipeline stage.

They are filled from ROS parameters by the node and from YAML by the bring-up entry point
and the scripts, so both paths share one set of names, defaults and checks. ``validate``
returns reasons rather than raising, so a run-time parameter change can be refused with a
message while the old value stays in force.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T", bound="StageConfig")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message says which and why."""


@dataclass
class StageConfig:
    """Base with the shared YAML/dict plumbing."""

    @classmethod
    def from_mapping(cls: type[T], values: Mapping[str, Any] | None = None) -> T:
        """Build from a mapping; unknown keys are an error, so typos in YAML are caught."""
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown keys {unknown}; known: {sorted(names)}")
        cfg = cls(**values)
        errors = cfg.validate()
        if errors:
            raise ConfigError(f"{cls.__name__}: " + "; ".join(errors))
        return cfg

    def replace(self: T, **changes: Any) -> T:
        """A validated copy with ``changes`` applied (raises ConfigError, self unchanged)."""
        cfg = dataclasses.replace(self, **changes)
        errors = cfg.validate()
        if errors:
            raise ConfigError("; ".join(errors))
        return cfg

    def validate(self) -> list[str]:
        return []

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _in_range(name: str, value: float, lo: float, hi: float) -> list[str]:
    if not isinstance(value, (int, float)) or math.isnan(value) or not lo <= value <= hi:
        return [f"{name}={value!r} must be in [{lo}, {hi}]"]
    return []


@dataclass
class PreprocessConfig(StageConfig):
    """Letterbox to the network input: size (width, height), pad value, output precision."""

    input_width: int = 640
    input_height: int = 640
    pad_value: int = 114
    fp16: bool = False
    max_image_pixels: int = 4096 * 4096

    def validate(self) -> list[str]:
        errors: list[str] = []
        for name in ("input_width", "input_height"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0 or v % 32:
                errors.append(f"{name}={v!r} must be a positive multiple of 32")
        errors += _in_range("pad_value", self.pad_value, 0, 255)
        if self.max_image_pixels <= 0:
            errors.append("max_image_pixels must be positive")
        return errors


@dataclass
class EngineConfig(StageConfig):
    """Which backend runs the network, on what model, at what precision."""

    backend: str = "auto"  # auto | tensorrt | cuda | onnxruntime
    model_path: str = "models/yolov8n.onnx"
    engine_cache_dir: str = "models/engines"
    precision: str = "fp16"  # int8 | fp16 | fp32
    batch_size: int = 1
    max_batch_size: int = 8
    workspace_mb: int = 1024
    calibration_dir: str = "calibration/images"
    calibration_cache: str = "calibration/yolov8n.calib"
    calibration_images: int = 500
    device_id: int = 0
    cuda_graph: bool = True
    num_threads: int = 0  # ONNX Runtime intra-op threads; 0 lets it choose
    end2end_nms: bool = True  # NMS inside the engine where the backend can

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.backend not in ("auto", "tensorrt", "cuda", "onnxruntime"):
            errors.append(f"backend={self.backend!r} must be auto, tensorrt, cuda or onnxruntime")
        if self.precision not in ("int8", "fp16", "fp32"):
            errors.append(f"precision={self.precision!r} must be int8, fp16 or fp32")
        if not 1 <= self.batch_size <= self.max_batch_size:
            errors.append(f"batch_size={self.batch_size} must be in [1, max_batch_size]")
        if self.workspace_mb <= 0:
            errors.append("workspace_mb must be positive")
        if self.calibration_images <= 0:
            errors.append("calibration_images must be positive")
        return errors


@dataclass
class PostprocessConfig(StageConfig):
    """Decode and NMS; the same numbers configure the in-engine NMS.

    NMS rule (the same on every backend): keep candidates with ``score >= conf_threshold``
    (inclusive), take at most ``pre_nms_top_k`` by score, suppress a box when its IoU with a
    kept, higher-scored box of the same class (any class if ``class_agnostic``) is
    ``> iou_threshold`` (strict, compared in float32 as TensorRT and torchvision do, so 0.45
    suppresses an IoU of exactly 9/20), ties broken by lower anchor index, then keep the best
    ``max_detections``.
    """

    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    pre_nms_top_k: int = 30000
    class_agnostic: bool = False
    num_classes: int = 80

    def validate(self) -> list[str]:
        errors = _in_range("conf_threshold", self.conf_threshold, 0.0, 1.0)
        errors += _in_range("iou_threshold", self.iou_threshold, 0.0, 1.0)
        if not 1 <= self.max_detections <= 10000:
            errors.append(f"max_detections={self.max_detections} must be in [1, 10000]")
        if self.pre_nms_top_k < self.max_detections:
            errors.append("pre_nms_top_k must be >= max_detections")
        if self.num_classes <= 0:
            errors.append("num_classes must be positive")
        return errors


@dataclass
class FilterConfig(StageConfig):
    """Which detections are kept after NMS: classes, per-class thresholds, region of interest.

    ``roi`` is a polygon ``[x1, y1, x2, y2, ...]`` in source pixels (4 numbers mean an
    axis-aligned rectangle x1, y1, x2, y2); empty keeps the whole image. ``roi_mode``
    ``center`` keeps a box whose centre is inside, ``overlap`` one whose area inside the ROI
    is at least ``roi_min_overlap`` of its own.
    """

    classes: list[int] = field(default_factory=list)
    class_thresholds: dict[int, float] = field(default_factory=dict)
    roi: list[float] = field(default_factory=list)
    roi_mode: str = "center"
    roi_min_overlap: float = 0.5

    def validate(self) -> list[str]:
        errors: list[str] = []
        if any((not isinstance(c, int)) or c < 0 for c in self.classes):
            errors.append(f"classes={self.classes!r} must be non-negative integers")
        for cls_id, thr in self.class_thresholds.items():
            errors += _in_range(f"class_thresholds[{cls_id}]", thr, 0.0, 1.0)
        if self.roi and (len(self.roi) < 4 or len(self.roi) % 2):
            errors.append("roi must be empty, a rectangle [x1,y1,x2,y2] or a polygon of >= 3 points")
        if len(self.roi) == 4 and (self.roi[2] <= self.roi[0] or self.roi[3] <= self.roi[1]):
            errors.append("roi rectangle needs x2 > x1 and y2 > y1")
        if self.roi_mode not in ("center", "overlap"):
            errors.append(f"roi_mode={self.roi_mode!r} must be center or overlap")
        errors += _in_range("roi_min_overlap", self.roi_min_overlap, 0.0, 1.0)
        return errors


@dataclass
class TrackerConfig(StageConfig):
    """ByteTrack with the published defaults (Zhang et al., 2022, MOT17 settings)."""

    enabled: bool = True
    track_thresh: float = 0.5  # high-score detections for the first association
    low_thresh: float = 0.1  # detections below this are dropped altogether
    new_track_thresh: float = 0.6  # a new track needs score >= track_thresh + 0.1
    match_thresh: float = 0.8  # maximum (1 - IoU) cost in the first association
    second_match_thresh: float = 0.5
    unconfirmed_match_thresh: float = 0.7
    track_buffer: int = 30  # frames a lost track is kept, at 30 FPS
    frame_rate: float = 30.0
    min_box_area: float = 10.0
    fuse_score: bool = True
    class_aware: bool = False

    def validate(self) -> list[str]:
        errors: list[str] = []
        for name in (
            "track_thresh",
            "low_thresh",
            "new_track_thresh",
            "match_thresh",
            "second_match_thresh",
            "unconfirmed_match_thresh",
        ):
            errors += _in_range(name, getattr(self, name), 0.0, 1.0)
        if self.low_thresh > self.track_thresh:
            errors.append("low_thresh must be <= track_thresh")
        if self.track_buffer < 0:
            errors.append("track_buffer must be >= 0")
        if self.frame_rate <= 0:
            errors.append("frame_rate must be positive")
        if self.min_box_area < 0:
            errors.append("min_box_area must be >= 0")
        return errors

    @property
    def max_time_lost(self) -> int:
        """Frames a lost track survives: the buffer scaled from 30 FPS to the frame rate."""
        return int(self.frame_rate / 30.0 * self.track_buffer)
