"""CDR as rmw_fastrtps writes it: the few primitives the message writers and readers share.

Layout rules (OMG XCDR version 1, "plain" CDR): a 4-byte encapsulation header (``00 01 00 00``
for little-endian), then the fields in declaration order, each aligned to its own size
(1, 2, 4 or 8 bytes) *relative to the end of the encapsulation header*; a string is a uint32
length that counts the terminating NUL, the UTF-8 bytes and the NUL; a sequence is a uint32
element count and the elements. Nested messages add no header or padding of their own. The
padding bytes' values are unspecified (Fast CDR leaves whatever was in its buffer); we write zeros.

Hand-written rather than a library because the point is speed on NumPy arrays: the general
CDR libraries for Python (pycdr2, rosbags' serde) walk message objects field by field, which
is the very cost this module removes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: Encapsulation header of little-endian plain CDR (what every x86/ARM publisher sends).
CDR_LE = b"\x00\x01\x00\x00"
#: Encapsulation kinds a reader accepts, by the first two header bytes: id -> little-endian.
#: PLAIN_CDR2 (0x0006/0x0007) differs from CDR only by capping alignment at 4 bytes, which
#: changes nothing for the image messages (no 8-byte fields), so both are read the same way.
READABLE_ENCAPSULATIONS: dict[bytes, bool] = {
    b"\x00\x00": False,
    b"\x00\x01": True,
    b"\x00\x06": False,
    b"\x00\x07": True,
}

U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
STAMP = struct.Struct("<iI")  # builtin_interfaces/Time: int32 sec, uint32 nanosec
ZEROS = tuple(b"\x00" * n for n in range(8))


def pad(offset: int, align: int) -> int:
    """Padding bytes that bring ``offset`` (from the end of the encapsulation) to ``align``."""
    return -offset % align


def string(text: str) -> bytes:
    """A CDR string: uint32 length counting the NUL, UTF-8 bytes, NUL (4-aligned by the caller)."""
    raw = text.encode("utf-8")
    return U32.pack(len(raw) + 1) + raw + b"\x00"


@dataclass(frozen=True)
class FrameHeader:
    """``std_msgs/Header`` without the message object: what the writers take and readers give."""

    sec: int
    nanosec: int
    frame_id: str


def header_bytes(header: FrameHeader) -> bytes:
    """A serialized std_msgs/Header (starts 4-aligned; no padding inside)."""
    return STAMP.pack(header.sec, header.nanosec) + string(header.frame_id)
