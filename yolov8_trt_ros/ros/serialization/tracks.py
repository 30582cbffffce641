"""yolov8_trt_msgs/TrackedObjectArray serialized straight from the tracker's tracks.

A TrackedObject starts with its uint64 id, so every object starts 8-aligned and its layout
depends only on its class label: after the id comes a per-class constant chunk (class_id
string, padding, class_index), then the score and, 8-aligned, the bbox, velocities, age and
state. Those last fields, plus the *next* object's id, are one fixed-size record, filled for all
tracks at once as a NumPy structured array; so each object is two pieces for ``b"".join``.
Classes whose chunk leaves the score 8-aligned need 4 bytes of padding before the bbox;
for the others a copy of the records without those 4 bytes is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.types import Track
from yolov8_trt_ros.ros.serialization import cdr
from yolov8_trt_ros.ros.serialization.conventions import TRACK_STATE_CODES, class_label

_RECORD: Any = np.dtype(
    {
        "names": ["score", "bbox", "velocity", "age", "state", "next_id"],
        # bbox: centre x, y, theta, size_x, size_y; 3 bytes of padding after the state
        "formats": ["<f4", ("<f8", 5), ("<f4", 2), "<u4", "u1", "<u8"],
        "offsets": [0, 8, 48, 56, 60, 64],
        "itemsize": 72,
    }
)
_UNPADDED = 68  # the record without bytes 4..8
_TAIL = 3 + 8  # after the last object's state: padding and a next id that does not exist


@dataclass
class TrackArrays:
    """Tracks as arrays, one row per track: the form the writer works on.

    Any integer or float dtypes: the writer casts to the message's types as it fills its record.
    """

    ids: npt.NDArray[np.integer[Any]]
    class_ids: npt.NDArray[np.integer[Any]]
    scores: npt.NDArray[np.floating[Any]]
    boxes_xyxy: npt.NDArray[np.floating[Any]]  # [N, 4]
    velocities: npt.NDArray[np.floating[Any]]  # [N, 2], pixels per processed frame (Kalman state)
    ages: npt.NDArray[np.integer[Any]]
    states: npt.NDArray[np.integer[Any]]  # TrackedObject.STATE_* codes

    @classmethod
    def from_tracks(cls, tracks: Sequence[Track]) -> TrackArrays:
        """One pass over the Track objects (ids must fit int64, as the tracker's counter does)."""
        n = len(tracks)
        codes = TRACK_STATE_CODES
        ints = chain.from_iterable([(t.track_id, t.class_id, t.age, codes[t.state]) for t in tracks])
        floats = chain.from_iterable([(t.score, *t.box_xyxy, *t.velocity_xy) for t in tracks])
        i = np.fromiter(ints, np.int64, 4 * n).reshape(n, 4)
        f = np.fromiter(floats, np.float64, 7 * n).reshape(n, 7)
        return cls(i[:, 0], i[:, 1], f[:, 0], f[:, 1:5], f[:, 5:7], i[:, 2], i[:, 3])

    def __len__(self) -> int:
        return len(self.ids)


class TrackArrayWriter:
    """Serialized TrackedObjectArray for one class-name table (make a new one when it changes)."""

    def __init__(self, names: Sequence[str], use_names: bool) -> None:
        self._names = tuple(names)
        self._use_names = bool(use_names)
        self._classes: dict[int, tuple[bytes, bool]] = {}

    def write(self, tracks: Sequence[Track] | TrackArrays, header: cdr.FrameHeader, scale: float) -> bytes:
        """The message's CDR bytes; ``scale`` turns Kalman velocities into pixels per second.

        Take ``scale`` from ``conventions.velocity_scale(dt, frame_rate)``.
        """
        arrays = tracks if isinstance(tracks, TrackArrays) else TrackArrays.from_tracks(tracks)
        n = len(arrays)
        head = cdr.STAMP.pack(header.sec, header.nanosec) + cdr.string(header.frame_id)
        head += cdr.ZEROS[cdr.pad(len(head), 4)] + cdr.U32.pack(n)
        if n == 0:
            return cdr.CDR_LE + head
        head += cdr.ZEROS[cdr.pad(len(head), 8)] + int(arrays.ids[0]).to_bytes(8, "little")
        chunks = [self._class_chunk(c) for c in arrays.class_ids.tolist()]
        rec = np.zeros(n, _RECORD)
        rec["score"] = arrays.scores
        top_left, bottom_right = arrays.boxes_xyxy[:, :2], arrays.boxes_xyxy[:, 2:]
        bbox = rec["bbox"]
        bbox[:, 0:2] = (top_left + bottom_right) / 2.0
        bbox[:, 3:5] = bottom_right - top_left
        rec["velocity"] = arrays.velocities * scale
        rec["age"] = arrays.ages
        rec["state"] = arrays.states
        rec["next_id"][:-1] = arrays.ids[1:]
        padded = rec.view(np.uint8).reshape(n, _RECORD.itemsize)
        views = {True: (padded.data.cast("B"), _RECORD.itemsize)}
        if not all(p for _, p in chunks):
            unpadded = np.empty((n, _UNPADDED), np.uint8)
            unpadded[:, :4] = padded[:, :4]
            unpadded[:, 4:] = padded[:, 8:]
            views[False] = (unpadded.data.cast("B"), _UNPADDED)

        parts: list[bytes | memoryview] = [cdr.CDR_LE, head]
        for i, (chunk, pad_bbox) in enumerate(chunks):
            view, size = views[pad_bbox]
            parts += (chunk, view[i * size : (i + 1) * size])
        parts[-1] = parts[-1][:-_TAIL]
        return b"".join(parts)

    def _class_chunk(self, cls: int) -> tuple[bytes, bool]:
        """class_id string, padding and class_index after an 8-aligned id; whether bbox needs 4 more."""
        found = self._classes.get(cls)
        if found is None:
            label = cdr.string(class_label(cls, self._names, self._use_names))
            chunk = label + cdr.ZEROS[cdr.pad(8 + len(label), 4)] + cdr.I32.pack(cls)
            # the score follows at 8 + len(chunk); the bbox after it must be 8-aligned
            found = self._classes[cls] = (chunk, (8 + len(chunk) + 4) % 8 != 0)
        return found
