"""Run a TensorRT engine: buffers, CUDA graphs, layer profiling, asynchronous outputs.

``infer`` enqueues the input copy, the engine (or its CUDA graph) and the device-to-host
copies of the (small) outputs into a pinned slot, records the slot's event and returns: the
``EngineOutput`` views the slot until ``wait()`` (``postprocess`` and ``Pipeline._finish``
call it), which synchronises on the event and copies. So ``Pipeline.process_stream``
overlaps the next batch's inference with this batch's host work, as on the CUDA backend.
With a layer profiler attached, ``infer`` synchronises (the layer times need it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt
from cuda.bindings import runtime as cudart

from yolov8_trt_ros.core.backends.base import BackendError, BackendInfo
from yolov8_trt_ros.core.backends.host_outputs import HostOutputs
from yolov8_trt_ros.core.backends.io_plan import (
    EMBEDDINGS_OUTPUT,
    NMS_EMBEDDINGS,
    NMS_OUTPUTS,
    TensorSpec,
    check_input,
    cuda_array_view,
    embedding_dim,
    engine_output,
    plan_buffers,
    raw_output_name,
)
from yolov8_trt_ros.core.backends.tensorrt.build import BuildPlan, build_engine
from yolov8_trt_ros.core.backends.tensorrt.common import LOG, NP_DTYPES, TRT_LOGGER, cuda, gpu_identity
from yolov8_trt_ros.core.backends.tensorrt.plugins import explain_failure, load_plugin_libraries
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.engine_cache import EngineCache
from yolov8_trt_ros.core.profiling import LayerProfiler
from yolov8_trt_ros.core.types import EngineOutput


def _pending_output(views: dict[str, np.ndarray], batch: int, raw_name: str | None) -> EngineOutput:
    """An :class:`EngineOutput` viewing the pinned slot (valid after ``wait()``, which copies)."""
    if all(name in views for name in NMS_OUTPUTS):
        count, boxes, scores, classes = (views[n] for n in NMS_OUTPUTS)
        return EngineOutput(
            nms_count=count.reshape(batch),
            nms_boxes=boxes,
            nms_scores=scores,
            nms_classes=classes,
            embeddings=views.get(NMS_EMBEDDINGS),
        )
    if raw_name is None or raw_name not in views:
        raise BackendError(f"engine outputs {sorted(views)} are neither NMS outputs nor the raw head")
    return EngineOutput(raw=views[raw_name], embeddings=views.get(EMBEDDINGS_OUTPUT))


class TensorRTBackend:
    """:class:`~yolov8_trt_ros.core.backends.base.Backend` on a TensorRT engine (built or cached)."""

    def __init__(self, cfg: EngineConfig, post: PostprocessConfig, embeddings: bool = True) -> None:
        """``embeddings``: build with the model's embeddings output (where it has one); off, the
        engine is the plain detector (EfficientNMS_TRT), as re-identification off needs."""
        cuda(cudart.cudaSetDevice(cfg.device_id))
        self._device_id = cfg.device_id
        gpu_name, capability = gpu_identity(cfg.device_id)
        load_plugin_libraries(cfg.plugin_libraries)
        builder = trt.Builder(TRT_LOGGER)
        plan = BuildPlan(cfg, post, builder, embeddings)
        cache = EngineCache(cfg.engine_cache_dir)
        stem = Path(plan.model.path).stem
        key = plan.engine_key(gpu_name, capability)
        payload = cache.load(key, stem)
        if payload is None:
            payload = build_engine(plan, builder)
            key = plan.engine_key(gpu_name, capability)  # the calibration cache may exist now
            cache.store(key, payload, stem)
        del builder
        #: The cache file holding this engine (header + plan); ``scripts/build_engine.py --plan`` extracts it.
        self.engine_path: Path = cache.path_for(key, stem)
        self._runtime = trt.Runtime(TRT_LOGGER)
        engine = self._runtime.deserialize_cuda_engine(payload)
        if engine is None:
            raise BackendError(
                explain_failure(f"TensorRT {trt.__version__} cannot deserialize {self.engine_path}")
            )
        self._engine: trt.ICudaEngine = engine
        context = engine.create_execution_context()
        if context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self._context: trt.IExecutionContext = context
        self._specs = [self._spec(engine.get_tensor_name(i)) for i in range(engine.num_io_tensors)]
        inputs = [s for s in self._specs if s.is_input]
        if len(inputs) != 1:
            raise BackendError(f"engine has {len(inputs)} inputs; expected one image input")
        self._input = inputs[0]
        self._outputs = [s for s in self._specs if not s.is_input]
        names = [s.name for s in self._outputs]
        self._raw_name = None if cfg.end2end_nms else raw_output_name(names, plan.model.output_name)
        #: Appearance embedding size D (the engine's embeddings output), 0 when it has none.
        self.embedding_dim = embedding_dim(self._outputs)
        self._max_batch = plan.max_batch
        self.stream: int = int(cuda(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking)))
        self._event = cuda(cudart.cudaEventCreateWithFlags(cudart.cudaEventDisableTiming))
        sizes = plan_buffers(self._specs, self._max_batch)
        self._device: dict[str, int] = {name: int(cuda(cudart.cudaMalloc(n))) for name, n in sizes.items()}
        #: Pinned output slots: ``infer`` returns before the copies land (see ``host_outputs.py``).
        self._host = HostOutputs({spec.name: sizes[spec.name] for spec in self._outputs})
        for name, ptr in self._device.items():
            self._context.set_tensor_address(name, ptr)
        self._use_graph = cfg.cuda_graph
        self._graphs: dict[int, Any] = {}
        #: The attached layer profiler (:meth:`enable_layer_profiling`), or None.
        self.layer_profiler: LayerProfiler | None = None
        self._report_failed = False
        self._closed = False
        self.class_names: list[str] = list(plan.fp32_model.class_names)
        self.info = BackendInfo(
            name="tensorrt",
            device=f"cuda:{cfg.device_id}",
            precision=plan.precision,
            input_width=plan.model.input_width,
            input_height=plan.model.input_height,
            max_batch_size=self._max_batch,
            num_classes=plan.model.num_classes,
            has_nms=cfg.end2end_nms,
            input_fp16=self._input.dtype == np.float16,
            detail=f"TensorRT {trt.__version__}, {gpu_name} (sm {capability}), "
            f"{cache.path_for(key, stem).name}",
            class_names=plan.fp32_model.class_names,
        )

    def _spec(self, name: str) -> TensorSpec:
        engine = self._engine
        dims = engine.get_tensor_shape(name)
        trt_dtype = engine.get_tensor_dtype(name)
        if trt_dtype not in NP_DTYPES:
            raise BackendError(f"engine tensor {name!r} has unsupported type {trt_dtype}")
        return TensorSpec(
            name=name,
            is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
            shape=tuple(int(dims[i]) for i in range(len(dims))),
            dtype=np.dtype(NP_DTYPES[trt_dtype]),
        )

    def enable_layer_profiling(self, layers: LayerProfiler) -> None:
        """Report every later inference's per-layer times to ``layers`` (until disabled).

        ``enqueue_emits_profile = False`` keeps ``execute_async_v3`` asynchronous: TensorRT only
        records events while enqueuing, and ``infer`` turns them into layer times with
        ``report_to_profiler`` once the stream is synchronised. The layer names are those the
        engine was built with (``ProfilingVerbosity.LAYER_NAMES_ONLY``, TensorRT's default).
        """
        self._context.profiler = layers.trt_adapter()
        self._context.enqueue_emits_profile = False
        self.layer_profiler = layers
        self._report_failed = False

    def disable_layer_profiling(self) -> None:
        """Detach the layer profiler; CUDA graphs (if configured) are used again."""
        if self.layer_profiler is None:
            return
        # TensorRT takes None as "no profiler"; the stubs type the attribute as non-optional.
        context: Any = self._context
        context.profiler = None
        context.enqueue_emits_profile = True
        self.layer_profiler = None

    def _enqueue(self, batch: int) -> None:
        """Run the engine for ``batch`` on ``self.stream``: a captured graph, or execute_async_v3."""
        profiling = self.layer_profiler is not None
        graph = None if profiling else self._graphs.get(batch)
        if graph is not None:
            cuda(cudart.cudaGraphLaunch(graph, self.stream))
            return
        if not self._context.execute_async_v3(self.stream):
            raise BackendError("TensorRT execution failed")
        if self._use_graph and not profiling:
            self._capture(batch)

    def _report_layers(self) -> None:
        """Hand the finished inference's layer times to the profiler (after the stream sync)."""
        if not self._context.report_to_profiler() and not self._report_failed:
            self._report_failed = True  # once: a profiler must never flood the log
            LOG.warning("TensorRT report_to_profiler failed; no layer times for this engine")

    def _capture(self, batch: int) -> None:
        """Capture one graph per batch size after a first plain run (TensorRT's requirement)."""
        cuda(cudart.cudaStreamSynchronize(self.stream))
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            cuda(cudart.cudaStreamBeginCapture(self.stream, mode))
            ok = self._context.execute_async_v3(self.stream)
            graph = cuda(cudart.cudaStreamEndCapture(self.stream))
            if not ok:
                raise BackendError("execution during capture failed")
            self._graphs[batch] = cuda(cudart.cudaGraphInstantiateWithFlags(graph, 0))
            cuda(cudart.cudaGraphDestroy(graph))
        except BackendError as exc:
            LOG.warning("CUDA graph capture failed (%s); running without graphs", exc)
            self._use_graph = False

    def infer(self, images: Any) -> EngineOutput:
        """Run a ``[B, 3, H, W]`` batch (CUDA array, or NumPy which is uploaded first)."""
        if self._closed:
            raise BackendError("tensorrt backend is closed")
        cuda(cudart.cudaSetDevice(self._device_id))  # the runtime's device is per thread
        name = self._input.name
        if hasattr(images, "__cuda_array_interface__"):
            view = cuda_array_view(images)
            batch = check_input(view.shape, view.dtype, self._input, self._max_batch)
            if view.stream is not None and view.stream != self.stream:
                # The producer's work must be done before ours reads it (CAI v3 semantics).
                cuda(cudart.cudaEventRecord(self._event, view.stream))
                cuda(cudart.cudaStreamWaitEvent(self.stream, self._event, 0))
            src, kind = view.ptr, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        else:
            host = np.ascontiguousarray(images)
            batch = check_input(host.shape, host.dtype, self._input, self._max_batch)
            src, kind = host.ctypes.data, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        nbytes = self._input.nbytes(batch)
        cuda(cudart.cudaMemcpyAsync(self._device[name], src, nbytes, kind, self.stream))
        if not self._context.set_input_shape(name, self._input.shape_for(batch)):
            raise BackendError(f"batch {batch} is outside the engine's optimisation profile")
        self._enqueue(batch)
        slot = self._host.acquire()
        for spec in self._outputs:
            self._host.copy_from_device(
                slot, spec.name, self._device[spec.name], spec.nbytes(batch), self.stream
            )
        if self.layer_profiler is not None:  # a diagnostic mode: the layer times need the stream done
            cuda(cudart.cudaStreamSynchronize(self.stream))
            self._report_layers()
        raw_name = self._raw_name
        views = {spec.name: slot.view(spec.name, spec.dtype, spec.shape_for(batch)) for spec in self._outputs}

        def detach(out: EngineOutput) -> None:
            fresh = engine_output(views, batch, raw_name)  # copies
            out.raw, out.nms_count, out.nms_boxes = fresh.raw, fresh.nms_count, fresh.nms_boxes
            out.nms_scores, out.nms_classes = fresh.nms_scores, fresh.nms_classes
            out.embeddings = fresh.embeddings

        return self._host.publish(slot, self.stream, _pending_output(views, batch, raw_name), detach)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        cuda(cudart.cudaStreamSynchronize(self.stream))
        for graph in self._graphs.values():
            cudart.cudaGraphExecDestroy(graph)
        self._graphs.clear()
        self._host.close()
        for ptr in self._device.values():
            cudart.cudaFree(ptr)
        cudart.cudaEventDestroy(self._event)
        cudart.cudaStreamDestroy(self.stream)
        del self._context, self._engine
