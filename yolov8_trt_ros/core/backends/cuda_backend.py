"""PyTorch on an NVIDIA GPU, for machines with CUDA but without TensorRT.

Loads the ultralytics ``.pt`` that sits next to the ONNX (``models/x.onnx`` → ``models/x.pt``;
or ``model_path`` is the ``.pt`` itself), fuses Conv+BN, puts the detection head in export
mode (it then returns only the decoded head ``[B, 4 + C, A]``), runs FP16 (``fp16``/``int8``:
PyTorch has no INT8 path for this network, so INT8 runs as FP16 and says so) or FP32 (true
FP32: TF32 is switched off, see :func:`_disable_tf32`), and
captures one CUDA graph per batch size on first use: the input is copied into a static
buffer and the graph replayed, which removes the per-layer launch overhead that dominates a
model this small.

``infer`` returns ``EngineOutput(raw=...)`` where ``raw`` is a **torch CUDA tensor** (float32,
``[B, 4 + C, A]``), not a NumPy array: ``core/postprocess.py``'s ``postprocess_torch``
decodes it on the GPU without a device-to-host copy of the whole head. It is a fresh tensor
per call (the graph's static output is cloned), ready to use on the caller's current stream.

Why not convert the ONNX to PyTorch (onnx2torch): the ``.pt`` is the source of truth the ONNX
was exported from, ultralytics already knows how to fuse it, and it avoids another
dependency. The cost is needing ultralytics on the GPU machine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from yolov8_trt_ros.core.backends.base import BackendError, BackendInfo
from yolov8_trt_ros.core.backends.model_info import parse_imgsz, parse_names, read_model_info
from yolov8_trt_ros.core.config import EngineConfig
from yolov8_trt_ros.core.types import EngineOutput

LOG = logging.getLogger(__name__)


def weights_for(model_path: str | Path) -> Path:
    """The ``.pt`` the CUDA backend loads for ``model_path`` (itself, or the sibling of an ONNX)."""
    path = Path(model_path)
    return path if path.suffix == ".pt" else path.with_suffix(".pt")


def _disable_tf32(torch: Any) -> None:
    """Make ``fp32`` mean IEEE FP32: cuDNN convolutions default to TF32 on Ampere and newer.

    TF32 moves YOLOv8's box outputs by up to ~0.5 px against ONNX Runtime's FP32. The switch
    is process-wide (PyTorch has no per-module setting); it is logged.
    """
    backends = torch.backends
    if hasattr(getattr(backends.cudnn, "conv", None), "fp32_precision"):  # torch >= 2.9
        backends.cudnn.conv.fp32_precision = "ieee"
        backends.cuda.matmul.fp32_precision = "ieee"
    else:
        backends.cudnn.allow_tf32 = False
        backends.cuda.matmul.allow_tf32 = False
    LOG.info("CUDA backend fp32: TF32 disabled for cuDNN convolutions and matmuls (process-wide)")


class CudaBackend:
    """:class:`~yolov8_trt_ros.core.backends.base.Backend` on PyTorch CUDA with CUDA graphs."""

    def __init__(self, cfg: EngineConfig) -> None:
        import torch

        from yolov8_trt_ros.core.export import load_torch_model, prepare_for_export

        if not torch.cuda.is_available():
            raise BackendError(f"torch {torch.__version__} sees no CUDA GPU")
        weights = weights_for(cfg.model_path)
        if not weights.is_file():
            raise BackendError(f"CUDA backend needs the ultralytics weights {weights} (next to the ONNX)")
        onnx_path = Path(cfg.model_path).with_suffix(".onnx")
        onnx_info = read_model_info(onnx_path) if onnx_path.is_file() else None
        try:
            model = load_torch_model(weights)
        except Exception as exc:  # a damaged or foreign pickle raises anything
            raise BackendError(f"cannot load {weights}: {type(exc).__name__}: {exc}") from exc
        if onnx_info is not None:
            size = (onnx_info.input_height, onnx_info.input_width)
        else:
            train_args = getattr(model, "args", {}) or {}
            size = parse_imgsz(str(train_args.get("imgsz", 640))) or (640, 640)
        self.device = torch.device("cuda", cfg.device_id)
        self.half = cfg.precision in ("fp16", "int8")
        if cfg.precision == "int8":
            LOG.info("CUDA backend has no INT8 path: running FP16")
        if not self.half:
            _disable_tf32(torch)
        model = prepare_for_export(model, size)  # fused, Detect in export mode, CPU fp32
        model = model.to(self.device)
        self._model = model.half() if self.half else model
        self._dtype = torch.float16 if self.half else torch.float32
        names = parse_names(str(dict(model.names)), int(model.model[-1].nc))
        if onnx_info is not None and onnx_info.num_classes != len(names):
            raise BackendError(
                f"{weights} has {len(names)} classes, {onnx_path.name} {onnx_info.num_classes}"
            )
        self._torch_stream = torch.cuda.Stream(self.device)
        #: Raw ``cudaStream_t`` the model runs on; the CUDA preprocessor may enqueue on it too.
        self.stream: int = int(self._torch_stream.cuda_stream)
        self._use_graph = cfg.cuda_graph
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}  # batch -> (graph, static in, static out)
        self._closed = False
        self.class_names: list[str] = list(names)
        self.info = BackendInfo(
            name="cuda",
            device=f"cuda:{cfg.device_id}",
            precision="fp16" if self.half else "fp32",
            input_width=size[1],
            input_height=size[0],
            max_batch_size=cfg.max_batch_size,
            num_classes=len(names),
            has_nms=False,
            input_fp16=self.half,
            detail=f"torch {torch.__version__}, {torch.cuda.get_device_name(self.device)}, {weights.name}, "
            f"CUDA graphs {'on' if cfg.cuda_graph else 'off'}",
            class_names=names,
        )

    def _as_tensor(self, images: Any) -> Any:
        """A CUDA tensor view of ``images`` (torch, any CUDA Array Interface object, or NumPy)."""
        import torch

        if isinstance(images, torch.Tensor):
            tensor = images
        elif hasattr(images, "__cuda_array_interface__"):
            cai_stream = images.__cuda_array_interface__.get("stream")
            if cai_stream not in (None, self.stream):
                self._torch_stream.wait_stream(torch.cuda.ExternalStream(int(cai_stream), device=self.device))
            tensor = torch.as_tensor(images, device=self.device)
        elif isinstance(images, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(images))
        else:
            raise BackendError(f"unsupported input type {type(images).__name__}")
        expected = (3, self.info.input_height, self.info.input_width)
        if tensor.ndim != 4 or tuple(tensor.shape[1:]) != expected:
            raise BackendError(
                f"input shape {tuple(tensor.shape)} must be [B, {', '.join(map(str, expected))}]"
            )
        if not 1 <= tensor.shape[0] <= self.info.max_batch_size:
            raise BackendError(f"batch {tensor.shape[0]} must be in [1, {self.info.max_batch_size}]")
        if not tensor.is_floating_point():
            raise BackendError(f"input dtype {tensor.dtype} must be floating point in [0, 1]")
        return tensor

    def _graph_for(self, batch: int) -> tuple[Any, Any, Any]:
        """Capture (once per batch size) the forward pass on static buffers."""
        import torch

        if batch not in self._graphs:
            static_in = torch.zeros(
                (batch, 3, self.info.input_height, self.info.input_width),
                dtype=self._dtype,
                device=self.device,
            )
            with torch.cuda.stream(self._torch_stream), torch.inference_mode():
                for _ in range(2):  # warm-up: cuDNN picks its kernels outside the capture
                    self._model(static_in)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self._torch_stream):
                    static_out = self._model(static_in)
            self._graphs[batch] = (graph, static_in, static_out)
            LOG.info("captured a CUDA graph for batch %d", batch)
        return self._graphs[batch]

    def infer(self, images: Any) -> EngineOutput:
        """Raw head ``[B, 4 + C, A]`` as a float32 torch CUDA tensor (see the module docstring)."""
        import torch

        if self._closed:
            raise BackendError("cuda backend is closed")
        tensor = self._as_tensor(images)
        batch = int(tensor.shape[0])
        caller = torch.cuda.current_stream(self.device)
        self._torch_stream.wait_stream(caller)  # inputs written on the caller's stream
        with torch.cuda.stream(self._torch_stream), torch.inference_mode():
            if self._use_graph:
                graph, static_in, static_out = self._graph_for(batch)
                static_in.copy_(tensor, non_blocking=True)
                graph.replay()
                # A copy: the static output is overwritten by the next replay.
                out = static_out.to(torch.float32, copy=True)
            else:
                x = tensor.to(self.device, self._dtype, non_blocking=True)
                out = self._model(x).float()
        caller.wait_stream(self._torch_stream)
        out.record_stream(caller)
        return EngineOutput(raw=out)

    def close(self) -> None:
        import torch

        if self._closed:
            return
        self._closed = True
        self._torch_stream.synchronize()
        self._graphs.clear()
        del self._model
        torch.cuda.empty_cache()
