"""CPU preprocessing: letterbox, colour conversion, [0, 1] scaling and HWC→CHW with OpenCV.

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
from yolov8_trt_ros.core.image_input import ImageError, check_image
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
    "yuv422_yuy2": (0, 1, 2),  # after cv2.COLOR_YUV2RGB_YUY2, which must come before the resize
}


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
        """Preprocess ``images`` (each ``[H, W, C]`` uint8 in its ``encodings`` entry).

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
        for i, (img, enc) in enumerate(zip(checked, encodings, strict=True)):
            h, w = img.shape[:2]
            lb, rw, rh = fit_letterbox(w, h, dst_w, dst_h)
            letterboxes.append(lb)
            if enc == "yuv422_yuy2":
                img = cv2.cvtColor(img, cv2.COLOR_YUV2RGB_YUY2)
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
            for c, src_c in enumerate(_RGB_FROM[enc]):
                # mode="clip" lets take() write straight into the strided output (no buffering).
                np.take(self._lut, resized[:, :, src_c], out=region[c], mode="clip")
        return out, letterboxes
