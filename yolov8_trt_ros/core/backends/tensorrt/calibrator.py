"""Implicit INT8 calibration (``IInt8EntropyCalibrator2``) over the calibration images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt
from cuda.bindings import runtime as cudart

from yolov8_trt_ros.core.backends.tensorrt.common import LOG, cuda
from yolov8_trt_ros.core.calibration import (
    CalibrationImages,
    CalibrationKey,
    read_calibration_cache,
    write_calibration_cache,
)


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Implicit INT8 calibration over :class:`CalibrationImages`, cache bound to its key."""

    def __init__(self, images: CalibrationImages, cache_path: Path, key: CalibrationKey, fp16: bool) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self._images = images
        self._batches = iter(images)
        self._cache_path, self._key = cache_path, key
        self._dtype = np.dtype(np.float16 if fp16 else np.float32)
        nbytes = images.batch_size * 3 * images.input_height * images.input_width * self._dtype.itemsize
        self._device = int(cuda(cudart.cudaMalloc(nbytes)))
        self.batches_used = 0

    def get_batch_size(self) -> int:
        return self._images.batch_size

    def get_batch(self, names: list[str]) -> list[int]:
        batch = next(self._batches, None)
        if batch is None:
            return []  # TensorRT: no more data
        host = np.ascontiguousarray(batch, dtype=self._dtype)
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda(cudart.cudaMemcpy(self._device, host.ctypes.data, host.nbytes, kind))
        self.batches_used += 1
        if self.batches_used % 50 == 0:
            LOG.info("calibration batch %d/%d", self.batches_used, len(self._images))
        return [self._device]

    def read_calibration_cache(self) -> bytes | None:
        """The wrapped cache if it matches this model and image set; ``None`` makes TensorRT calibrate."""
        cache = read_calibration_cache(self._cache_path, self._key)
        if cache is not None:
            LOG.info("using calibration cache %s", self._cache_path)
        return cache

    def write_calibration_cache(self, cache: Any) -> None:
        write_calibration_cache(self._cache_path, self._key, bytes(cache))
        LOG.info("calibration cache written to %s", self._cache_path)

    def free(self) -> None:
        if self._device:
            cuda(cudart.cudaFree(self._device))
            self._device = 0
