"""Frame sources for the camera-source node, the demo and the benchmarks (ROS-free).

A source string names where frames come from:
  * a video file (anything OpenCV's VideoCapture reads),
  * a directory of images (sorted by name) or a single image,
  * ``samples``: ultralytics' bundled photos (bus.jpg, zidane.jpg),
  * ``synthetic[:seed]``: a generated tracking sequence of the project's synthetic scenes
    (moving, occluding objects of the test model's classes), made in memory,
  * a live camera or stream (``0``, ``/dev/video0``, ``rtsp://...``, ``http://...``, a GStreamer
    pipeline): see :mod:`yolov8_trt_ros.core.live_capture`, read at the device's rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolov8_trt_ros.core.live_capture import LiveCapture, is_live_source

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(ValueError):
    """The frame source cannot be opened or holds no frames."""


def image_files(path: Path) -> list[Path]:
    """A folder's images in name order (``IMAGE_SUFFIXES``), or the one file; SourceError if none."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        files = [path]
    if not files:
        raise SourceError(f"no images in {path}")
    return files


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"cannot read image {path}")
    return image


def _synthetic_frames(spec: str, n_frames: int) -> Iterator[np.ndarray]:
    """Frames of synthetic tracking sequence 0 for ``synthetic[:seed]``, rendered as they are read."""
    from yolov8_trt_ros.datasets.tracking import render_tracking_frame

    seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
    for frame in range(n_frames):
        yield render_tracking_frame(seed, 0, frame, n_frames, 640, 480, 8)[0]


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def iter_frames(source: str, loops: int = 1, synthetic_frames: int = 300) -> Iterator[np.ndarray]:
    """bgr8 frames from ``source``, ``loops`` times over (0: forever).

    The source is opened (and a missing one reported) now; frames are read lazily. A live source
    yields its newest frame each time one arrives (``loops`` does not apply) until it fails.
    """
    one_pass: Callable[[], Iterator[np.ndarray]]
    if is_live_source(source):
        return _live_frames(open_live(source))
    if source == "samples":
        from ultralytics.utils import ASSETS

        images = [_read_image(p) for p in image_files(Path(ASSETS))]
        one_pass = lambda: iter(images)  # noqa: E731
    elif source.startswith("synthetic"):
        one_pass = lambda: _synthetic_frames(source, synthetic_frames)  # noqa: E731
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise SourceError(f"source {source!r} does not exist")
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            one_pass = lambda: _video_frames(path)  # noqa: E731
        else:
            files = [_read_image(p) for p in image_files(path)]
            one_pass = lambda: iter(files)  # noqa: E731
    return _repeat(one_pass, loops, source)


def open_live(source: str, **kwargs: Any) -> LiveCapture:
    """A started :class:`LiveCapture` of ``source``; a source that cannot open is a SourceError."""
    try:
        return LiveCapture(source, **kwargs).open()
    except (ValueError, RuntimeError) as exc:
        raise SourceError(str(exc)) from exc


def _live_frames(capture: LiveCapture) -> Iterator[np.ndarray]:
    try:
        while True:
            frame = capture.newest(timeout=1.0)
            if frame is not None:
                yield frame.image
            elif capture.state in ("failed", "closed"):
                return
    finally:
        capture.close()


def read_frames(source: str, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` bgr8 frames of ``source``, decoded now (for benchmarks: no I/O when timed)."""
    frames = list(itertools.islice(iter_frames(source), limit))
    if not frames:
        raise SourceError(f"source {source!r} holds no frames")
    return frames


def _repeat(one_pass: Callable[[], Iterator[np.ndarray]], loops: int, source: str) -> Iterator[np.ndarray]:
    done = 0
    while loops == 0 or done < loops:
        yielded = False
        for frame in one_pass():
            yielded = True
            yield frame
        if not yielded:
            raise SourceError(f"source {source!r} has no frames")
        done += 1


def convert_bgr(frame: np.ndarray, encoding: str) -> np.ndarray:
    """A bgr8 frame in another encoding the node accepts (OpenCV has no BGR→YUYV, so not that)."""
    conversions = {
        "bgr8": None,
        "rgb8": cv2.COLOR_BGR2RGB,
        "mono8": cv2.COLOR_BGR2GRAY,
        "bgra8": cv2.COLOR_BGR2BGRA,
        "rgba8": cv2.COLOR_BGR2RGBA,
    }
    if encoding not in conversions:
        raise SourceError(f"camera source cannot produce {encoding!r}; use one of {list(conversions)}")
    code = conversions[encoding]
    return frame if code is None else cv2.cvtColor(frame, code)
