"""Raw camera buffers to validated NumPy views, and compressed frames to bgr8.

A ROS ``sensor_msgs/Image`` arrives as a byte buffer plus width, height, row ``step`` and an
encoding name. Everything that can be wrong with those numbers is checked here, once, so the
preprocessors (CPU and CUDA) can trust the array they are given and a bad message becomes one
:class:`ImageError` that the node logs instead of a crash deep inside OpenCV or a kernel.

How each encoding is laid out in the view (docs/encodings.md has the table of conversions):

* 8-bit packed (bgr8, rgb8, mono8, bgra8, rgba8, bayer_*8): ``[H, W, C]`` uint8;
* 4:2:2 (yuv422 = UYVY, yuv422_yuy2 = YUYV): ``[H, W, 2]`` uint8, the macropixel's bytes in
  order, as OpenCV's ``COLOR_YUV2*_UYVY/_YUY2`` read it;
* 4:2:0 semi-planar (nv12, nv21): ``[H * 3 / 2, W, 1]`` uint8, the Y plane followed by the
  interleaved UV (VU) plane with the same ``step``, as ``COLOR_YUV2*_NV12/_NV21`` read it;
* 16-bit (mono16, 16UC1): ``[H, W, 1]`` uint16 in the message's byte order (``'<u2'`` or
  ``'>u2'``), so a big-endian frame is still a view, not a swapped copy.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

from yolov8_trt_ros.core.types import BYTES_PER_PIXEL, SUPPORTED_ENCODINGS

#: Default cap on width × height (the same as ``PreprocessConfig.max_image_pixels``).
DEFAULT_MAX_PIXELS = 4096 * 4096

#: Other names of supported encodings in sensor_msgs/image_encodings: OpenCV type names that
#: drivers publish (depth cameras: 16UC1 in millimetres) and the newer ``uyvy``/``yuyv``.
ENCODING_ALIASES: dict[str, str] = {
    "8UC1": "mono8",
    "8UC3": "bgr8",
    "16UC1": "mono16",
    "uyvy": "yuv422",
    "yuyv": "yuv422_yuy2",
}
#: ROS Bayer encodings and their 2×2 tile, row by row (``rggb``: R at the top left).
BAYER_PATTERNS: dict[str, str] = {
    "bayer_rggb8": "rggb",
    "bayer_bggr8": "bggr",
    "bayer_gbrg8": "gbrg",
    "bayer_grbg8": "grbg",
}
#: 4:2:2 encodings: two pixels share one 4-byte macropixel, so the width must be even.
PACKED_422 = frozenset({"yuv422", "yuv422_yuy2"})
#: 4:2:0 semi-planar encodings: 2×2 pixels share one UV pair; the buffer has H * 3 / 2 rows.
SEMI_PLANAR_420 = frozenset({"nv12", "nv21"})
#: Encodings with 16-bit samples (viewed as uint16 in the message's byte order).
SIXTEEN_BIT = frozenset({"mono16"})


class ImageError(ValueError):
    """An image that cannot be used; the message says what is wrong with it.

    ``reason`` names the kind of problem (``unsupported_encoding``, ``zero_size``,
    ``too_large``, ``too_small``, ``odd_width``, ``odd_height``, ``step_too_small``,
    ``data_too_short``, ``not_bytes``, ``bad_array``, ``corrupt_compressed``), so the node can
    count each kind.
    """

    def __init__(self, message: str, reason: str = "bad_image") -> None:
        super().__init__(message)
        self.reason = reason


def canonical_encoding(encoding: str) -> str:
    """The supported encoding ``encoding`` names (aliases resolved); ImageError if there is none."""
    name = ENCODING_ALIASES.get(encoding, encoding)
    if name not in BYTES_PER_PIXEL:
        supported = [*SUPPORTED_ENCODINGS, *ENCODING_ALIASES]
        raise ImageError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(supported)}",
            "unsupported_encoding",
        )
    return name


def check_encoding(encoding: str) -> int:
    """Bytes per pixel (in one buffer row) of a supported encoding; ImageError naming the rest."""
    return BYTES_PER_PIXEL[canonical_encoding(encoding)]


def buffer_rows(height: int, encoding: str) -> int:
    """Rows of the buffer that hold an image ``height`` pixels high (nv12: Y plus UV plane)."""
    return height * 3 // 2 if canonical_encoding(encoding) in SEMI_PLANAR_420 else height


def image_size(image: np.ndarray, encoding: str) -> tuple[int, int]:
    """``(width, height)`` in pixels of a checked view (an nv12 view has H * 3 / 2 rows)."""
    rows, width = int(image.shape[0]), int(image.shape[1])
    if canonical_encoding(encoding) in SEMI_PLANAR_420:
        return width, rows * 2 // 3
    return width, rows


def _check_size(width: int, height: int, encoding: str, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero or negative size {width}x{height}", "zero_size")
    if width * height > max_pixels:
        raise ImageError(f"image {width}x{height} has more than max_pixels={max_pixels} pixels", "too_large")
    # UYVY/YUYV pack two pixels into one 4-byte macropixel (U Y0 V Y1): an odd width cannot exist.
    if encoding in PACKED_422 and width % 2:
        raise ImageError(f"{encoding} needs an even width, got {width}", "odd_width")
    if encoding in SEMI_PLANAR_420:  # one UV pair per 2x2 pixels
        if width % 2:
            raise ImageError(f"{encoding} needs an even width, got {width}", "odd_width")
        if height % 2:
            raise ImageError(f"{encoding} needs an even height, got {height}", "odd_height")
    # Bilinear demosaicing reads a 3x3 neighbourhood; OpenCV returns a black image below that.
    if encoding in BAYER_PATTERNS and (width < 3 or height < 3):
        raise ImageError(
            f"{encoding} needs at least 3x3 pixels to demosaic, got {width}x{height}", "too_small"
        )


def image_from_buffer(
    data: Any,
    width: int,
    height: int,
    step: int,
    encoding: str,
    is_bigendian: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """A read-only view of ``data`` (no copy) laid out as the module docstring says.

    ``data`` is anything with the buffer protocol (``bytes``, ``memoryview``, ``array.array``,
    a NumPy array). Rows may be padded (``step > width * bpp``): the view then has a row
    stride of ``step`` bytes, which need not be a multiple of the pixel size. ``height`` is
    the image's height in pixels: an nv12/nv21 buffer holds ``step * height * 3 / 2`` bytes.
    ``is_bigendian`` matters only to 16-bit encodings, whose view takes that byte order.
    """
    enc = canonical_encoding(encoding)
    bpp = BYTES_PER_PIXEL[enc]
    width, height, step = int(width), int(height), int(step)
    _check_size(width, height, enc, max_pixels)
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
    rows = buffer_rows(height, enc)
    need = step * rows
    if buf.nbytes < need:
        what = f"step*height = {step}*{height}"
        if rows != height:
            what = f"step*height*3/2 = {step}*{height}*3/2"
        raise ImageError(f"image data has {buf.nbytes} bytes, fewer than {what} = {need}", "data_too_short")
    # np.ndarray over the buffer keeps it alive and, for bytes, read-only: the view never copies.
    if enc in SIXTEEN_BIT:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        view = np.ndarray((rows, width, 1), dtype=dtype, buffer=buf, offset=0, strides=(step, 2, 2))
    else:
        view = np.ndarray((rows, width, bpp), dtype=np.uint8, buffer=buf, offset=0, strides=(step, bpp, 1))
    if view.flags.writeable:
        view.flags.writeable = False
    return view


def check_image(image: np.ndarray, encoding: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A view of an array already in memory, checked against its encoding (layouts above).

    Accepts ``[H, W]`` for one-channel encodings. 16-bit encodings take uint16 of either byte
    order (the array's dtype says which). Raises ImageError for a wrong dtype, rank, channel
    count or size, so a caller that hands arrays directly to a preprocessor gets the same
    checks as one that comes through :func:`image_from_buffer`. Arrays whose pixels are not
    packed (a reversed channel axis, say) are copied once; padded rows are kept as they are.
    """
    enc = canonical_encoding(encoding)
    bpp = BYTES_PER_PIXEL[enc]
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a NumPy array, got {type(image).__name__}", "bad_array")
    if enc in SIXTEEN_BIT:
        if image.dtype.kind != "u" or image.dtype.itemsize != 2:
            raise ImageError(f"{encoding} image dtype must be uint16, got {image.dtype}", "bad_array")
        channels = 1
    else:
        if image.dtype != np.uint8:
            raise ImageError(f"image dtype must be uint8, got {image.dtype}", "bad_array")
        channels = bpp
    if image.ndim == 2 and channels == 1:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] != channels:
        raise ImageError(
            f"{encoding} image must have shape [H, W, {channels}], got {list(image.shape)}", "bad_array"
        )
    if enc in SEMI_PLANAR_420 and image.shape[0] % 3:
        raise ImageError(
            f"{encoding} array must have height*3/2 rows (Y plane, then UV plane), got {image.shape[0]}",
            "odd_height",
        )
    width, height = image_size(image, enc)
    _check_size(width, height, enc, max_pixels)
    item = image.dtype.itemsize
    if image.strides[2] != item or image.strides[1] != channels * item or image.strides[0] < 0:
        # e.g. ``bgr[..., ::-1]``: OpenCV and the staging copy want packed pixels; rows may be padded.
        image = np.ascontiguousarray(image)
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and
# arithmetic): each carries the frame's height and width. 0xC4 (DHT), 0xC8 (JPG) and 0xCC
# (DAC) share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _png_size(data: bytes | memoryview) -> tuple[int, int]:
    # The first chunk must be IHDR: length (13), b"IHDR", width, height (big-endian uint32).
    if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        raise ImageError(
            f"cannot decode compressed image ({len(data)} bytes): PNG without IHDR", "corrupt_compressed"
        )
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    # Walk the marker segments after SOI (each: 0xFF, marker, 2-byte length) up to the frame
    # header; APPn segments (EXIF thumbnails included) are skipped by their length.
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise ImageError(
        f"cannot decode compressed image ({n} bytes): JPEG without a frame header (SOF)", "corrupt_compressed"
    )


def compressed_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """``(width, height)`` a PNG or JPEG declares in its header, read without decoding.

    Written out (PNG: fixed offsets; JPEG: a walk over marker segments) because neither OpenCV
    nor NumPy reads a header alone from memory, and these two are the formats ROS's
    compressed_image_transport sends. Raises ImageError for anything else.
    """
    view = memoryview(data).cast("B")
    if bytes(view[:8]) == _PNG_SIGNATURE:
        return _png_size(view)
    if bytes(view[:3]) == b"\xff\xd8\xff":
        return _jpeg_size(view)
    raise ImageError(
        f"cannot decode compressed image ({len(view)} bytes): neither PNG nor JPEG", "corrupt_compressed"
    )


def decode_compressed(
    data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode a JPEG/PNG to a ``[H, W, 3]`` bgr8 array, refusing oversize images unread.

    The size declared in the header is checked against ``max_pixels`` before anything is
    decoded: a small file can declare a huge image (a 180 KiB PNG of 8000x8000 pixels would
    allocate 192 MB in ``cv2.imdecode``). The decoded size is checked again, as the header
    is only a promise.
    """
    if not len(data):
        raise ImageError("compressed image data is empty", "corrupt_compressed")
    width, height = compressed_size(data)
    if width <= 0 or height <= 0:
        raise ImageError(
            f"cannot decode compressed image: it declares size {width}x{height}", "corrupt_compressed"
        )
    if width * height > max_pixels:
        raise ImageError(
            f"compressed image declares {width}x{height}, more than max_pixels={max_pixels} pixels;"
            " refused before decoding",
            "too_large",
        )
    buf = np.frombuffer(data, dtype=np.uint8)
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
