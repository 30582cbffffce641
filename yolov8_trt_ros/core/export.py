"""Ultralytics YOLOv8 weights → the ONNX every backend consumes.

Why not ``YOLO.export(format="onnx")``: its ``dynamic=True`` makes height and width dynamic
too (anchors then computed in the graph, output ``[B, 4 + C, anchors]``), and it stamps the
export date into the metadata, so two exports of the same weights differ. Here the model is
prepared exactly as ultralytics' exporter prepares it for ONNX (fused Conv+BN, ``Detect`` in
export mode, ``C2f.forward_split``), traced with PyTorch's TorchScript ONNX exporter (as
ultralytics does, ``dynamo=False``) with only the batch axis dynamic, simplified with
onnxslim, and given ultralytics' metadata keys without the date plus two of our own:
``yolov8_trt_ros.source_sha256`` (the weights file) and ``yolov8_trt_ros.export_args``.
Same weights and arguments ⇒ same ONNX bytes, so the ONNX hash can key the engine cache.

Opset 17 by default: the newest opset that the ONNX parsers of TensorRT 8.5 (JetPack 5.1),
8.6 and 10.x (JetPack 6) all list as supported; YOLOv8n itself uses no operator newer than
opset 13, so any of them parses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yolov8_trt_ros.core.backends.model_info import META_EXPORT_ARGS, META_SOURCE_SHA256, file_sha256

LOG = logging.getLogger(__name__)

DEFAULT_OPSET = 17
#: Seed for architectures built from a ``.yaml`` (untrained): fixed so exports are reproducible.
YAML_SEED = 0


@dataclass(frozen=True)
class ExportArgs:
    """Everything that changes the exported bytes besides the weights themselves."""

    imgsz: tuple[int, int] = (640, 640)  # (height, width)
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    simplify: bool = True
    seed: int = YAML_SEED


def load_torch_model(weights: str | Path, seed: int = YAML_SEED) -> Any:
    """The ultralytics ``DetectionModel`` of a ``.pt`` checkpoint or a ``.yaml`` architecture.

    A ``.yaml`` builds untrained weights; ``torch.manual_seed(seed)`` first makes them the
    same on every run (the tests and the demo rely on it).
    """
    import torch
    from ultralytics import YOLO

    weights = str(weights)
    if weights.endswith((".yaml", ".yml")):
        torch.manual_seed(seed)
    elif not Path(weights).is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    model = YOLO(weights).model
    if model is None or getattr(model, "task", "detect") != "detect":
        raise ValueError(f"{weights} is not a YOLO detection model (task={getattr(model, 'task', None)})")
    return model


def prepare_for_export(model: Any, imgsz: tuple[int, int]) -> Any:
    """A fused, eval-mode float32 copy with the detection head in ONNX export mode.

    Mirrors ``ultralytics.engine.exporter.Exporter.__call__`` for ``format="onnx"`` with a
    static input size: anchors become constants, the output is ``[B, 4 + C, A]``.
    """
    import copy

    import torch
    from ultralytics.nn.modules import C2f, Detect

    model = copy.deepcopy(model).to("cpu").float()
    for p in model.parameters():
        p.requires_grad = False
    model.eval()
    model = model.fuse(verbose=False, imgsz=list(imgsz))
    for module in model.modules():
        m: Any = module  # ultralytics' attributes are set dynamically, as its exporter does
        if isinstance(module, Detect):
            m.dynamic = False
            m.export = True
            m.format = "onnx"
            m.shape = None
            m.xyxy = False
        elif isinstance(module, C2f):
            m.forward = m.forward_split
    with torch.no_grad():
        model(torch.zeros(1, 3, *imgsz))  # dry run: fixes the anchors for this size
    return model


def _metadata(model: Any, args: ExportArgs, source_sha256: str) -> dict[str, str]:
    """ultralytics' ONNX metadata (without the date) plus ours; values as ultralytics writes them."""
    from ultralytics import __version__

    head = model.model[-1]
    names = {int(k): str(v) for k, v in dict(model.names).items()}
    meta: dict[str, Any] = {
        "description": "Ultralytics YOLOv8 model exported by yolov8_trt_ros",
        "author": "Ultralytics",
        "version": __version__,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": int(max(model.stride)),
        "task": "detect",
        "head": type(head).__name__,
        "batch": 1,
        "imgsz": list(args.imgsz),
        "names": names,
        "channels": 3,
        "end2end": False,
        META_SOURCE_SHA256: source_sha256,
        META_EXPORT_ARGS: json.dumps(asdict(args), sort_keys=True),
    }
    return {k: v if isinstance(v, str) else str(v) for k, v in meta.items()}


def export_onnx(
    weights: str | Path,
    output: str | Path,
    imgsz: int | tuple[int, int] = 640,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    simplify: bool = True,
    seed: int = YAML_SEED,
) -> Path:
    """Export ``weights`` (``.pt`` or ``.yaml``) to ``output``; returns the ONNX path.

    The file is written atomically (temporary name, then rename), so a reader never sees a
    half-written model.
    """
    import onnx
    import torch

    size = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    if any(s <= 0 or s % 32 for s in size):
        raise ValueError(f"imgsz {size} must be positive multiples of 32 (the YOLOv8 stride)")
    args = ExportArgs(imgsz=size, opset=opset, dynamic_batch=dynamic_batch, simplify=simplify, seed=seed)
    source = Path(weights)
    source_sha = (
        file_sha256(source)
        if source.is_file()
        else hashlib.sha256(f"{weights}:seed={seed}".encode()).hexdigest()  # built-in yaml by name
    )
    model = prepare_for_export(load_torch_model(weights, seed), size)
    dynamic_axes = {"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which ultralytics does not
        # use either; its tracer warnings are about the anchors, constant on purpose here.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = Path(tmp) / "traced.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, *size),),
            str(traced),
            opset_version=opset,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
        proto = onnx.load(str(traced))
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    del proto.metadata_props[:]
    for key, value in _metadata(model, args, source_sha).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = output.with_name(f".{output.name}.tmp")
    staged.write_bytes(proto.SerializeToString())
    staged.replace(output)
    LOG.info("exported %s -> %s (imgsz %s, opset %d)", weights, output, size, opset)
    return output
