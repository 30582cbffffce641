"""Engine I/O bookkeeping that needs no TensorRT: buffer sizes, CUDA array views, output mapping.

Kept apart from ``tensorrt_backend.py`` so that it is unit-tested on machines without
TensorRT or a GPU; the TensorRT module only feeds it what the engine reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.types import EngineOutput

#: Output names the in-engine NMS (EfficientNMS_TRT) is given, in the plugin's output order.
NMS_OUTPUTS: tuple[str, ...] = ("num_dets", "det_boxes", "det_scores", "det_classes")
#: The ONNX output with per-anchor appearance embeddings ``[B, D, A]`` (models that have one).
EMBEDDINGS_OUTPUT = "embeddings"
#: The engine output with the kept detections' embeddings ``[B, K, D]``, beside :data:`NMS_OUTPUTS`.
NMS_EMBEDDINGS = "det_embeddings"


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor as the engine reports it; ``-1`` marks the dynamic batch axis."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    def shape_for(self, batch: int) -> tuple[int, ...]:
        """The concrete shape at ``batch``; only the leading axis may be dynamic."""
        if any(d < 0 for d in self.shape[1:]):
            raise BackendError(f"tensor {self.name!r} has a dynamic non-batch axis: {self.shape}")
        if self.shape and self.shape[0] < 0:
            return (batch, *self.shape[1:])
        return self.shape

    def nbytes(self, batch: int) -> int:
        return int(np.prod(self.shape_for(batch), dtype=np.int64)) * self.dtype.itemsize


def plan_buffers(specs: Sequence[TensorSpec], max_batch: int) -> dict[str, int]:
    """Bytes to allocate per tensor so that every batch up to ``max_batch`` fits, allocated once."""
    if max_batch <= 0:
        raise BackendError("max_batch must be positive")
    return {spec.name: spec.nbytes(max_batch) for spec in specs}


@dataclass(frozen=True)
class CudaArrayView:
    """What ``__cuda_array_interface__`` says about a device array."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    #: Stream the producer used (CAI v3), ``None`` if it did not say; 1 and 2 are the legacy
    #: and per-thread default streams, as in the CUDA runtime.
    stream: int | None


def cuda_array_view(obj: Any) -> CudaArrayView:
    """Read a C-contiguous device array's pointer, shape and dtype (torch, CuPy, Numba, ...)."""
    cai = getattr(obj, "__cuda_array_interface__", None)
    if not isinstance(cai, Mapping):
        raise BackendError(f"{type(obj).__name__} is not a CUDA array (no __cuda_array_interface__)")
    try:
        ptr = int(cai["data"][0])
        shape = tuple(int(d) for d in cai["shape"])
        dtype = np.dtype(cai["typestr"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BackendError(f"malformed __cuda_array_interface__: {exc}") from exc
    strides = cai.get("strides")
    if strides is not None:
        expected, step = [], dtype.itemsize
        for dim in reversed(shape):
            expected.append(step)
            step *= dim
        if tuple(strides) != tuple(reversed(expected)):
            raise BackendError(f"CUDA array must be C-contiguous, strides {tuple(strides)}")
    if cai.get("mask") is not None:
        raise BackendError("masked CUDA arrays are not supported")
    stream = cai.get("stream")
    return CudaArrayView(ptr, shape, dtype, None if stream is None else int(stream))


def check_input(shape: tuple[int, ...], dtype: np.dtype[Any], expected: TensorSpec, max_batch: int) -> int:
    """Batch size of an input of ``shape``/``dtype`` for the engine input ``expected``."""
    want = expected.shape_for(1)[1:]
    if len(shape) != 4 or shape[1:] != want:
        raise BackendError(f"input shape {shape} must be [B, {', '.join(map(str, want))}]")
    if not 1 <= shape[0] <= max_batch:
        raise BackendError(f"batch {shape[0]} must be in [1, {max_batch}]")
    if dtype != expected.dtype:
        raise BackendError(f"input dtype {dtype} must be {expected.dtype} for this engine")
    return shape[0]


def raw_output_name(output_names: Sequence[str], head_name: str) -> str:
    """The raw head among an engine's outputs: ``head_name`` (the ONNX's first output) where it
    is one, else the only output that is not an embeddings output (engines keep their own order
    of I/O tensors, so "the first output" may be the embeddings)."""
    if head_name in output_names:
        return head_name
    others = [n for n in output_names if n not in (EMBEDDINGS_OUTPUT, NMS_EMBEDDINGS)]
    if len(others) != 1:
        raise BackendError(f"cannot tell the raw head among the engine outputs {list(output_names)}")
    return others[0]


def embedding_dim(outputs: Sequence[TensorSpec]) -> int:
    """D of the engine's embeddings output (``[B, K, D]`` gathered or ``[B, D, A]`` per anchor), 0 if none."""
    for spec in outputs:
        if spec.name == NMS_EMBEDDINGS and len(spec.shape) == 3:
            return spec.shape[2]
        if spec.name == EMBEDDINGS_OUTPUT and len(spec.shape) == 3:
            return spec.shape[1]
    return 0


def engine_output(host: Mapping[str, np.ndarray], batch: int, raw_name: str | None) -> EngineOutput:
    """:class:`EngineOutput` from host copies of the output tensors of the first ``batch`` images.

    The arrays returned are copies (``astype``), never views of the reused pinned buffers.
    Engines with NMS expose :data:`NMS_OUTPUTS`; ``num_dets`` is ``[B, 1]`` there and becomes
    ``nms_count [B]``. Others expose one raw head tensor ``raw_name``. Embeddings follow the
    form: :data:`NMS_EMBEDDINGS` ``[B, K, D]`` with NMS, :data:`EMBEDDINGS_OUTPUT` ``[B, D, A]``
    with the raw head; absent, ``embeddings`` is None.
    """
    if all(name in host for name in NMS_OUTPUTS):
        count, boxes, scores, classes = (np.asarray(host[n][:batch]) for n in NMS_OUTPUTS)
        return EngineOutput(
            nms_count=count.reshape(batch).astype(np.int32),
            nms_boxes=boxes.astype(np.float32),
            nms_scores=scores.astype(np.float32),
            nms_classes=classes.astype(np.int32),
            embeddings=_embeddings_copy(host, NMS_EMBEDDINGS, batch),
        )
    if raw_name is None or raw_name not in host:
        raise BackendError(f"engine outputs {sorted(host)} are neither NMS outputs nor the raw head")
    # A copy: the host buffers are reused by the next inference.
    return EngineOutput(
        raw=np.array(host[raw_name][:batch], dtype=np.float32, copy=True),
        embeddings=_embeddings_copy(host, EMBEDDINGS_OUTPUT, batch),
    )


def _embeddings_copy(host: Mapping[str, np.ndarray], name: str, batch: int) -> np.ndarray | None:
    if name not in host:
        return None
    return np.array(host[name][:batch], dtype=np.float32, copy=True)
