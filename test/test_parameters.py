"""The node's parameter table against the stage configs (no ROS process needed)."""

from __future__ import annotations

import dataclasses
import math
import re
import time
from itertools import count

import numpy as np
import pytest

from yolov8_trt_ros.core.config import ConfigError
from yolov8_trt_ros.core.pipeline import PipelineConfig

pytestmark = pytest.mark.ros
NAMES = ("circle", "square", "triangle")
_names = count()


def test_every_config_field_is_a_parameter_with_the_same_default():
    from yolov8_trt_ros.ros.parameters import PARAMS, build_configs

    default = PipelineConfig.default()
    covered = {(p.stage, p.field) for p in PARAMS}
    for stage in ("engine", "postprocess", "filters", "tracker"):
        for field in dataclasses.fields(getattr(default, stage)):
            if (stage, field.name) == ("postprocess", "num_classes"):
                continue  # read from the model
            assert (stage, field.name) in covered, f"{stage}.{field.name} has no ROS parameter"
    built = build_configs({}, NAMES)
    assert built.engine == default.engine
    assert built.postprocess == default.postprocess
    assert built.tracker == default.tracker
    assert built.filters == default.filters


def test_plugin_libraries_reach_the_engine_config_in_order():
    from yolov8_trt_ros.ros.parameters import build_configs

    cfg = build_configs({"plugin_libraries": ["/opt/a/libone.so", "libtwo.so"]}, NAMES)
    assert cfg.engine.plugin_libraries == ("/opt/a/libone.so", "libtwo.so")


def test_class_names_and_thresholds_resolve_against_the_model():
    from yolov8_trt_ros.ros.parameters import build_configs

    cfg = build_configs({"classes": ["square", "2"], "class_thresholds": ["circle:0.7", "2:0.3"]}, NAMES)
    assert cfg.filters.classes == [1, 2]
    assert cfg.filters.class_thresholds == {0: 0.7, 2: 0.3}
    # Before the model is loaded, names cannot be checked and are passed over; numbers still are.
    early = build_configs({"classes": ["square", "2"]}, None)
    assert early.filters.classes == [2]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"classes": ["hexagon"]}, "unknown class 'hexagon'"),
        ({"class_thresholds": ["circle=0.5"]}, "class:threshold"),
        ({"class_thresholds": ["circle:high"]}, "circle:high"),
        ({"class_thresholds": ["circle:1.5"]}, "class_thresholds[0]"),
        ({"roi": [10.0, 10.0, 5.0, 20.0]}, "x2 > x1"),
        ({"tracker.low_thresh": 0.9}, "low_thresh"),
        ({"precision": "int4"}, "precision"),
        ({"input_width": 600}, "multiple of 32"),
        ({"plugin_libraries": ["libmy_plugin.so", " "]}, "plugin_libraries"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(values, message):
    from yolov8_trt_ros.ros.parameters import build_configs

    with pytest.raises(ConfigError) as err:
        build_configs(values, NAMES)
    assert message in str(err.value)


def test_reconfigure_parameters_are_the_ones_configure_loads():
    from yolov8_trt_ros.ros.parameters import PARAMS

    reconfigure = {p.name for p in PARAMS if p.reconfigure}
    assert {"backend", "model_path", "precision", "batch_size", "input_width", "input_height"} <= reconfigure
    assert not reconfigure & {"conf_threshold", "iou_threshold", "classes", "roi", "tracker.track_thresh"}


# --- issue 14: defects of the parameters -----------------------------------------------------


def test_max_image_pixels_reaches_the_preprocessor():
    """It was declared as a node option only: the preprocessor kept its default limit."""
    from yolov8_trt_ros.core.image_input import ImageError
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor
    from yolov8_trt_ros.ros.parameters import build_configs

    rng = np.random.default_rng()
    h, w = (int(v) for v in rng.integers(20, 60, size=2))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    low = build_configs({"max_image_pixels": h * w - 1}, NAMES)
    assert low.preprocess.max_image_pixels == h * w - 1
    with pytest.raises(ImageError):
        CpuPreprocessor(low.preprocess)([image], ["bgr8"])
    exact = build_configs({"max_image_pixels": h * w}, NAMES)
    tensor, _ = CpuPreprocessor(exact.preprocess)([image], ["bgr8"])
    assert tensor.shape == (1, 3, 640, 640)
    with pytest.raises(ConfigError, match="max_image_pixels"):
        build_configs({"max_image_pixels": 0}, NAMES)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", range(4))
def test_non_finite_roi_is_refused(bad, where):
    from yolov8_trt_ros.ros.parameters import build_configs

    roi = [10.0, 20.0, 300.0, 400.0]
    roi[where] = bad
    with pytest.raises(ConfigError, match="finite"):
        build_configs({"roi": roi}, NAMES)
    polygon = [10.0, 20.0, 300.0, 20.0, 150.0, 400.0]
    polygon[where] = bad
    with pytest.raises(ConfigError, match="finite"):
        build_configs({"roi": polygon}, NAMES)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"classes": ["99"]}, "class ids [99]"),
        ({"classes": [3]}, "class ids [3]"),
        ({"class_thresholds": ["99:0.5"]}, "class ids [99]"),
        ({"classes": ["circle", "7"], "class_thresholds": ["5:0.5"]}, "class ids [5, 7]"),
        ({"classes": ["Circle"]}, "unknown class 'Circle'"),
        ({"class_thresholds": ["hexagon:0.5"]}, "unknown class 'hexagon'"),
        ({"classes": ["-1"]}, "must be >= 0"),
        ({"classes": [""]}, "empty class name"),
        ({"classes": [0.5]}, "name or an integer id"),
        ({"classes": "circle"}, "must be a list"),
        ({"roi": ["10", "10", "20", "20"]}, "must be numbers"),
    ],
)
def test_unknown_classes_are_refused_once_the_names_are_known(values, message):
    from yolov8_trt_ros.ros.parameters import build_configs

    with pytest.raises(ConfigError) as err:
        build_configs(values, NAMES)
    assert message in str(err.value)


def test_before_configure_ids_are_checked_for_form_only():
    from yolov8_trt_ros.ros.parameters import build_configs

    early = build_configs({"classes": ["hexagon", "99", 4], "class_thresholds": ["99:0.5"]}, None)
    assert early.filters.classes == [99, 4] and early.filters.class_thresholds == {99: 0.5}
    with pytest.raises(ConfigError, match=">= 0"):
        build_configs({"classes": ["-3"]}, None)


def test_classes_mix_names_and_integer_ids():
    from yolov8_trt_ros.ros.parameters import build_configs

    cfg = build_configs({"classes": [2, "circle", "2"], "roi": [0, 0, 64, 48]}, NAMES)
    assert cfg.filters.classes == [2, 0]  # duplicates once, order kept
    assert cfg.filters.roi == [0.0, 0.0, 64.0, 48.0]


def test_yaml_integer_arrays_for_classes_and_roi_do_not_stop_the_node(rclpy_session):
    """YAML types ``[0, 2]`` as an integer array: a string-array declaration made the node's
    constructor raise (InvalidParameterTypeException), killing the process."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from yolov8_trt_ros.ros.parameters import build_configs, current_values, declare_all

    overrides = [Parameter("classes", value=[0, 2]), Parameter("roi", value=[0, 0, 640, 480])]
    node = Node(f"params_yaml_{next(_names)}", parameter_overrides=overrides)
    try:
        declare_all(node)
        cfg = build_configs(current_values(node), NAMES)
        assert cfg.filters.classes == [0, 2] and cfg.filters.roi == [0.0, 0.0, 640.0, 480.0]
        # Later sets of the other array type, and the defaults' own types, still work.
        assert node.set_parameters([Parameter("classes", value=["square"])])[0].successful
        assert build_configs(current_values(node), NAMES).filters.classes == [1]
    finally:
        node.destroy_node()


def test_array_parameters_default_to_their_canonical_type(rclpy_session):
    from rclpy.node import Node

    from yolov8_trt_ros.ros.parameters import PARAMS, declare_all

    node = Node(f"params_default_{next(_names)}")
    try:
        declare_all(node)
        for spec in PARAMS:
            param = node.get_parameter(spec.name)
            assert param.value == spec.default, spec.name
            if isinstance(spec.default, list):
                assert param.type_ == spec.type, spec.name
            desc = node.describe_parameter(spec.name)
            assert desc.description == spec.description
            assert desc.dynamic_typing == bool(spec.also_types)
    finally:
        node.destroy_node()


# --- in-engine NMS ----------------------------------------------------------------------------

BUILT = {"conf_threshold": 0.3, "iou_threshold": 0.5, "max_detections": 100, "pre_nms_top_k": 1000}


def _engine_and_values():
    from yolov8_trt_ros.core.config import EngineNms
    from yolov8_trt_ros.ros.parameters import PARAMS, build_configs

    values = {p.name: p.default for p in PARAMS} | BUILT
    return EngineNms.from_postprocess(build_configs(values, NAMES).postprocess), values


@pytest.mark.parametrize(
    "change",
    [
        {"iou_threshold": 0.6},
        {"iou_threshold": 0.4},
        {"class_agnostic": True},
        {"pre_nms_top_k": 2000},
        {"conf_threshold": 0.29},
        {"class_thresholds": ["circle:0.2"]},
        {"class_thresholds": ["square:0.9", "2:0.1"]},
        {"max_detections": 101},
    ],
)
def test_changes_the_engine_nms_cannot_apply_are_refused(change):
    from yolov8_trt_ros.ros.parameters import check_change

    nms, values = _engine_and_values()
    reason = check_change(values, change, state="active", class_names=NAMES, engine_nms=nms)
    assert reason is not None and "needs an engine rebuild: deactivate, cleanup, set, configure" in reason
    assert next(iter(change)) in reason
    # Without NMS in the engine (or unconfigured, no engine) the same change applies.
    assert check_change(values, change, state="active", class_names=NAMES, engine_nms=None) is None


@pytest.mark.parametrize(
    "change",
    [
        {"conf_threshold": 0.3},
        {"conf_threshold": 0.7},
        {"class_thresholds": ["circle:0.3", "2:0.95"]},
        {"max_detections": 5},
        {"iou_threshold": 0.5, "class_agnostic": False},  # the built values themselves
        {"classes": ["circle"], "roi": [0.0, 0.0, 10.0, 10.0]},
    ],
)
def test_narrowing_changes_apply_to_the_engine_nms(change):
    from yolov8_trt_ros.ros.parameters import check_change

    nms, values = _engine_and_values()
    assert check_change(values, change, state="active", class_names=NAMES, engine_nms=nms) is None


def test_an_engine_setting_never_blocks_an_unrelated_change():
    """A per-class threshold below the built one is the engine's problem, not the tracker's."""
    from yolov8_trt_ros.ros.parameters import check_change

    nms, values = _engine_and_values()
    values["class_thresholds"] = ["circle:0.1"]
    assert (
        check_change(values, {"tracker.track_thresh": 0.6}, state="active", class_names=NAMES, engine_nms=nms)
        is None
    )
    reason = check_change(
        values, {"class_thresholds": ["circle:0.15"]}, state="active", class_names=NAMES, engine_nms=nms
    )
    assert reason is not None and "class_thresholds" in reason


def test_engine_nms_conflicts_name_each_parameter():
    from yolov8_trt_ros.core.config import EngineNms, FilterConfig, PostprocessConfig

    rng = np.random.default_rng()
    conf, iou = (float(v) for v in rng.uniform(0.2, 0.8, size=2))
    built = PostprocessConfig(conf_threshold=conf, iou_threshold=iou, max_detections=50, pre_nms_top_k=500)
    nms = EngineNms.from_postprocess(built)
    assert nms.conflicts(built, FilterConfig()) == {}
    wanted = built.replace(
        conf_threshold=conf / 2,
        iou_threshold=iou / 2,
        max_detections=60,
        class_agnostic=True,
        pre_nms_top_k=600,
    )
    found = nms.conflicts(wanted, FilterConfig(class_thresholds={1: conf / 3, 2: conf}))
    assert set(found) == {
        "conf_threshold",
        "iou_threshold",
        "max_detections",
        "class_agnostic",
        "pre_nms_top_k",
        "class_thresholds",
    }
    assert "{1: " in found["class_thresholds"] and "2:" not in found["class_thresholds"]


# --- when a change may apply, node options ---------------------------------------------------


@pytest.mark.parametrize(
    "name, value, refused_in",
    [
        ("model_path", "other.onnx", {"inactive", "active"}),
        ("plugin_libraries", ["/opt/plugins/libmy_plugin.so"], {"inactive", "active"}),
        ("labels_file", "labels.txt", {"inactive", "active"}),
        ("image_reliability", "reliable", {"active"}),
        ("image_qos_depth", 10, {"active"}),
        ("image_topics", ["cam0/image", "cam1/image"], {"inactive", "active"}),
        ("enable", False, set()),
        ("batch_timeout_ms", 25.0, {"active"}),
        ("conf_threshold", 0.5, set()),
    ],
)
def test_each_parameter_changes_in_its_states(name, value, refused_in):
    from yolov8_trt_ros.ros.parameters import PARAMS, check_change

    values = {p.name: p.default for p in PARAMS}
    for state in ("unconfigured", "inactive", "active"):
        names = None if state == "unconfigured" else NAMES
        reason = check_change(values, {name: value}, state=state, class_names=names)
        assert (reason is not None) == (state in refused_in), (state, reason)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"image_reliability": "best-effort"}, "image_reliability"),
        ({"image_qos_depth": 0}, "image_qos_depth"),
        ({"batch_timeout_ms": math.nan}, "batch_timeout_ms"),
        ({"batch_timeout_ms": -1.0}, "batch_timeout_ms"),
        ({"image_topics": ["cam0/image", "cam 1"]}, "'cam 1'"),
        ({"image_topics": ["cam0/image", ""]}, "''"),
        ({"image_topics": ["a/image", "a/image"]}, "more than once"),
        ({"image_topics": [f"cam{i}/image" for i in range(9)]}, "max_batch_size=8"),
        ({"roi_mode": "inside"}, "roi_mode"),
    ],
)
def test_invalid_node_options_are_refused_with_a_reason(values, message):
    from yolov8_trt_ros.ros.parameters import validate_values

    with pytest.raises(ConfigError) as err:
        validate_values(values, NAMES)
    assert message in str(err.value)


def test_node_options_defaults_and_image_qos():
    from rclpy.qos import HistoryPolicy, ReliabilityPolicy, qos_profile_sensor_data

    from yolov8_trt_ros.ros.parameters import BY_NAME, NodeOptions, validate_values

    _, opts = validate_values({}, NAMES)
    assert opts == NodeOptions()
    for f in dataclasses.fields(NodeOptions):
        default = getattr(opts, f.name)
        assert BY_NAME[f.name].default == (list(default) if isinstance(default, tuple) else default)
    assert opts.topics == ("image",)
    qos = opts.image_qos()  # best effort as cameras publish; only the newest frame is kept
    assert qos.reliability == qos_profile_sensor_data.reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.depth == 1 and qos.history == HistoryPolicy.KEEP_LAST
    _, opts = validate_values(
        {"image_reliability": "reliable", "image_qos_depth": 1, "image_topics": ["a/image", "b/image"]}, NAMES
    )
    assert opts.image_qos().reliability == ReliabilityPolicy.RELIABLE and opts.image_qos().depth == 1
    assert opts.topics == ("a/image", "b/image")


def test_a_reliable_subscription_receives_from_a_reliable_only_publisher(rclpy_session):
    """The QoS the parameter selects is the one that matters: best effort (the default) and
    reliable both match a reliable publisher, and reliable is what a monitor shows."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from yolov8_trt_ros.ros.parameters import validate_values

    _, opts = validate_values({"image_reliability": "reliable"}, NAMES)
    node = Node(f"params_qos_{next(_names)}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        topic = f"qos_check_{next(_names)}"
        got: list[String] = []
        node.create_subscription(String, topic, got.append, opts.image_qos())
        pub = node.create_publisher(
            String, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        info = node.get_subscriptions_info_by_topic(topic)
        assert [i.qos_profile.reliability for i in info] == [ReliabilityPolicy.RELIABLE]
        deadline = time.monotonic() + 10.0
        while not got and time.monotonic() < deadline:
            pub.publish(String(data="x"))
            executor.spin_once(timeout_sec=0.05)
        assert got
    finally:
        executor.shutdown()
        node.destroy_node()


def test_the_parameter_table_renders_every_parameter():
    from yolov8_trt_ros.ros.parameters import PARAMS, markdown_table

    lines = markdown_table().splitlines()
    assert len(lines) == 2 + len(PARAMS)
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines[2:]]  # unescaped pipes only
    assert all(len(row) == 4 for row in cells)
    assert [row[0].strip() for row in cells] == [f"`{p.name}`" for p in PARAMS]


def test_an_engine_built_at_the_lowest_threshold_lets_every_class_threshold_act():
    """Build the engine's NMS at the lowest threshold any class needs (``lowest_threshold``): the
    configured per-class thresholds then never conflict with it, and the global one may rise."""
    from yolov8_trt_ros.core.config import EngineNms, lowest_threshold
    from yolov8_trt_ros.ros.parameters import build_configs, changed_stages

    rng = np.random.default_rng()
    conf, low = float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.05, 0.25))
    cfg = build_configs({"conf_threshold": conf, "class_thresholds": [f"square:{low}", "2:0.9"]}, NAMES)
    lowest = lowest_threshold(cfg.postprocess, cfg.filters)
    assert lowest == low
    nms = EngineNms.from_postprocess(cfg.postprocess.replace(conf_threshold=lowest))
    assert nms.conflicts(cfg.postprocess, cfg.filters) == {}
    assert "class_thresholds" in EngineNms.from_postprocess(cfg.postprocess).conflicts(
        cfg.postprocess, cfg.filters
    )
    assert changed_stages(
        ["max_image_pixels", "conf_threshold", "roi", "tracker.enabled", "enable", "x"]
    ) == {
        "preprocess",
        "postprocess",
        "filters",
        "tracker",
        "node",
    }


def test_reid_on_is_refused_while_the_loaded_engine_returns_no_embeddings():
    from yolov8_trt_ros.ros.parameters import PARAMS, check_change

    values = {p.name: p.default for p in PARAMS}
    on = {"reid.enabled": True}
    reason = check_change(values, on, state="active", class_names=NAMES, engine_embeddings=False)
    assert reason is not None and "configure" in reason
    assert check_change(values, on, state="active", class_names=NAMES, engine_embeddings=True) is None
    assert check_change(values, on, state="unconfigured", class_names=None, engine_embeddings=None) is None
    off = {"reid.enabled": False}
    assert check_change(values, off, state="active", class_names=NAMES, engine_embeddings=False) is None
