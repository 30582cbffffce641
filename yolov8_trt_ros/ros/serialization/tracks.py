"""yolov8_trt_msgs/TrackedObjectArray serialized straight from the tracker's tracks.

A TrackedObject starts with its uint64 id, so every object starts 8-aligned and its layout
depends only on its class label's length: [id][class_id string, pad, class_index] is a
per-class constant chunk after the id, and from the score on the fields sit in one of two
fixed records (with or without 4 bytes of padding before the float64 bbox), filled for all
tracks at once as a NumPy structured array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.types import Track
from yolov8_trt_ros.ros.serialization import cdr
from yolov8_trt_ros.ros.serialization.conventions import TRACK_STATE_CODES, class_label


def _record(bbox_offset: int) -> np.dtype[np.void]:
    """score, [padding,] bbox (centre x, y, theta, size_x, size_y), velocity_x/y, age, state, 3 pad."""
    offsets = [0, bbox_offset, bbox_offset + 40, bbox_offset + 48, bbox_offset + 52]
    spec: Any = {  # the stubs lack the dict form of np.dtype
        "names": ["score", "bbox", "velocity", "age", "state"],
        "formats": ["<f4", ("<f8", 5), ("<f4", 2), "<u4", "u1"],
        "offsets": offsets,
        "itemsize": bbox_offset + 56,
    }
    return np.dtype(spec)


# by whether the bbox needs 4 bytes of padding after the score
_RECORDS = {False: _record(4), True: _record(8)}
_TRIM = 3  # padding after the last object's state byte, not sent


@dataclass
class TrackArrays:
    """Tracks as arrays (one row per track), the form the writer works on."""

    ids: npt.NDArray[np.uint64]
    class_ids: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    boxes_xyxy: npt.NDArray[np.float64]
    velocities: npt.NDArray[np.float64]  # pixels per processed frame, as the Kalman filter keeps them
    ages: npt.NDArray[np.uint32]
    states: npt.NDArray[np.uint8]  # TrackedObject.STATE_* codes

    @classmethod
    def from_tracks(cls, tracks: Sequence[Track]) -> TrackArrays:
        n = len(tracks)
        return cls(
            ids=np.fromiter((t.track_id for t in tracks), np.uint64, n),
            class_ids=np.fromiter((t.class_id for t in tracks), np.int32, n),
            scores=np.fromiter((t.score for t in tracks), np.float32, n),
            boxes_xyxy=np.array([t.box_xyxy for t in tracks], np.float64).reshape(n, 4),
            velocities=np.array([t.velocity_xy for t in tracks], np.float64).reshape(n, 2),
            ages=np.fromiter((t.age for t in tracks), np.uint32, n),
            states=np.fromiter((TRACK_STATE_CODES[t.state] for t in tracks), np.uint8, n),
        )

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
        head += cdr.ZEROS[cdr.pad(len(head), 8)]
        classes = arrays.class_ids.tolist()
        chunks = [self._class_chunk(c) for c in classes]
        records = {}
        for padded in {padded for _, padded in chunks}:
            rec = np.zeros(n, _RECORDS[padded])
            rec["score"] = arrays.scores
            box = arrays.boxes_xyxy
            bbox = rec["bbox"]
            bbox[:, 0] = (box[:, 0] + box[:, 2]) / 2.0
            bbox[:, 1] = (box[:, 1] + box[:, 3]) / 2.0
            bbox[:, 3] = box[:, 2] - box[:, 0]
            bbox[:, 4] = box[:, 3] - box[:, 1]
            rec["velocity"] = arrays.velocities * scale
            rec["age"] = arrays.ages
            rec["state"] = arrays.states
            records[padded] = (rec.data.cast("B"), rec.itemsize)
        ids = arrays.ids.astype("<u8").data.cast("B")

        parts: list[bytes | memoryview] = [cdr.CDR_LE, head]
        for i, (chunk, padded) in enumerate(chunks):
            view, size = records[padded]
            parts += (ids[i * 8 : i * 8 + 8], chunk, view[i * size : (i + 1) * size])
        parts[-1] = parts[-1][:-_TRIM]
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
