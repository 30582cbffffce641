"""The inference thread: batches from :class:`FrameSlots` through the pipeline, results handed on.

One thread owns the pipeline's hot path, so the middleware's thread only stores frames.
The loop overlaps host and device work only when it pays:

* nothing launched: wait for a batch (bounded wait to fill a multi-camera batch), launch it;
* a batch in flight: if a full next batch is already waiting, launch it *before* finishing the
  current one (its upload, preprocessing and inference run while the host postprocesses,
  tracks and publishes the current one); otherwise finish the current one at once, so a frame
  that arrives alone is answered without waiting for the next.

A frame that cannot be decoded is reported and left out of its batch; the others go on.
Nothing raised by one frame or batch stops the thread.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolov8_trt_ros.core.frame_slots import Frame, FrameSlots
from yolov8_trt_ros.core.image_input import ImageError
from yolov8_trt_ros.core.pipeline import FrameResult, InFlight, Pipeline

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker forms batches."""

    max_batch: int = 1
    #: Longest wait for the other live cameras once one frame is there (multi-camera batches).
    fill_timeout_s: float = 0.0
    #: How often an idle worker checks for stop (it wakes at once for a frame).
    idle_poll_s: float = 0.1


@dataclass
class DecodedFrame:
    """One frame of a batch: its source, its pixels and what the decoder read beside them."""

    stream: Hashable
    image: np.ndarray
    encoding: str
    meta: Any  # e.g. the message header, for the results' messages


#: Item → (pixels, encoding, meta); raises (ImageError for bad input) to skip the frame.
Decode = Callable[[Any], tuple[np.ndarray, str, Any]]
Deliver = Callable[[list[DecodedFrame], list[FrameResult]], None]
ReportBad = Callable[[str, str], None]  # (reason, text)


class InferenceWorker:
    """Runs :meth:`Pipeline.launch` / :meth:`Pipeline.finish` on one thread (module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        slots: FrameSlots,
        decode: Decode,
        deliver: Deliver,
        report_bad: ReportBad,
        cfg: WorkerConfig | None = None,
        name: str = "yolov8_worker",
    ) -> None:
        self._pipeline = pipeline
        self._slots = slots
        self._decode = decode
        self._deliver = deliver
        self._report_bad = report_bad
        self.cfg = cfg or WorkerConfig()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the thread to stop and wait; False if it is still running after ``timeout``."""
        self._stop.set()
        self._slots.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        cfg = self.cfg
        lanes = self._pipeline.lanes()
        pending: tuple[list[DecodedFrame], InFlight] | None = None
        while not self._stop.is_set():
            if pending is None:
                frames = self._slots.take_batch(
                    cfg.max_batch, cfg.idle_poll_s, cfg.fill_timeout_s, notify=False
                )
            else:
                frames = self._slots.take_full(cfg.max_batch, notify=False)
            launched = None
            if frames:
                launched = self._launch(frames, lanes.take())
                # Freed slots are announced only now that the batch is on the GPU: the node's
                # executor then takes the next frame (a Python wait-set rebuild and, for a big
                # frame, a copy under the GIL) while this thread waits for the device, not
                # beside the preprocessing, which needs the GIL too.
                self._slots.notify_taken()
            if pending is not None:
                self._finish(*pending)
            pending = launched
        if pending is not None:  # the publishers still exist until the worker has stopped
            self._finish(*pending)

    def _launch(self, frames: list[Frame], lane: Any) -> tuple[list[DecodedFrame], InFlight] | None:
        prof = self._pipeline.profiler
        decoded: list[DecodedFrame] = []
        with prof.stage("convert"):
            for stream, item in frames:
                try:
                    image, encoding, meta = self._decode(item)
                except Exception as exc:
                    self._bad(exc)
                    continue
                decoded.append(DecodedFrame(stream, image, encoding, meta))
        if not decoded:
            return None
        try:
            job = self._pipeline.launch(
                [d.image for d in decoded],
                [d.encoding for d in decoded],
                [d.stream for d in decoded],
                lane=lane,
            )
        except Exception as exc:
            for _ in decoded:
                self._bad(exc)
            return None
        return decoded, job

    def _finish(self, decoded: list[DecodedFrame], job: InFlight) -> None:
        try:
            results = self._pipeline.finish(job)
            self._deliver(decoded, results)
        except Exception as exc:
            for _ in decoded:
                self._bad(exc)
            return
        self._pipeline.profiler.frame_done(len(decoded))

    def _bad(self, exc: Exception) -> None:
        if isinstance(exc, ImageError):
            self._report_bad(exc.reason, str(exc))
        else:  # never let one frame stop the node; the traceback says where
            self._report_bad("processing_error", f"{exc}\n{traceback.format_exc(limit=4)}")
