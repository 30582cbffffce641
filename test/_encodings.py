"""Frames in every supported camera encoding, for the encoding tests (not a test module).

``random_frame`` makes fresh random content in an encoding's own layout (as
``image_input.image_from_buffer`` returns it); ``from_bgr`` turns one picture into each
encoding the way a camera would deliver it, with OpenCV's forward conversions where OpenCV has
them. ``opencv_bgr`` is the reference: OpenCV's own conversion of a frame to bgr8, written out
here per encoding rather than taken from the code under test.
"""

from __future__ import annotations

import cv2
import numpy as np

from yolov8_trt_ros.core.types import SUPPORTED_ENCODINGS

#: Every name a frame can arrive with: the canonical encodings, their aliases, and 16-bit
#: grey in big-endian byte order (``"<encoding>/be"``).
ALL_ENCODINGS: tuple[str, ...] = (
    *SUPPORTED_ENCODINGS,
    "8UC1",
    "8UC3",
    "16UC1",
    "uyvy",
    "yuyv",
    "mono16/be",
    "16UC1/be",
)
#: The encodings added for camera drivers (issue 14), with the big-endian 16-bit variants.
CAMERA_ENCODINGS: tuple[str, ...] = (
    "yuv422",
    "yuv422_yuy2",
    "nv12",
    "nv21",
    "bayer_rggb8",
    "bayer_bggr8",
    "bayer_gbrg8",
    "bayer_grbg8",
    "mono16",
    "16UC1",
    "mono16/be",
    "8UC3",
    "8UC1",
)

# OpenCV names a Bayer pattern by the 2nd and 3rd pixel of the second row: ROS rggb = cv BG.
_BAYER_BGR = {
    "bayer_rggb8": cv2.COLOR_BayerBG2BGR,
    "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg8": cv2.COLOR_BayerGR2BGR,
    "bayer_grbg8": cv2.COLOR_BayerGB2BGR,
}
_BAYER_TILE = {"bayer_rggb8": "rggb", "bayer_bggr8": "bggr", "bayer_gbrg8": "gbrg", "bayer_grbg8": "grbg"}
_CANON = {"8UC1": "mono8", "8UC3": "bgr8", "16UC1": "mono16", "uyvy": "yuv422", "yuyv": "yuv422_yuy2"}


def split(encoding: str) -> tuple[str, bool]:
    """``(name to pass to the code, big-endian?)`` for an entry of ALL_ENCODINGS."""
    name, _, order = encoding.partition("/")
    return name, order == "be"


def canon(encoding: str) -> str:
    name = split(encoding)[0]
    return _CANON.get(name, name)


def legal_size(encoding: str, h: int, w: int) -> tuple[int, int]:
    """The nearest size at or above ``(h, w)`` that the encoding allows."""
    enc = canon(encoding)
    if enc in ("yuv422", "yuv422_yuy2", "nv12", "nv21"):
        w = max(2, w + w % 2)
    if enc in ("nv12", "nv21"):
        h = max(2, h + h % 2)
    if enc.startswith("bayer_"):
        h, w = max(h, 3), max(w, 3)
    return h, w


def smooth_noise(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """Smooth structure plus noise, so a resize has something to interpolate."""
    base = cv2.resize(rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, c), dtype=np.uint8), (w, h))
    base = base.reshape(h, w, c)
    return np.clip(base.astype(np.int16) + rng.integers(-24, 24, (h, w, c)), 0, 255).astype(np.uint8)


def random_frame(rng: np.random.Generator, encoding: str, h: int, w: int) -> np.ndarray:
    """Fresh random content of an image ``h`` x ``w`` in the encoding's layout (size made legal)."""
    h, w = legal_size(encoding, h, w)
    enc, big = canon(encoding), split(encoding)[1]
    if enc == "mono16":
        hi = smooth_noise(rng, h, w, 1).astype(np.uint16)
        frame = (hi << 8) | rng.integers(0, 256, (h, w, 1), dtype=np.uint16)
        return frame.astype(">u2" if big else "<u2")
    if enc in ("nv12", "nv21"):
        return smooth_noise(rng, h * 3 // 2, w, 1)
    channels = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4, "yuv422": 2, "yuv422_yuy2": 2}
    return smooth_noise(rng, h, w, channels.get(enc, 1))


def opencv_bgr(frame: np.ndarray, encoding: str) -> np.ndarray:
    """OpenCV's own conversion of ``frame`` to bgr8 (16-bit: ``>> 8``, then grey to BGR)."""
    enc = canon(encoding)
    one = frame[:, :, 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame
    codes = {
        "rgb8": cv2.COLOR_RGB2BGR,
        "mono8": cv2.COLOR_GRAY2BGR,
        "bgra8": cv2.COLOR_BGRA2BGR,
        "rgba8": cv2.COLOR_RGBA2BGR,
        "yuv422": cv2.COLOR_YUV2BGR_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
        "nv12": cv2.COLOR_YUV2BGR_NV12,
        "nv21": cv2.COLOR_YUV2BGR_NV21,
        **_BAYER_BGR,
    }
    if enc == "bgr8":
        return np.ascontiguousarray(frame)
    if enc == "mono16":
        return cv2.cvtColor((one.astype(np.uint16) >> 8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(one), codes[enc])


def mosaic(bgr: np.ndarray, tile: str) -> np.ndarray:
    """A Bayer mosaic of ``bgr``: ``tile`` names the colours of the 2x2 tile row by row."""
    h, w = bgr.shape[:2]
    out = np.empty((h, w, 1), np.uint8)
    channel = {"b": 0, "g": 1, "r": 2}
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2, 0] = bgr[dy::2, dx::2, channel[tile[2 * dy + dx]]]
    return out


def from_bgr(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """The picture ``bgr`` as a camera would send it in ``encoding`` (even sizes assumed).

    YUV comes from OpenCV's BT.601 limited-range ``COLOR_BGR2YUV_I420`` (the inverse of the
    ``YUV2BGR`` conversions the preprocessors use), its 4:2:0 chroma interleaved for nv12/nv21
    and repeated on both rows for 4:2:2. 16-bit grey is ``grey * 257`` (full range).
    """
    enc, big = canon(encoding), split(encoding)[1]
    h, w = bgr.shape[:2]
    if enc == "bgr8":
        return bgr
    if enc in ("rgb8", "mono8", "bgra8", "rgba8"):
        code = {
            "rgb8": cv2.COLOR_BGR2RGB,
            "mono8": cv2.COLOR_BGR2GRAY,
            "bgra8": cv2.COLOR_BGR2BGRA,
            "rgba8": cv2.COLOR_BGR2RGBA,
        }[enc]
        out = cv2.cvtColor(bgr, code)
        return out[:, :, None] if out.ndim == 2 else out
    if enc == "mono16":
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
        return grey[:, :, None].astype(">u2" if big else "<u2")
    if enc.startswith("bayer_"):
        return mosaic(bgr, _BAYER_TILE[enc])
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # Y plane, then U and V planes, each h/4 rows
    y = i420[:h]
    u = i420[h : h + h // 4].reshape(h // 2, w // 2)
    v = i420[h + h // 4 :].reshape(h // 2, w // 2)
    if enc in ("nv12", "nv21"):
        first, second = (u, v) if enc == "nv12" else (v, u)
        uv = np.stack([first, second], axis=-1).reshape(h // 2, w)
        return np.concatenate([y, uv])[:, :, None]
    u2, v2 = np.repeat(u, 2, axis=0), np.repeat(v, 2, axis=0)  # [h, w/2]
    macro = np.empty((h, w // 2, 4), np.uint8)
    if enc == "yuv422":  # U Y0 V Y1
        macro[..., 0], macro[..., 1], macro[..., 2], macro[..., 3] = u2, y[:, 0::2], v2, y[:, 1::2]
    else:  # Y0 U Y1 V
        macro[..., 0], macro[..., 1], macro[..., 2], macro[..., 3] = y[:, 0::2], u2, y[:, 1::2], v2
    return macro.reshape(h, w, 2)


def message_bytes(frame: np.ndarray, pad: int) -> tuple[bytes, int]:
    """The frame as a ROS message's ``data`` with ``pad`` junk bytes after each row, and its step."""
    rows = frame.shape[0]
    row = frame.reshape(rows, -1).view(np.uint8).reshape(rows, -1)
    step = row.shape[1] + pad
    buf = np.full((rows, step), 0xAB, np.uint8)
    buf[:, : row.shape[1]] = row
    return buf.tobytes(), step
