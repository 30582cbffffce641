"""sensor_msgs/Image and CompressedImage read from the bytes of a ``raw=True`` subscription.

rclpy turns a received Image into a Python object by copying ``data`` element by element into
an ``array.array`` (and, on Humble, checking every byte): milliseconds for a 1080p frame. The
bytes rclpy hands a raw subscription already hold the pixels; these readers parse the few
fields in front and return ``data`` as a memoryview into those bytes, so no pixel is copied.
Bad or truncated bytes raise ImageError with reason ``bad_cdr`` and what was wrong.

``image_bytes`` goes the other way for the debug image: one copy of the pixels into the
message bytes instead of a per-byte conversion into a message object.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from yolov8_trt_ros.core.image_input import ImageError
from yolov8_trt_ros.ros.serialization import cdr

BAD_CDR = "bad_cdr"


@dataclass(frozen=True)
class ImageView:
    """The fields of a sensor_msgs/Image; ``data`` is a read-only view of the received bytes."""

    header: cdr.FrameHeader
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


@dataclass(frozen=True)
class CompressedImageView:
    """The fields of a sensor_msgs/CompressedImage; ``data`` is a view of the received bytes."""

    header: cdr.FrameHeader
    format: str
    data: memoryview


class _Reader:
    """Bounds-checked reads of aligned CDR primitives; every failure is an ImageError."""

    def __init__(self, raw: Any, what: str) -> None:
        try:
            self.buf = memoryview(raw).cast("B")
        except TypeError as exc:
            raise ImageError(f"{what}: expected serialized bytes, got {type(raw).__name__}", BAD_CDR) from exc
        self.what = what
        if self.buf.nbytes < 4:
            self.fail(f"{self.buf.nbytes} bytes, too short for the encapsulation header")
        kind = bytes(self.buf[:2])
        little = cdr.READABLE_ENCAPSULATIONS.get(kind)
        if little is None:
            self.fail(f"unknown CDR encapsulation {kind.hex()} (expected 0001 from a ROS 2 publisher)")
        self.order = "<" if little else ">"
        self.pos = 4  # alignment counts from here

    def fail(self, reason: str) -> NoReturn:
        raise ImageError(f"{self.what} message bytes are invalid: {reason}", BAD_CDR)

    def _take(self, size: int, align: int, field: str) -> int:
        start = self.pos + cdr.pad(self.pos - 4, align)
        end = start + size
        if end > self.buf.nbytes:
            self.fail(f"truncated at {field} (needs {end} bytes, has {self.buf.nbytes})")
        self.pos = end
        return start

    def u32(self, field: str) -> int:
        start = self._take(4, 4, field)
        return int(struct.unpack_from(self.order + "I", self.buf, start)[0])

    def i32(self, field: str) -> int:
        start = self._take(4, 4, field)
        return int(struct.unpack_from(self.order + "i", self.buf, start)[0])

    def u8(self, field: str) -> int:
        return int(self.buf[self._take(1, 1, field)])

    def string(self, field: str) -> str:
        length = self.u32(field)
        start = self._take(length, 1, field)
        if length == 0:  # some writers send an empty string as length 0, without the NUL
            return ""
        if self.buf[start + length - 1] != 0:
            self.fail(f"{field} string is not NUL-terminated")
        try:
            return str(self.buf[start : start + length - 1], "utf-8")
        except UnicodeDecodeError as exc:
            self.fail(f"{field} is not UTF-8 ({exc.reason})")

    def header(self) -> cdr.FrameHeader:
        sec = self.i32("header.stamp.sec")
        nanosec = self.u32("header.stamp.nanosec")
        return cdr.FrameHeader(sec, nanosec, self.string("header.frame_id"))

    def octets(self, field: str) -> memoryview:
        count = self.u32(field)
        start = self._take(count, 1, field)
        return self.buf[start : start + count]


def parse_image(raw: Any) -> ImageView:
    """The fields of a serialized sensor_msgs/Image; ``data`` aliases ``raw`` (no copy)."""
    r = _Reader(raw, "sensor_msgs/Image")
    header = r.header()
    height = r.u32("height")
    width = r.u32("width")
    encoding = r.string("encoding")
    is_bigendian = r.u8("is_bigendian")
    step = r.u32("step")
    data = r.octets("data")
    return ImageView(header, height, width, encoding, is_bigendian, step, data)


def parse_compressed_image(raw: Any) -> CompressedImageView:
    """The fields of a serialized sensor_msgs/CompressedImage; ``data`` aliases ``raw``."""
    r = _Reader(raw, "sensor_msgs/CompressedImage")
    header = r.header()
    fmt = r.string("format")
    return CompressedImageView(header, fmt, r.octets("data"))


def image_bytes(array: np.ndarray, encoding: str, header: cdr.FrameHeader) -> bytes:
    """A serialized sensor_msgs/Image of an HWC (or HW) uint8 array: one copy of the pixels."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim < 2:
        raise ValueError(f"an image needs at least 2 dimensions, got shape {array.shape}")
    height, width = array.shape[:2]
    step = int(array.strides[0])
    head = cdr.header_bytes(header)
    head += cdr.ZEROS[cdr.pad(len(head), 4)] + struct.pack("<II", height, width) + cdr.string(encoding)
    head += b"\x00"  # is_bigendian: every encoding we publish is 8-bit
    head += cdr.ZEROS[cdr.pad(len(head), 4)] + struct.pack("<II", step, array.nbytes)
    return b"".join((cdr.CDR_LE, head, array.reshape(-1).data))
