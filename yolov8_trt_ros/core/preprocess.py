"""CPU preprocessing: letterbox, colour conversion, [0, 1] scaling and HWC→CHW with OpenCV.

Encodings that are not per-channel (YUV 4:2:2 and 4:2:0, Bayer) are converted to RGB by
OpenCV's own ``cvtColor`` before the resize, 16-bit grey to 8 bit by ``>> 8``; the others
are resized as they are and their channels picked afterwards.

This is the reference the fused CUDA kernel (``preprocess_cuda.py``) is tested against, and it
reproduces ultralytics' ``LetterBox`` (``cv2.resize`` INTER_LINEAR, pad 114, centred) followed
by its BGR→RGB, CHW and ``/ 255``, so that the ONNX Runtime backend sees exactly what
ultralytics' own predictor would feed the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.image_input import (
    SIXTEEN_BIT,
    ImageError,
    canonical_encoding,
    check_image,
    image_size,
)
from yolov8_trt_ros.core.types import Letterbox

#: Source channel that feeds network channel R, G, B, for encodings resized as they are.
#: Resizing is per channel, so swapping or dropping channels after the resize gives the same
#: numbers as converting first, on fewer pixels.
_RGB_FROM: dict[str, tuple[int, int, int]] = {
    "bgr8": (2, 1, 0),
    "rgb8": (0, 1, 2),
    "mono8": (0, 0, 0),
    "bgra8": (2, 1, 0),
    "rgba8": (0, 1, 2),
}
#: Encodings OpenCV converts to RGB before the resize (chroma subsampling and the Bayer mosaic
#: are not per channel, so they cannot be resized as they are). OpenCV names a Bayer pattern
#: by the second row's second and third pixels, so ROS's rggb is OpenCV's BG (as cv_bridge
#: maps it; test_encodings checks it on a synthetic mosaic). YUV: BT.601 limited range.
TO_RGB: dict[str, int] = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "nv12": cv2.COLOR_YUV2RGB_NV12,
    "nv21": cv2.COLOR_YUV2RGB_NV21,
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
#: The same conversions to BGR, and the plain channel ones, for :func:`to_bgr8`.
TO_BGR: dict[str, int] = {
    "rgb8": cv2.COLOR_RGB2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "yuv422": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
    "nv12": cv2.COLOR_YUV2BGR_NV12,
    "nv21": cv2.COLOR_YUV2BGR_NV21,
    "bayer_rggb8": cv2.COLOR_BayerBG2BGR,
    "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg8": cv2.COLOR_BayerGR2BGR,
    "bayer_grbg8": cv2.COLOR_BayerGB2BGR,
    "mono16": cv2.COLOR_GRAY2BGR,  # after to_mono8
}


def to_mono8(image: np.ndarray) -> npt.NDArray[np.uint8]:
    """16-bit grey to 8-bit by ``v >> 8`` (full range, as most camera drivers scale).

    A fixed scale, not the frame's min/max, so a pixel's grey does not change with the rest of
    the frame and the GPU kernel reads the high byte alone. Depth in millimetres (16UC1) thus
    maps 256 mm to one grey level: 0-65.5 m onto 0-255, near objects dark.
    """
    return cast(npt.NDArray[np.uint8], np.right_shift(image, 8).astype(np.uint8))


def to_bgr8(image: np.ndarray, encoding: str) -> npt.NDArray[np.uint8]:
    """A bgr8 copy of a checked image in any supported encoding (for drawing and tests)."""
    enc = canonical_encoding(encoding)
    img = to_mono8(image) if enc in SIXTEEN_BIT else image
    if enc == "bgr8":
        return np.array(img, dtype=np.uint8, order="C")
    src = np.ascontiguousarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
    return cast(npt.NDArray[np.uint8], cv2.cvtColor(src, TO_BGR[enc]))


def _resizable(image: np.ndarray, enc: str) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The image in an encoding cv2.resize can take per channel, and its R, G, B channels."""
    if enc in TO_RGB:
        src = image[:, :, 0] if image.shape[2] == 1 else image  # nv12/Bayer: OpenCV wants [H, W]
        return cv2.cvtColor(src, TO_RGB[enc]), (0, 1, 2)
    if enc in SIXTEEN_BIT:
        return to_mono8(image), (0, 0, 0)
    return image, _RGB_FROM[enc]


def fit_letterbox(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[Letterbox, int, int]:
    """``Letterbox.fit`` plus the resized size, kept at least one pixel (as ultralytics does).

    A 1×2000 frame scales to a width of 0.3 px, which rounds to 0; both preprocessors then
    draw one column instead of none so that the frame still reaches the network.
    """
    lb = Letterbox.fit(src_w, src_h, dst_w, dst_h)
    return lb, max(lb.resized_w, 1), max(lb.resized_h, 1)


def check_batch(images: Sequence[np.ndarray], encodings: Sequence[str]) -> None:
    """Raise ImageError unless there is one encoding per image and at least one image."""
    if len(images) != len(encodings):
        raise ImageError(f"{len(images)} images but {len(encodings)} encodings")
    if not images:
        raise ImageError("empty batch")


class CpuPreprocessor:
    """Letterbox a batch of HWC uint8 frames into one ``[B, 3, H, W]`` RGB tensor in [0, 1].

    The output array for each batch size is allocated once and reused: the tensor returned
    by one call is overwritten by the next call with the same batch size (the pipeline hands
    it to the backend before it preprocesses again; copy it to keep it). Padding is only
    rewritten when an image slot's placement changes, so a steady camera stream costs one
    resize and one lookup-table pass per frame.
    """

    def __init__(self, cfg: PreprocessConfig) -> None:
        self.cfg = cfg
        self.dtype = np.dtype(np.float16 if cfg.fp16 else np.float32)
        # float32 v / 255 (as ultralytics' ``im.float() / 255``), then the output precision.
        self._lut = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(self.dtype)
        self._pad = self._lut[int(cfg.pad_value)]
        self._buffers: dict[int, np.ndarray] = {}
        self._placement: dict[int, list[tuple[int, int, int, int] | None]] = {}

    def _buffer(self, batch: int) -> tuple[np.ndarray, list[tuple[int, int, int, int] | None]]:
        out = self._buffers.get(batch)
        if out is None:
            out = np.empty((batch, 3, self.cfg.input_height, self.cfg.input_width), dtype=self.dtype)
            self._buffers[batch] = out
            self._placement[batch] = [None] * batch
        return out, self._placement[batch]

    def __call__(
        self, images: Sequence[np.ndarray], encodings: Sequence[str]
    ) -> tuple[np.ndarray, list[Letterbox]]:
        """Preprocess ``images`` (each laid out as image_input says for its ``encodings`` entry).

        Raises ImageError for an unsupported encoding or an array that does not fit it.
        """
        check_batch(images, encodings)
        # Check the whole batch before writing anything, so a bad frame leaves no half batch.
        checked = [
            check_image(img, enc, self.cfg.max_image_pixels)
            for img, enc in zip(images, encodings, strict=True)
        ]
        out, placement = self._buffer(len(checked))
        dst_w, dst_h = self.cfg.input_width, self.cfg.input_height
        letterboxes: list[Letterbox] = []
        for i, (checked_img, encoding) in enumerate(zip(checked, encodings, strict=True)):
            enc = canonical_encoding(encoding)
            w, h = image_size(checked_img, enc)
            lb, rw, rh = fit_letterbox(w, h, dst_w, dst_h)
            letterboxes.append(lb)
            img, rgb_from = _resizable(checked_img, enc)
            resized = img
            if (w, h) != (rw, rh):
                resized = cast(
                    npt.NDArray[np.uint8], cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
                )
            if resized.ndim == 2:  # cv2.resize drops a single channel axis
                resized = resized[:, :, None]
            px, py = int(lb.pad_x), int(lb.pad_y)
            if placement[i] != (px, py, rw, rh):
                out[i].fill(self._pad)
                placement[i] = (px, py, rw, rh)
            region = out[i, :, py : py + rh, px : px + rw]
            for c, src_c in enumerate(rgb_from):
                # mode="clip" lets take() write straight into the strided output (no buffering).
                np.take(self._lut, resized[:, :, src_c], out=region[c], mode="clip")
        return out, letterboxes
