"""Live cameras and streams, read on their own thread with only the newest frame kept (ROS-free).

A live source string is one of:
  * a V4L2 device: an index (``0``) or a path (``/dev/video0``), opened with ``CAP_V4L2``;
  * a network stream: ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` (e.g. MJPEG), ``udp://``,
    ``tcp://``, opened with FFmpeg (open and read timeouts set, so a dead host cannot hang us;
    RTSP over TCP, often needed through NATs: ``OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp``);
  * a GStreamer pipeline (any string with ``!``) ending in ``appsink``, opened with
    ``CAP_GSTREAMER``. OpenCV must be built with GStreamer for that: JetPack's OpenCV is, pip's
    ``opencv-python(-headless)`` is not (a clear error says so). A Jetson CSI camera::

        nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1
        ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR
        ! appsink drop=true max-buffers=1 sync=false

Why a thread and keep-last: a camera delivers at its own rate whatever the consumer does; if
nobody reads, the driver's/FFmpeg's queue fills and the consumer later gets seconds-old frames.
Reading continuously and keeping only the newest means a consumer never sees a stale frame
(the skipped ones are counted as dropped).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
_DEVICE = re.compile(r"^/dev/video\d+$")


def is_live_source(source: str) -> bool:
    """Whether ``source`` names a camera or stream (rather than a file, folder or generator)."""
    s = source.strip()
    return s.isdigit() or bool(_DEVICE.match(s)) or bool(_URL.match(s)) or "!" in s


@dataclass(frozen=True)
class LiveFrame:
    """A captured frame: ``index`` counts frames read (from 1), ``stamp`` is time.monotonic() at capture."""

    image: np.ndarray
    index: int
    stamp: float


def _open_args(source: str) -> tuple[int | str, int, list[int]]:
    """What to hand ``cv2.VideoCapture`` for ``source``: target, backend, open parameters."""
    s = source.strip()
    if "!" in s:
        if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
            raise ValueError(
                f"camera source {source!r} is a GStreamer pipeline but this OpenCV has no GStreamer "
                "(pip's opencv-python is built without it; use the system/JetPack OpenCV)"
            )
        return s, cv2.CAP_GSTREAMER, []
    if _URL.match(s):
        ms = 5000
        return s, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    if s.isdigit():
        return int(s), backend, []
    if not Path(s).exists():
        raise ValueError(f"camera source {source!r}: no such device")
    return s, backend, []


class LiveCapture:
    """A camera or stream read on a daemon thread; ``newest()`` gives the latest frame only.

    ``open()`` waits at most ``open_timeout`` s for the first open (ValueError/RuntimeError naming
    the source if it fails), so a bad source never hangs the caller. A lost stream is reopened
    with a backoff doubling from ``backoff[0]`` to ``backoff[1]`` s; after ``max_reconnects``
    failed tries in a row (None: keep trying, as a robot's camera should) ``state`` is
    ``"failed"`` and ``error`` says why. ``on_frame`` is called from the reader thread after each
    new frame (keep it cheap: e.g. trigger a ROS guard condition).
    """

    def __init__(
        self,
        source: str,
        *,
        open_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.25, 5.0),
        max_reconnects: int | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.open_timeout = open_timeout
        self.backoff = backoff
        self.max_reconnects = max_reconnects
        self.on_frame = on_frame
        self.state = "new"  # new | open | reconnecting | failed | closed
        self.error: str | None = None
        self.frames_read = 0
        self.frames_dropped = 0  # read but replaced before anyone took them
        self.reconnects = 0  # reopen attempts after a loss
        self._frame: LiveFrame | None = None
        self._taken = 0  # index of the last frame handed out
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> LiveCapture:
        """Start reading; raises if the source cannot be opened within ``open_timeout``."""
        target, backend, params = _open_args(self.source)  # a malformed source fails here, at once
        self._thread = threading.Thread(
            target=self._run, args=(target, backend, params), name=f"live:{self.source}", daemon=True
        )
        self._thread.start()
        if not self._opened.wait(self.open_timeout):
            self.close(wait=0.0)
            raise RuntimeError(f"camera source {self.source!r} did not open within {self.open_timeout:g} s")
        if self.state != "open":
            self.close()
            raise RuntimeError(f"cannot open camera source {self.source!r}: {self.error}")
        return self

    def newest(self, after: int | None = None, timeout: float = 0.0) -> LiveFrame | None:
        """The newest frame if newer than index ``after`` (default: the last handed out), else None.

        Waits up to ``timeout`` s for one.
        """
        with self._cond:
            last = self._taken if after is None else after
            self._cond.wait_for(lambda: self._has_newer(last) or self.state in ("failed", "closed"), timeout)
            frame = self._frame
            if frame is None or frame.index <= last:
                return None
            self._taken = max(self._taken, frame.index)
            return frame

    def _has_newer(self, index: int) -> bool:
        return self._frame is not None and self._frame.index > index

    def close(self, wait: float = 5.0) -> None:
        """Stop the reader thread (it notices within one read: a read timeout at worst)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and wait > 0:
            thread.join(wait)
        with self._cond:
            if self.state != "failed":
                self.state = "closed"
            self._cond.notify_all()

    def __enter__(self) -> LiveCapture:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reader thread -------------------------------------------------------------------

    def _connect(self, target: int | str, backend: int, params: list[int]) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(target, backend, params)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._cond:
            if self._stop.is_set() and state != "failed":
                return  # closed meanwhile (an open that outlived its timeout): stays closed
            self.state = state
            self.error = error
            self._cond.notify_all()

    def _run(self, target: int | str, backend: int, params: list[int]) -> None:
        cap = self._connect(target, backend, params)
        if cap is None:
            self._set_state("failed", "the device/stream did not open")
            self._opened.set()
            return
        self._set_state("open")
        self._opened.set()
        failures = 0
        delay = self.backoff[0]
        try:
            while not self._stop.is_set():
                if cap is None:  # lost: reopen, backing off, until stopped or out of tries
                    if self.max_reconnects is not None and failures >= self.max_reconnects:
                        self._set_state("failed", f"stream lost; {failures} reconnect attempts failed")
                        return
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, self.backoff[1])
                    failures += 1
                    self.reconnects += 1
                    cap = self._connect(target, backend, params)
                    if cap is not None:
                        failures, delay = 0, self.backoff[0]
                        self._set_state("open")
                    continue
                ok, image = cap.read()
                if not ok or image is None:
                    cap.release()
                    cap = None
                    self._set_state("reconnecting", "stream lost")
                    continue
                self._publish(image)
        finally:
            if cap is not None:
                cap.release()

    def _publish(self, image: np.ndarray) -> None:
        with self._cond:
            self.frames_read += 1
            if self._frame is not None and self._frame.index > self._taken:
                self.frames_dropped += 1
            self._frame = LiveFrame(image, self.frames_read, time.monotonic())
            self._cond.notify_all()
        if self.on_frame is not None and not self._stop.is_set():  # the consumer may be gone once closed
            self.on_frame()
