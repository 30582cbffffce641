"""Detections and tracks drawn on an image (ROS-free).

One drawing for every consumer: the node's debug image (``ros/debug_image.py``) and the
``yolov8_trt_ros.detect`` sanity tool show the same boxes, colours and labels, so what a user
sees on a new machine without ROS is what the node will publish.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from yolov8_trt_ros.core.labels import class_name
from yolov8_trt_ros.core.preprocess import to_bgr8
from yolov8_trt_ros.core.types import Detections, Track


def palette(index: int) -> tuple[int, int, int]:
    """A bright BGR colour per class id, stable across runs (hue steps of 47 of OpenCV's 180)."""
    hue = (index * 47) % 180
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def annotate(
    image: np.ndarray,
    encoding: str,
    dets: Detections,
    tracks: Sequence[Track] | None,
    names: Sequence[str],
    roi: Sequence[float] = (),
) -> np.ndarray:
    """Boxes, labels, track IDs and the ROI drawn on a bgr8 copy (OpenCV, no per-pixel Python).

    The copy is made with the CPU preprocessor's own conversions (always a new array), so the
    picture shows what the network was given and ``image`` itself is never written to.
    """
    canvas = to_bgr8(image, encoding)
    if len(roi) >= 4:
        pts = np.asarray(roi, np.float32).reshape(-1, 2)
        if len(roi) == 4:
            (x1, y1), (x2, y2) = pts
            pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
        cv2.polylines(canvas, [pts.astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
    for box, score, cls in zip(
        dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), strict=True
    ):
        p1, p2 = (int(box[0]), int(box[1])), (int(box[2]), int(box[3]))
        color = palette(cls)
        cv2.rectangle(canvas, p1, p2, color, 2)
        text = f"{class_name(cls, names)} {score:.2f}"
        cv2.putText(
            canvas, text, (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA
        )
    for t in tracks or ():
        if t.state != "tracked":
            continue
        x1, y1, x2, y2 = (int(v) for v in t.box_xyxy)
        cv2.putText(
            canvas,
            f"#{t.track_id}",
            (x1 + 2, y2 - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        vx, vy = t.velocity_xy
        cv2.arrowedLine(
            canvas, (cx, cy), (int(cx + 5 * vx), int(cy + 5 * vy)), (255, 255, 255), 1, cv2.LINE_AA
        )
    return canvas
