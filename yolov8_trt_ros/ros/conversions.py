"""Between ROS messages and the core's types: images in, detections/tracks/debug images out.

No cv_bridge: it is not installable from PyPI and the node needs only a zero-copy view of
``Image.data`` (validated by core.image_input) and a few message builders.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolov8_trt_msgs.msg import TrackedObject, TrackedObjectArray
from yolov8_trt_ros.core.drawing import annotate
from yolov8_trt_ros.core.image_input import decode_compressed, image_from_buffer
from yolov8_trt_ros.core.preprocess import to_bgr8
from yolov8_trt_ros.core.types import Detections, Track
from yolov8_trt_ros.ros.serialization import (
    TRACK_STATE_CODES,
    FrameHeader,
    ImageView,
    class_label,
    detection_id,
    parse_compressed_image,
    parse_image,
    velocity_scale,
)

__all__ = [
    "annotate",
    "array_to_image",
    "class_label",
    "compressed_to_array",
    "detections_to_msg",
    "frame_header",
    "image_to_array",
    "raw_compressed_to_array",
    "raw_image_to_array",
    "to_bgr",
    "tracks_to_msg",
]


def image_to_array(msg: Image | ImageView, max_pixels: int) -> tuple[np.ndarray, str]:
    """A validated HWC view of ``msg.data`` and its encoding; raises ImageError on bad input.

    ``msg`` is an Image message or the view :func:`parse_image` makes of its serialized bytes.
    """
    array = image_from_buffer(
        msg.data,
        width=msg.width,
        height=msg.height,
        step=msg.step,
        encoding=msg.encoding,
        is_bigendian=bool(msg.is_bigendian),
        max_pixels=max_pixels,
    )
    return array, msg.encoding


def compressed_to_array(msg: CompressedImage, max_pixels: int) -> tuple[np.ndarray, str]:
    """Decode a JPEG/PNG ``CompressedImage`` to bgr8; raises ImageError on corrupt data."""
    return decode_compressed(bytes(msg.data), max_pixels=max_pixels), "bgr8"


def frame_header(header: Header) -> FrameHeader:
    """The header fields the serialized writers take, from a std_msgs/Header."""
    return FrameHeader(header.stamp.sec, header.stamp.nanosec, header.frame_id)


def raw_image_to_array(raw: bytes | memoryview, max_pixels: int) -> tuple[np.ndarray, str, FrameHeader]:
    """``image_to_array`` for the bytes of a ``raw=True`` Image subscription, plus its header.

    The array is a view into ``raw`` (no pixel copied); raises ImageError on bad bytes or image.
    """
    view = parse_image(raw)
    return (*image_to_array(view, max_pixels), view.header)


def raw_compressed_to_array(raw: bytes | memoryview, max_pixels: int) -> tuple[np.ndarray, str, FrameHeader]:
    """``compressed_to_array`` for the bytes of a ``raw=True`` CompressedImage subscription."""
    msg = parse_compressed_image(raw)
    return decode_compressed(msg.data, max_pixels=max_pixels), "bgr8", msg.header


def array_to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """An Image message holding a copy of a contiguous HWC uint8 array."""
    array = np.ascontiguousarray(array)
    msg = Image(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding)
    msg.is_bigendian = 0
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def _set_box(det_bbox: object, box: Sequence[float]) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    det_bbox.center.position.x = (x1 + x2) / 2.0  # type: ignore[attr-defined]
    det_bbox.center.position.y = (y1 + y2) / 2.0  # type: ignore[attr-defined]
    det_bbox.size_x = x2 - x1  # type: ignore[attr-defined]
    det_bbox.size_y = y2 - y1  # type: ignore[attr-defined]


def detections_to_msg(
    dets: Detections,
    header: Header,
    names: Sequence[str],
    use_names: bool,
    track_ids: Sequence[int] | np.ndarray | None = None,
) -> Detection2DArray:
    """Detection2DArray with the input image's header, boxes in source-image pixels.

    ``track_ids`` (aligned with ``dets``, -1 for none) fills ``Detection2D.id`` with the id of
    the track each detection updated (see ``conventions.detection_id``); without it ids are "".
    The CDR twin is ``serialization.DetectionArrayWriter``: keep both in step.
    """
    out = Detection2DArray(header=header)
    boxes = dets.boxes.tolist()
    scores = dets.scores.tolist()
    classes = dets.class_ids.tolist()
    if track_ids is None:
        ids = [""] * len(classes)
    else:
        ids = [detection_id(t) for t in np.asarray(track_ids, np.int64).reshape(-1).tolist()]
        if len(ids) != len(classes):
            raise ValueError(f"{len(ids)} track ids for {len(classes)} detections")
    for box, score, cls, det_id in zip(boxes, scores, classes, ids, strict=True):
        det = Detection2D(header=header, id=det_id)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = class_label(cls, names, use_names)
        hyp.hypothesis.score = float(score)
        hyp.pose.pose.position.x = (box[0] + box[2]) / 2.0
        hyp.pose.pose.position.y = (box[1] + box[3]) / 2.0
        det.results.append(hyp)
        _set_box(det.bbox, box)
        out.detections.append(det)
    return out


def tracks_to_msg(
    tracks: Sequence[Track],
    header: Header,
    names: Sequence[str],
    use_names: bool,
    frame_rate: float,
    dt: float | None = None,
) -> TrackedObjectArray:
    """TrackedObjectArray; Kalman velocities (pixels/frame) converted to pixels/second.

    ``dt`` is the stamp time since this camera's previous processed frame (``FrameInterval``);
    where it is None or not positive the nominal ``frame_rate`` is used (``velocity_scale``).
    The CDR twin is ``serialization.TrackArrayWriter``: keep both in step.
    """
    scale = velocity_scale(dt, frame_rate)
    out = TrackedObjectArray(header=header)
    for t in tracks:
        obj = TrackedObject()
        obj.id = int(t.track_id)
        obj.class_index = int(t.class_id)
        obj.class_id = class_label(t.class_id, names, use_names)
        obj.score = float(t.score)
        _set_box(obj.bbox, t.box_xyxy)
        obj.velocity_x = float(t.velocity_xy[0] * scale)
        obj.velocity_y = float(t.velocity_xy[1] * scale)
        obj.age = int(t.age)
        obj.state = TRACK_STATE_CODES[t.state]
        out.objects.append(obj)
    return out


def to_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    """A bgr8 copy of a decoded image in any supported encoding, for drawing.

    The CPU preprocessor's own conversions (OpenCV's; 16-bit grey ``>> 8``), so the debug image
    shows what the network was given.
    """
    return to_bgr8(image, encoding)
