"""The FP16 ONNX of a model: FP16 weights and activations, float32 inputs and outputs.

    python scripts/convert_fp16.py --model models/test/yolov8n_synth.onnx   # → yolov8n_synth.fp16.onnx

The TensorRT build makes it itself where it is missing (:func:`cached_fp16`, into the engine
cache), so that TensorRT 10 and 11 build FP16 strongly typed without a manual step.

TensorRT 11 has no FP16 builder flag: an FP16 engine is built *strongly typed* from an ONNX whose
tensors carry FP16. :func:`convert_fp16` writes that file next to the FP32 one (``x.fp16.onnx``,
``model_info.fp16_sibling``) with onnxconverter-common's ``float16.convert_float_to_float16``.
The graph input and outputs stay float32, so the runtime contract (``images`` float32 in [0, 1],
``output0``/``embeddings`` float32) does not change. ONNX Runtime's CPU provider runs the file
too, but (its profile shows, on x86) computes the convolutions in float32 from the FP16
weights, so on the CPU it is no faster than FP32 and its mAP measures the weight rounding more
than FP16 arithmetic; TensorRT's FP16 engine is the real check.

Kept in FP32 (the converter's node block list). NVIDIA's ModelOpt AutoCast, run on this
model with its default rules, keeps only the last two nodes of the head in FP32 (the stride
``Mul`` and the final ``Concat``: their values reach 642, above its 512 limit for FP16); this
script keeps the whole decode, a few small elementwise nodes (the same nodes stay in float in
the INT8 Q/DQ model, ``core/calibration.py``). mAP50-95 on the 500 synthetic val images (ONNX
Runtime CPU): FP32 0.8808, this file 0.8808, AutoCast's 0.8797 (``benchmarks/accuracy.md``):

* **The detection head's decode**: every node of the last module (``/model.22/`` in YOLOv8)
  outside its ``cv2``/``cv3`` branches: the Reshape/Concat of the branch outputs, the class
  ``Sigmoid``, DFL (``Softmax`` over 16 distance bins and the fixed 1x1 ``Conv`` that takes
  their expectation), the anchor decode (``Slice``/``Sub``/``Add``/``Div``), the stride ``Mul``
  to input pixels and the final ``Concat``. Why: boxes are in pixels up to 640, where FP16's
  step is 0.5 px (above 512; 0.25 px above 256); the DFL expectation adds 16 probabilities weighted by
  0..15, so FP16 rounding is multiplied by up to 15 and then by the stride (up to 32). These are
  cheap elementwise nodes; the branch convolutions, which hold the work, stay FP16.
* **The appearance embeddings' pooling and L2 normalisation** (``core/embeddings.py``, nodes
  under ``/embeddings/`` except a learned ``branch``): the ``1e-12`` in ``max(norm, 1e-12)`` is
  below FP16's smallest value, and the L2 norm sums the squares of 64 values (at most 2.5e3 on
  the calibration images here; 64 values above 32 would overflow FP16's 65504).
* **onnxconverter-common's default op block list** (``Resize``, ``Max``, ``TopK``, ``Range``,
  ...). Here that adds the two nearest-neighbour ``Resize`` nodes of the neck, which are exact
  in either precision (the casts around them cost two small copies).

Why ``keep_io_types=False`` and float32 I/O restored here: with ``keep_io_types=True``,
onnxconverter-common 1.16 fails (``remove_unnecessary_cast_node``: "The downstream node of the
second cast node should be graph output", microsoft/onnxconverter-common#307) whenever a graph
output is produced by a blocked node, as both outputs are here. So the model is converted with
FP16 I/O and then the casts at the boundary are put back: the input is cast to FP16 once, and
each output is taken from its FP32 producer directly (no FP16 round trip of the boxes). The
converter also leaves FP32 → FP16 → FP32 cast pairs between blocked nodes whose output has
several consumers (:func:`fold_fp16_round_trips` removes them; a strongly typed build would
otherwise round the decode through FP16), and :func:`check_no_fp16_round_trip` checks that none
is left.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.model_info import file_sha256, fp16_sibling, read_model_info
from yolov8_trt_ros.core.calibration import head_tail_nodes

LOG = logging.getLogger(__name__)
META_FP16 = "yolov8_trt_ros.fp16"
_EMBEDDINGS = "/embeddings/"


def fp32_nodes(model: Any) -> list[str]:
    """Names of the nodes kept in FP32: the head's decode and the embeddings' normalisation.

    The decode is the head's nodes outside its ``cv2`` (box) and ``cv3`` (class) convolution
    branches: :func:`~yolov8_trt_ros.core.calibration.head_tail_nodes`, the same nodes both INT8
    routes keep unquantized, less the branches' activations (which FP16 handles).
    """
    head = head_tail_nodes(model)
    if not head:
        LOG.warning("no YOLOv8 head found: only the default op block list applies")
    keep = [name for name in head if "/cv2." not in name and "/cv3." not in name]
    keep += [n.name for n in model.graph.node if n.name.startswith(_EMBEDDINGS) and "/branch/" not in n.name]
    return keep


def _rename(graph: Any, old: str, new: str, *, outputs: bool) -> None:
    for node in graph.node:
        names = node.output if outputs else node.input
        for i, name in enumerate(names):
            if name == old:
                names[i] = new


def _restore_float_io(model: Any, inputs: list[str], outputs: list[str]) -> None:
    """Turn the FP16 graph inputs/outputs named back to float32, with casts at the boundary."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    for value in graph.input:
        if value.name not in inputs:
            continue
        value.type.tensor_type.elem_type = TensorProto.FLOAT
        cast = f"{value.name}_fp16"
        _rename(graph, value.name, cast, outputs=False)
        graph.node.insert(
            0, helper.make_node("Cast", [value.name], [cast], name=f"{cast}/Cast", to=TensorProto.FLOAT16)
        )
    for value in graph.output:
        if value.name not in outputs:
            continue
        value.type.tensor_type.elem_type = TensorProto.FLOAT
        producer = next(n for n in graph.node if value.name in n.output)
        fp16_name = f"{value.name}_fp16"
        if _cast_to(producer) == TensorProto.FLOAT16:
            # A blocked (FP32) node's output, cast to FP16 by the converter: the graph output
            # takes the FP32 tensor itself; the cast stays only for FP16 consumers, if any.
            fp32_name = producer.input[0]
            _rename(graph, value.name, fp16_name, outputs=False)
            producer.output[0] = fp16_name
            _rename(graph, fp32_name, value.name, outputs=False)
            _rename(graph, fp32_name, value.name, outputs=True)
            if not any(fp16_name in n.input for n in graph.node):
                graph.node.remove(producer)
        else:
            _rename(graph, value.name, fp16_name, outputs=True)
            _rename(graph, value.name, fp16_name, outputs=False)
            graph.node.append(
                helper.make_node(
                    "Cast", [fp16_name], [value.name], name=f"{value.name}/Cast", to=TensorProto.FLOAT
                )
            )
    # Types of renamed tensors are re-inferred rather than patched one by one.
    del graph.value_info[:]
    model.CopyFrom(onnx.shape_inference.infer_shapes(model, strict_mode=True))


def _cast_to(node: Any) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def fold_fp16_round_trips(model: Any) -> int:
    """Remove each FP32 → Cast(FP16) → Cast(FP32) chain between FP32 nodes; returns how many.

    onnxconverter-common 1.16 puts a Cast to FP16 after each blocked node and a Cast to FP32
    before each, and removes the pairs between two blocked nodes only where the first cast has
    one consumer (``remove_unnecessary_cast_node`` compares ``to`` with 32/16 instead of 1/10
    in its several-consumers branch). A strongly typed TensorRT build would run such a pair
    as written, rounding the decode's FP32 tensors to FP16, so the pairs are removed here.
    """
    from onnx import TensorProto

    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    producers = {out: node for node in graph.node for out in node.output}
    graph_outputs = {v.name for v in graph.output}
    folded = 0
    for node in list(graph.node):
        up = producers.get(node.input[0]) if node.input else None
        if (
            _cast_to(node) != TensorProto.FLOAT
            or up is None
            or _cast_to(up) != TensorProto.FLOAT16
            or types.get(up.input[0]) != TensorProto.FLOAT
            or node.output[0] in graph_outputs
        ):
            continue
        _rename(graph, node.output[0], up.input[0], outputs=False)
        graph.node.remove(node)
        folded += 1
        if not any(up.output[0] in n.input for n in graph.node) and up.output[0] not in graph_outputs:
            graph.node.remove(up)
    return folded


def check_no_fp16_round_trip(model: Any) -> None:
    """Raise ``ValueError`` where a Cast to FP16 feeds a Cast back to FP32 (a lossy no-op)."""
    from onnx import TensorProto

    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        up = producers.get(node.input[0]) if node.input else None
        if _cast_to(node) == TensorProto.FLOAT and up is not None and _cast_to(up) == TensorProto.FLOAT16:
            raise ValueError(f"{up.name} -> {node.name}: an FP32 tensor is rounded through FP16")


def convert_fp16(model_path: str | Path, output_path: str | Path | None = None) -> Path:
    """Write the FP16 model of ``model_path`` (default: ``fp16_sibling``); returns its path."""
    import onnx
    from onnx import TensorProto
    from onnxconverter_common import float16

    model_path = Path(model_path)
    info = read_model_info(model_path)
    if info.precision != "fp32":
        raise BackendError(f"{model_path} is already {info.precision}; convert the FP32 model")
    output = Path(output_path) if output_path else fp16_sibling(model_path)
    model = onnx.load(str(model_path))
    blocked = fp32_nodes(model)
    float_io = (
        [v.name for v in model.graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT],
        [v.name for v in model.graph.output if v.type.tensor_type.elem_type == TensorProto.FLOAT],
    )
    with warnings.catch_warnings():
        # One warning per weight below FP16's smallest normal value (1e-7 is kept instead).
        warnings.filterwarnings("ignore", message=".*will be truncated to.*", category=UserWarning)
        model = float16.convert_float_to_float16(
            model,
            keep_io_types=False,
            node_block_list=blocked,
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
        )
    _restore_float_io(model, *float_io)
    folded = fold_fp16_round_trips(model)
    check_no_fp16_round_trip(model)
    onnx.checker.check_model(model)
    meta = model.metadata_props.add()
    meta.key, meta.value = (
        META_FP16,
        f"onnxconverter-common float16; fp32 nodes: {len(blocked)} (scripts/convert_fp16.py)",
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(output))
    LOG.info(
        "%s: %d nodes kept in FP32, %d FP16 round trips removed -> %s",
        model_path.name,
        len(blocked),
        folded,
        output,
    )
    return output


def cached_fp16(model_path: str | Path, cache_dir: str | Path, sha256: str = "") -> Path:
    """The FP16 model of ``model_path`` in ``cache_dir``, converted once per source file.

    Named by the source's SHA-256, so a changed model is converted again rather than matched
    to a stale file; written beside the engines (the model's own folder may be read-only).
    ``sha256``: the source's, where the caller has it already (read at every engine build).
    ImportError where onnxconverter-common is missing, BackendError/ValueError if it fails.
    """
    model_path = Path(model_path)
    digest = sha256 or file_sha256(model_path)
    out = Path(cache_dir) / f"{model_path.stem}-{digest[:16]}.fp16.onnx"
    if out.is_file():
        return out
    tmp = out.with_name(f".{out.name}.tmp")
    convert_fp16(model_path, tmp)
    tmp.replace(out)
    return out
