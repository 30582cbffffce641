"""Data that flows between the pipeline stages.

Every stage speaks in these types so that a stage can be swapped (CPU letterbox for the
fused CUDA kernel, ONNX Runtime for TensorRT) without touching its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]

#: Pixel encodings the preprocessors accept (names as in sensor_msgs/image_encodings; aliases
#: such as ``8UC3`` and ``16UC1`` are mapped onto these by ``image_input.canonical_encoding``).
Encoding = Literal[
    "bgr8",
    "rgb8",
    "mono8",
    "bgra8",
    "rgba8",
    "yuv422",
    "yuv422_yuy2",
    "nv12",
    "nv21",
    "bayer_rggb8",
    "bayer_bggr8",
    "bayer_gbrg8",
    "bayer_grbg8",
    "mono16",
]
SUPPORTED_ENCODINGS: tuple[str, ...] = get_args(Encoding)
#: Bytes per pixel in one row of the buffer (nv12/nv21: of the Y plane and of the interleaved
#: UV plane alike, which follows it with ``height / 2`` more rows).
BYTES_PER_PIXEL: dict[str, int] = {
    "bgr8": 3,
    "rgb8": 3,
    "mono8": 1,
    "bgra8": 4,
    "rgba8": 4,
    "yuv422": 2,
    "yuv422_yuy2": 2,
    "nv12": 1,
    "nv21": 1,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
    "mono16": 2,
}


@dataclass(frozen=True)
class Letterbox:
    """How one source image was placed into the network input.

    ``input = source * scale + (pad_x, pad_y)``; kept per image so that boxes can be
    mapped back to source pixels after inference.
    """

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    scale: float
    pad_x: float
    pad_y: float

    @classmethod
    def fit(cls, src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
        """Scale to fit inside ``dst`` keeping aspect ratio, centred, as ultralytics' LetterBox.

        The padding is split as ultralytics does (``round(d - 0.1)`` / ``round(d + 0.1)``)
        so that our input tensor matches ultralytics' to the pixel.
        """
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w = max(round(src_w * scale), 1)  # a 1x1999 frame still covers one column
        new_h = max(round(src_h * scale), 1)
        dw = (dst_w - new_w) / 2.0
        dh = (dst_h - new_h) / 2.0
        return cls(src_w, src_h, dst_w, dst_h, scale, float(round(dw - 0.1)), float(round(dh - 0.1)))

    @property
    def resized_w(self) -> int:
        return max(round(self.src_w * self.scale), 1)

    @property
    def resized_h(self) -> int:
        return max(round(self.src_h * self.scale), 1)

    def to_source(self, boxes_xyxy: FloatArray) -> FloatArray:
        """Map ``[N, 4]`` xyxy boxes from network input pixels to source pixels, clipped."""
        out = np.empty_like(boxes_xyxy, dtype=np.float32)
        xs, ys = out[:, 0::2], out[:, 1::2]  # views, so the clip below writes into ``out``
        xs[:] = (boxes_xyxy[:, 0::2] - self.pad_x) / self.scale
        ys[:] = (boxes_xyxy[:, 1::2] - self.pad_y) / self.scale
        np.clip(xs, 0.0, float(self.src_w), out=xs)
        np.clip(ys, 0.0, float(self.src_h), out=ys)
        return out


@dataclass
class Detections:
    """Detections of one image, in source-image pixels.

    ``boxes`` is ``[N, 4]`` float32 (x1, y1, x2, y2), ``scores`` ``[N]`` float32 and
    ``class_ids`` ``[N]`` int32, sorted by descending score. ``embeddings`` is ``[N, D]``
    float32 with L2-normalised rows (the appearance of each detection, taken from the
    network's own features at its anchor) where the model has an ``embeddings`` output, else
    None: the tracker then associates by motion only.
    """

    boxes: FloatArray
    scores: FloatArray
    class_ids: IntArray
    embeddings: FloatArray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.class_ids)):
            raise ValueError(
                f"inconsistent detection arrays: {len(self.boxes)} boxes, "
                f"{len(self.scores)} scores, {len(self.class_ids)} class ids"
            )
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.boxes):
                raise ValueError(
                    f"embeddings of shape {self.embeddings.shape} for {len(self.boxes)} detections"
                )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """A subset by boolean mask or index array (order of ``keep`` for indices)."""
        embeddings = self.embeddings[keep] if self.embeddings is not None else None
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep], embeddings)


@dataclass
class EngineOutput:
    """What a backend returns for a batch, before postprocessing.

    Exactly one form is set. ``raw`` is the YOLOv8 head ``[B, 4 + C, A]`` (cx, cy, w, h,
    class scores) for backends without NMS; the ``nms_*`` arrays are the in-engine NMS
    result in network-input pixels: ``nms_count [B]``, ``nms_boxes [B, K, 4]`` xyxy,
    ``nms_scores [B, K]``, ``nms_classes [B, K]``.

    ``embeddings`` (models with an appearance output, else None) follows the form: with
    ``raw`` it is per anchor, ``[B, D, A]``; with the ``nms_*`` arrays it is already gathered
    for the kept detections, ``[B, K, D]`` in the order of ``nms_boxes``. Rows are L2-normalised.

    Asynchronous backends return before the device has finished: their arrays are then views
    of pinned host buffers that the device is still writing, and ``pending`` is set. Call
    :meth:`wait` before reading the arrays (``postprocess`` does): it blocks until this
    batch's results are on the host and replaces the views by copies that the backend's next
    batches cannot overwrite.
    """

    raw: FloatArray | None = None
    nms_count: IntArray | None = None
    nms_boxes: FloatArray | None = None
    nms_scores: FloatArray | None = None
    nms_classes: IntArray | None = None
    embeddings: FloatArray | None = None
    #: Set by an asynchronous backend: waits for the device and detaches the arrays.
    pending: Callable[[EngineOutput], None] | None = field(default=None, repr=False, compare=False)

    @property
    def has_nms(self) -> bool:
        return self.nms_count is not None

    def wait(self) -> EngineOutput:
        """Block until the arrays hold this batch's results (once; then a no-op). Returns self."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending(self)
        return self


@dataclass
class Track:
    """One ByteTrack track as published; box in source pixels, velocity in pixels/frame."""

    track_id: int
    class_id: int
    score: float
    box_xyxy: tuple[float, float, float, float]
    velocity_xy: tuple[float, float]
    age: int
    state: Literal["new", "tracked", "lost", "removed"]
