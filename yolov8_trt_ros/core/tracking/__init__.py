"""ByteTrack: a batched Kalman filter, two-stage IoU association and the track lifecycle; with
re-identification on, BoT-SORT-style appearance and a gallery of lost tracks (same class)."""

from yolov8_trt_ros.core.tracking.bytetrack import ByteTracker
from yolov8_trt_ros.core.tracking.kalman import KalmanFilterXYAH

__all__ = ["ByteTracker", "KalmanFilterXYAH"]
