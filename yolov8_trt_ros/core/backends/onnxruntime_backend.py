"""ONNX Runtime on the CPU: the default backend, the one CI runs, and the accuracy reference.

Runs the FP32 ONNX or the INT8 Q/DQ ONNX written by ``scripts/quantize_int8.py`` with the
CPU execution provider. The network has no NMS, so ``infer`` returns the raw head
``[B, 4 + C, A]`` for ``core/postprocess.py``, and with it the per-anchor ``embeddings``
``[B, D, A]`` where the model has that output (``core/embeddings.py``). Outputs are fetched by
name, never by position. Only the CPU provider is used on purpose:
GPUs are served by the TensorRT and CUDA backends, and the CPU provider gives the same
numbers on every machine, which is what a reference needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from yolov8_trt_ros.core.backends.base import BackendError, BackendInfo
from yolov8_trt_ros.core.backends.model_info import ModelInfo, int8_sibling, read_model_info
from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.core.types import EngineOutput

LOG = logging.getLogger(__name__)


def _select_model(cfg: EngineConfig) -> tuple[Path, str]:
    """The file to load for ``cfg`` and a note on how it was chosen.

    ``precision: int8`` with an FP32 ``model_path`` picks the Q/DQ sibling that
    ``quantize_int8.py`` writes next to it, so one config serves TensorRT (which calibrates
    the FP32 ONNX itself) and ONNX Runtime.
    """
    path = Path(cfg.model_path)
    if cfg.precision == "int8" and path.is_file():
        sibling = int8_sibling(path)
        if sibling.is_file():
            return sibling, f"precision int8: using the Q/DQ model {sibling.name}"
    return path, ""


class OnnxRuntimeBackend:
    """:class:`~yolov8_trt_ros.core.backends.base.Backend` on ONNX Runtime's CPU provider."""

    def __init__(self, cfg: EngineConfig, embeddings: bool = True) -> None:
        """``embeddings``: fetch the model's embeddings output where it has one (False: the
        head alone, as re-identification off needs)."""
        import onnxruntime as ort

        path, note = _select_model(cfg)
        self.model: ModelInfo = read_model_info(path)
        if note:
            LOG.info(note)
        if cfg.precision != self.model.precision:
            LOG.info(
                "ONNX Runtime runs %s as stored (%s); precision=%s applies to TensorRT%s",
                path.name,
                self.model.precision,
                cfg.precision,
                "" if cfg.precision != "int8" else f" (no {int8_sibling(path).name}: run quantize_int8.py)",
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(0, int(cfg.num_threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are noise in the node log
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own pybind exception types for every failure
            raise BackendError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        self._outputs = [self.model.output_name]
        if embeddings and self.model.embedding_output is not None:
            self._outputs.append(self.model.embedding_output)
        #: Appearance embedding size D this backend returns, 0 when it returns none.
        self.embedding_dim = (self.model.embedding_dim or 0) if len(self._outputs) > 1 else 0
        self._dtype = np.float16 if self.model.input_fp16 else np.float32
        self._chunk = self.model.fixed_batch  # None: any batch in one run
        self.class_names: list[str] = list(self.model.class_names)
        self.info = BackendInfo(
            name="onnxruntime",
            device="cpu",
            precision=self.model.precision,
            input_width=self.model.input_width,
            input_height=self.model.input_height,
            max_batch_size=cfg.max_batch_size,
            num_classes=self.model.num_classes,
            has_nms=False,
            input_fp16=self.model.input_fp16,
            detail=f"onnxruntime {ort.__version__} CPU, {path.name}, threads={cfg.num_threads or 'auto'}"
            + (f", embeddings D={self.embedding_dim}" if self.embedding_dim else ""),
            class_names=self.model.class_names,
        )

    def _check(self, images: Any) -> np.ndarray:
        if self._session is None:
            raise BackendError("onnxruntime backend is closed")
        if hasattr(images, "__cuda_array_interface__"):
            raise BackendError(
                "onnxruntime backend runs on the CPU; got a CUDA array (use the CPU preprocessor)"
            )
        try:
            array = np.asarray(images)
        except Exception as exc:
            raise BackendError(f"input is not an array: {type(images).__name__}") from exc
        expected = (3, self.info.input_height, self.info.input_width)
        if array.ndim != 4 or array.shape[1:] != expected:
            raise BackendError(
                f"input shape {array.shape} must be [B, {expected[0]}, {expected[1]}, {expected[2]}]"
            )
        if not 1 <= array.shape[0] <= self.info.max_batch_size:
            raise BackendError(f"batch {array.shape[0]} must be in [1, {self.info.max_batch_size}]")
        if not np.issubdtype(array.dtype, np.floating):
            raise BackendError(f"input dtype {array.dtype} must be floating point in [0, 1]")
        return np.ascontiguousarray(array, dtype=self._dtype)

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The outputs named by ``self._outputs`` (head, then embeddings if any), as float32."""
        try:
            outs = self._session.run(self._outputs, {self.model.input_name: batch})
        except Exception as exc:
            raise BackendError(f"ONNX Runtime inference failed: {exc}") from exc
        return [np.asarray(out, dtype=np.float32) for out in outs]

    def infer(self, images: Any) -> EngineOutput:
        """Raw head ``[B, 4 + C, A]`` (and ``embeddings [B, D, A]``) float32 for a ``[B, 3, H, W]`` batch."""
        batch = self._check(images)
        chunk = self._chunk
        if chunk is None or chunk == batch.shape[0]:
            outs = self._run(batch)
        else:
            # A graph exported with a fixed batch: run it chunk by chunk, zero-padding the last.
            parts: list[list[np.ndarray]] = []
            for start in range(0, batch.shape[0], chunk):
                part = batch[start : start + chunk]
                n = part.shape[0]
                if n < chunk:
                    part = np.concatenate([part, np.zeros((chunk - n, *part.shape[1:]), part.dtype)])
                parts.append([out[:n] for out in self._run(part)])
            outs = [np.concatenate(arrays) for arrays in zip(*parts, strict=True)]
        return EngineOutput(raw=outs[0], embeddings=outs[1] if len(outs) > 1 else None)

    def close(self) -> None:
        self._session = None
