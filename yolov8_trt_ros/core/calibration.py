"""INT8 calibration: images → batches, the calibration cache file, and Q/DQ quantization.

Two INT8 routes share the images and the preprocessing here, so both see exactly what the
running node feeds the network (letterbox, pad 114, RGB, [0, 1]):

* **Implicit INT8** (TensorRT < 10, e.g. JetPack 5): TensorRT calibrates the FP32 ONNX
  itself through ``IInt8EntropyCalibrator2`` (in ``backends/tensorrt_backend.py``). Its
  cache bytes are opaque, so they are wrapped in a keyed file bound to the model hash, the
  input shape, the image set and the TensorRT version: a cache made for another model or
  image set is rejected instead of silently producing a wrong engine.
* **Explicit INT8** (Q/DQ ONNX): ONNX Runtime's ``quantize_static`` writes a model with
  QuantizeLinear/DequantizeLinear nodes that ONNX Runtime runs on the CPU and TensorRT
  builds directly (the route TensorRT ≥ 10 recommends now that implicit calibration is
  deprecated). Weights are per-channel, activations per-tensor, both symmetric (zero point
  0), as TensorRT requires of Q/DQ scales.

Why ONNX Runtime's quantizer and not NVIDIA ModelOpt: ``nvidia-modelopt[onnx]`` 0.47 pins
``onnx~=1.21`` and ``onnxruntime-gpu~=1.24`` plus ``cupy-cuda12x`` on x86-64 Linux, which
conflict with this project's CPU ``onnxruntime`` and cannot be installed where CI runs
(no GPU); ORT's quantizer is already a dependency and runs anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolov8_trt_ros.core.backends.model_info import ModelInfo, int8_sibling, read_model_info
from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.engine_cache import CacheError, read_keyed_file, write_keyed_file

LOG = logging.getLogger(__name__)

CALIB_MAGIC = b"Y8CALIB1"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
META_QUANTIZATION = "yolov8_trt_ros.quantization"


class CalibrationError(ValueError):
    """Calibration cannot run: no images, unreadable directory, ..."""


def list_images(directory: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under ``directory`` (recursively), sorted; at most ``limit``, evenly spread.

    Evenly spaced rather than the first ``limit`` so that a directory sorted by class or by
    scene still yields a representative subset; deterministic, so the image-set hash is stable.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CalibrationError(f"calibration directory not found: {directory}")
    paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise CalibrationError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}")
    if limit is not None and 0 < limit < len(paths):
        idx = np.linspace(0, len(paths) - 1, limit).round().astype(int)
        paths = [paths[i] for i in idx]
    return paths


def image_set_sha256(paths: Sequence[Path]) -> str:
    """Hash of the images' contents, in order (names do not matter, bytes do)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


class CalibrationImages:
    """Letterboxed float32 batches ``[B, 3, H, W]`` of a directory of images.

    Uses the pipeline's own :class:`CpuPreprocessor`, so calibration statistics are those
    of real inputs. Unreadable files are skipped with a warning.
    """

    def __init__(
        self,
        directory: str | Path,
        input_width: int,
        input_height: int,
        batch_size: int = 1,
        limit: int | None = 500,
        pad_value: int = 114,
    ) -> None:
        if batch_size <= 0:
            raise CalibrationError("batch_size must be positive")
        self.paths = list_images(directory, limit)
        self.batch_size = batch_size
        self.input_width, self.input_height = input_width, input_height
        self.preprocess_config = PreprocessConfig(
            input_width=input_width, input_height=input_height, pad_value=pad_value
        )
        self._sha256: str | None = None
        self._pre: Any = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = image_set_sha256(self.paths)
        return self._sha256

    def __len__(self) -> int:
        """Number of full batches (a trailing partial batch is dropped: TensorRT needs full ones)."""
        return len(self.paths) // self.batch_size

    def _preprocessor(self) -> Any:
        if self._pre is None:
            from yolov8_trt_ros.core.preprocess import CpuPreprocessor

            self._pre = CpuPreprocessor(self.preprocess_config)
        return self._pre

    def _image(self, path: Path) -> np.ndarray | None:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            LOG.warning("skipping unreadable calibration image %s", path)
            return None
        batch, _ = self._preprocessor()([image], ["bgr8"])
        return np.array(batch[0], dtype=np.float32, copy=True)  # the preprocessor reuses its buffer

    def batch(self, index: int) -> np.ndarray:
        """Batch ``index`` (``0 <= index < len(self)``); an unreadable image is replaced by its neighbour."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.batch_size
        images = [self._image(p) for p in self.paths[start : start + self.batch_size]]
        good = [im for im in images if im is not None]
        if not good:
            raise CalibrationError(f"no readable image in calibration batch {index}")
        return np.ascontiguousarray(np.stack([im if im is not None else good[0] for im in images]))

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.batch(index)


@dataclass(frozen=True)
class CalibrationKey:
    """What a calibration cache is valid for."""

    model_sha256: str
    input_shape: tuple[int, int, int]  # (3, H, W)
    image_set_sha256: str
    num_images: int
    algorithm: str  # "entropy2" for TensorRT's IInt8EntropyCalibrator2
    tensorrt_version: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data


def write_calibration_cache(path: str | Path, key: CalibrationKey, payload: bytes) -> Path:
    """Store TensorRT's calibration cache bytes bound to ``key`` (atomic)."""
    return write_keyed_file(path, CALIB_MAGIC, key.as_dict(), payload)


def read_calibration_cache(path: str | Path, key: CalibrationKey) -> bytes | None:
    """The cache bytes for ``key``, or ``None`` (absent; or mismatched/corrupt, logged) → recalibrate."""
    try:
        return read_keyed_file(path, CALIB_MAGIC, key.as_dict())
    except FileNotFoundError:
        return None
    except CacheError as exc:
        LOG.warning("calibration cache rejected, recalibrating: %s", exc)
        return None


# --------------------------------------------------------------------- Q/DQ quantization


def head_tail_nodes(model: Any) -> list[str]:
    """Names of the detection head's decode nodes: everything in the head that is not a Conv.

    In YOLOv8 the last module (``/model.22/``) concatenates box distances and class logits,
    runs DFL (softmax + 1x1 conv), decodes boxes in pixels (0..640) and concatenates them
    with the class sigmoids (0..1). Quantizing that final concat with one scale leaves the
    scores a handful of levels; the branch convolutions ``cv2``/``cv3`` stay quantized.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    last = producers.get(model.graph.output[0].name)
    if last is None or not last.name.startswith("/model."):
        return []
    prefix = "/".join(last.name.split("/")[:2]) + "/"  # "/model.22/"
    return [
        node.name
        for node in model.graph.node
        if node.name.startswith(prefix)
        and not (node.op_type == "Conv" and ("/cv2." in node.name or "/cv3." in node.name))
    ]


@dataclass(frozen=True)
class QuantizeOptions:
    #: percentile (99.999) lost 0.7 mAP50-95 on the test model where entropy lost 1.1
    #: (benchmarks/accuracy.md; min-max lost 1.2 in a smaller trial).
    method: str = "percentile"  # percentile | entropy | minmax
    per_channel: bool = True
    keep_head_float: bool = True
    percentile: float = 99.999
    #: Q/DQ only on the inputs of weighted layers, NVIDIA's placement for TensorRT: the
    #: Conv+SiLU fusion survives and no scale has to be shared across a Concat.
    op_types: tuple[str, ...] = ("Conv",)


class _Reader:
    """ORT ``CalibrationDataReader`` over :class:`CalibrationImages`, in ranges.

    ``quantize_static`` keeps every intermediate output of the batches it is given before
    building histograms (tens of MB per 640x640 image for YOLOv8n); with ``set_range`` and
    ``CalibStridedMinMax`` it is fed ``stride`` batches at a time and merges the histograms,
    so memory stays bounded for 500 images.
    """

    def __init__(self, images: CalibrationImages, input_name: str) -> None:
        self._images = images
        self._name = input_name
        self._next, self._end = 0, len(images)

    def __len__(self) -> int:
        return len(self._images)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self._images))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return {self._name: self._images.batch(self._next - 1)}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (item := self.get_next()) is not None:
            yield item


def _stride(batches: int, most: int = 16) -> int:
    """The largest divisor of ``batches`` up to ``most`` (ORT wants equal ranges)."""
    return max(d for d in range(1, min(most, batches) + 1) if batches % d == 0)


def check_quantizable(model_path: str | Path, images: CalibrationImages) -> ModelInfo:
    """The model's facts, once it is known that ``images`` can calibrate it (CalibrationError)."""
    info = read_model_info(model_path)
    if info.is_qdq:
        raise CalibrationError(f"{model_path} is already quantized")
    if len(images) == 0:
        raise CalibrationError(f"no full calibration batch of {images.batch_size} images")
    if (info.input_height, info.input_width) != (images.input_height, images.input_width):
        raise CalibrationError(
            f"images are letterboxed to {images.input_width}x{images.input_height}, "
            f"the model takes {info.input_width}x{info.input_height}"
        )
    return info


def save_quantized(quantized: Any, source: Any, settings: dict[str, Any], output: Path) -> None:
    """Write ``quantized`` atomically with ``source``'s metadata plus the quantization settings."""
    import onnx

    del quantized.metadata_props[:]
    for prop in source.metadata_props:
        quantized.metadata_props.add(key=prop.key, value=prop.value)
    quantized.metadata_props.add(key=META_QUANTIZATION, value=json.dumps(settings, sort_keys=True))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = output.with_name(f".{output.name}.tmp")
    onnx.save(quantized, str(tmp_out))
    tmp_out.replace(output)


def quantize_qdq(
    model_path: str | Path,
    images: CalibrationImages,
    output_path: str | Path | None = None,
    options: QuantizeOptions | None = None,
) -> Path:
    """Write an INT8 Q/DQ copy of ``model_path`` calibrated on ``images``; returns its path.

    Default output: ``x.onnx`` → ``x.int8.onnx`` (what ``OnnxRuntimeBackend`` picks for
    ``precision: int8``). The original metadata is kept and the quantization settings and
    image-set hash are added under ``yolov8_trt_ros.quantization``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    opts = options or QuantizeOptions()
    methods = {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }
    if opts.method not in methods:
        raise CalibrationError(f"method {opts.method!r} must be one of {sorted(methods)}")
    info = check_quantizable(model_path, images)
    output = Path(output_path) if output_path else int8_sibling(model_path)
    source = onnx.load(str(model_path))
    exclude = head_tail_nodes(source) if opts.keep_head_float else []
    extra: dict[str, Any] = {
        "ActivationSymmetric": True,  # TensorRT accepts only zero-point 0
        "WeightSymmetric": True,
        # TensorRT adds the bias in float. An int32 bias would make ORT inflate the weight scale
        # of the class convs (large negative prior bias, small weights) until they are zeros.
        "QuantizeBias": False,
        "QDQDisableWeightAdjustForInt32Bias": True,
        # ONNX Runtime's CPU kernels still fold the bias into int32 at load time; a floor on the
        # activation range keeps that in range for near-constant activations (an untrained or
        # pruned channel), far below the ranges of a trained network's activations.
        "MinimumRealRange": 0.01,
        "CalibStridedMinMax": _stride(len(images)),  # despite the name: ranges for every method
        "CalibPercentile": opts.percentile,
    }
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
        staged = Path(tmp) / "qdq.onnx"

        def run(method: str) -> None:
            quantize_static(
                str(prepared),
                str(staged),
                calibration_data_reader=_Reader(images, info.input_name),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(opts.op_types),
                per_channel=opts.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=methods[method],
                extra_options=extra,
            )

        try:
            run(opts.method)
        except ValueError as exc:
            # ORT's percentile histogram asks NumPy for 2048 bins over |x| and fails on an
            # activation whose range is too narrow for that many float32 bins (a constant
            # channel: untrained or pruned networks). Entropy bins a symmetric range instead.
            if opts.method != "percentile" or "Too many bins" not in str(exc):
                raise
            LOG.warning("percentile calibration failed (%s); calibrating with entropy instead", exc)
            opts = replace(opts, method="entropy")
            run(opts.method)
        quantized = onnx.load(str(staged))
    settings = {
        **asdict(opts),
        "source_sha256": info.sha256,
        "image_set_sha256": images.sha256,
        "num_images": len(images.paths),
        "excluded_nodes": len(exclude),
    }
    save_quantized(quantized, source, settings, output)
    LOG.info(
        "wrote Q/DQ INT8 model %s (%s, %d images, %d head nodes in float)",
        output,
        opts.method,
        len(images.paths),
        len(exclude),
    )
    return output
