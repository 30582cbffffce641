"""ROS parameters of the detector node: one table, declared with descriptors, mapped to the configs.

Each parameter (``PARAMS``, the table; ``python -m yolov8_trt_ros.ros.parameters`` prints it
as Markdown) names the stage config field it fills, so the YAML a launch file passes and the
YAML the bring-up entry point reads fill the same dataclasses; the node's own options (stage
``node``) fill :class:`NodeOptions`. When a change applies:

* ``reconfigure`` (engine, model, input size, labels file): only while unconfigured; they
  decide what ``configure`` loads.
* ``reactivate`` (image topics and their QoS): only while not active; the subscriptions are
  made at ``activate``.
* all others: live, from the next frame. With NMS inside the engine (TensorRT), the NMS
  values are built in and only narrowing changes apply live (see
  :class:`~yolov8_trt_ros.core.config.EngineNms`); others are refused with the reason
  "needs an engine rebuild: deactivate, cleanup, set, configure".

Classes are named by id or by name (``classes: [0, 'square']``, ``class_thresholds:
['square:0.6']``); once the class names are known (configure, and every later change) an
unknown name or an id the model does not have is refused; before, ids are checked for form.
``classes`` and ``roi`` accept integer or string (``classes``) and integer or float (``roi``)
arrays, because YAML types ``[0, 2]`` and ``[0, 0, 640, 480]`` as integer arrays.
:func:`check_change` is the whole check a parameter callback needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidTopicNameException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.validate_topic_name import validate_topic_name

from yolov8_trt_ros.core.config import (
    ConfigError,
    EngineConfig,
    EngineNms,
    FilterConfig,
    PostprocessConfig,
    PreprocessConfig,
    TrackerConfig,
)
from yolov8_trt_ros.core.pipeline import PipelineConfig

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
#: Who takes frames from the image subscriptions: the rcl intake thread (``ros/rcl_intake.py``),
#: rclpy's executor, or the first where it can be bound.
INTAKES = ("auto", "rcl", "executor")


@dataclass(frozen=True)
class NodeOptions:
    """The node's own options (parameters of stage ``node``), validated; defaults are the parameters'.

    ``max_image_pixels`` belongs to :class:`PreprocessConfig` and is repeated here for the
    node's own check before decoding a message (the same parameter fills both).
    """

    autostart: bool = False
    enable: bool = True  # False pauses inference while the node stays active
    publish_class_names: bool = True
    debug_image: bool = True
    compressed_input: bool = False
    diagnostics_period: float = 1.0
    log_period: float = 0.0
    max_image_pixels: int = PreprocessConfig().max_image_pixels
    # Best effort as cameras publish and qos_profile_sensor_data subscribes; "reliable" for a
    # reliable-only publisher (a reliable subscriber never matches a best-effort publisher).
    image_reliability: str = "best_effort"
    # 1: the history holds only the newest frame, the one the gated subscription takes next
    # (ros/frame_gate.py); a deeper history would hand over older frames first.
    image_qos_depth: int = 1
    image_intake: str = "auto"
    image_topics: tuple[str, ...] = ()  # empty: the single ``image`` topic
    batch_timeout_ms: float = 10.0
    labels_file: str = ""

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeOptions:
        """From parameter values (name → value, missing ones at their default); raises ConfigError."""
        default = cls()
        kw = {f.name: values.get(f.name, getattr(default, f.name)) for f in fields(cls)}
        topics = kw["image_topics"]
        if isinstance(topics, str) or not isinstance(topics, Iterable):
            raise ConfigError(f"image_topics={topics!r} must be a list of topic names")
        kw["image_topics"] = tuple(topics)
        opts = cls(**kw)
        errors = opts.validate()
        if errors:
            raise ConfigError("; ".join(errors))
        return opts

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.image_reliability not in RELIABILITY:
            choices = ", ".join(RELIABILITY)
            errors.append(f"image_reliability={self.image_reliability!r} must be one of: {choices}")
        if self.image_intake not in INTAKES:
            errors.append(f"image_intake={self.image_intake!r} must be one of: {', '.join(INTAKES)}")
        if not isinstance(self.image_qos_depth, int) or not 1 <= self.image_qos_depth <= 1000:
            errors.append(f"image_qos_depth={self.image_qos_depth!r} must be in [1, 1000]")
        if not _finite_in(self.batch_timeout_ms, 0.0, 1000.0):
            errors.append(f"batch_timeout_ms={self.batch_timeout_ms!r} must be in [0, 1000]")
        if not _finite_in(self.diagnostics_period, 0.05, 60.0):
            errors.append(f"diagnostics_period={self.diagnostics_period!r} must be in [0.05, 60]")
        if not _finite_in(self.log_period, 0.0, 3600.0):
            errors.append(f"log_period={self.log_period!r} must be in [0, 3600]")
        for topic in self.image_topics:
            try:
                validate_topic_name(str(topic))
            except InvalidTopicNameException as exc:
                errors.append(f"image_topics entry {topic!r}: {str(exc).splitlines()[0]}")
        dup = sorted({t for t in self.image_topics if self.image_topics.count(t) > 1})
        if dup:
            errors.append(f"image_topics lists {dup} more than once")
        return errors

    @property
    def topics(self) -> tuple[str, ...]:
        """The image topics to subscribe to: ``image_topics``, or the single ``image``."""
        return self.image_topics or ("image",)

    def image_qos(self) -> QoSProfile:
        """The image subscriptions' QoS: keep-last ``image_qos_depth``, ``image_reliability``, volatile."""
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self.image_qos_depth,
            reliability=RELIABILITY[self.image_reliability],
            durability=DurabilityPolicy.VOLATILE,
        )


def _finite_in(value: Any, lo: float, hi: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi


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
    reactivate: bool = False  # changes only while not active (applies at the next activate)
    choices: tuple[str, ...] = ()
    # Array types also accepted besides ``type`` (declared dynamically typed, checked here).
    also_types: tuple[Parameter.Type, ...] = ()

    def descriptor(self) -> ParameterDescriptor:
        constraints = []
        if self.choices:
            constraints.append("one of: " + ", ".join(self.choices))
        if self.also_types:
            constraints.append("type: " + " or ".join(t.name.lower() for t in (self.type, *self.also_types)))
        if self.reconfigure:
            constraints.append("changes only while unconfigured (needs cleanup + configure)")
        if self.reactivate:
            constraints.append("changes only while not active (applies at the next activate)")
        desc = ParameterDescriptor(
            name=self.name,
            type=0 if self.also_types else int(self.type),
            description=self.description,
            read_only=self.read_only,
            dynamic_typing=bool(self.also_types),
            additional_constraints="; ".join(constraints),
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
    "node": NodeOptions(),
}


def _spec(stage: str, field: str, description: str, *, default: Any = None, **kw: Any) -> ParamSpec:
    """A parameter whose default is the stage config's own, unless given (node options, arrays)."""
    if default is None:
        default = getattr(_DEFAULTS[stage], field)
        if isinstance(default, tuple):
            default = list(default)
    ptype = kw.pop("array_type") if isinstance(default, list) else _TYPES[type(default)]
    return ParamSpec(kw.pop("name", field), stage, field, ptype, default, description, **kw)


U01 = (0.0, 1.0)

PARAMS: tuple[ParamSpec, ...] = (
    # --- engine: what configure loads -----------------------------------------------------
    _spec(
        "engine",
        "backend",
        "auto | tensorrt | cuda | onnxruntime (auto: TensorRT > CUDA > CPU)",
        reconfigure=True,
        choices=("auto", "tensorrt", "cuda", "onnxruntime"),
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
        choices=("int8", "fp16", "fp32"),
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
    _spec(
        "engine",
        "end2end_nms",
        "NMS inside the engine: TensorRT EfficientNMS, or in the CUDA backend's graph",
        reconfigure=True,
    ),
    _spec(
        "engine",
        "plugin_libraries",
        "TensorRT plugin libraries (.so) loaded before building or loading an engine, for "
        "models with custom layers",
        array_type=Parameter.Type.STRING_ARRAY,
        reconfigure=True,
    ),
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
        "preprocess",
        "max_image_pixels",
        "input images larger than this (width x height) are refused",
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
        also_types=(Parameter.Type.INTEGER_ARRAY,),
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
        also_types=(Parameter.Type.INTEGER_ARRAY,),
    ),
    _spec(
        "filters",
        "roi_mode",
        "center: keep boxes whose centre is in the ROI; overlap: by area",
        choices=("center", "overlap"),
    ),
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
    # --- tracker: re-identification (live) -----------------------------------------------
    _spec(
        "tracker",
        "reid_enabled",
        "associate by appearance too (the model's embeddings output) and re-find lost tracks; "
        "off, or without embeddings, the tracker is plain ByteTrack",
        name="reid.enabled",
    ),
    _spec(
        "tracker",
        "reid_buffer",
        "frames (at 30 FPS) a lost track can be re-found by appearance",
        name="reid.buffer",
        int_range=(0, 100000),
    ),
    _spec(
        "tracker",
        "proximity_thresh",
        "appearance is fused only where the IoU distance (1 - IoU) is below this",
        name="reid.proximity_thresh",
        float_range=U01,
    ),
    _spec(
        "tracker",
        "appearance_thresh",
        "largest cosine distance that counts as the same look",
        name="reid.appearance_thresh",
        float_range=(0.0, 2.0),
    ),
    _spec(
        "tracker",
        "gallery_thresh",
        "largest cosine distance to re-find a lost track wherever it reappears",
        name="reid.gallery_thresh",
        float_range=(0.0, 2.0),
    ),
    _spec(
        "tracker",
        "ema_alpha",
        "smoothing of a track's embedding (weight of its past)",
        name="reid.ema_alpha",
        float_range=U01,
    ),
    # --- node (NodeOptions) ------------------------------------------------------------
    _spec(
        "node",
        "autostart",
        "configure and activate at start, without a lifecycle manager",
        read_only=True,
    ),
    _spec("node", "enable", "run inference; false pauses it while the node stays active"),
    _spec("node", "publish_class_names", "class_id as the class name (else the number)"),
    _spec("node", "debug_image", "publish an annotated image on debug_image when someone subscribes"),
    _spec(
        "node",
        "compressed_input",
        "subscribe to <topic>/compressed (sensor_msgs/CompressedImage) instead of the raw topic",
        reconfigure=True,
    ),
    _spec(
        "node",
        "image_topics",
        "camera image topics batched into one inference, each with its own tracker and "
        "<camera>/detections, <camera>/tracks outputs (empty: the one topic 'image')",
        array_type=Parameter.Type.STRING_ARRAY,
        reconfigure=True,
    ),
    _spec(
        "node",
        "image_reliability",
        "image subscription QoS reliability: best_effort (matches every publisher) or reliable",
        reactivate=True,
        choices=tuple(RELIABILITY),
    ),
    _spec(
        "node",
        "image_qos_depth",
        "image subscription QoS depth (keep last)",
        reactivate=True,
        int_range=(1, 1000),
    ),
    _spec(
        "node",
        "image_intake",
        "who takes frames: rcl (a thread of its own, GIL released while it waits and copies), "
        "executor (rclpy's), auto (rcl where it can be bound, else executor)",
        reactivate=True,
        choices=INTAKES,
    ),
    _spec(
        "node",
        "batch_timeout_ms",
        "multi-camera: longest wait for the other live cameras' frames before a partial batch",
        float_range=(0.0, 1000.0),
        reactivate=True,
    ),
    _spec(
        "node",
        "labels_file",
        "class names, one per line or YAML (list, id: name, or 'names:'); overrides the model's",
        reconfigure=True,
    ),
    _spec(
        "node",
        "diagnostics_period",
        "seconds between diagnostics messages",
        reconfigure=True,
        float_range=(0.05, 60.0),
    ),
    _spec(
        "node",
        "log_period",
        "seconds between timing reports in the log (0: never)",
        float_range=(0.0, 3600.0),
    ),
)
BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def declare_all(node: Node) -> None:
    """Declare every parameter with its descriptor.

    Array parameters are declared without a value (rclpy would type an empty list default as
    a byte array), then given their default, as their canonical type, unless a YAML/launch
    override set one. Those that accept several array types are declared dynamically typed
    (rclpy refuses a type with ``dynamic_typing``); :func:`check_change` checks their values.
    """
    unset: list[Parameter] = []
    for spec in PARAMS:
        if spec.also_types:
            node.declare_parameter(spec.name, None, spec.descriptor())
            if node.get_parameter(spec.name).type_ == Parameter.Type.NOT_SET:
                unset.append(Parameter(spec.name, spec.type, spec.default))
        elif isinstance(spec.default, list):
            node.declare_parameter(spec.name, spec.type, spec.descriptor())
            try:
                node.get_parameter(spec.name)
            except ParameterUninitializedException:
                unset.append(Parameter(spec.name, spec.type, spec.default))
        else:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
    if unset:
        node.set_parameters(unset)


def _as_list(name: str, value: Any) -> list[Any]:
    """An array parameter's value as a list; a scalar (possible when dynamically typed) is refused."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name}={value!r} must be a list")
    return list(value)


def _parse_class(token: Any, names: Sequence[str] | None) -> int | None:
    """A class id from a number or a class name; None for a name while the names are unknown.

    A token of digits is an id, even where a name is made of digits (ids come first).
    """
    if isinstance(token, bool) or not isinstance(token, (int, str)):
        raise ConfigError(f"class {token!r} must be a class name or an integer id")
    text = str(token).strip()
    if text.lstrip("-").isdigit():
        cls_id = int(text)
        if cls_id < 0:
            raise ConfigError(f"class id {cls_id} must be >= 0")
        return cls_id
    if not text:
        raise ConfigError("an empty class name")
    if names is None:
        return None
    if text in names:
        return list(names).index(text)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise ConfigError(f"unknown class {text!r} (classes: {shown or 'none'})")


def _class_thresholds(items: Sequence[Any], names: Sequence[str] | None) -> dict[int, float]:
    out: dict[int, float] = {}
    for item in items:
        key, sep, value = str(item).rpartition(":")
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


def _roi(value: Any) -> list[float]:
    items = _as_list("roi", value)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
        raise ConfigError(f"roi={items!r} must be numbers")
    return [float(v) for v in items]


def build_configs(values: Mapping[str, Any], class_names: Sequence[str] | None = None) -> PipelineConfig:
    """Stage configs from parameter values (name → value); raises ConfigError with reasons.

    ``class_names`` are the classes the node serves (index = id; labels file or model, as
    :func:`~yolov8_trt_ros.core.labels.resolve_class_names` gives them): names in ``classes``
    and ``class_thresholds`` map to ids through them, and unknown names or ids are refused.
    ``None`` means they are not known yet (before configure): names are then passed over,
    ids checked for form only.
    """
    stages: dict[str, dict[str, Any]] = {
        s: {} for s in ("preprocess", "engine", "postprocess", "filters", "tracker")
    }
    for spec in PARAMS:
        if spec.stage == "node":
            continue
        value = values.get(spec.name, spec.default)
        if spec.name == "classes":
            parsed = (_parse_class(v, class_names) for v in _as_list("classes", value))
            value = list(dict.fromkeys(c for c in parsed if c is not None))
        elif spec.name == "class_thresholds":
            value = _class_thresholds(_as_list("class_thresholds", value), class_names)
        elif spec.name == "roi":
            value = _roi(value)
        stages[spec.stage][spec.field] = value
    cfg = PipelineConfig(
        preprocess=PreprocessConfig.from_mapping(stages["preprocess"]),
        engine=EngineConfig.from_mapping(stages["engine"]),
        postprocess=PostprocessConfig.from_mapping(stages["postprocess"]),
        filters=FilterConfig.from_mapping(stages["filters"]),
        tracker=TrackerConfig.from_mapping(stages["tracker"]),
    )
    if class_names is not None:
        errors = cfg.filters.unknown_classes(len(class_names))
        if errors:
            raise ConfigError("; ".join(errors))
    return cfg


def validate_values(
    values: Mapping[str, Any], class_names: Sequence[str] | None = None
) -> tuple[PipelineConfig, NodeOptions]:
    """Every parameter checked together: the stage configs and the node options; raises ConfigError."""
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is not None and spec.choices and value not in spec.choices:
            raise ConfigError(f"{name}={value!r} must be one of: {', '.join(spec.choices)}")
    cfg = build_configs(values, class_names)
    opts = NodeOptions.from_values(values)
    if len(opts.image_topics) > cfg.engine.max_batch_size:
        raise ConfigError(
            f"image_topics has {len(opts.image_topics)} topics, more than max_batch_size="
            f"{cfg.engine.max_batch_size} frames per inference"
        )
    return cfg, opts


def check_change(
    current: Mapping[str, Any],
    changes: Mapping[str, Any],
    *,
    state: str,
    class_names: Sequence[str] | None,
    engine_nms: EngineNms | None = None,
    engine_embeddings: bool | None = None,
) -> str | None:
    """Why a parameter change must be refused, or None: the whole check of a set-parameters callback.

    ``state`` is the lifecycle state label (``unconfigured``, ``configuring``, ``inactive``, ``active``);
    ``class_names`` the served classes once configured (else None); ``engine_nms`` the loaded
    engine's built-in NMS settings (None without in-engine NMS or engine); ``engine_embeddings``
    whether the loaded engine returns embeddings (None: no engine). Only the changed
    parameters are judged against the engine, so a setting the engine was built with never
    blocks an unrelated change.
    """
    for name in changes:
        spec = BY_NAME.get(name)
        if spec is None:
            continue
        if state == "configuring":
            return f"the node is configuring (loading or building its engine): set {name} once it is inactive"
        if spec.reconfigure and state != "unconfigured":
            return (
                f"{name} decides what configure loads: deactivate and clean up the node, "
                "set it, then configure again"
            )
        if spec.reactivate and state == "active":
            return f"{name} applies when the node activates: deactivate, set it, then activate again"
    if changes.get("reid.enabled") is True and engine_embeddings is False:
        return (
            "reid.enabled needs the model's embeddings, which the engine computes only when "
            "re-identification is on at configure: deactivate and clean up the node, set it, "
            "then configure again"
        )
    values = {**current, **changes}
    try:
        cfg, _ = validate_values(values, class_names)
    except (ConfigError, ValueError, TypeError) as exc:
        return str(exc)
    if engine_nms is not None:
        conflicts = engine_nms.conflicts(cfg.postprocess, cfg.filters)
        refused = [reason for name, reason in conflicts.items() if name in changes]
        if refused:
            return "; ".join(refused)
    return None


def changed_stages(names: Iterable[str]) -> set[str]:
    """The stages (``preprocess``, ``postprocess``, ``filters``, ``tracker``, ``node``) ``names`` touch."""
    return {BY_NAME[n].stage for n in names if n in BY_NAME}


def current_values(node: Node) -> dict[str, Any]:
    return {spec.name: node.get_parameter(spec.name).value for spec in PARAMS}


def markdown_table() -> str:
    """The parameter table as Markdown (for the README): name, default, when it applies, what it does."""
    rows = ["| parameter | default | applies | description |", "| --- | --- | --- | --- |"]
    for spec in PARAMS:
        when = "configure" if spec.reconfigure else "activate" if spec.reactivate else "live"
        if spec.read_only:
            when = "start"
        text = spec.description.replace("|", "\\|")
        rows.append(f"| `{spec.name}` | `{spec.default!r}` | {when} | {text} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
