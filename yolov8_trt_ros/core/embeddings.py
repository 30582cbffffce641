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

Graph surgery with onnx tooling rather than a re-export: it works on any ultralytics YOLOv8
ONNX (the committed test model, a user's own export) without torch, and it only *adds* nodes,
so the existing nodes, and with them ``output0``, stay bit-identical. The head's inputs are
found by ultralytics' node names (``/model.<k>/cv2.<i>/cv2.<i>.0/conv/Conv``, the first conv
of each level's box branch); a graph without them is refused with a message saying so.

    python -m yolov8_trt_ros.core.embeddings IN.onnx [-o OUT.onnx] [--projection W.npy]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
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
_HEAD_CONV = re.compile(r"^/model\.(\d+)/cv2\.(\d+)/cv2\.\2\.0/conv/Conv$")


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
    model: onnx.ModelProto, projection: npt.NDArray[np.float32] | None = None
) -> onnx.ModelProto:
    """A copy of ``model`` with the ``embeddings [B, D, A]`` output added (see module doc).

    ``projection``: a learned ``[D, D]`` map applied to the reduced vector before the
    normalisation (:data:`PROJECTION`; fitted by ``scripts/fit_reid_projection.py``), or None
    for the plain reduction. Only appends nodes, initializers, an output and a metadata key;
    nothing existing is changed. Raises :class:`EmbeddingGraphError` for a graph it does not
    recognise, one that has the output already, or a projection of the wrong shape.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if any(o.name == EMBEDDINGS_OUTPUT for o in graph.output):
        raise EmbeddingGraphError(f"the graph already has an output named {EMBEDDINGS_OUTPUT!r}")
    if not graph.output:
        raise EmbeddingGraphError("the graph has no outputs")
    head = find_head_inputs(model)
    dim = min(h.channels for h in head)
    bad = [h for h in head if h.channels % dim]
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
    nodes: list[onnx.NodeProto] = []
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

    per_level = []
    for h in head:
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
    if projection is not None:  # key absent otherwise: older models' metadata stays byte-equal
        info["projection"] = PROJECTION
    out.metadata_props.add(key=META_EMBEDDINGS, value=json.dumps(info, sort_keys=True))
    _check(out, dim)
    return out


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


def add_embedding_output_file(
    src: str | Path, dst: str | Path, projection: npt.NDArray[np.float32] | None = None
) -> int:
    """:func:`add_embedding_output` from file to file (atomic write); returns D."""
    import onnx

    model = add_embedding_output(onnx.load(str(src)), projection)
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
    args = parser.parse_args(argv)
    dst = args.output or args.model.with_name(f"{args.model.stem}.embeddings.onnx")
    try:
        projection = np.load(args.projection) if args.projection else None
        dim = add_embedding_output_file(args.model, dst, projection)
    except (OSError, ValueError, EmbeddingGraphError) as exc:
        print(f"cannot add embeddings to {args.model}: {exc}", file=sys.stderr)
        return 2
    print(f"{dst}: output {EMBEDDINGS_OUTPUT!r} [B, {dim}, A] added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
