"""What a YOLOv8 ONNX file says about itself: input size, classes, names, precision.

Shared by every backend (ONNX Runtime reads it at load, the TensorRT builder at build time,
the CUDA backend to check its ``.pt`` against the ONNX) so that all of them agree on one
reading of the same file. ultralytics writes ``names``, ``imgsz`` and ``stride`` into the
ONNX ``metadata_props`` as Python literals; they are parsed with ``ast.literal_eval`` (never
``eval``) and a malformed value degrades to a default with a warning rather than an error,
because the tensor shapes alone are enough to run the model.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolov8_trt_ros.core.backends.base import BackendError

LOG = logging.getLogger(__name__)

#: Metadata keys this project adds on export (see ``core/export.py``).
META_SOURCE_SHA256 = "yolov8_trt_ros.source_sha256"
META_EXPORT_ARGS = "yolov8_trt_ros.export_args"
#: Name of the optional appearance output (``core/embeddings.py`` adds it): ``[B, D, A]``.
EMBEDDINGS_OUTPUT = "embeddings"

_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_DEFAULT_IMGSZ = 640


@dataclass(frozen=True)
class ModelInfo:
    """The facts about one detection ONNX that the backends need."""

    path: str
    sha256: str
    input_name: str
    output_name: str
    input_height: int
    input_width: int
    #: Batch size fixed in the graph, or ``None`` where the batch axis is dynamic.
    fixed_batch: int | None
    num_classes: int
    num_anchors: int | None
    class_names: tuple[str, ...]
    stride: int
    input_fp16: bool
    #: The graph holds QuantizeLinear/DequantizeLinear nodes (explicit INT8).
    is_qdq: bool
    metadata: dict[str, str] = field(default_factory=dict)
    #: D of the ``embeddings`` output ``[B, D, A]``, or ``None`` where the model has none (the
    #: tracker then associates by motion only).
    embedding_dim: int | None = None
    #: The graph's weights are FP16 (``scripts/convert_fp16.py``): the file carries FP16 for a
    #: strongly typed TensorRT build (``network_typing.py``).
    weights_fp16: bool = False

    @property
    def embedding_output(self) -> str | None:
        """The appearance output's name where the model has one (outputs are taken by name)."""
        return EMBEDDINGS_OUTPUT if self.embedding_dim is not None else None

    @property
    def precision(self) -> str:
        """The precision the file itself encodes: ``int8`` (Q/DQ), ``fp16`` or ``fp32``."""
        if self.is_qdq:
            return "int8"
        return "fp16" if self.input_fp16 or self.weights_fp16 else "fp32"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (models and engines are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def parse_literal(text: str | None) -> Any:
    """A Python or JSON literal from metadata, or ``None`` when it is absent or malformed."""
    if text is None:
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def parse_names(text: str | None, num_classes: int) -> tuple[str, ...]:
    """Class names from ultralytics' ``names`` metadata (``{0: 'person', ...}``).

    Missing entries get their index as name, so the result always has ``num_classes``
    entries and ``names[class_id]`` never fails in the node.
    """
    value = parse_literal(text)
    names: dict[int, str] = {}
    if isinstance(value, dict):
        for key, name in value.items():
            try:
                names[int(key)] = str(name)
            except (TypeError, ValueError):
                continue
    elif isinstance(value, (list, tuple)):
        names = {i: str(n) for i, n in enumerate(value)}
    elif text is not None:
        LOG.warning("ignoring malformed 'names' metadata in the model: %.80r", text)
    return tuple(names.get(i, str(i)) for i in range(num_classes))


def parse_imgsz(text: str | None) -> tuple[int, int] | None:
    """``(height, width)`` from ultralytics' ``imgsz`` metadata (``[640, 640]`` or ``640``)."""
    value = parse_literal(text)
    if isinstance(value, int) and value > 0:
        return value, value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    return None


def _dim(dim: Any) -> int | None:
    return int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None


def read_model_info(path: str | Path) -> ModelInfo:
    """Inspect a YOLOv8 detection ONNX; :class:`BackendError` if it is missing or not one.

    Reads the protobuf without external data (only shapes, node types and metadata are
    needed), so it is cheap next to creating an inference session.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise BackendError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, onnx its own; both mean "corrupt"
        raise BackendError(f"cannot parse ONNX model {path}: {type(exc).__name__}: {exc}") from exc
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) < 1:
        raise BackendError(
            f"{path}: expected one image input and a detection output, found "
            f"{len(inputs)} inputs and {len(graph.output)} outputs (empty or corrupt file?)"
        )
    detection_outputs = [o for o in graph.output if o.name != EMBEDDINGS_OUTPUT]
    if not detection_outputs:
        raise BackendError(f"{path}: no detection output besides {EMBEDDINGS_OUTPUT!r}")
    inp, out = inputs[0], detection_outputs[0]
    in_dims = list(inp.type.tensor_type.shape.dim)
    out_dims = list(out.type.tensor_type.shape.dim)
    if len(in_dims) != 4 or _dim(in_dims[1]) not in (3, None):
        raise BackendError(f"{path}: input {inp.name!r} must be [B, 3, H, W], has rank {len(in_dims)}")
    if len(out_dims) != 3:
        raise BackendError(
            f"{path}: output {out.name!r} must be the YOLOv8 head [B, 4 + C, anchors]; rank "
            f"{len(out_dims)} (an end-to-end/NMS export?) is not supported"
        )
    meta = {p.key: p.value for p in model.metadata_props}
    height, width = _dim(in_dims[2]), _dim(in_dims[3])
    if height is None or width is None:
        height, width = parse_imgsz(meta.get("imgsz")) or (_DEFAULT_IMGSZ, _DEFAULT_IMGSZ)
        LOG.info("%s has a dynamic input size; using %dx%d from its metadata", path.name, width, height)
    channels = _dim(out_dims[1])
    names_value = parse_literal(meta.get("names"))
    if channels is not None:
        num_classes = channels - 4
    elif isinstance(names_value, (dict, list, tuple)) and names_value:
        num_classes = len(names_value)
    else:
        raise BackendError(f"{path}: cannot tell the number of classes (dynamic output, no 'names')")
    if num_classes <= 0:
        raise BackendError(f"{path}: output has {channels} channels; a detection head needs > 4")
    stride = parse_literal(meta.get("stride"))
    embedding_dim = _embedding_dim(path, graph, _dim(out_dims[2]))
    return ModelInfo(
        path=str(path),
        sha256=file_sha256(path),
        input_name=inp.name,
        output_name=out.name,
        input_height=height,
        input_width=width,
        fixed_batch=_dim(in_dims[0]),
        num_classes=num_classes,
        num_anchors=_dim(out_dims[2]),
        class_names=parse_names(meta.get("names"), num_classes),
        stride=stride if isinstance(stride, int) and stride > 0 else 32,
        input_fp16=inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16,
        is_qdq=any(node.op_type in _QDQ_OPS for node in graph.node),
        metadata=meta,
        embedding_dim=embedding_dim,
        weights_fp16=any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer),
    )


def _embedding_dim(path: Path, graph: Any, num_anchors: int | None) -> int | None:
    """D of the ``embeddings`` output, checked against the detection output's anchors; or None."""
    emb = next((o for o in graph.output if o.name == EMBEDDINGS_OUTPUT), None)
    if emb is None:
        return None
    dims = list(emb.type.tensor_type.shape.dim)
    if len(dims) != 3 or _dim(dims[1]) is None:
        raise BackendError(f"{path}: output {EMBEDDINGS_OUTPUT!r} must be [B, D, anchors] with a fixed D")
    anchors = _dim(dims[2])
    if anchors is not None and num_anchors is not None and anchors != num_anchors:
        raise BackendError(
            f"{path}: output {EMBEDDINGS_OUTPUT!r} has {anchors} anchors, the detection output {num_anchors}"
        )
    return _dim(dims[1])


def int8_sibling(path: str | Path) -> Path:
    """Where ``scripts/quantize_int8.py`` writes the Q/DQ model of ``path`` (``x.onnx`` → ``x.int8.onnx``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8{path.suffix or '.onnx'}")


def fp16_sibling(path: str | Path) -> Path:
    """Where ``scripts/convert_fp16.py`` writes the FP16 model of ``path`` (``x.onnx`` → ``x.fp16.onnx``).

    FP16 weights and activations with float32 I/O, for TensorRT's strongly typed build (TensorRT
    11 has no FP16 builder flag: the precision has to be in the ONNX).
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.fp16{path.suffix or '.onnx'}")
