"""vision_msgs/Detection2DArray (vision_msgs 4.x) serialized straight from a ``Detections``.

One Detection2D in CDR is: its header (stamp, frame_id), ``results`` (a sequence of one
ObjectHypothesisWithPose: class_id string, score, a PoseWithCovariance whose position is the
box centre), ``bbox`` (centre x, y, theta, size_x, size_y) and ``id``. Everything from the
score to the bbox is 49 float64 at an 8-aligned offset: those blocks are filled for all
detections at once as one ``[N, 49]`` array. What lies between two blocks (the id string, the
next detection's header and class label, padding) depends only on the class, the id and the
offset parity, so it is made from cached byte chunks; ``b"".join`` then copies everything once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.types import Detections
from yolov8_trt_ros.ros.serialization import cdr
from yolov8_trt_ros.ros.serialization.conventions import class_label, detection_id

# Columns of the per-detection float64 block: score, pose.position (x, y, z), pose.orientation
# (x, y, z, w), pose covariance (36), bbox.center.position (x, y), bbox.center.theta, size_x, size_y.
_SCORE, _POSITION, _QW, _CENTRE, _SIZE = 0, slice(1, 3), 7, slice(44, 46), slice(47, 49)
_BLOCK_DOUBLES = 49
_BLOCK_BYTES = _BLOCK_DOUBLES * 8
_ONE_RESULT = cdr.U32.pack(1)
_NO_ID = cdr.string("")  # 5 bytes, 8 once padded for the next detection
_NO_ID_PADDED = int.from_bytes(_NO_ID + b"\x00\x00\x00", "little")  # the same 8 bytes as a uint64
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
        classes = dets.class_ids.tolist()
        boxes = dets.boxes.astype(np.float64)
        top_left, bottom_right = boxes[:, :2], boxes[:, 2:]
        block = np.zeros((n, _BLOCK_DOUBLES + 2), np.float64)  # + 2: see the no-id case below
        block[:, _SCORE] = dets.scores
        block[:, _CENTRE] = block[:, _POSITION] = (top_left + bottom_right) / 2.0
        block[:, _QW] = 1.0
        block[:, _SIZE] = bottom_right - top_left
        blocks = block.data.cast("B")
        size = block.shape[1] * 8
        parts: list[bytes | memoryview] = [cdr.CDR_LE, head, stamp]
        between = self._between

        if track_ids is None:
            # Every id is "" (8 bytes with the padding) and the next detection's stamp follows:
            # both ride at the end of the block, so each detection is two pieces and all but
            # the first start 8-aligned.
            words = block.view(np.uint64)  # integers, so no float conversion can touch the bits
            words[:, _BLOCK_DOUBLES] = _NO_ID_PADDED
            words[:, _BLOCK_DOUBLES + 1] = int.from_bytes(stamp, "little")
            parity = len(head) % 8
            for i, cls in enumerate(classes):
                chunk = between.get((frame, cls, parity)) or self._between_chunk(frame, cls, parity)
                parts += (chunk, blocks[i * size : (i + 1) * size])
                parity = 0
            parts[-1] = parts[-1][: _BLOCK_BYTES + len(_NO_ID)]  # nothing after the last id
            return b"".join(parts)

        parity = len(head) % 8
        for i, (cls, suffix) in enumerate(zip(classes, self._suffixes(track_ids, n), strict=True)):
            chunk = between.get((frame, cls, parity)) or self._between_chunk(frame, cls, parity)
            parts += (chunk, blocks[i * size : i * size + _BLOCK_BYTES], suffix, stamp)
            parity = len(suffix) % 8
        parts.pop()  # no next detection: its stamp goes
        last = parts[-1]
        parts[-1] = last[: cdr.U32.unpack_from(last)[0] + 4]  # nor the padding after the last id
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
