"""The node's parameter table against the stage configs (no ROS process needed)."""

from __future__ import annotations

import dataclasses

import pytest

from yolov8_trt_ros.core.config import ConfigError
from yolov8_trt_ros.core.pipeline import PipelineConfig

pytestmark = pytest.mark.ros
NAMES = ("circle", "square", "triangle")


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
