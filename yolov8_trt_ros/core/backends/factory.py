"""Pick and build the inference backend for an :class:`EngineConfig`.

``backend: auto`` takes the fastest backend this machine can run, in the order TensorRT >
CUDA (PyTorch) > ONNX Runtime (CPU), and says in the log what it chose and why the faster
ones were passed over. A backend that is available but fails to load its model (no ``.pt``
for the CUDA backend, say) is also passed over under ``auto``; a backend named explicitly
is built or fails with a :class:`BackendError`, never silently replaced.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from yolov8_trt_ros.core.backends.base import Backend, BackendError
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig

LOG = logging.getLogger(__name__)

#: ``auto`` tries these in order.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "onnxruntime")


def _import_reason(module: str) -> str | None:
    """``None`` if ``module`` imports, else why not (missing, or a broken native library)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or OSError from a missing libnvinfer / libcudart
        return f"{module} does not import ({type(exc).__name__}: {exc})"
    return None


def cuda_device_count() -> int:
    """NVIDIA GPUs visible through the CUDA runtime (cuda-python); 0 when there is no driver."""
    try:
        from cuda.bindings import runtime as cudart

        err, count = cudart.cudaGetDeviceCount()
    except Exception:  # cuda-python missing or libcudart not loadable
        return 0
    return int(count) if err == cudart.cudaError_t.cudaSuccess else 0


def _tensorrt_reason() -> str | None:
    reason = _import_reason("tensorrt") or _import_reason("cuda.bindings.runtime")
    if reason:
        return reason
    import tensorrt

    if not hasattr(tensorrt, "Builder"):  # e.g. only tensorrt-stubs' folder, a namespace package
        return "tensorrt imports but is not the TensorRT runtime (type stubs only?)"
    return None if cuda_device_count() > 0 else "no CUDA GPU visible to the CUDA runtime"


def _cuda_reason() -> str | None:
    reason = _import_reason("torch")
    if reason:
        return reason
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU"
    return _import_reason("ultralytics")


def available_backends() -> dict[str, str | None]:
    """Backend name → ``None`` if it can run here, else the reason it cannot."""
    return {
        "tensorrt": _tensorrt_reason(),
        "cuda": _cuda_reason(),
        "onnxruntime": _import_reason("onnxruntime"),
    }


def _builder(name: str) -> Callable[[EngineConfig, PostprocessConfig, bool], Backend]:
    if name == "tensorrt":
        from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend
    if name == "cuda":
        from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

        return CudaBackend
    if name == "onnxruntime":
        from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend

        return lambda engine, _post, embeddings: OnnxRuntimeBackend(engine, embeddings)
    raise BackendError(f"unknown backend {name!r}; known: {', '.join(AUTO_ORDER)}")


def create_backend(engine: EngineConfig, post: PostprocessConfig, embeddings: bool = False) -> Backend:
    """Build the backend ``engine.backend`` names, or the best available one for ``auto``.

    ``post`` configures the NMS that TensorRT puts inside the engine and the CUDA backend's
    GPU NMS (its sizes; the thresholds can change later); ONNX Runtime returns the raw head.
    ``embeddings``: return each detection's appearance embedding (the model's ``embeddings``
    output; the CUDA backend computes it from the weights). Only re-identification reads them,
    and they cost device time (up to 0.19 ms per frame measured on the H100's CUDA backend) and,
    with TensorRT, a different NMS layer, so they are off unless asked for.
    """
    if engine.backend != "auto":
        reason = available_backends().get(engine.backend, f"unknown backend {engine.backend!r}")
        if reason:
            raise BackendError(f"backend {engine.backend!r} is not available: {reason}")
        backend = _builder(engine.backend)(engine, post, embeddings)
        LOG.info("backend %s (requested): %s", backend.info.name, backend.info.detail)
        return backend

    passed_over: list[str] = []
    available = available_backends()
    for name in AUTO_ORDER:
        reason = available[name]
        if reason is None:
            try:
                backend = _builder(name)(engine, post, embeddings)
            except BackendError as exc:
                reason = f"failed to load: {exc}"
            else:
                why = "; ".join(passed_over) if passed_over else "the fastest backend, available"
                LOG.info("backend auto -> %s (%s). %s", name, backend.info.detail, why)
                return backend
        passed_over.append(f"{name} skipped: {reason}")
    raise BackendError("no backend can run this model: " + "; ".join(passed_over))
