"""The in-engine NMS: EfficientNMS_TRT appended to the parsed network (see the package doc)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import tensorrt as trt

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.io_plan import NMS_OUTPUTS
from yolov8_trt_ros.core.backends.tensorrt.common import TRT_LOGGER, TRT_VERSION
from yolov8_trt_ros.core.config import PostprocessConfig

#: EfficientNMS_TRT keeps at most this many candidates before NMS (``pre_nms_top_k`` is capped).
EFFICIENT_NMS_MAX_CANDIDATES = 4096


def _plugin_field(name: str, value: float, kind: trt.PluginFieldType) -> trt.PluginField:
    dtype = np.float32 if kind == trt.PluginFieldType.FLOAT32 else np.int32
    # The binding converts a str to FallbackString implicitly; the stubs only know the latter.
    return trt.PluginField(cast("trt.FallbackString", name), np.array([value], dtype=dtype), kind)


def _efficient_nms_creator() -> Any:
    trt.init_libnvinfer_plugins(TRT_LOGGER, "")
    registry = trt.get_plugin_registry()
    creator: Any
    if TRT_VERSION >= (10,):
        creator = registry.get_creator("EfficientNMS_TRT", "1", "")
    else:
        creator = registry.get_plugin_creator("EfficientNMS_TRT", "1", "")
    if creator is None:
        raise BackendError("EfficientNMS_TRT plugin not found (libnvinfer_plugin missing?)")
    return creator


def append_nms(network: trt.INetworkDefinition, num_classes: int, post: PostprocessConfig) -> None:
    """Replace the raw head output ``[B, 4 + C, A]`` by EfficientNMS_TRT's four outputs.

    Gathers on the channel axis (rather than slices) split boxes and scores without a shape
    tensor, so the batch axis stays dynamic on every TensorRT version.
    """
    head = network.get_output(0)
    network.unmark_output(head)

    def channels(start: int, count: int) -> trt.ITensor:
        idx = network.add_constant(
            trt.Dims([count]), trt.Weights(np.arange(start, start + count, dtype=np.int32))
        )
        picked = network.add_gather(head, idx.get_output(0), 1).get_output(0)  # [B, count, A]
        shuffle = network.add_shuffle(picked)
        shuffle.first_transpose = trt.Permutation([0, 2, 1])  # [B, A, count]
        return shuffle.get_output(0)

    boxes, scores = channels(0, 4), channels(4, num_classes)
    fields = trt.PluginFieldCollection(
        [
            _plugin_field("background_class", -1, trt.PluginFieldType.INT32),
            _plugin_field("max_output_boxes", post.max_detections, trt.PluginFieldType.INT32),
            _plugin_field("score_threshold", post.conf_threshold, trt.PluginFieldType.FLOAT32),
            _plugin_field("iou_threshold", post.iou_threshold, trt.PluginFieldType.FLOAT32),
            _plugin_field("score_activation", 0, trt.PluginFieldType.INT32),
            _plugin_field("class_agnostic", int(post.class_agnostic), trt.PluginFieldType.INT32),
            _plugin_field("box_coding", 1, trt.PluginFieldType.INT32),  # cx, cy, w, h in; corners out
        ]
    )
    plugin = _efficient_nms_creator().create_plugin("efficient_nms", fields)
    layer = network.add_plugin_v2([boxes, scores], plugin)
    for i, name in enumerate(NMS_OUTPUTS):
        out = layer.get_output(i)
        out.name = name
        network.mark_output(out)
