"""Give a YOLOv8 ONNX an ``embeddings`` output: the Detect head's own features per anchor.

Re-identification needs an appearance vector per detection. A second network (OSNet and the
like) would cost a crop and an inference per box; ultralytics' BoT-SORT "native" ReID instead
reads the feature maps the Detect head already receives (``DetectionPredictor.get_obj_feats``):
for each level ``x_l [B, C_l, H, W]`` with ``D = min_l C_l``, the vector of a cell is its
``C_l`` channels (channels-last) in ``D`` groups of ``C_l // D`` contiguous channels, each group
averaged. This module adds exactly that computation to an exported graph, after the head's
inputs, so every backend gets it from the one inference it already runs:

    x_l -> Transpose(0,2,3,1) -> Reshape(B, H*W, D, C_l/D) -> ReduceMean(-1)   per level
        -> Concat(axis=1) [-> MatMul(W)] -> x / max(ReduceL2(x), 1e-12) -> Transpose(0,2,1) -> embeddings

``embeddings`` is ``[B, D, A]`` float32, anchors in ``output0``'s order (P3, then P4, then P5,
row-major over H, W, as ``Detect`` flattens them), rows L2-normalised as ``F.normalize`` does
(BoT-SORT normalises anyway, so the tracker sees what ultralytics' would). ``W`` (``--projection``)
is optional: a ``[D, D]`` map learnt on labelled sequences with the detector frozen
(``scripts/fit_reid_projection.py``), which weights the channels that tell objects apart; the
detections stay bit-identical.

``--branch`` replaces the fixed reduction by a small learned head per level (JDE's embedding
branch, trained with the detector frozen by ``scripts/fit_reid_branch.py``):

    x_l [-> Concat(x_l, AveragePool(e))] -> Conv 3x3 (C -> H) -> SiLU -> Conv 1x1 (H -> D)
        -> Transpose -> Reshape(B, H*W, D)   per level
        -> Concat(axis=1) -> x / max(ReduceL2(x), 1e-12) -> Transpose(0,2,1) -> embeddings

It sees every channel of a cell and its 3x3 neighbourhood, where the reduction keeps one mean
of 2-4 channels; a branch whose first conv takes more channels than ``x_l`` has also reads ``e``,
the early backbone map (:data:`EARLY_NODE`, stride 4) pooled to the level's cells, whose colour
and texture the neck has folded into classes. The detector's nodes and ``output0`` stay
bit-identical all the same.

Graph surgery with onnx tooling rather than a re-export: it works on any ultralytics YOLOv8
ONNX (the committed test model, a user's own export) without torch, and it only *adds* nodes,
so the existing nodes, and with them ``output0``, stay bit-identical. The head's inputs are
found by ultralytics' node names (``/model.<k>/cv2.<i>/cv2.<i>.0/conv/Conv``, the first conv
of each level's box branch); a graph without them is refused with a message saying so.

    python -m yolov8_trt_ros.core.embeddings IN.onnx [-o OUT.onnx] [--replace]
        [--projection W.npy | --branch B.npz]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.backends.model_info import EMBEDDINGS_OUTPUT  # the one name, read by name

if TYPE_CHECKING:
    import onnx

#: Metadata key the surgery adds: JSON with ``output``, ``dim`` (D), ``layout`` and the sources.
META_EMBEDDINGS = "yolov8_trt_ros.embeddings"
#: ``F.normalize``'s default: a zero vector stays zero instead of becoming NaN.
NORM_EPS = 1e-12
#: Prefix of every added node and initializer (checked to be free in the graph).
_PREFIX = "/embeddings"
#: Initializer of the learned ``[D, D]`` map, when the surgery was given one: the CUDA backend
#: reads it from the ONNX so that both compute the same vector.
PROJECTION = f"{_PREFIX}/projection"
#: Initializers of a learned branch: ``BRANCH.format(level=l, name="w1")`` etc.
BRANCH = _PREFIX + "/level{level}/branch/{name}"
_BRANCH_PARTS = ("w1", "b1", "w2", "b2")
_HEAD_CONV = re.compile(r"^/model\.(\d+)/cv2\.(\d+)/cv2\.\2\.0/conv/Conv$")
#: The early backbone map a branch may read beside the head's inputs: the output of
#: ultralytics' ``model.2`` (YOLOv8's first C2f, stride 4, 32-80 channels by model size).
EARLY_NODE = "/model.2/cv2/act/Mul"


class EmbeddingGraphError(ValueError):
    """The graph is not a YOLOv8 detection export this module can extend."""


@dataclass(frozen=True)
class HeadInput:
    """One Detect-head input feature map: ``[B, channels, H, W]`` at pyramid ``level``."""

    level: int
    conv_node: str  #: the head conv it was found through
    tensor: str  #: the feature map's tensor name
    channels: int
    elem_type: int  #: onnx.TensorProto data type


@dataclass(frozen=True)
class BranchLevel:
    """One level of a learned embedding branch: ``Conv 3x3 (w1, b1) -> SiLU -> Conv 1x1 (w2, b2)``."""

    w1: npt.NDArray[np.float32]  #: ``[H, C_l, 3, 3]``
    b1: npt.NDArray[np.float32]  #: ``[H]``
    w2: npt.NDArray[np.float32]  #: ``[D, H, 1, 1]``
    b2: npt.NDArray[np.float32]  #: ``[D]``

    def check(self, channels: int, dim: int) -> None:
        """Raise :class:`EmbeddingGraphError` unless the shapes chain from ``channels`` to ``dim``."""
        hidden = self.w1.shape[0] if self.w1.ndim == 4 else -1
        want = ((hidden, channels, 3, 3), (hidden,), (dim, hidden, 1, 1), (dim,))
        got = (self.w1.shape, self.b1.shape, self.w2.shape, self.b2.shape)
        if got != want:
            raise EmbeddingGraphError(f"branch level shapes {got}, expected {want} for {channels} channels")
        if not all(np.isfinite(a).all() for a in (self.w1, self.b1, self.w2, self.b2)):
            raise EmbeddingGraphError("branch has non-finite weights")


def save_branch(path: str | Path, branch: Sequence[BranchLevel]) -> None:
    """Write a branch as ``.npz`` (``level<l>/<w1|b1|w2|b2>``, float32)."""
    arrays = {
        f"level{level}/{name}": np.asarray(getattr(part, name), np.float32)
        for level, part in enumerate(branch)
        for name in _BRANCH_PARTS
    }
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_branch(path: str | Path) -> list[BranchLevel]:
    """Read what :func:`save_branch` wrote; ``ValueError`` for a file that is not one."""
    with np.load(path) as data:
        levels = sorted(
            {int(k.split("/")[0].removeprefix("level")) for k in data.files if k.startswith("level")}
        )
        if not levels or levels != list(range(len(levels))):
            raise ValueError(f"{path}: no level0..N arrays (keys {data.files[:6]})")
        try:
            return [
                BranchLevel(*(np.asarray(data[f"level{lv}/{n}"], np.float32) for n in _BRANCH_PARTS))
                for lv in levels
            ]
        except KeyError as exc:
            raise ValueError(f"{path}: missing {exc}") from exc


def _channels(model: onnx.ModelProto, inferred: onnx.ModelProto, node: onnx.NodeProto) -> int | None:
    """Input channels of a Conv: from its weight initializer, else from shape inference."""
    weights = {init.name: init for init in model.graph.initializer}
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if len(node.input) > 1 and node.input[1] in weights:
        dims = list(weights[node.input[1]].dims)
        if len(dims) == 4:
            return int(dims[1]) * int(group)
    for info in (*inferred.graph.value_info, *inferred.graph.input):
        if info.name == node.input[0]:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
    return None


def _elem_type(inferred: onnx.ModelProto, tensor: str) -> int:
    import onnx

    for info in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        if info.name == tensor and info.type.tensor_type.elem_type:
            return int(info.type.tensor_type.elem_type)
    return onnx.TensorProto.FLOAT


def find_head_inputs(model: onnx.ModelProto) -> list[HeadInput]:
    """The Detect head's input feature maps, by level; :class:`EmbeddingGraphError` if absent."""
    import onnx

    matches: dict[int, dict[int, onnx.NodeProto]] = {}
    for node in model.graph.node:
        m = _HEAD_CONV.match(node.name)
        if m and node.op_type == "Conv":
            matches.setdefault(int(m.group(1)), {})[int(m.group(2))] = node
    if not matches:
        raise EmbeddingGraphError(
            "no Detect head found: the graph has no Conv node named like "
            "'/model.<k>/cv2.<i>/cv2.<i>.0/conv/Conv' (the first conv of each level's box branch "
            "in an ultralytics YOLOv8 export; node names stripped or another architecture?)"
        )
    if len(matches) > 1:
        raise EmbeddingGraphError(f"several Detect heads found (model.{sorted(matches)}); expected one")
    ((head, convs),) = matches.items()
    if sorted(convs) != list(range(len(convs))):
        missing = sorted(set(range(max(convs) + 1)) - set(convs))
        raise EmbeddingGraphError(
            f"Detect head model.{head} lacks level(s) {missing}: no "
            f"'/model.{head}/cv2.<i>/cv2.<i>.0/conv/Conv' for i in {missing}"
        )
    inferred = onnx.shape_inference.infer_shapes(model)
    found = []
    for level in range(len(convs)):
        node = convs[level]
        channels = _channels(model, inferred, node)
        if channels is None:
            raise EmbeddingGraphError(f"cannot tell the input channels of {node.name} (no weight, no shape)")
        found.append(
            HeadInput(level, node.name, node.input[0], channels, _elem_type(inferred, node.input[0]))
        )
    return found


def add_embedding_output(
    model: onnx.ModelProto,
    projection: npt.NDArray[np.float32] | None = None,
    branch: Sequence[BranchLevel] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` with the ``embeddings [B, D, A]`` output added (see module doc).

    ``projection``: a learned ``[D, D]`` map applied to the reduced vector before the
    normalisation (:data:`PROJECTION`; fitted by ``scripts/fit_reid_projection.py``), or None
    for the plain reduction. ``branch``: a learned head per level instead of the reduction
    (:class:`BranchLevel`, ``scripts/fit_reid_branch.py``); D is then its output size. Only
    appends nodes, initializers, an output and a metadata key; nothing existing is changed.
    Raises :class:`EmbeddingGraphError` for a graph it does not recognise, one that has the
    output already, or a projection or branch that does not fit it.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if any(o.name == EMBEDDINGS_OUTPUT for o in graph.output):
        raise EmbeddingGraphError(f"the graph already has an output named {EMBEDDINGS_OUTPUT!r}")
    if not graph.output:
        raise EmbeddingGraphError("the graph has no outputs")
    head = find_head_inputs(model)
    inputs = [h.tensor for h in head]  # what a branch's first conv reads, per level
    early_nodes: list[onnx.NodeProto] = []
    reads_early = False
    if branch is not None:
        if projection is not None:
            raise EmbeddingGraphError("a projection or a branch, not both (a branch learns its own map)")
        if len(branch) != len(head):
            raise EmbeddingGraphError(f"branch of {len(branch)} levels for a head of {len(head)}")
        dim = int(branch[0].b2.shape[0]) if branch[0].b2.ndim == 1 else -1
        # a branch whose first conv takes more than the head's channels also reads the early map
        reads_early = branch[0].w1.ndim == 4 and branch[0].w1.shape[1] != head[0].channels
        in_channels = [h.channels for h in head]
        if reads_early:
            inputs, in_channels, early_nodes = branch_inputs(model, head, _PREFIX)
        for c, part in zip(in_channels, branch, strict=True):
            part.check(c, dim)
    else:
        dim = min(h.channels for h in head)
    bad = [h for h in head if h.channels % dim] if branch is None else []
    if bad:
        raise EmbeddingGraphError(
            f"feature maps of {[h.channels for h in head]} channels: "
            f"{bad[0].channels} is not a multiple of D={dim}"
        )
    if projection is not None and np.shape(projection) != (dim, dim):
        raise EmbeddingGraphError(f"projection of shape {np.shape(projection)}, expected ({dim}, {dim})")
    if projection is not None and not np.isfinite(projection).all():
        raise EmbeddingGraphError("projection has non-finite values")
    taken = {n.name for n in graph.node} | {i.name for i in graph.initializer}
    taken |= {t for n in graph.node for t in n.output}
    if any(name.startswith(_PREFIX + "/") for name in taken):
        raise EmbeddingGraphError(f"the graph already has nodes or tensors under {_PREFIX}/")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    axes_as_input = opset >= 18  # ReduceMean/ReduceL2 take ``axes`` as an input from opset 18

    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes: list[onnx.NodeProto] = list(early_nodes)
    inits: list[onnx.TensorProto] = []

    def const(name: str, values: Any, dtype: str) -> str:
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), f"{_PREFIX}/{name}"))
        return f"{_PREFIX}/{name}"

    def reduce(op: str, name: str, x: str, axis: int, keepdims: int) -> str:
        y = f"{_PREFIX}/{name}_output_0"
        if axes_as_input:
            axes = const(f"{name}_axes", [axis], "int64")
            nodes.append(helper.make_node(op, [x, axes], [y], name=f"{_PREFIX}/{name}", keepdims=keepdims))
        else:
            nodes.append(
                helper.make_node(op, [x], [y], name=f"{_PREFIX}/{name}", axes=[axis], keepdims=keepdims)
            )
        return y

    def conv(name: str, x: str, w: str, b: str, kernel: int) -> str:
        y = f"{_PREFIX}/{name}_output_0"
        pad = kernel // 2
        nodes.append(
            helper.make_node(
                "Conv", [x, w, b], [y], name=f"{_PREFIX}/{name}",
                kernel_shape=[kernel, kernel], pads=[pad] * 4,
            )
        )  # fmt: skip
        return y

    def learned(h: HeadInput, part: BranchLevel) -> str:
        """The branch at one level: ``[B, H*W, D]`` in the feature maps' precision."""
        tag = f"level{h.level}"
        dtype = "float16" if h.elem_type == TensorProto.FLOAT16 else "float32"
        names = {n: BRANCH.format(level=h.level, name=n).removeprefix(_PREFIX + "/") for n in _BRANCH_PARTS}
        w = {n: const(name, getattr(part, n), dtype) for n, name in names.items()}
        hidden = conv(f"{tag}/branch/conv1", inputs[h.level], w["w1"], w["b1"], 3)
        gate = f"{_PREFIX}/{tag}/branch/Sigmoid_output_0"
        nodes.append(helper.make_node("Sigmoid", [hidden], [gate], name=f"{_PREFIX}/{tag}/branch/Sigmoid"))
        act = f"{_PREFIX}/{tag}/branch/Mul_output_0"
        nodes.append(helper.make_node("Mul", [hidden, gate], [act], name=f"{_PREFIX}/{tag}/branch/Mul"))
        emb = conv(f"{tag}/branch/conv2", act, w["w2"], w["b2"], 1)
        nhwc = f"{_PREFIX}/{tag}/Transpose_output_0"
        nodes.append(
            helper.make_node("Transpose", [emb], [nhwc], name=f"{_PREFIX}/{tag}/Transpose", perm=[0, 2, 3, 1])
        )
        flat = f"{_PREFIX}/{tag}/Reshape_output_0"
        shape = const(f"{tag}/shape", [0, -1, dim], "int64")
        nodes.append(helper.make_node("Reshape", [nhwc, shape], [flat], name=f"{_PREFIX}/{tag}/Reshape"))
        return flat

    per_level = []
    for h in head:
        if branch is not None:
            per_level.append(learned(h, branch[h.level]))
            continue
        tag = f"level{h.level}"
        nhwc = f"{_PREFIX}/{tag}/Transpose_output_0"
        nodes.append(
            helper.make_node(
                "Transpose", [h.tensor], [nhwc], name=f"{_PREFIX}/{tag}/Transpose", perm=[0, 2, 3, 1]
            )
        )
        grouped = f"{_PREFIX}/{tag}/Reshape_output_0"
        shape = const(f"{tag}/shape", [0, -1, dim, h.channels // dim], "int64")  # 0: keep the batch
        nodes.append(helper.make_node("Reshape", [nhwc, shape], [grouped], name=f"{_PREFIX}/{tag}/Reshape"))
        per_level.append(reduce("ReduceMean", f"{tag}/ReduceMean", grouped, -1, 0))  # [B, H*W, D]
    feats = f"{_PREFIX}/Concat_output_0"
    nodes.append(
        helper.make_node("Concat", per_level, [feats], name=f"{_PREFIX}/Concat", axis=1)
    )  # [B, A, D]
    if head[0].elem_type != TensorProto.FLOAT:  # an FP16 graph: normalise and output in float32
        cast = f"{_PREFIX}/Cast_output_0"
        nodes.append(helper.make_node("Cast", [feats], [cast], name=f"{_PREFIX}/Cast", to=TensorProto.FLOAT))
        feats = cast
    if projection is not None:
        projected = f"{_PREFIX}/MatMul_output_0"
        const(PROJECTION.removeprefix(_PREFIX + "/"), np.asarray(projection, np.float32), "float32")
        nodes.append(helper.make_node("MatMul", [feats, PROJECTION], [projected], name=f"{_PREFIX}/MatMul"))
        feats = projected
    norm = reduce("ReduceL2", "ReduceL2", feats, -1, 1)  # [B, A, 1]
    clamped = f"{_PREFIX}/Max_output_0"
    nodes.append(
        helper.make_node("Max", [norm, const("eps", [NORM_EPS], "float32")], [clamped], name=f"{_PREFIX}/Max")
    )
    unit = f"{_PREFIX}/Div_output_0"
    nodes.append(helper.make_node("Div", [feats, clamped], [unit], name=f"{_PREFIX}/Div"))
    nodes.append(
        helper.make_node(
            "Transpose", [unit], [EMBEDDINGS_OUTPUT], name=f"{_PREFIX}/Transpose", perm=[0, 2, 1]
        )
    )

    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    det = graph.output[0].type.tensor_type.shape.dim
    batch_dim: str | int | None = None
    anchors: str | int | None = None
    if len(det) == 3:
        batch_dim = det[0].dim_param or (det[0].dim_value or None)
        anchors = det[2].dim_param or (det[2].dim_value or None)
    out.graph.output.append(
        helper.make_tensor_value_info(EMBEDDINGS_OUTPUT, TensorProto.FLOAT, [batch_dim, dim, anchors])
    )
    info = {
        "output": EMBEDDINGS_OUTPUT,
        "dim": dim,
        "layout": "[B, D, A], anchors as output0, rows L2-normalised",
        "method": "ultralytics get_obj_feats: per level, channels-last, mean of C_l/D contiguous channels",
        "feature_maps": [h.tensor for h in head],
        "channels": [h.channels for h in head],
    }
    if branch is not None:
        info["method"] = "learned branch per level: Conv 3x3 -> SiLU -> Conv 1x1"
        info["branch"] = BRANCH.format(level="<l>", name="<w1|b1|w2|b2>")
        if reads_early:
            info["early_feature"] = early_nodes[0].input[0]  # the pooled map, found by branch_inputs
    if projection is not None:  # key absent otherwise: older models' metadata stays byte-equal
        info["projection"] = PROJECTION
    out.metadata_props.add(key=META_EMBEDDINGS, value=json.dumps(info, sort_keys=True))
    _check(out, dim)
    return out


def _chw(inferred: onnx.ModelProto, tensor: str) -> tuple[int, int, int] | None:
    """Static channels, height and width of a 4-D tensor after shape inference, else None."""
    for info in inferred.graph.value_info:
        dims = info.type.tensor_type.shape.dim
        if info.name == tensor and len(dims) == 4 and all(d.dim_value for d in dims[1:]):
            return int(dims[1].dim_value), int(dims[2].dim_value), int(dims[3].dim_value)
    return None


def find_early_input(
    model: onnx.ModelProto, inferred: onnx.ModelProto | None = None
) -> tuple[HeadInput, int]:
    """The early backbone map (:data:`EARLY_NODE`) as a ``HeadInput`` (level -1) and its
    height, for the pooling to each level; :class:`EmbeddingGraphError` if absent. ``inferred``:
    ``model`` after shape inference, if the caller has it."""
    import onnx

    node = next((n for n in model.graph.node if n.name == EARLY_NODE), None)
    if node is None or not node.output:
        raise EmbeddingGraphError(f"no node named {EARLY_NODE!r} (the first C2f of an ultralytics YOLOv8)")
    inferred = inferred or onnx.shape_inference.infer_shapes(model)
    chw = _chw(inferred, node.output[0])
    if chw is None:
        raise EmbeddingGraphError(
            f"cannot tell the shape of {node.output[0]} (a static-size export is needed)"
        )
    return HeadInput(-1, node.name, node.output[0], chw[0], _elem_type(inferred, node.output[0])), chw[1]


def branch_inputs(
    model: onnx.ModelProto, head: list[HeadInput], prefix: str
) -> tuple[list[str], list[int], list[onnx.NodeProto]]:
    """Per level, the tensor a branch reading early features takes: the head's input with the
    early map average-pooled to its cells concatenated (``[B, C_l + C_e, H_l, W_l]``), and
    its channels; plus the nodes that make them (names under ``prefix``)."""
    import onnx
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(model)
    early, early_height = find_early_input(model, inferred)
    if early.elem_type != head[0].elem_type:
        raise EmbeddingGraphError(f"{early.tensor} and {head[0].tensor} differ in precision")
    tensors, channels, nodes = [], [], []
    for h in head:
        chw = _chw(inferred, h.tensor)
        if chw is None:
            raise EmbeddingGraphError(
                f"cannot tell the height of {h.tensor} (a static-size export is needed)"
            )
        kernel = early_height // chw[1]
        pooled = f"{prefix}/level{h.level}/early/AveragePool_output_0"
        nodes.append(
            helper.make_node(
                "AveragePool", [early.tensor], [pooled], name=f"{prefix}/level{h.level}/early/AveragePool",
                kernel_shape=[kernel, kernel], strides=[kernel, kernel],
            )
        )  # fmt: skip
        joined = f"{prefix}/level{h.level}/early/Concat_output_0"
        nodes.append(
            helper.make_node(
                "Concat", [h.tensor, pooled], [joined], name=f"{prefix}/level{h.level}/early/Concat", axis=1
            )
        )
        tensors.append(joined)
        channels.append(h.channels + early.channels)
    return tensors, channels, nodes


def _check(model: onnx.ModelProto, dim: int) -> None:
    """onnx's checker and strict shape inference; the new output must infer as ``[?, D, ?]``."""
    import onnx

    onnx.checker.check_model(model)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    (emb,) = (o for o in inferred.graph.output if o.name == EMBEDDINGS_OUTPUT)
    dims = emb.type.tensor_type.shape.dim
    if len(dims) != 3 or (dims[1].HasField("dim_value") and dims[1].dim_value != dim):
        raise EmbeddingGraphError(
            f"shape inference gives the embeddings output {dims}, expected [B, {dim}, A]"
        )


def embedding_dim(model: onnx.ModelProto) -> int | None:
    """D of a graph's ``embeddings`` output (its shape, else our metadata), or None without one."""
    for out in model.graph.output:
        if out.name == EMBEDDINGS_OUTPUT:
            dims = out.type.tensor_type.shape.dim
            if len(dims) == 3 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
            meta = {p.key: p.value for p in model.metadata_props}
            try:
                return int(json.loads(meta[META_EMBEDDINGS])["dim"])
            except (KeyError, ValueError, TypeError):
                return None
    return None


def embedding_projection(model: onnx.ModelProto) -> npt.NDArray[np.float32] | None:
    """The learned ``[D, D]`` map baked into a graph's embeddings (:data:`PROJECTION`), or None."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == PROJECTION:
            return np.asarray(numpy_helper.to_array(init), np.float32)
    return None


def embedding_branch(model: onnx.ModelProto) -> list[BranchLevel] | None:
    """The learned branch baked into a graph's embeddings (:data:`BRANCH`), float32, or None."""
    from onnx import numpy_helper

    found = {i.name: i for i in model.graph.initializer if i.name.startswith(_PREFIX + "/level")}
    levels: list[BranchLevel] = []
    while BRANCH.format(level=len(levels), name="w1") in found:
        parts = (found.get(BRANCH.format(level=len(levels), name=n)) for n in _BRANCH_PARTS)
        arrays = [None if p is None else np.asarray(numpy_helper.to_array(p), np.float32) for p in parts]
        if any(a is None for a in arrays):
            raise EmbeddingGraphError(f"branch level {len(levels)} lacks some of {_BRANCH_PARTS}")
        levels.append(BranchLevel(*arrays))  # type: ignore[arg-type]
    return levels or None


@dataclass(frozen=True)
class LearnedEmbedding:
    """What a graph's embeddings learnt on top of the head's inputs, for a backend that
    computes them itself (the CUDA backend): nothing (the plain reduction), a projection, or a
    branch."""

    projection: npt.NDArray[np.float32] | None = None
    branch: list[BranchLevel] | None = None
    #: The branch also reads this early map (:data:`EARLY_NODE`'s output), pooled to each level.
    early_feature: str | None = None


def learned_embedding(model: onnx.ModelProto) -> LearnedEmbedding:
    """:func:`embedding_projection`, :func:`embedding_branch` and the early map of a graph."""
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        early = json.loads(meta[META_EMBEDDINGS]).get("early_feature")
    except (KeyError, ValueError, AttributeError):
        early = None
    return LearnedEmbedding(embedding_projection(model), embedding_branch(model), early)


def strip_embeddings(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without the surgery's nodes, initializers, output and metadata (to
    re-do it with another projection or branch); a graph without them comes back equal."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    kept = (
        (graph.node, [n for n in graph.node if not n.name.startswith(_PREFIX + "/")]),
        (graph.initializer, [i for i in graph.initializer if not i.name.startswith(_PREFIX + "/")]),
        (graph.output, [o for o in graph.output if o.name != EMBEDDINGS_OUTPUT]),
        (out.metadata_props, [p for p in out.metadata_props if p.key != META_EMBEDDINGS]),
    )
    for field, items in kept:
        copies = [type(x)() for x in items]
        for c, x in zip(copies, items, strict=True):
            c.CopyFrom(x)
        del field[:]
        field.extend(copies)
    return out


def add_embedding_output_file(
    src: str | Path,
    dst: str | Path,
    projection: npt.NDArray[np.float32] | None = None,
    branch: Sequence[BranchLevel] | None = None,
    replace: bool = False,
) -> int:
    """:func:`add_embedding_output` from file to file (atomic write); returns D. ``replace``:
    an existing embeddings output is stripped first (:func:`strip_embeddings`)."""
    import onnx

    model = onnx.load(str(src))
    if replace:
        model = strip_embeddings(model)
    model = add_embedding_output(model, projection, branch)
    dst = Path(dst)
    staged = dst.with_name(f".{dst.name}.tmp")
    staged.write_bytes(model.SerializeToString())
    staged.replace(dst)
    dim = embedding_dim(model)
    assert dim is not None
    return dim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="YOLOv8 detection ONNX (ultralytics export)")
    parser.add_argument(
        "-o", "--output", type=Path, help="where to write (default: IN with .embeddings.onnx)"
    )
    parser.add_argument(
        "--projection",
        type=Path,
        help="learned [D, D] map (.npy from scripts/fit_reid_projection.py) applied before the normalisation",
    )
    parser.add_argument(
        "--branch",
        type=Path,
        help="learned branch (.npz from scripts/fit_reid_branch.py) instead of the reduction",
    )
    parser.add_argument(
        "--replace", action="store_true", help="strip an existing embeddings output first (else refused)"
    )
    args = parser.parse_args(argv)
    dst = args.output or args.model.with_name(f"{args.model.stem}.embeddings.onnx")
    try:
        projection = np.load(args.projection) if args.projection else None
        branch = load_branch(args.branch) if args.branch else None
        dim = add_embedding_output_file(args.model, dst, projection, branch, args.replace)
    except (OSError, ValueError, EmbeddingGraphError) as exc:
        print(f"cannot add embeddings to {args.model}: {exc}", file=sys.stderr)
        return 2
    print(f"{dst}: output {EMBEDDINGS_OUTPUT!r} [B, {dim}, A] added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
