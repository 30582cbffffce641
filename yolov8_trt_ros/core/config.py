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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        if not _is_int(self.max_image_pixels) or self.max_image_pixels <= 0:
            errors.append(f"max_image_pixels={self.max_image_pixels!r} must be a positive integer")
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
    #: TensorRT plugin libraries (.so) loaded before an engine is built or deserialized, for
    #: models with custom layers.
    plugin_libraries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.plugin_libraries, (list, tuple)):  # YAML and ROS give lists
            self.plugin_libraries = tuple(self.plugin_libraries)

    def validate(self) -> list[str]:
        errors: list[str] = []
        if not isinstance(self.plugin_libraries, tuple) or not all(
            isinstance(p, str) and p.strip() for p in self.plugin_libraries
        ):
            errors.append(f"plugin_libraries={self.plugin_libraries!r} must be a list of library paths")
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
    ``max_detections``. With NMS inside the engine these values are built into it:
    :class:`EngineNms` says which may still change at run time.
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
        if any(not _is_int(c) or c < 0 for c in self.classes):
            errors.append(f"classes={self.classes!r} must be non-negative integers")
        for cls_id, thr in self.class_thresholds.items():
            if not _is_int(cls_id) or cls_id < 0:
                errors.append(f"class_thresholds key {cls_id!r} must be a non-negative integer")
            errors += _in_range(f"class_thresholds[{cls_id}]", thr, 0.0, 1.0)
        # NaN compares false with everything, so a NaN corner would pass every later check
        # and make the ROI test keep or drop boxes arbitrarily: refuse non-finite numbers first.
        bad = [v for v in self.roi if not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            errors.append(f"roi={self.roi!r} must hold finite numbers (got {bad[0]!r})")
        elif self.roi and (len(self.roi) < 4 or len(self.roi) % 2):
            errors.append("roi must be empty, a rectangle [x1,y1,x2,y2] or a polygon of >= 3 points")
        elif len(self.roi) == 4 and (self.roi[2] <= self.roi[0] or self.roi[3] <= self.roi[1]):
            errors.append("roi rectangle needs x2 > x1 and y2 > y1")
        if self.roi_mode not in ("center", "overlap"):
            errors.append(f"roi_mode={self.roi_mode!r} must be center or overlap")
        errors += _in_range("roi_min_overlap", self.roi_min_overlap, 0.0, 1.0)
        return errors

    def unknown_classes(self, num_classes: int) -> list[str]:
        """Reasons for class ids the model does not have (``classes``, ``class_thresholds``).

        Separate from :meth:`validate` because only a loaded model knows its class count; an
        unknown id would otherwise match nothing, silently.
        """
        ids = sorted({*self.classes, *self.class_thresholds} - set(range(num_classes)))
        if not ids:
            return []
        return [f"class ids {ids} are not classes of the model (ids 0..{num_classes - 1})"]


def lowest_threshold(post: PostprocessConfig, filters: FilterConfig) -> float:
    """The lowest score any class may need: the global threshold or a lower per-class one.

    Decoding (and an engine's built-in NMS) must keep candidates down to it, or a per-class
    threshold below the global one never sees that class's low-score boxes.
    """
    return min([post.conf_threshold, *filters.class_thresholds.values()])


@dataclass(frozen=True)
class EngineNms:
    """The NMS settings an engine was built with (TensorRT EfficientNMS), fixed until a rebuild.

    Rule: with NMS inside the engine, a run-time change can only *narrow* what the engine
    returns, because the host can drop detections but never recover suppressed ones. So
    ``conf_threshold`` (and every per-class threshold) may rise but not fall below the built
    ``conf_threshold``, ``max_detections`` may fall but not rise above the built one, and
    ``iou_threshold``, ``class_agnostic`` and ``pre_nms_top_k`` cannot change at all (the
    plugin applies its own fixed top-k). Anything else needs the engine rebuilt: deactivate,
    cleanup, set, configure (the engine cache key holds these values, so configure builds it).
    """

    conf_threshold: float
    iou_threshold: float
    max_detections: int
    class_agnostic: bool
    pre_nms_top_k: int

    @classmethod
    def from_postprocess(cls, post: PostprocessConfig) -> EngineNms:
        """The settings of an engine built from ``post`` (what was passed to the backend)."""
        return cls(
            conf_threshold=post.conf_threshold,
            iou_threshold=post.iou_threshold,
            max_detections=post.max_detections,
            class_agnostic=post.class_agnostic,
            pre_nms_top_k=post.pre_nms_top_k,
        )

    def conflicts(self, post: PostprocessConfig, filters: FilterConfig) -> dict[str, str]:
        """Parameter name → why ``post``/``filters`` cannot apply to this engine (empty: they can)."""
        hint = "needs an engine rebuild: deactivate, cleanup, set, configure"
        out: dict[str, str] = {}
        for name in ("iou_threshold", "class_agnostic", "pre_nms_top_k"):
            built, wanted = getattr(self, name), getattr(post, name)
            if wanted != built:
                out[name] = f"{name}={wanted!r} differs from the in-engine NMS's {built!r}: {hint}"
        if post.conf_threshold < self.conf_threshold:
            out["conf_threshold"] = (
                f"conf_threshold={post.conf_threshold!r} is below the in-engine NMS's "
                f"{self.conf_threshold!r} (lower scores never leave the engine): {hint}"
            )
        if post.max_detections > self.max_detections:
            out["max_detections"] = (
                f"max_detections={post.max_detections} is above the in-engine NMS's "
                f"{self.max_detections}: {hint}"
            )
        low = {c: t for c, t in filters.class_thresholds.items() if t < self.conf_threshold}
        if low:
            out["class_thresholds"] = (
                f"class_thresholds {low} are below the in-engine NMS's conf_threshold "
                f"{self.conf_threshold!r} (lower scores never leave the engine): {hint}"
            )
        return out


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
    # Re-identification from the detector's own embeddings (BoT-SORT-style fusion plus a gallery
    # of lost tracks); off, or on a model without embeddings, the tracker is exactly ByteTrack.
    reid_enabled: bool = False
    reid_buffer: int = 150  # frames (at 30 FPS, scaled like track_buffer) a lost track can be re-found
    proximity_thresh: float = 0.5  # appearance counts only where 1 - IoU is below this (BoT-SORT)
    appearance_thresh: float = 0.25  # maximum cosine distance for an appearance match (BoT-SORT)
    gallery_thresh: float = 0.2  # maximum cosine distance to re-find a lost track anywhere in the frame
    ema_alpha: float = 0.9  # per-track embedding smoothing: f = alpha * f + (1 - alpha) * new

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
        for name in ("proximity_thresh", "appearance_thresh", "gallery_thresh"):
            errors += _in_range(name, getattr(self, name), 0.0, 2.0)  # cosine distance: [0, 2]
        errors += _in_range("ema_alpha", self.ema_alpha, 0.0, 1.0)
        if self.reid_buffer < 0:
            errors.append("reid_buffer must be >= 0")
        return errors

    @property
    def max_time_lost(self) -> int:
        """Frames a lost track survives: the buffer scaled from 30 FPS to the frame rate."""
        return int(self.frame_rate / 30.0 * self.track_buffer)

    @property
    def max_reid_lost(self) -> int:
        """Frames a lost track stays in the re-identification gallery, scaled like ``max_time_lost``."""
        return int(self.frame_rate / 30.0 * self.reid_buffer)
