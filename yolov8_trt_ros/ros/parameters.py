"""ROS parameters of the detector node: one table, declared with descriptors, mapped to the configs.

Each parameter names the stage config field it fills, so the YAML a launch file passes and
the YAML the bring-up entry point reads fill the same dataclasses. Parameters marked
``reconfigure`` (engine, model, input size) can only change while the node is unconfigured:
they decide what ``configure`` loads. All others apply from the next frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from yolov8_trt_ros.core.config import (
    ConfigError,
    EngineConfig,
    FilterConfig,
    PostprocessConfig,
    PreprocessConfig,
    TrackerConfig,
)
from yolov8_trt_ros.core.pipeline import PipelineConfig

_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
}


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: where it goes, its type, range and whether it needs a reconfigure."""

    name: str
    stage: str  # preprocess | engine | postprocess | filters | tracker | node
    field: str
    type: Parameter.Type
    default: Any
    description: str
    reconfigure: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(
            name=self.name,
            type=int(self.type),
            description=self.description,
            read_only=self.read_only,
            additional_constraints="changes only while unconfigured (needs cleanup + configure)"
            if self.reconfigure
            else "",
        )
        if self.int_range:
            desc.integer_range = [
                IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)
            ]
        if self.float_range:
            desc.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)
            ]
        return desc


_DEFAULTS: dict[str, Any] = {
    "preprocess": PreprocessConfig(),
    "engine": EngineConfig(),
    "postprocess": PostprocessConfig(),
    "filters": FilterConfig(),
    "tracker": TrackerConfig(),
}


def _spec(stage: str, field: str, description: str, *, default: Any = None, **kw: Any) -> ParamSpec:
    """A parameter whose default is the stage config's own, unless given (node options, arrays)."""
    if default is None:
        default = getattr(_DEFAULTS[stage], field)
    ptype = kw.pop("array_type") if isinstance(default, list) else _TYPES[type(default)]
    return ParamSpec(kw.pop("name", field), stage, field, ptype, default, description, **kw)


_PRE = _DEFAULTS["preprocess"]
U01 = (0.0, 1.0)

PARAMS: tuple[ParamSpec, ...] = (
    # --- engine: what configure loads -----------------------------------------------------
    _spec(
        "engine",
        "backend",
        "auto | tensorrt | cuda | onnxruntime (auto: TensorRT > CUDA > CPU)",
        reconfigure=True,
    ),
    _spec(
        "engine",
        "model_path",
        "ONNX model (relative paths are from the working directory)",
        reconfigure=True,
    ),
    _spec(
        "engine",
        "engine_cache_dir",
        "where built TensorRT engines are cached",
        reconfigure=True,
    ),
    _spec(
        "engine",
        "precision",
        "int8 | fp16 | fp32 (int8 falls back to fp16 without fast INT8)",
        reconfigure=True,
    ),
    _spec("engine", "batch_size", "frames per inference", reconfigure=True, int_range=(1, 64)),
    _spec(
        "engine",
        "max_batch_size",
        "largest batch of the engine's optimisation profile",
        reconfigure=True,
        int_range=(1, 64),
    ),
    _spec(
        "engine",
        "workspace_mb",
        "TensorRT builder workspace limit (MiB)",
        reconfigure=True,
        int_range=(16, 65536),
    ),
    _spec("engine", "calibration_dir", "INT8 calibration images", reconfigure=True),
    _spec("engine", "calibration_cache", "INT8 calibration cache file", reconfigure=True),
    _spec(
        "engine",
        "calibration_images",
        "images used for INT8 calibration",
        reconfigure=True,
        int_range=(1, 100000),
    ),
    _spec("engine", "device_id", "CUDA device index", reconfigure=True, int_range=(0, 63)),
    _spec("engine", "cuda_graph", "capture inference as a CUDA graph", reconfigure=True),
    _spec(
        "engine",
        "num_threads",
        "ONNX Runtime intra-op threads (0: its default)",
        reconfigure=True,
        int_range=(0, 256),
    ),
    _spec("engine", "end2end_nms", "NMS inside the TensorRT engine", reconfigure=True),
    _spec(
        "preprocess",
        "input_width",
        "network input width (an engine's own size wins)",
        reconfigure=True,
        int_range=(32, 4096),
    ),
    _spec(
        "preprocess",
        "input_height",
        "network input height",
        reconfigure=True,
        int_range=(32, 4096),
    ),
    _spec(
        "node",
        "max_image_pixels",
        "larger input images are rejected",
        default=_PRE.max_image_pixels,
        int_range=(1, 1 << 28),
    ),
    # --- postprocess: live ----------------------------------------------------------------
    _spec(
        "postprocess",
        "conf_threshold",
        "global minimum score (inclusive)",
        float_range=U01,
    ),
    _spec("postprocess", "iou_threshold", "NMS suppresses IoU above this", float_range=U01),
    _spec(
        "postprocess",
        "max_detections",
        "detections kept per image after NMS",
        int_range=(1, 10000),
    ),
    _spec(
        "postprocess",
        "pre_nms_top_k",
        "candidates (best scores) that enter NMS",
        int_range=(1, 1_000_000),
    ),
    _spec("postprocess", "class_agnostic", "NMS across classes"),
    # --- filters: live --------------------------------------------------------------------
    _spec(
        "filters",
        "classes",
        "classes kept (names or ids); empty keeps all",
        default=[],
        array_type=Parameter.Type.STRING_ARRAY,
    ),
    _spec(
        "filters",
        "class_thresholds",
        "per-class score thresholds as 'class:threshold' (name or id)",
        default=[],
        array_type=Parameter.Type.STRING_ARRAY,
    ),
    _spec(
        "filters",
        "roi",
        "region of interest in image pixels: [x1,y1,x2,y2] or polygon [x,y,...]",
        default=[],
        array_type=Parameter.Type.DOUBLE_ARRAY,
    ),
    _spec("filters", "roi_mode", "center: keep boxes whose centre is in the ROI; overlap: by area"),
    _spec("filters", "roi_min_overlap", "overlap mode: fraction of the box inside the ROI", float_range=U01),
    # --- tracker: live --------------------------------------------------------------------
    _spec("tracker", "enabled", "run ByteTrack and publish tracks", name="tracker.enabled"),
    _spec(
        "tracker",
        "track_thresh",
        "first-association score threshold",
        name="tracker.track_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "low_thresh",
        "detections below are ignored by the tracker",
        name="tracker.low_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "new_track_thresh",
        "score needed to start a track",
        name="tracker.new_track_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "match_thresh",
        "first-association max cost (1 - IoU)",
        name="tracker.match_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "second_match_thresh",
        "second association (low-score detections) max cost",
        name="tracker.second_match_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "unconfirmed_match_thresh",
        "max cost to confirm a new track",
        name="tracker.unconfirmed_match_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "track_buffer",
        "frames (at 30 FPS) a lost track is kept",
        name="tracker.track_buffer",
        int_range=(0, 10000),
    ),
    _spec(
        "tracker",
        "frame_rate",
        "camera frame rate, scales the track buffer",
        name="tracker.frame_rate",
        float_range=(1.0, 1000.0),
    ),
    _spec(
        "tracker",
        "min_box_area",
        "tracks with a smaller box are not published",
        name="tracker.min_box_area",
        float_range=(0.0, 1e8),
    ),
    _spec(
        "tracker",
        "fuse_score",
        "fuse detection score into the IoU cost",
        name="tracker.fuse_score",
    ),
    _spec(
        "tracker",
        "class_aware",
        "associate only within a class",
        name="tracker.class_aware",
    ),
    # --- node -----------------------------------------------------------------------------
    _spec(
        "node",
        "autostart",
        "configure and activate at start, without a lifecycle manager",
        default=False,
        read_only=True,
    ),
    _spec("node", "publish_class_names", "class_id as the class name (else the number)", default=True),
    _spec(
        "node",
        "debug_image",
        "publish an annotated image on debug_image when someone subscribes",
        default=True,
    ),
    _spec(
        "node",
        "compressed_input",
        "also subscribe to image/compressed (sensor_msgs/CompressedImage)",
        default=False,
        reconfigure=True,
    ),
    _spec(
        "node",
        "image_topics",
        "camera image topics batched into one inference, each with its own tracker and "
        "<camera>/detections, <camera>/tracks outputs (empty: the one topic `image`)",
        default=[],
        array_type=Parameter.Type.STRING_ARRAY,
        reconfigure=True,
    ),
    _spec(
        "node",
        "batch_timeout_ms",
        "longest wait for the other live cameras once one camera's frame is there",
        default=5.0,
        float_range=(0.0, 1000.0),
        reconfigure=True,
    ),
    _spec("node", "enable", "run inference (false: stay active, drop frames, publish nothing)", default=True),
    _spec(
        "node",
        "diagnostics_period",
        "seconds between diagnostics messages",
        default=1.0,
        reconfigure=True,
        float_range=(0.05, 60.0),
    ),
    _spec(
        "node",
        "log_period",
        "seconds between timing reports in the log (0: never)",
        default=0.0,
        float_range=(0.0, 3600.0),
    ),
)
BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def declare_all(node: Node) -> None:
    """Declare every parameter with its descriptor.

    Array parameters are declared statically typed without a value (rclpy would type an empty
    list default as a byte array), then given their default unless a YAML/launch override set one.
    """
    unset: list[Parameter] = []
    for spec in PARAMS:
        if isinstance(spec.default, list):
            node.declare_parameter(spec.name, spec.type, spec.descriptor())
            try:
                node.get_parameter(spec.name)
            except ParameterUninitializedException:
                unset.append(Parameter(spec.name, spec.type, spec.default))
        else:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
    if unset:
        node.set_parameters(unset)


def _parse_class(token: str, names: Sequence[str] | None) -> int | None:
    """A class id from a number or a model class name; None for a name before the model is loaded."""
    token = token.strip()
    if token.lstrip("-").isdigit():
        return int(token)
    if names is None:
        return None
    if token in names:
        return list(names).index(token)
    raise ConfigError(f"unknown class {token!r} (model classes: {', '.join(names) or 'unnamed'})")


def _class_thresholds(items: Sequence[str], names: Sequence[str] | None) -> dict[int, float]:
    out: dict[int, float] = {}
    for item in items:
        key, sep, value = item.rpartition(":")
        if not sep:
            raise ConfigError(f"class_thresholds entry {item!r} must be 'class:threshold'")
        try:
            threshold = float(value)
        except ValueError as exc:
            raise ConfigError(f"class_thresholds entry {item!r}: {exc}") from exc
        cls_id = _parse_class(key, names)
        if cls_id is not None:
            out[cls_id] = threshold
    return out


def build_configs(values: Mapping[str, Any], class_names: Sequence[str] | None = ()) -> PipelineConfig:
    """Stage configs from parameter values (name → value); raises ConfigError with reasons.

    ``class_names=None`` means the model is not loaded yet: class names in ``classes`` and
    ``class_thresholds`` are then passed over (numbers are still checked).
    """
    stages: dict[str, dict[str, Any]] = {
        s: {} for s in ("preprocess", "engine", "postprocess", "filters", "tracker")
    }
    for spec in PARAMS:
        if spec.stage == "node":
            continue
        value = values.get(spec.name, spec.default)
        if spec.name == "classes":
            value = [c for c in (_parse_class(str(v), class_names) for v in value) if c is not None]
        elif spec.name == "class_thresholds":
            value = _class_thresholds(value, class_names)
        elif spec.name == "roi":
            value = [float(v) for v in value]
        stages[spec.stage][spec.field] = value
    return PipelineConfig(
        preprocess=PreprocessConfig.from_mapping(stages["preprocess"]),
        engine=EngineConfig.from_mapping(stages["engine"]),
        postprocess=PostprocessConfig.from_mapping(stages["postprocess"]),
        filters=FilterConfig.from_mapping(stages["filters"]),
        tracker=TrackerConfig.from_mapping(stages["tracker"]),
    )


def current_values(node: Node) -> dict[str, Any]:
    return {spec.name: node.get_parameter(spec.name).value for spec in PARAMS}
