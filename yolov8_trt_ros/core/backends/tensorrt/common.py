"""What every TensorRT room shares: the version, the logger bridge, dtypes, CUDA errors, GPU id."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, ClassVar

import numpy as np
import tensorrt as trt
from cuda.bindings import runtime as cudart

from yolov8_trt_ros.core.backends.host_outputs import cuda_call

LOG = logging.getLogger("yolov8_trt_ros.core.backends.tensorrt")

TRT_VERSION: tuple[int, ...] = tuple(int(p) for p in trt.__version__.split(".")[:3] if p.isdigit())
#: Engine I/O types this backend handles (``trt.nptype`` is untyped in the stubs).
NP_DTYPES: dict[trt.DataType, type[np.generic]] = {
    trt.float32: np.float32,
    trt.float16: np.float16,
    trt.int32: np.int32,
    trt.int8: np.int8,
    trt.uint8: np.uint8,
    trt.bool: np.bool_,
}


def cuda(result: tuple[Any, ...]) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; :class:`BackendError` on failure."""
    return cuda_call(result)


class Logger(trt.ILogger):
    """TensorRT log → Python logging (TensorRT's INFO is very chatty: mapped to DEBUG)."""

    _LEVELS: ClassVar[dict[trt.ILogger.Severity, int]] = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.DEBUG,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        #: The last errors TensorRT reported: a failed parse or deserialize returns only None,
        #: the reason (e.g. the plugin it could not find) is in these lines.
        self.errors: deque[str] = deque(maxlen=8)

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        level = self._LEVELS.get(severity, logging.INFO)
        if level >= logging.ERROR:
            self.errors.append(msg)
        LOG.log(level, "[TRT] %s", msg)

    def take_errors(self) -> list[str]:
        """The errors logged since the last call (and forget them)."""
        errors = list(self.errors)
        self.errors.clear()
        return errors


TRT_LOGGER = Logger()


def gpu_identity(device_id: int) -> tuple[str, str]:
    props = cuda(cudart.cudaGetDeviceProperties(device_id))
    name = (
        props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
    )
    return name, f"{props.major}.{props.minor}"
