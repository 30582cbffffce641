"""Every camera encoding against OpenCV's own conversion, and against bgr8 in detections.

Two references: (1) the frame as OpenCV converts it to bgr8 (``cv2.cvtColor`` per encoding,
16-bit ``>> 8``): the CPU path must give the same tensor, hence the same detections, and the
GPU path the same within the kernel's 1/255; (2) the scene a camera filmed, rendered in bgr8:
a colour camera's YUV or Bayer frame of it must give the same objects (same classes, boxes
overlapping), which a wrong chroma order or Bayer phase would break. Grey encodings are
compared with the grey picture, since the test model tells some classes apart by colour.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from _encodings import (
    ALL_ENCODINGS,
    CAMERA_ENCODINGS,
    canon,
    from_bgr,
    message_bytes,
    mosaic,
    opencv_bgr,
    random_frame,
    split,
)

from yolov8_trt_ros.core.config import EngineConfig, PreprocessConfig
from yolov8_trt_ros.core.image_input import image_from_buffer
from yolov8_trt_ros.core.preprocess import CpuPreprocessor, to_bgr8
from yolov8_trt_ros.core.types import Detections

MODEL = Path(__file__).resolve().parents[1] / "models" / "test" / "yolov8n_synth.onnx"
COLOUR = [e for e in CAMERA_ENCODINGS if canon(e) not in ("mono8", "mono16")]
GREY = [e for e in CAMERA_ENCODINGS if canon(e) in ("mono8", "mono16")]
SCENES = (0, 5)


def _view(frame: np.ndarray, encoding: str, pad: int) -> np.ndarray:
    """The frame as the node sees it: a view of a padded ROS message buffer."""
    name, big = split(encoding)
    data, step = message_bytes(frame, pad)
    h = frame.shape[0] * 2 // 3 if canon(encoding) in ("nv12", "nv21") else frame.shape[0]
    return image_from_buffer(data, frame.shape[1], h, step, name, is_bigendian=big)


@pytest.mark.parametrize("tile", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_names_are_read_as_ros_defines_them(tile):
    """A flat colour mosaicked in ROS's tile order comes back as that colour, not a swapped one."""
    colour = np.array([30, 140, 220], np.uint8)  # B, G, R all different
    bgr = np.broadcast_to(colour, (12, 16, 3)).copy()
    frame = mosaic(bgr, tile)
    np.testing.assert_array_equal(to_bgr8(frame, f"bayer_{tile}8"), bgr)
    out, _ = CpuPreprocessor(PreprocessConfig(input_width=32, input_height=32))([frame], [f"bayer_{tile}8"])
    rgb = np.round(out[0, :, 16, 16] * 255).astype(int)
    assert rgb.tolist() == colour[::-1].tolist()


@pytest.mark.parametrize("encoding", [e for e in ALL_ENCODINGS if e != "bgr8"])
@pytest.mark.parametrize(("h", "w"), [(480, 640), (1080, 1920), (301, 203)])
def test_cpu_preprocess_equals_preprocessing_opencvs_bgr8(encoding, h, w):
    rng = np.random.default_rng(abs(hash((encoding, h, w))) % 2**32)
    frame = random_frame(rng, encoding, h, w)
    view = _view(frame, encoding, pad=3)
    out, lbs = CpuPreprocessor(PreprocessConfig())([view], [split(encoding)[0]])
    out = out.copy()
    ref, ref_lbs = CpuPreprocessor(PreprocessConfig())([opencv_bgr(frame, encoding)], ["bgr8"])
    assert lbs == ref_lbs
    np.testing.assert_array_equal(out, ref)  # converted by the same cvtColor, then the same resize


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_bgr8_conversion_is_opencvs(encoding):
    rng = np.random.default_rng(3)
    frame = random_frame(rng, encoding, 25, 31)
    bgr = to_bgr8(_view(frame, encoding, pad=2), split(encoding)[0])
    assert bgr.dtype == np.uint8 and bgr.shape == (*opencv_bgr(frame, encoding).shape[:2], 3)
    np.testing.assert_array_equal(bgr, opencv_bgr(frame, encoding))


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_debug_image_takes_every_encoding(encoding):
    pytest.importorskip("sensor_msgs", reason="the ROS message packages are not installed")
    from yolov8_trt_ros.ros.conversions import to_bgr

    rng = np.random.default_rng(4)
    frame = random_frame(rng, encoding, 12, 17)
    bgr = to_bgr(_view(frame, encoding, pad=1), split(encoding)[0])
    np.testing.assert_array_equal(bgr, opencv_bgr(frame, encoding))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "mono16/be"])
def test_16bit_is_scaled_by_its_high_byte(encoding):
    """Full range ``>> 8``: 0x12FF is grey 0x12, 0x00FF black; the rest of the frame has no say."""
    values = np.array([[0x0000, 0x00FF, 0x12FF], [0x8000, 0xFEFF, 0xFFFF]], np.uint16)
    frame = values[:, :, None].astype(">u2" if split(encoding)[1] else "<u2")
    cfg = PreprocessConfig(input_width=32, input_height=32)
    out, lbs = CpuPreprocessor(cfg)([_view(frame, encoding, pad=1)], [split(encoding)[0]])
    grey, _ = CpuPreprocessor(cfg)([(values >> 8).astype(np.uint8)], ["mono8"])
    np.testing.assert_array_equal(out, grey)
    assert (lbs[0].src_w, lbs[0].src_h) == (3, 2)


# -- detections ----------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def assert_same_detections(
    got: Detections, want: Detections, min_iou: float, max_px: float, margin: float, what: str = ""
) -> None:
    """Each detection scoring ``margin`` above the threshold in one has a twin in the other.

    A twin has the same class and a box overlapping by ``min_iou`` or with every side within
    ``max_px`` pixels (a one-pixel shift of a 12-pixel box is an IoU of 0.77). Detections within
    ``margin`` of the threshold may come and go with rounding, so they need no twin.
    """
    threshold = 0.25  # PostprocessConfig's default conf_threshold, used by the pipelines below
    for a, b in ((got, want), (want, got)):
        sure = a.scores >= threshold + margin
        assert sure.any(), f"{what}: the scene must have confident detections to compare"
        assert len(b.boxes), f"{what}: {int(sure.sum())} confident detections have no counterpart"
        boxes, other = a.boxes[sure].astype(np.float64), b.boxes.astype(np.float64)
        same_class = a.class_ids[sure][:, None] == b.class_ids[None, :]
        close = np.abs(boxes[:, None, :] - other[None, :, :]).max(axis=2) <= max_px
        twin = same_class & ((_iou(boxes, other) >= min_iou) | close)
        missing = ~twin.any(axis=1)
        assert not missing.any(), (
            f"{what}: no twin (same class, IoU >= {min_iou} or sides within {max_px} px) for "
            f"{boxes[missing].round(1).tolist()} (classes {a.class_ids[sure][missing].tolist()}) among "
            f"{other.round(1).tolist()} (classes {b.class_ids.tolist()})"
        )


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    """Synthetic scenes of the test model's ten classes (640x480, no photo backgrounds)."""
    from yolov8_trt_ros.datasets.synthetic import SceneConfig, render_detection_image

    cfg = SceneConfig(width=640, height=480, photo_prob=0.0)
    return [render_detection_image(seed, 1, 0, cfg)[0] for seed in SCENES]


def _pipeline():
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig

    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(MODEL), precision="fp32", num_threads=2)
    return Pipeline.create(cfg)


def _detect(pipeline, frame: np.ndarray, encoding: str) -> Detections:
    name = split(encoding)[0]
    return pipeline.process([_view(frame, encoding, pad=5)], [name])[0].detections


def _check_detections(pipeline, scenes, exact: bool) -> None:
    """Every camera encoding of every scene against bgr8 (see the module docstring)."""
    for bgr in scenes:
        grey = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        scene_ref = {"colour": _detect(pipeline, bgr, "bgr8"), "grey": _detect(pipeline, grey, "bgr8")}
        for encoding in CAMERA_ENCODINGS:
            frame = from_bgr(bgr, encoding)
            got = _detect(pipeline, frame, encoding)
            # (1) the same frame converted to bgr8 by OpenCV
            same = _detect(pipeline, opencv_bgr(frame, encoding), "bgr8")
            if exact:
                np.testing.assert_array_equal(got.boxes, same.boxes, err_msg=encoding)
                np.testing.assert_array_equal(got.class_ids, same.class_ids, err_msg=encoding)
            else:
                assert_same_detections(got, same, min_iou=0.95, max_px=1.0, margin=0.02, what=encoding)
            # (2) the scene: chroma subsampling and demosaicing move edges by a pixel or so
            ref = scene_ref["grey" if encoding in GREY else "colour"]
            assert_same_detections(got, ref, min_iou=0.85, max_px=2.0, margin=0.1, what=encoding)


def test_every_encoding_gives_bgr8s_detections_on_the_cpu_path(scenes):
    pipeline = _pipeline()
    try:
        _check_detections(pipeline, scenes, exact=True)
    finally:
        pipeline.close()


class _GpuPreprocessToHost:
    """The fused CUDA kernel in front of the ONNX Runtime (CPU) backend: its output, copied back."""

    def __init__(self, cfg: PreprocessConfig) -> None:
        from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

        self.gpu = CudaPreprocessor(cfg)

    def __call__(self, images, encodings):
        tensor, letterboxes = self.gpu(images, encodings)
        return tensor.copy_to_host(), letterboxes

    def close(self) -> None:
        self.gpu.close()


@pytest.mark.gpu
def test_every_encoding_gives_bgr8s_detections_on_the_gpu_path(scenes, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV8_TRT_ROS_KERNEL_CACHE", str(tmp_path))
    pipeline = _pipeline()
    cpu_preprocessor = pipeline.preprocessor
    pipeline.preprocessor = _GpuPreprocessToHost(pipeline.preprocess_cfg)
    try:
        _check_detections(pipeline, scenes, exact=False)
        # and the GPU path against the CPU path on the same frames
        for bgr in scenes:
            for encoding in CAMERA_ENCODINGS:
                frame = from_bgr(bgr, encoding)
                gpu = _detect(pipeline, frame, encoding)
                pipeline.preprocessor, gpu_pre = cpu_preprocessor, pipeline.preprocessor
                cpu = _detect(pipeline, frame, encoding)
                pipeline.preprocessor = gpu_pre
                assert_same_detections(gpu, cpu, min_iou=0.95, max_px=1.0, margin=0.02, what=encoding)
    finally:
        pipeline.close()
