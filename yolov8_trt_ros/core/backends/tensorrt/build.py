"""ONNX to serialized engine: what to build (:class:`BuildPlan`, also the cache key) and the build."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import tensorrt as trt

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.io_plan import EMBEDDINGS_OUTPUT
from yolov8_trt_ros.core.backends.model_info import (
    ModelInfo,
    file_sha256,
    fp16_sibling,
    int8_sibling,
    read_model_info,
)
from yolov8_trt_ros.core.backends.network_typing import STRONG_MIN_VERSION, OnnxFile, plan_typing
from yolov8_trt_ros.core.backends.tensorrt.calibrator import EntropyCalibrator
from yolov8_trt_ros.core.backends.tensorrt.common import LOG, TRT_LOGGER, TRT_VERSION
from yolov8_trt_ros.core.backends.tensorrt.plugins import (
    INMS_MIN_VERSION,
    append_inms,
    append_nms,
    efficient_nms_creator,
    explain_failure,
    network_output,
)
from yolov8_trt_ros.core.calibration import CalibrationError, CalibrationImages, CalibrationKey
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.engine_cache import EngineKey
from yolov8_trt_ros.core.fp16_onnx import cached_fp16


class BuildPlan:
    """What to build: which ONNX, at what precision, with which calibrator and cache key."""

    def __init__(
        self, cfg: EngineConfig, post: PostprocessConfig, builder: trt.Builder, embeddings: bool = True
    ) -> None:
        self.cfg, self.post = cfg, post
        #: Keep the model's ``embeddings`` output (re-identification wants it); else unmarked.
        self.embeddings = embeddings
        fp32_model = read_model_info(cfg.model_path)
        precision = cfg.precision
        self.calibration_images: CalibrationImages | None = None
        if precision == "int8" and not _platform_has(builder, "platform_has_fast_int8"):
            LOG.warning("this GPU has no fast INT8: building FP16 instead")
            precision = "fp16"
        if precision == "fp16" and not _platform_has(builder, "platform_has_fast_fp16"):
            LOG.warning("this GPU has no fast FP16: building FP32 instead")
            precision = "fp32"
        files = {_onnx_file(fp32_model): fp32_model}
        siblings: dict[str, OnnxFile] = {}
        for kind, path in (("fp16", fp16_sibling(cfg.model_path)), ("int8", int8_sibling(cfg.model_path))):
            if path.is_file():
                info = read_model_info(path)
                siblings[kind] = _onnx_file(info)
                files[siblings[kind]] = info
        if _needs_fp16_file(precision, fp32_model, siblings):
            made = _make_fp16_file(cfg, fp32_model.sha256)
            if made is not None:
                info = read_model_info(made)
                siblings["fp16"] = _onnx_file(info)
                files[siblings["fp16"]] = info
        #: Which file, strongly or weakly typed, which flags (``network_typing.py``).
        self.typing = plan_typing(
            TRT_VERSION, precision, _onnx_file(fp32_model), siblings.get("fp16"), siblings.get("int8")
        )
        if self.typing.note:
            LOG.warning("%s", self.typing.note)
        model = files[self.typing.model]
        if model is not fp32_model:
            LOG.info("%s: building the %s model %s", self.typing.precision, self.typing.typing, model.path)
        if self.typing.implicit_calibration:
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
        self.model: ModelInfo = model
        self.fp32_model = fp32_model
        self.precision = self.typing.precision
        if self.typing.strongly_typed:  # the file's input type stands (a cast would break typing)
            self.input_fp16 = model.input_fp16
        else:  # FP16 input halves the upload; implicit calibration feeds FP32 batches
            self.input_fp16 = self.precision == "fp16" or (
                self.precision == "int8" and self.calibration_images is None
            )
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
            "typing": self.typing.typing,
        }
        key = self.calibration_key()
        if key is not None:  # the images and model the calibration must come from
            options["calibration_key"] = hashlib.sha256(
                json.dumps(key.as_dict(), sort_keys=True).encode()
            ).hexdigest()
        if self.cfg.plugin_libraries:  # an engine with custom layers holds their plugins' code
            options["plugins"] = sorted(file_sha256(p) for p in self.cfg.plugin_libraries)
        if not self.embeddings and self.model.embedding_dim:
            options["embeddings"] = False  # the same model built without its embeddings output
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


def _platform_has(builder: trt.Builder, attribute: str) -> bool:
    """``platform_has_fast_fp16`` / ``int8``; TensorRT 11 removed both (the file decides there)."""
    return bool(getattr(builder, attribute, True))


def _needs_fp16_file(precision: str, model: ModelInfo, siblings: dict[str, OnnxFile]) -> bool:
    """A strongly typed build will want FP16 and no file carries it (INT8 without Q/DQ falls
    back to FP16)."""
    if TRT_VERSION < STRONG_MIN_VERSION or model.weights_fp16 or "fp16" in siblings:
        return False
    return precision == "fp16" or (precision == "int8" and not model.is_qdq and "int8" not in siblings)


def _make_fp16_file(cfg: EngineConfig, sha256: str) -> Path | None:
    """The model's FP16 ONNX, converted once into the engine cache; None (logged) where it cannot
    be made, and the build goes on in FP32 as ``plan_typing`` says."""
    try:
        path = cached_fp16(cfg.model_path, cfg.engine_cache_dir, sha256)
    except ImportError:
        LOG.warning("onnxconverter-common is not installed: cannot make the FP16 ONNX this build needs")
        return None
    except (BackendError, ValueError, OSError) as exc:
        LOG.warning("cannot make the FP16 ONNX of %s: %s", cfg.model_path, exc)
        return None
    LOG.info("FP16 ONNX for the strongly typed build: %s", path)
    return path


def _onnx_file(info: ModelInfo) -> OnnxFile:
    return OnnxFile(Path(info.path), qdq=info.is_qdq, fp16=info.weights_fp16)


def _network_flags(strongly_typed: bool) -> int:
    """``create_network`` flags: explicit batch before TensorRT 10 (implied since), and strong
    typing on request (TensorRT 10; accepted and implied on 11)."""
    if TRT_VERSION < STRONG_MIN_VERSION:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0


def _append_detection_end(network: trt.INetworkDefinition, plan: BuildPlan) -> None:
    """The in-engine NMS, the choice logged: INMSLayer where embeddings must be gathered;
    else EfficientNMS_TRT where the plugin exists, INMSLayer where it does not (TensorRT
    >= 8.5); older TensorRT without the plugin cannot put NMS in the engine."""
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    head, classes, post = plan.model.output_name, plan.model.num_classes, plan.post
    inms = TRT_VERSION >= INMS_MIN_VERSION
    if EMBEDDINGS_OUTPUT in outputs and inms:
        LOG.info("NMS in the engine: INMSLayer (gathers the detections' embeddings)")
        append_inms(network, classes, post, head, EMBEDDINGS_OUTPUT)
        return
    if EMBEDDINGS_OUTPUT in outputs:
        LOG.warning(
            "TensorRT %s has no INMSLayer (8.5+): building NMS without the model's embeddings "
            "(the tracker runs motion-only)",
            trt.__version__,
        )
        network.unmark_output(network_output(network, EMBEDDINGS_OUTPUT))
    if efficient_nms_creator() is not None:
        LOG.info("NMS in the engine: EfficientNMS_TRT")
        append_nms(network, classes, post, head)
    elif inms:
        LOG.warning("NMS in the engine: INMSLayer (no EfficientNMS_TRT plugin in this TensorRT)")
        append_inms(network, classes, post, head)
    else:
        raise BackendError(
            f"TensorRT {trt.__version__} has neither the EfficientNMS_TRT plugin nor INMSLayer: "
            "set end2end_nms: false"
        )


def build_engine(plan: BuildPlan, builder: trt.Builder) -> bytes:
    """Serialized engine for ``plan`` (minutes on a Jetson; cached by the caller)."""
    network = builder.create_network(_network_flags(plan.typing.strongly_typed))
    parser = trt.OnnxParser(network, TRT_LOGGER)
    if not parser.parse(Path(plan.model.path).read_bytes(), plan.model.path):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(explain_failure(f"TensorRT cannot parse {plan.model.path}: {errors}"))
    image = network.get_input(0)
    if plan.input_fp16:
        image.dtype = trt.float16
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    if not plan.embeddings and EMBEDDINGS_OUTPUT in outputs:  # nobody reads them: not computed
        network.unmark_output(network_output(network, EMBEDDINGS_OUTPUT))
    if plan.cfg.end2end_nms:
        _append_detection_end(network, plan)
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
    # Weak typing only: the plan never asks for a flag on TensorRT 11, which has none.
    if plan.typing.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator: EntropyCalibrator | None = None
    if plan.typing.int8_flag:
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
        "building TensorRT %s engine (%s typing) from %s (batch %d..%d, NMS %s); this takes a while",
        plan.precision,
        plan.typing.typing,
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
        raise BackendError(explain_failure("TensorRT engine build failed"))
    return bytes(memoryview(serialized))
