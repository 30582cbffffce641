"""The in-engine NMS appended to the parsed network (see the package doc).

Two forms, both ending in the EfficientNMS contract (``num_dets [B, 1]``, ``det_boxes
[B, K, 4]`` corners, ``det_scores [B, K]``, ``det_classes [B, K]``, best first, zero-padded):

* :func:`append_nms`: the EfficientNMS_TRT plugin, for models without embeddings (as before).
* :func:`append_inms`: for models with an ``embeddings`` output, which need each
  kept detection's anchor to gather its embedding. EfficientNMS_TRT returns no indices, so the
  NMS is TensorRT's own ``INMSLayer`` (``add_nms``, TensorRT >= 8.5), which returns the selected
  ``(image, class, anchor)`` triples; a scatter writes the kept anchors' scores into a ``[B, A]``
  map (-1 elsewhere), a TopK over it gives the best ``K`` kept anchors per image in score
  order, and gathers with one element-wise (batch) axis pick their boxes, classes and
  embeddings (``det_embeddings [B, K, D]``). Only the INMS output has a data-dependent shape;
  every engine output is fixed-size.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import tensorrt as trt

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.io_plan import NMS_EMBEDDINGS, NMS_OUTPUTS
from yolov8_trt_ros.core.backends.tensorrt.common import TRT_LOGGER, TRT_VERSION
from yolov8_trt_ros.core.config import PostprocessConfig

#: EfficientNMS_TRT keeps at most this many candidates before NMS (``pre_nms_top_k`` is capped).
EFFICIENT_NMS_MAX_CANDIDATES = 4096
#: INMSLayer's ``topk_box_limit`` ceiling (2000 on SM 5.3 / 6.2, Jetson Nano / TX2).
INMS_MAX_CANDIDATES = 5000
#: ITopKLayer's largest ``k``: the most detections per image the INMS form can return.
TOPK_MAX_K = 3840
#: First TensorRT with ``INetworkDefinition.add_nms``.
INMS_MIN_VERSION = (8, 5)


#: Plugin libraries this process has loaded (a second load would register the creators twice).
_LOADED: set[str] = set()


def load_plugin_libraries(paths: Sequence[str]) -> None:
    """Load user plugin libraries into TensorRT's plugin registry, each once per process.

    Before an ONNX with custom layers is parsed or an engine using them is deserialized: the
    registry's ``load_library`` (TensorRT >= 10), or a global ``dlopen`` before it, whose
    static creators register themselves. :class:`BackendError` names a missing or bad file.
    """
    registry = trt.get_plugin_registry()
    for path in paths:
        resolved = str(Path(path).expanduser().resolve())
        if resolved in _LOADED:
            continue
        if not Path(resolved).is_file():
            raise BackendError(f"plugin library {path} does not exist")
        if TRT_VERSION >= (10,):
            if registry.load_library(resolved) is None:
                errors = "; ".join(TRT_LOGGER.take_errors()) or "see the [TRT] errors above"
                raise BackendError(f"TensorRT could not load the plugin library {path}: {errors}")
        else:
            try:
                ctypes.CDLL(resolved, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                raise BackendError(f"cannot load the plugin library {path}: {exc}") from exc
        _LOADED.add(resolved)


def explain_failure(what: str) -> str:
    """``what`` failed: with TensorRT's own error lines, and the fix where a plugin was missing."""
    errors = TRT_LOGGER.take_errors()
    text = f"{what}: {'; '.join(errors)}" if errors else f"{what} (see the [TRT] errors above)"
    if any("plugin" in e.lower() for e in errors):
        text += " — a custom layer's plugin is not loaded: list its library in plugin_libraries"
    return text


def _plugin_field(name: str, value: float, kind: trt.PluginFieldType) -> trt.PluginField:
    dtype = np.float32 if kind == trt.PluginFieldType.FLOAT32 else np.int32
    # The binding converts a str to FallbackString implicitly; the stubs only know the latter.
    return trt.PluginField(cast("trt.FallbackString", name), np.array([value], dtype=dtype), kind)


def efficient_nms_creator() -> Any | None:
    """EfficientNMS_TRT's creator from the plugin registry, or None where the plugin is missing
    (no libnvinfer_plugin, or a TensorRT that dropped it): the build then takes INMSLayer."""
    trt.init_libnvinfer_plugins(TRT_LOGGER, "")
    registry = trt.get_plugin_registry()
    if TRT_VERSION >= (10,):
        return registry.get_creator("EfficientNMS_TRT", "1", "")
    return registry.get_plugin_creator("EfficientNMS_TRT", "1", "")


def network_output(network: trt.INetworkDefinition, name: str | None) -> trt.ITensor:
    """The network output called ``name`` (the first output for None)."""
    if name is None:
        return network.get_output(0)
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        if tensor.name == name:
            return tensor
    raise BackendError(f"the parsed network has no output {name!r}")


def _const(network: trt.INetworkDefinition, values: np.ndarray) -> trt.ITensor:
    """A constant tensor of ``values``' shape (0-D for a NumPy scalar array)."""
    array = np.ascontiguousarray(values)
    layer = network.add_constant(trt.Dims(list(array.shape)), trt.Weights(array.reshape(-1)))
    return layer.get_output(0)


def _channels(network: trt.INetworkDefinition, head: trt.ITensor, start: int, count: int) -> trt.ITensor:
    """Channels ``start:start+count`` of ``[B, N, A]`` as ``[B, A, count]``.

    A gather on the channel axis (rather than a slice) needs no shape tensor, so the batch
    axis stays dynamic on every TensorRT version.
    """
    idx = _const(network, np.arange(start, start + count, dtype=np.int32))
    picked = network.add_gather(head, idx, 1).get_output(0)  # [B, count, A]
    shuffle = network.add_shuffle(picked)
    shuffle.first_transpose = trt.Permutation([0, 2, 1])  # [B, A, count]
    return shuffle.get_output(0)


def append_nms(
    network: trt.INetworkDefinition, num_classes: int, post: PostprocessConfig, head_name: str | None = None
) -> None:
    """Replace the raw head output ``[B, 4 + C, A]`` by EfficientNMS_TRT's four outputs."""
    head = network_output(network, head_name)
    network.unmark_output(head)
    boxes, scores = _channels(network, head, 0, 4), _channels(network, head, 4, num_classes)
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
    creator = efficient_nms_creator()
    if creator is None:
        raise BackendError("EfficientNMS_TRT plugin not found (libnvinfer_plugin missing?)")
    plugin = creator.create_plugin("efficient_nms", fields)
    layer = network.add_plugin_v2([boxes, scores], plugin)
    for i, name in enumerate(NMS_OUTPUTS):
        out = layer.get_output(i)
        out.name = name
        network.mark_output(out)


def append_inms(
    network: trt.INetworkDefinition,
    num_classes: int,
    post: PostprocessConfig,
    head_name: str | None,
    embeddings_name: str | None = None,
) -> None:
    """Replace the raw head (and the per-anchor embeddings ``[B, D, A]`` where named) by the NMS
    outputs (and ``det_embeddings [B, K, D]``): INMSLayer, TensorRT >= 8.5; see the module doc.
    Without embeddings it is the fallback where the EfficientNMS_TRT plugin is missing.

    The rule as on the other paths: score = best class score, class = its class (TopK's
    choice on a tie between classes), candidate when ``score >= conf_threshold`` (the INMS
    threshold is strict, so non-candidates are set to -1 and the layer's threshold is -0.5),
    NMS per class (every class of a candidate but its best is -1) or over all classes
    (``class_agnostic``: one score column), IoU ``> iou_threshold`` suppresses,
    ``pre_nms_top_k`` capped at :data:`INMS_MAX_CANDIDATES`, ``K = min(max_detections, A)``
    kept per image, best first. Equal scores have no defined order here.
    """
    ew, f32, i32 = trt.ElementWiseOperation, np.float32, np.int32
    head = network_output(network, head_name)
    per_anchor = network_output(network, embeddings_name) if embeddings_name else None
    network.unmark_output(head)
    if per_anchor is not None:
        network.unmark_output(per_anchor)
    anchors = int(head.shape[2])
    keep_k = min(post.max_detections, TOPK_MAX_K, anchors if anchors > 0 else post.max_detections)

    def binary(a: trt.ITensor, b: trt.ITensor, op: trt.ElementWiseOperation) -> trt.ITensor:
        return network.add_elementwise(a, b, op).get_output(0)

    def full(rank: int, value: float, dtype: type[np.generic] = f32) -> trt.ITensor:
        return _const(network, np.full([1] * rank, value, dtype=dtype))

    def select(cond: trt.ITensor, then: trt.ITensor, other: trt.ITensor) -> trt.ITensor:
        return network.add_select(cond, then, other).get_output(0)

    def reshape(tensor: trt.ITensor, dims: list[int]) -> trt.ITensor:
        shuffle = network.add_shuffle(tensor)
        shuffle.reshape_dims = trt.Dims(dims)  # 0 copies the input's axis (the dynamic batch)
        return shuffle.get_output(0)

    def take(data: trt.ITensor, rows: trt.ITensor) -> trt.ITensor:
        """``data[b, rows[b, k], ...]``: a gather on axis 1 with the batch axis element-wise."""
        layer = network.add_gather(data, rows, 1)
        layer.num_elementwise_dims = 1
        return layer.get_output(0)

    boxes = _channels(network, head, 0, 4)  # [B, A, 4] cx, cy, w, h
    scores = _channels(network, head, 4, num_classes)  # [B, A, C]
    best_layer = network.add_topk(scores, trt.TopKOperation.MAX, 1, 1 << 2)
    best, best_class = best_layer.get_output(0), best_layer.get_output(1)  # [B, A, 1] each
    below = binary(best, full(3, post.conf_threshold), ew.LESS)
    candidate = network.add_unary(below, trt.UnaryOperation.NOT).get_output(0)  # score >= conf
    if post.class_agnostic:
        nms_scores = select(candidate, best, full(3, -1.0))  # [B, A, 1]
    else:
        class_ids = _const(network, np.arange(num_classes, dtype=i32).reshape(1, 1, num_classes))
        own = binary(binary(class_ids, best_class, ew.EQUAL), candidate, ew.AND)  # [B, A, C]
        nms_scores = select(own, best, full(3, -1.0))
    nms = network.add_nms(boxes, nms_scores, _const(network, np.array(keep_k, dtype=i32)))
    nms.bounding_box_format = trt.BoundingBoxFormat.CENTER_SIZES
    nms.topk_box_limit = min(post.pre_nms_top_k, INMS_MAX_CANDIDATES)
    nms.set_input(3, _const(network, np.array(post.iou_threshold, dtype=f32)))
    nms.set_input(4, _const(network, np.array(-0.5, dtype=f32)))
    pairs = network.add_gather(nms.get_output(0), _const(network, np.array([0, 2], dtype=i32)), 1)
    image_anchor = pairs.get_output(0)  # [N, 2]: (image, anchor) of each kept detection
    best_map = reshape(best, [0, -1])  # [B, A]
    kept_scores = network.add_gather_v2(best_map, image_anchor, trt.GatherMode.ND).get_output(0)  # [N]
    unset = binary(binary(best_map, full(2, 0.0), ew.PROD), full(2, -1.0), ew.SUM)  # -1, [B, A]
    kept_map = network.add_scatter(unset, image_anchor, kept_scores, trt.ScatterMode.ND).get_output(0)
    top = network.add_topk(kept_map, trt.TopKOperation.MAX, keep_k, 1 << 1)
    values, rows = top.get_output(0), top.get_output(1)  # [B, K]: best kept first, their anchors
    valid = binary(values, full(2, -0.5), ew.GREATER)  # [B, K]
    valid3 = binary(reshape(values, [0, 0, 1]), full(3, -0.5), ew.GREATER)  # [B, K, 1]
    count = network.add_reduce(
        select(valid, full(2, 1, i32), full(2, 0, i32)), trt.ReduceOperation.SUM, 1 << 1, True
    )
    centre_size = take(boxes, rows)  # [B, K, 4]
    centre = network.add_gather(centre_size, _const(network, np.array([0, 1], dtype=i32)), 2).get_output(0)
    size = network.add_gather(centre_size, _const(network, np.array([2, 3], dtype=i32)), 2).get_output(0)
    half = binary(size, full(3, 0.5), ew.PROD)
    corners = network.add_concatenation([binary(centre, half, ew.SUB), binary(centre, half, ew.SUM)])
    corners.axis = 2
    classes = take(reshape(best_class, [0, -1]), rows)  # [B, K]
    outputs = [
        count.get_output(0),  # [B, 1]
        select(valid3, corners.get_output(0), full(3, 0.0)),
        select(valid, values, full(2, 0.0)),
        select(valid, classes, full(2, 0, i32)),
    ]
    names = list(NMS_OUTPUTS)
    if per_anchor is not None:
        anchor_major = network.add_shuffle(per_anchor)
        anchor_major.first_transpose = trt.Permutation([0, 2, 1])  # [B, A, D]
        outputs.append(select(valid3, take(anchor_major.get_output(0), rows), full(3, 0.0)))
        names.append(NMS_EMBEDDINGS)
    for name, tensor in zip(names, outputs, strict=True):
        tensor.name = name
        network.mark_output(tensor)
