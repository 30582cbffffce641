"""Raw camera buffers to validated NumPy views, and compressed frames to bgr8.

A ROS ``sensor_msgs/Image`` arrives as a byte buffer plus width, height, row ``step`` and an
encoding name. Everything that can be wrong with those numbers is checked here, once, so the
preprocessors (CPU and CUDA) can trust the array they are given and a bad message becomes one
:class:`ImageError` that the node logs instead of a crash deep inside OpenCV or a kernel.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from yolov8_trt_ros.core.types import BYTES_PER_PIXEL, SUPPORTED_ENCODINGS

#: Default cap on width × height (the same as ``PreprocessConfig.max_image_pixels``).
DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """An image that cannot be used; the message says what is wrong with it.

    ``reason`` names the kind of problem (``unsupported_encoding``, ``zero_size``,
    ``too_large``, ``odd_width``, ``step_too_small``, ``data_too_short``, ``not_bytes``,
    ``bad_array``, ``corrupt_compressed``), so the node can count each kind.
    """

    def __init__(self, message: str, reason: str = "bad_image") -> None:
        super().__init__(message)
        self.reason = reason


def check_encoding(encoding: str) -> int:
    """Bytes per pixel of a supported encoding; raises ImageError naming the supported ones."""
    bpp = BYTES_PER_PIXEL.get(encoding)
    if bpp is None:
        raise ImageError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}",
            "unsupported_encoding",
        )
    return bpp


def _check_size(width: int, height: int, encoding: str, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero or negative size {width}x{height}", "zero_size")
    if width * height > max_pixels:
        raise ImageError(f"image {width}x{height} has more than max_pixels={max_pixels} pixels", "too_large")
    # YUYV packs two pixels into one 4-byte macropixel (Y0 U Y1 V): an odd width cannot exist.
    if encoding == "yuv422_yuy2" and width % 2:
        raise ImageError(f"yuv422_yuy2 needs an even width, got {width}", "odd_width")


def image_from_buffer(
    data: Any,
    width: int,
    height: int,
    step: int,
    encoding: str,
    is_bigendian: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """A read-only ``[H, W, C]`` uint8 view of ``data`` (no copy), ``C`` = bytes per pixel.

    ``data`` is anything with the buffer protocol (``bytes``, ``memoryview``, ``array.array``,
    a NumPy array). Rows may be padded (``step > width * bpp``): the view then has a row
    stride of ``step`` bytes. Every supported encoding has 8-bit channels, so ``step`` need
    not be a multiple of the pixel size and ``is_bigendian`` changes nothing (it is accepted
    for the message's sake). ``C`` is 2 for ``yuv422_yuy2`` (Y, U/V interleaved, as OpenCV
    expects) and 1 for ``mono8``.
    """
    del is_bigendian  # 8-bit channels only: byte order is irrelevant
    bpp = check_encoding(encoding)
    width, height, step = int(width), int(height), int(step)
    _check_size(width, height, encoding, max_pixels)
    row_bytes = width * bpp
    if step < row_bytes:
        raise ImageError(
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{bpp} = {row_bytes}",
            "step_too_small",
        )
    try:
        buf = memoryview(data).cast("B")
    except TypeError:
        # Not a byte buffer (e.g. a list of ints from a hand-built message): copy it once.
        try:
            buf = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1).data
        except (TypeError, ValueError) as exc:
            raise ImageError(
                f"image data of type {type(data).__name__} is not a byte buffer", "not_bytes"
            ) from exc
    need = step * height
    if buf.nbytes < need:
        raise ImageError(
            f"image data has {buf.nbytes} bytes, fewer than step*height = {step}*{height} = {need}",
            "data_too_short",
        )
    # np.ndarray over the buffer keeps it alive and, for bytes, read-only: the view never copies.
    view = np.ndarray((height, width, bpp), dtype=np.uint8, buffer=buf, offset=0, strides=(step, bpp, 1))
    if view.flags.writeable:
        view.flags.writeable = False
    return view


def check_image(image: np.ndarray, encoding: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An ``[H, W, C]`` uint8 view of an array already in memory, checked against its encoding.

    Accepts ``[H, W]`` for ``mono8``. Raises ImageError for a wrong dtype, rank or channel
    count, so a caller that hands arrays directly to a preprocessor gets the same checks as
    one that comes through :func:`image_from_buffer`. Arrays whose pixels are not packed
    (a reversed channel axis, say) are copied once; padded rows are kept as they are.
    """
    bpp = check_encoding(encoding)
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a NumPy array, got {type(image).__name__}", "bad_array")
    if image.dtype != np.uint8:
        raise ImageError(f"image dtype must be uint8, got {image.dtype}", "bad_array")
    if image.ndim == 2 and bpp == 1:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] != bpp:
        raise ImageError(
            f"{encoding} image must have shape [H, W, {bpp}], got {list(image.shape)}", "bad_array"
        )
    _check_size(image.shape[1], image.shape[0], encoding, max_pixels)
    if image.strides[2] != 1 or image.strides[1] != bpp or image.strides[0] < 0:
        # e.g. ``bgr[..., ::-1]``: OpenCV and the staging copy want packed pixels; rows may be padded.
        image = np.ascontiguousarray(image)
    return image


def decode_compressed(
    data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode JPEG/PNG (anything ``cv2.imdecode`` reads) to a ``[H, W, 3]`` bgr8 array.

    OpenCV itself refuses images over ``OPENCV_IO_MAX_IMAGE_PIXELS`` (2^30 by default) while
    decoding; ``max_pixels`` is checked on the result so that the node's limit holds too.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if len(data) else None
    if buf is None:
        raise ImageError("compressed image data is empty", "corrupt_compressed")
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageError(
            f"cannot decode compressed image ({len(buf)} bytes): {exc}", "corrupt_compressed"
        ) from exc
    if image is None:
        raise ImageError(
            f"cannot decode compressed image ({len(buf)} bytes): not a valid JPEG/PNG", "corrupt_compressed"
        )
    h, w = image.shape[:2]
    if w * h > max_pixels:
        raise ImageError(f"decoded image {w}x{h} has more than max_pixels={max_pixels} pixels", "too_large")
    return image
