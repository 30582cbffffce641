"""The one small interface every inference backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from yolov8_trt_ros.core.types import EngineOutput


class BackendError(RuntimeError):
    """A backend cannot load or run its model; the message is meant for the log."""


@dataclass(frozen=True)
class BackendInfo:
    """What the rest of the pipeline needs to know about a loaded engine."""

    name: str  # "tensorrt" | "cuda" | "onnxruntime"
    device: str  # "cpu" or "cuda:N": where ``infer`` expects its input to live
    precision: str  # "fp32" | "fp16" | "int8"
    input_width: int
    input_height: int
    max_batch_size: int
    num_classes: int
    has_nms: bool  # EngineOutput carries nms_* (True) or raw (False)
    input_fp16: bool = False  # the input tensor is float16 rather than float32
    detail: str = ""  # e.g. TensorRT version, GPU name, engine file; for diagnostics
    class_names: tuple[str, ...] = ()  # index = class id; from the model metadata, may be empty


@runtime_checkable
class Backend(Protocol):
    """Runs the network on a preprocessed batch ``[B, 3, H, W]`` in [0, 1].

    ``images`` is a NumPy array for ``device == "cpu"`` and a CUDA array (anything with
    ``__cuda_array_interface__`` or DLPack: a torch tensor, a CuPy array) otherwise, so the
    GPU preprocessor's output is consumed in place.
    """

    info: BackendInfo
    #: Size D of the appearance embeddings ``infer`` returns with the detections, 0 without any.
    embedding_dim: int

    def infer(self, images: Any) -> EngineOutput: ...

    def close(self) -> None:
        """Free device memory and engine; the object is unusable afterwards."""
