"""TensorRT: build (ONNX → engine with in-engine NMS) and run, through the official Python API.

Deliberately thin: everything that does not need TensorRT (cache keys and files, calibration
images and cache format, buffer sizes, CUDA array parsing, output mapping) lives in
``engine_cache.py``, ``calibration.py`` and ``io_plan.py`` and is tested without a GPU.

Build: parse the ONNX, append EfficientNMS_TRT (thresholds, max detections and class-agnostic
mode from :class:`PostprocessConfig`), one optimisation profile for batch 1..max_batch,
workspace limit, precision:

* ``fp16``: FP16 kernels, FP16 input tensor (half the upload).
* ``int8`` explicit: the Q/DQ ONNX from ``scripts/quantize_int8.py`` (``x.int8.onnx`` next to
  the model, or ``model_path`` itself). Preferred on TensorRT ≥ 10, where implicit
  calibration is deprecated.
* ``int8`` implicit: ``IInt8EntropyCalibrator2`` over ``calibration_dir`` with the keyed
  calibration cache (``calibration.py``); used on TensorRT < 10 or when no Q/DQ model exists.
* no fast INT8 on the platform → FP16, said once in the log.

EfficientNMS_TRT rather than ``INetworkDefinition.add_nms`` (INMSLayer, TensorRT ≥ 8.5):
the plugin outputs exactly the padded per-image ``num_dets/boxes/scores/classes`` that
:class:`EngineOutput` holds and applies ``max_detections`` per image, while INMSLayer returns
ONNX-style ``(batch, class, box)`` index triples that would need gather and top-k layers
per image to get there. The plugin exists from TensorRT 8.0 through 10.x, and is looked up
through the plugin registry (``get_creator`` on TensorRT ≥ 10, ``get_plugin_creator`` before).
It keeps at most 4096 candidates before NMS (``pre_nms_top_k`` is capped there) and
filters scores below ``conf_threshold``.

Run: deserialize, bind every I/O tensor by name (``set_tensor_address``), device buffers
allocated once at max batch, pinned host output buffers, one CUDA stream per engine
(``self.stream``, which the CUDA preprocessor also uses), ``execute_async_v3``, and
optionally one CUDA graph per batch size. CUDA is driven through cuda-python
(``cuda.bindings.runtime``), not PyCUDA: see ``docs/backends.md``.

Layer timing (opt-in, a diagnostic mode): :meth:`TensorRTBackend.enable_layer_profiling`
attaches a :class:`~yolov8_trt_ros.core.profiling.LayerProfiler` through TensorRT's
``IProfiler``; while attached, inference runs without the CUDA graphs (a replayed graph
records no layer events unless it was captured with the profiler) and each ``infer`` reports
its layer times after the output is on the host.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import tensorrt as trt
from cuda.bindings import runtime as cudart

from yolov8_trt_ros.core.backends.base import BackendError, BackendInfo
from yolov8_trt_ros.core.backends.io_plan import (
    NMS_OUTPUTS,
    TensorSpec,
    check_input,
    cuda_array_view,
    engine_output,
    plan_buffers,
)
from yolov8_trt_ros.core.backends.model_info import ModelInfo, file_sha256, int8_sibling, read_model_info
from yolov8_trt_ros.core.calibration import (
    CalibrationError,
    CalibrationImages,
    CalibrationKey,
    read_calibration_cache,
    write_calibration_cache,
)
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.engine_cache import EngineCache, EngineKey
from yolov8_trt_ros.core.profiling import LayerProfiler
from yolov8_trt_ros.core.types import EngineOutput

LOG = logging.getLogger(__name__)

TRT_VERSION: tuple[int, ...] = tuple(int(p) for p in trt.__version__.split(".")[:3] if p.isdigit())
EFFICIENT_NMS_MAX_CANDIDATES = 4096
#: Engine I/O types this backend handles (``trt.nptype`` is untyped in the stubs).
_NP_DTYPES: dict[trt.DataType, type[np.generic]] = {
    trt.float32: np.float32,
    trt.float16: np.float16,
    trt.int32: np.int32,
    trt.int8: np.int8,
    trt.uint8: np.uint8,
    trt.bool: np.bool_,
}


def _cuda(result: tuple[Any, ...]) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; :class:`BackendError` on failure."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise BackendError(f"CUDA error {err}: {text.decode() if isinstance(text, bytes) else text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class _Logger(trt.ILogger):
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

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        LOG.log(self._LEVELS.get(severity, logging.INFO), "[TRT] %s", msg)


_TRT_LOGGER = _Logger()


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Implicit INT8 calibration over :class:`CalibrationImages`, cache bound to its key."""

    def __init__(self, images: CalibrationImages, cache_path: Path, key: CalibrationKey, fp16: bool) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self._images = images
        self._batches = iter(images)
        self._cache_path, self._key = cache_path, key
        self._dtype = np.dtype(np.float16 if fp16 else np.float32)
        nbytes = images.batch_size * 3 * images.input_height * images.input_width * self._dtype.itemsize
        self._device = int(_cuda(cudart.cudaMalloc(nbytes)))
        self.batches_used = 0

    def get_batch_size(self) -> int:
        return self._images.batch_size

    def get_batch(self, names: list[str]) -> list[int]:
        batch = next(self._batches, None)
        if batch is None:
            return []  # TensorRT: no more data
        host = np.ascontiguousarray(batch, dtype=self._dtype)
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _cuda(cudart.cudaMemcpy(self._device, host.ctypes.data, host.nbytes, kind))
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
            _cuda(cudart.cudaFree(self._device))
            self._device = 0


def _gpu_identity(device_id: int) -> tuple[str, str]:
    props = _cuda(cudart.cudaGetDeviceProperties(device_id))
    name = (
        props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
    )
    return name, f"{props.major}.{props.minor}"


def _plugin_field(name: str, value: float, kind: trt.PluginFieldType) -> trt.PluginField:
    dtype = np.float32 if kind == trt.PluginFieldType.FLOAT32 else np.int32
    # The binding converts a str to FallbackString implicitly; the stubs only know the latter.
    return trt.PluginField(cast("trt.FallbackString", name), np.array([value], dtype=dtype), kind)


def _efficient_nms_creator() -> Any:
    trt.init_libnvinfer_plugins(_TRT_LOGGER, "")
    registry = trt.get_plugin_registry()
    creator: Any
    if TRT_VERSION >= (10,):
        creator = registry.get_creator("EfficientNMS_TRT", "1", "")
    else:
        creator = registry.get_plugin_creator("EfficientNMS_TRT", "1", "")
    if creator is None:
        raise BackendError("EfficientNMS_TRT plugin not found (libnvinfer_plugin missing?)")
    return creator


def _append_nms(network: trt.INetworkDefinition, num_classes: int, post: PostprocessConfig) -> None:
    """Replace the raw head output ``[B, 4 + C, A]`` by EfficientNMS_TRT's four outputs.

    Gathers on the channel axis (rather than slices) split boxes and scores without a shape
    tensor, so the batch axis stays dynamic on every TensorRT version.
    """
    head = network.get_output(0)
    network.unmark_output(head)

    def channels(start: int, count: int) -> trt.ITensor:
        idx = network.add_constant(
            trt.Dims([count]), trt.Weights(np.arange(start, start + count, dtype=np.int32))
        )
        picked = network.add_gather(head, idx.get_output(0), 1).get_output(0)  # [B, count, A]
        shuffle = network.add_shuffle(picked)
        shuffle.first_transpose = trt.Permutation([0, 2, 1])  # [B, A, count]
        return shuffle.get_output(0)

    boxes, scores = channels(0, 4), channels(4, num_classes)
    fields = trt.PluginFieldCollection(
        [
            _plugin_field("background_class", -1, trt.PluginFieldType.INT32),
            _plugin_field("max_output_boxes", post.max_detections, trt.PluginFieldType.INT32),
            _plugin_field("score_threshold", post.conf_threshold, trt.PluginFieldType.FLOAT32),
            _plugin_field("iou_threshold", post.iou_threshold, trt.PluginFieldType.FLOAT32),
            _plugin_field("score_activation", 0, trt.PluginFieldType.INT32),
            _plugin_field("class_agnostic", int(post.class_agnostic), trt.PluginFieldType.INT32),
            _plugin_field("box_coding", 1, trt.PluginFieldType.INT32),  # cx, cy, w, h in; corners out
        ]
    )
    plugin = _efficient_nms_creator().create_plugin("efficient_nms", fields)
    layer = network.add_plugin_v2([boxes, scores], plugin)
    for i, name in enumerate(NMS_OUTPUTS):
        out = layer.get_output(i)
        out.name = name
        network.mark_output(out)


class _BuildPlan:
    """What to build: which ONNX, at what precision, with which calibrator and cache key."""

    def __init__(self, cfg: EngineConfig, post: PostprocessConfig, builder: trt.Builder) -> None:
        self.cfg, self.post = cfg, post
        fp32_model = read_model_info(cfg.model_path)
        model = fp32_model
        precision = cfg.precision
        self.calibration_images: CalibrationImages | None = None
        if precision == "int8" and not builder.platform_has_fast_int8:
            LOG.warning("this GPU has no fast INT8: building FP16 instead")
            precision = "fp16"
        if precision == "int8" and not model.is_qdq:
            sibling = int8_sibling(cfg.model_path)
            if sibling.is_file():
                model = read_model_info(sibling)
                LOG.info("INT8 explicit: building the Q/DQ model %s", sibling.name)
            else:
                if TRT_VERSION >= (10, 1):
                    LOG.warning(
                        "implicit INT8 calibration is deprecated in TensorRT %s; run "
                        "scripts/quantize_int8.py to write %s for explicit INT8",
                        trt.__version__,
                        sibling.name,
                    )
                try:
                    self.calibration_images = CalibrationImages(
                        cfg.calibration_dir,
                        model.input_width,
                        model.input_height,
                        batch_size=1,
                        limit=cfg.calibration_images,
                    )
                except CalibrationError as exc:
                    raise BackendError(f"INT8 implicit calibration impossible: {exc}") from exc
        if precision == "fp16" and not builder.platform_has_fast_fp16:
            LOG.warning("this GPU has no fast FP16: building FP32 instead")
            precision = "fp32"
        self.model: ModelInfo = model
        self.fp32_model = fp32_model
        self.precision = precision
        # FP16 input halves the upload; implicit calibration feeds FP32 batches, so it keeps FP32.
        self.input_fp16 = precision == "fp16" or (precision == "int8" and self.calibration_images is None)
        fixed = model.fixed_batch
        self.min_batch = fixed or 1
        self.opt_batch = fixed or cfg.batch_size
        self.max_batch = fixed or cfg.max_batch_size

    def calibration_key(self) -> CalibrationKey | None:
        if self.calibration_images is None:
            return None
        return CalibrationKey(
            model_sha256=self.model.sha256,
            input_shape=(3, self.model.input_height, self.model.input_width),
            image_set_sha256=self.calibration_images.sha256,
            num_images=len(self.calibration_images.paths),
            algorithm="entropy2",
            tensorrt_version=trt.__version__,
        )

    def engine_key(self, gpu_name: str, capability: str) -> EngineKey:
        cache = Path(self.cfg.calibration_cache)
        calib_sha = file_sha256(cache) if self.calibration_images is not None and cache.is_file() else ""
        options: dict[str, Any] = {
            "workspace_mb": self.cfg.workspace_mb,
            "input_fp16": self.input_fp16,
            "input_hw": [self.model.input_height, self.model.input_width],
        }
        key = self.calibration_key()
        if key is not None:  # the images and model the calibration must come from
            options["calibration_key"] = hashlib.sha256(
                json.dumps(key.as_dict(), sort_keys=True).encode()
            ).hexdigest()
        if self.cfg.end2end_nms:
            options["nms"] = {
                "conf": self.post.conf_threshold,
                "iou": self.post.iou_threshold,
                "max_det": self.post.max_detections,
                "agnostic": self.post.class_agnostic,
            }
        return EngineKey(
            onnx_sha256=self.model.sha256,
            precision=self.precision,
            calibration_sha256=calib_sha,
            min_batch=self.min_batch,
            opt_batch=self.opt_batch,
            max_batch=self.max_batch,
            tensorrt_version=trt.__version__,
            gpu_name=gpu_name,
            compute_capability=capability,
            options=options,
        )


def build_engine(plan: _BuildPlan, builder: trt.Builder) -> bytes:
    """Serialized engine for ``plan`` (minutes on a Jetson; cached by the caller)."""
    flags = 0 if TRT_VERSION >= (10,) else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _TRT_LOGGER)
    if not parser.parse(Path(plan.model.path).read_bytes(), plan.model.path):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {plan.model.path}: {errors}")
    image = network.get_input(0)
    if plan.input_fp16:
        image.dtype = trt.float16
    if plan.cfg.end2end_nms:
        _append_nms(network, plan.model.num_classes, plan.post)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.cfg.workspace_mb << 20)
    chw = (3, plan.model.input_height, plan.model.input_width)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        image.name,
        trt.Dims([plan.min_batch, *chw]),
        trt.Dims([plan.opt_batch, *chw]),
        trt.Dims([plan.max_batch, *chw]),
    )
    config.add_optimization_profile(profile)
    if plan.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator: EntropyCalibrator | None = None
    if plan.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        key = plan.calibration_key()
        if key is not None and plan.calibration_images is not None:
            calibrator = EntropyCalibrator(
                plan.calibration_images, Path(plan.cfg.calibration_cache), key, plan.input_fp16
            )
            config.int8_calibrator = calibrator
            calib_profile = builder.create_optimization_profile()
            one = trt.Dims([1, *chw])
            calib_profile.set_shape(image.name, one, one, one)
            config.set_calibration_profile(calib_profile)
    LOG.info(
        "building TensorRT %s engine from %s (batch %d..%d, NMS %s); this takes a while",
        plan.precision,
        Path(plan.model.path).name,
        plan.min_batch,
        plan.max_batch,
        "in engine" if plan.cfg.end2end_nms else "off",
    )
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise BackendError("TensorRT engine build failed (see the [TRT] errors above)")
    return bytes(memoryview(serialized))


class TensorRTBackend:
    """:class:`~yolov8_trt_ros.core.backends.base.Backend` on a TensorRT engine (built or cached)."""

    def __init__(self, cfg: EngineConfig, post: PostprocessConfig) -> None:
        _cuda(cudart.cudaSetDevice(cfg.device_id))
        self._device_id = cfg.device_id
        gpu_name, capability = _gpu_identity(cfg.device_id)
        builder = trt.Builder(_TRT_LOGGER)
        plan = _BuildPlan(cfg, post, builder)
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
        self._runtime = trt.Runtime(_TRT_LOGGER)
        engine = self._runtime.deserialize_cuda_engine(payload)
        if engine is None:
            raise BackendError(f"TensorRT {trt.__version__} cannot deserialize the cached engine")
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
        self._max_batch = plan.max_batch
        self.stream: int = int(_cuda(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking)))
        self._event = _cuda(cudart.cudaEventCreateWithFlags(cudart.cudaEventDisableTiming))
        sizes = plan_buffers(self._specs, self._max_batch)
        self._device: dict[str, int] = {name: int(_cuda(cudart.cudaMalloc(n))) for name, n in sizes.items()}
        self._pinned: dict[str, int] = {}
        self._host: dict[str, np.ndarray] = {}
        for spec in self._outputs:
            ptr = int(_cuda(cudart.cudaMallocHost(sizes[spec.name])))
            self._pinned[spec.name] = ptr
            raw = memoryview((ctypes.c_byte * sizes[spec.name]).from_address(ptr)).cast("B")
            view = np.frombuffer(raw, dtype=spec.dtype)
            self._host[spec.name] = view.reshape(spec.shape_for(self._max_batch))
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
        if trt_dtype not in _NP_DTYPES:
            raise BackendError(f"engine tensor {name!r} has unsupported type {trt_dtype}")
        return TensorSpec(
            name=name,
            is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
            shape=tuple(int(dims[i]) for i in range(len(dims))),
            dtype=np.dtype(_NP_DTYPES[trt_dtype]),
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
            _cuda(cudart.cudaGraphLaunch(graph, self.stream))
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
        _cuda(cudart.cudaStreamSynchronize(self.stream))
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            _cuda(cudart.cudaStreamBeginCapture(self.stream, mode))
            ok = self._context.execute_async_v3(self.stream)
            graph = _cuda(cudart.cudaStreamEndCapture(self.stream))
            if not ok:
                raise BackendError("execution during capture failed")
            self._graphs[batch] = _cuda(cudart.cudaGraphInstantiateWithFlags(graph, 0))
            _cuda(cudart.cudaGraphDestroy(graph))
        except BackendError as exc:
            LOG.warning("CUDA graph capture failed (%s); running without graphs", exc)
            self._use_graph = False

    def infer(self, images: Any) -> EngineOutput:
        """Run a ``[B, 3, H, W]`` batch (CUDA array, or NumPy which is uploaded first)."""
        if self._closed:
            raise BackendError("tensorrt backend is closed")
        _cuda(cudart.cudaSetDevice(self._device_id))  # the runtime's device is per thread
        name = self._input.name
        if hasattr(images, "__cuda_array_interface__"):
            view = cuda_array_view(images)
            batch = check_input(view.shape, view.dtype, self._input, self._max_batch)
            if view.stream is not None and view.stream != self.stream:
                # The producer's work must be done before ours reads it (CAI v3 semantics).
                _cuda(cudart.cudaEventRecord(self._event, view.stream))
                _cuda(cudart.cudaStreamWaitEvent(self.stream, self._event, 0))
            src, kind = view.ptr, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        else:
            host = np.ascontiguousarray(images)
            batch = check_input(host.shape, host.dtype, self._input, self._max_batch)
            src, kind = host.ctypes.data, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        nbytes = self._input.nbytes(batch)
        _cuda(cudart.cudaMemcpyAsync(self._device[name], src, nbytes, kind, self.stream))
        if not self._context.set_input_shape(name, self._input.shape_for(batch)):
            raise BackendError(f"batch {batch} is outside the engine's optimisation profile")
        self._enqueue(batch)
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for spec in self._outputs:
            size = spec.nbytes(batch)
            _cuda(
                cudart.cudaMemcpyAsync(
                    self._pinned[spec.name], self._device[spec.name], size, d2h, self.stream
                )
            )
        _cuda(cudart.cudaStreamSynchronize(self.stream))
        if self.layer_profiler is not None:
            self._report_layers()
        raw_name = None if self.info.has_nms else self._outputs[0].name
        return engine_output(self._host, batch, raw_name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _cuda(cudart.cudaStreamSynchronize(self.stream))
        for graph in self._graphs.values():
            cudart.cudaGraphExecDestroy(graph)
        self._graphs.clear()
        self._host.clear()
        for ptr in self._pinned.values():
            cudart.cudaFreeHost(ptr)
        for ptr in self._device.values():
            cudart.cudaFree(ptr)
        cudart.cudaEventDestroy(self._event)
        cudart.cudaStreamDestroy(self.stream)
        del self._context, self._engine
