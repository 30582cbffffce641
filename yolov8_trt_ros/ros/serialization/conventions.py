"""What the published fields mean, shared by the message-object builders and the CDR writers.

Kept apart from both so that the two ways of publishing cannot drift: class labels, the
Detection2D.id that joins a detection to its track, the track state codes, and velocities in
pixels per second of *stamp* time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from yolov8_trt_ros.core.labels import class_name

#: TrackedObject.STATE_* codes by the tracker's state names (yolov8_trt_msgs/TrackedObject.msg).
TRACK_STATE_CODES: dict[str, int] = {"new": 0, "tracked": 1, "lost": 2, "removed": 3}


def class_label(class_id: int, names: Sequence[str], use_names: bool) -> str:
    """The class as published: its name where known and wanted, else its number."""
    return class_name(class_id, names) if use_names else str(class_id)


def detection_id(track_id: int) -> str:
    """Detection2D.id: the id of the track this detection updated, "" when it has none (< 0).

    Equal to the TrackedObject.id of that track, so consumers can join the two topics.
    """
    return str(track_id) if track_id >= 0 else ""


def velocity_scale(dt: float | None, frame_rate: float) -> float:
    """Factor from the Kalman velocity (pixels per processed frame) to pixels per second.

    ``dt`` is the stamp time (s) since this camera's previous *processed* frame: one Kalman step
    spans that time, whatever the camera's nominal rate or how many frames were dropped in
    between. When it is unknown or unusable (first frame, a stamp equal to or before the
    previous one, NaN), the nominal ``frame_rate`` stands in, i.e. every step counts as one
    nominal frame period (what was published before stamps were used). The Kalman velocity
    is smoothed over past steps, so the figure is exact when steps are evenly spaced and an
    approximation for a few frames after the spacing changes.
    """
    if dt is not None and math.isfinite(dt) and dt > 0.0:
        return 1.0 / dt
    return float(frame_rate)


class FrameInterval:
    """Seconds between one camera's processed frames, from their header stamps.

    ``update`` gives None for the first frame and for a stamp that does not move forward (a
    replayed bag restarting, a camera whose clock was reset); the next good stamp is measured
    against the latest one seen, so a jump back costs one frame of fallback, not a negative rate.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    def update(self, sec: int, nanosec: int) -> float | None:
        now = int(sec) * 1_000_000_000 + int(nanosec)
        last, self._last = self._last, now
        if last is None or now <= last:
            return None
        return (now - last) * 1e-9

    def reset(self) -> None:
        self._last = None
