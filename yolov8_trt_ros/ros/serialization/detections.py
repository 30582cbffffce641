"""vision_msgs/Detection2DArray (vision_msgs 4.x) serialized straight from a ``Detections``.

One Detection2D in CDR is: its header (stamp, frame_id), ``results`` (a sequence of one
ObjectHypothesisWithPose: class_id string, score, a PoseWithCovariance whose position is the
box centre), ``bbox`` (centre x, y, theta, size_x, size_y) and ``id``. From the score to the
bbox it is 49 float64 at an 8-aligned offset, 41 of them constant: one ``struct.pack`` per
detection. What lies between two of those blocks (the id string, the next detection's header
and class label, padding) depends only on the class, the id and the offset's parity, so it is
made of cached byte chunks; ``b"".join`` then copies everything once.

Why ``struct`` and not a NumPy ``[N, 49]`` block: both were measured (benchmarks/messages.md);
the NumPy assembly's dozen array calls cost more than they save below ~50 detections, and
above that both stay well under a microsecond per detection.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.types import Detections
from yolov8_trt_ros.ros.serialization import cdr
from yolov8_trt_ros.ros.serialization.conventions import class_label, detection_id

# pose.position.z, pose.orientation (x, y, z, w = 1: the identity), the pose covariance (36)
_POSE_REST = struct.pack("<5d36d", 0.0, 0.0, 0.0, 0.0, 1.0, *([0.0] * 36))
# score, pose.position (x, y), _POSE_REST, bbox centre (x, y, theta), size_x, size_y
_BLOCK = struct.Struct(f"<3d{len(_POSE_REST)}s5d")
_ONE_RESULT = cdr.U32.pack(1)
_NO_ID = cdr.string("") + b"\x00\x00\x00"  # padded: the next detection starts 4-aligned
_CACHE_LIMIT = 4096  # chunks kept per writer; track ids grow without bound, so the cache is cleared


class DetectionArrayWriter:
    """Serialized Detection2DArray for one class-name table (make a new one when it changes)."""

    def __init__(self, names: Sequence[str], use_names: bool) -> None:
        self._names = tuple(names)
        self._use_names = bool(use_names)
        self._labels: dict[int, bytes] = {}
        self._frames: dict[str, bytes] = {}
        self._between: dict[tuple[bytes, int, int], bytes] = {}
        self._ids: dict[int, bytes] = {}

    def write(
        self,
        dets: Detections,
        header: cdr.FrameHeader,
        track_ids: npt.ArrayLike | None = None,
    ) -> bytes:
        """The message's CDR bytes, encapsulation header included, for ``Publisher.publish``.

        ``track_ids`` (aligned with ``dets``; -1 for none) fills each ``Detection2D.id``; without
        it every id is empty. Each Detection2D repeats the array's header, as the image's.
        """
        n = len(dets)
        stamp = cdr.STAMP.pack(header.sec, header.nanosec)
        frame = self._frame(header.frame_id)
        head = stamp + frame
        head += cdr.ZEROS[cdr.pad(len(head), 4)] + cdr.U32.pack(n)
        if n == 0:
            return cdr.CDR_LE + head
        suffixes = [_NO_ID] * n if track_ids is None else self._suffixes(track_ids, n)

        parts: list[bytes] = [cdr.CDR_LE, head]
        parity = len(head) % 8  # of the offset where the next detection starts
        between, pack, rest = self._between, _BLOCK.pack, _POSE_REST
        rows = zip(dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), suffixes, strict=True)
        for (x1, y1, x2, y2), score, cls, suffix in rows:
            chunk = between.get((frame, cls, parity)) or self._between_chunk(frame, cls, parity)
            cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
            parts += (stamp, chunk, pack(score, cx, cy, rest, cx, cy, 0.0, x2 - x1, y2 - y1), suffix)
            parity = len(suffix) % 8  # the block ends 8-aligned
        last = parts[-1]
        parts[-1] = last[: cdr.U32.unpack_from(last)[0] + 4]  # no padding after the last field
        return b"".join(parts)

    def _frame(self, frame_id: str) -> bytes:
        chunk = self._frames.get(frame_id)
        if chunk is None:
            if len(self._frames) > 64:
                self._frames.clear()
            chunk = self._frames[frame_id] = cdr.string(frame_id)
        return chunk

    def _between_chunk(self, frame: bytes, cls: int, parity: int) -> bytes:
        """From after a detection's stamp to its score, for a detection starting at ``parity``."""
        label = self._labels.get(cls)
        if label is None:
            label = self._labels[cls] = cdr.string(class_label(cls, self._names, self._use_names))
        offset = parity + cdr.STAMP.size + len(frame)
        chunk = frame + cdr.ZEROS[cdr.pad(offset, 4)] + _ONE_RESULT + label
        chunk += cdr.ZEROS[cdr.pad(parity + cdr.STAMP.size + len(chunk), 8)]
        if len(self._between) > _CACHE_LIMIT:
            self._between.clear()
        self._between[(frame, cls, parity)] = chunk
        return chunk

    def _suffixes(self, track_ids: npt.ArrayLike, n: int) -> list[bytes]:
        """Each detection's id string, padded so that the next detection starts 4-aligned."""
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        if len(ids) != n:
            raise ValueError(f"{len(ids)} track ids for {n} detections")
        cache = self._ids
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        out = []
        for tid in ids.tolist():
            chunk = cache.get(tid)
            if chunk is None:
                chunk = cdr.string(detection_id(tid))
                chunk = cache[tid] = chunk + cdr.ZEROS[cdr.pad(len(chunk), 4)]
            out.append(chunk)
        return out
