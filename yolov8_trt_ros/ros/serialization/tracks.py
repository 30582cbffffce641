"""yolov8_trt_msgs/TrackedObjectArray serialized straight from the tracker's tracks.

A TrackedObject starts with its uint64 id, so every object starts 8-aligned and its layout
depends only on its class label: after the id comes a per-class constant chunk (class_id
string, padding, class_index), then the score and, 8-aligned, the bbox, velocities, age and
state. Those last fields, plus the *next* object's id, are one ``struct.pack`` (one of two
formats: with or without 4 bytes of padding before the bbox, by class), so each object is
two pieces for ``b"".join``.

Why ``struct`` and not a NumPy structured array: the tracks arrive as Python objects, so the
per-object Python loop is there anyway; measured (benchmarks/messages.md), filling a
structured array from them cost about twice as much at every track count.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from yolov8_trt_ros.core.types import Track
from yolov8_trt_ros.ros.serialization import cdr
from yolov8_trt_ros.ros.serialization.conventions import TRACK_STATE_CODES, class_label

# score, [4 bytes padding,] bbox (centre x, y, theta, size_x, size_y), velocity_x, velocity_y,
# age, state, 3 bytes padding, the next object's id
_TAIL = {True: struct.Struct("<f4x5d2fIB3xQ"), False: struct.Struct("<f5d2fIB3xQ")}
_TRIM = 3 + 8  # after the last object's state: padding and a next id that does not exist


class TrackArrayWriter:
    """Serialized TrackedObjectArray for one class-name table (make a new one when it changes)."""

    def __init__(self, names: Sequence[str], use_names: bool) -> None:
        self._names = tuple(names)
        self._use_names = bool(use_names)
        self._classes: dict[int, tuple[bytes, struct.Struct]] = {}

    def write(self, tracks: Sequence[Track], header: cdr.FrameHeader, scale: float) -> bytes:
        """The message's CDR bytes; ``scale`` turns Kalman velocities into pixels per second.

        Take ``scale`` from ``conventions.velocity_scale(dt, frame_rate)``.
        """
        n = len(tracks)
        head = cdr.STAMP.pack(header.sec, header.nanosec) + cdr.string(header.frame_id)
        head += cdr.ZEROS[cdr.pad(len(head), 4)] + cdr.U32.pack(n)
        if n == 0:
            return cdr.CDR_LE + head
        head += cdr.ZEROS[cdr.pad(len(head), 8)] + int(tracks[0].track_id).to_bytes(8, "little")
        next_ids = [t.track_id for t in tracks[1:]]
        next_ids.append(0)

        parts: list[bytes] = [cdr.CDR_LE, head]
        classes, codes = self._classes, TRACK_STATE_CODES
        for t, next_id in zip(tracks, next_ids, strict=True):
            chunk, tail = classes.get(t.class_id) or self._class_chunk(t.class_id)
            x1, y1, x2, y2 = t.box_xyxy
            vx, vy = t.velocity_xy
            cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
            fields = (t.score, cx, cy, 0.0, x2 - x1, y2 - y1, vx * scale, vy * scale, t.age, codes[t.state])
            parts += (chunk, tail.pack(*fields, next_id))
        parts[-1] = parts[-1][:-_TRIM]
        return b"".join(parts)

    def _class_chunk(self, cls: int) -> tuple[bytes, struct.Struct]:
        """class_id string, padding and class_index after an 8-aligned id, and the tail's format."""
        label = cdr.string(class_label(cls, self._names, self._use_names))
        chunk = label + cdr.ZEROS[cdr.pad(8 + len(label), 4)] + cdr.I32.pack(cls)
        # the score follows at 8 + len(chunk); the bbox after it must be 8-aligned
        found = self._classes[cls] = (chunk, _TAIL[(8 + len(chunk) + 4) % 8 != 0])
        return found
