"""The one data path: images → preprocess → engine → postprocess → filters → tracker.

The node and the scripts only call ``Pipeline``; each stage is a module with a small typed
interface, chosen here once from the stage configs and the backend's capabilities.

Two ways in: :meth:`Pipeline.process` runs one batch through every stage and returns its
results; :meth:`Pipeline.process_stream` takes an iterable of batches and enqueues batch
*k + 1*'s upload, preprocessing and inference before it finishes batch *k* on the host
(postprocess, filters, tracker), so the GPU works on the next frame while Python tracks the
last one. Same results, same order; one batch of extra latency.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolov8_trt_ros.core.backends.base import Backend
from yolov8_trt_ros.core.config import (
    EngineConfig,
    FilterConfig,
    PostprocessConfig,
    PreprocessConfig,
    TrackerConfig,
    lowest_threshold,
)
from yolov8_trt_ros.core.filters import DetectionFilter
from yolov8_trt_ros.core.postprocess import postprocess
from yolov8_trt_ros.core.profiling import Profiler
from yolov8_trt_ros.core.tracking.bytetrack import ByteTracker
from yolov8_trt_ros.core.types import Detections, EngineOutput, Letterbox, Track

LOG = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """The five stage configs together, as read from one YAML/ROS parameter set."""

    preprocess: PreprocessConfig
    engine: EngineConfig
    postprocess: PostprocessConfig
    filters: FilterConfig
    tracker: TrackerConfig

    @classmethod
    def default(cls) -> PipelineConfig:
        return cls(PreprocessConfig(), EngineConfig(), PostprocessConfig(), FilterConfig(), TrackerConfig())


@dataclass
class FrameResult:
    """What the pipeline gives back for one image."""

    detections: Detections
    tracks: list[Track] | None
    letterbox: Letterbox
    #: Per detection, the id of the track it updated (-1: none); None with tracking off.
    track_ids: np.ndarray | None = None


@dataclass
class InFlight:
    """One batch between :meth:`Pipeline.launch` and :meth:`Pipeline.finish`."""

    output: EngineOutput
    letterboxes: list[Letterbox]
    lane: Any  # the torch stream the output is ready on (CUDA backend), else None
    streams: list[Hashable]  # each image's source; one tracker per source


class _Lanes:
    """Two alternating torch streams on which the CUDA backend's outputs are handed over.

    :class:`~yolov8_trt_ros.core.backends.cuda_backend.CudaBackend` makes the caller's
    *current* stream wait for its engine stream. Were every batch handed to one stream,
    batch *k*'s postprocessing would queue behind batch *k + 1*'s inference, launched just
    before it, and the overlap would be lost. With two lanes batch *k* waits only for its own
    inference, and its small postprocessing kernels (high priority) run beside the next
    inference. Other backends need no lanes: their outputs are host arrays.
    """

    def __init__(self, backend: Backend) -> None:
        self._streams: list[Any] = []
        self._next = 0
        if backend.info.name == "cuda" and not backend.info.has_nms:  # raw torch head only
            import torch

            device = torch.device(backend.info.device)
            self._streams = [torch.cuda.Stream(device, priority=-1) for _ in range(2)]

    def take(self) -> Any:
        """The next lane (None without lanes)."""
        if not self._streams:
            return None
        lane = self._streams[self._next]
        self._next ^= 1
        return lane


def _on(lane: Any) -> contextlib.AbstractContextManager[Any]:
    """Make ``lane`` the current torch stream (nothing for None)."""
    if lane is None:
        return contextlib.nullcontext()
    import torch

    return torch.cuda.stream(lane)


def _make_preprocessor(cfg: PreprocessConfig, backend: Backend) -> Any:
    """CPU letterbox for CPU backends, the fused CUDA kernel on the engine's stream otherwise."""
    if backend.info.device == "cpu":
        from yolov8_trt_ros.core.preprocess import CpuPreprocessor

        return CpuPreprocessor(cfg)
    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    device_id = int(backend.info.device.split(":")[1]) if ":" in backend.info.device else 0
    return CudaPreprocessor(cfg, device_id=device_id, stream=getattr(backend, "stream", None))


class Pipeline:
    """Owns one backend and the stages around it; thread-safe for config updates.

    ``process`` runs on one worker thread; ``update_*`` may be called from another (the ROS
    parameter callback) and take effect from the next frame.
    """

    def __init__(self, cfg: PipelineConfig, backend: Backend, profiler: Profiler | None = None) -> None:
        self.backend = backend
        info = backend.info
        # The network's input size wins over the configured one: an engine has a fixed size.
        self.preprocess_cfg = cfg.preprocess.replace(
            input_width=info.input_width, input_height=info.input_height, fp16=info.input_fp16
        )
        self.preprocessor = _make_preprocessor(self.preprocess_cfg, backend)
        self.filter = DetectionFilter(cfg.filters, cfg.postprocess.conf_threshold)
        self.postprocess_cfg = self._decode_config(cfg.postprocess, cfg.filters)
        self.tracker_cfg = cfg.tracker
        #: One tracker per input stream (camera), keyed by the ``streams`` given to ``launch``.
        self.trackers: dict[Hashable, ByteTracker] = {}
        self.profiler = profiler or Profiler()
        #: The postprocess settings the backend was built with (its in-engine NMS, if any).
        self.engine_postprocess = cfg.postprocess
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls, cfg: PipelineConfig, profiler: Profiler | None = None, embeddings: bool | None = None
    ) -> Pipeline:
        """Load the backend named by ``cfg.engine`` (``auto`` picks the best available).

        ``embeddings`` (default: whether ``cfg.tracker.reid_enabled``): the backend returns each
        detection's appearance embedding; they cost device time, so only re-identification (or
        a caller that records them) asks for them.

        If a later stage fails to build, the backend is closed before the error propagates: a
        configure retried after such a failure must not leak an engine and its GPU memory.
        """
        from yolov8_trt_ros.core.backends.factory import create_backend

        # An engine with NMS inside keeps candidates down to the lowest threshold any class needs.
        engine_post = cfg.postprocess.replace(conf_threshold=lowest_threshold(cfg.postprocess, cfg.filters))
        wanted = cfg.tracker.reid_enabled if embeddings is None else embeddings
        backend = create_backend(cfg.engine, engine_post, embeddings=wanted)
        try:
            pipeline = cls(cfg, backend, profiler)
        except BaseException:
            backend.close()
            raise
        pipeline.engine_postprocess = engine_post
        return pipeline

    def lanes(self) -> _Lanes:
        """Alternating output streams for a caller that overlaps batches (see :class:`_Lanes`)."""
        return _Lanes(self.backend)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.backend.info, "class_names", ()) or ())

    def process(
        self,
        images: Sequence[np.ndarray],
        encodings: Sequence[str],
        streams: Sequence[Hashable] | None = None,
    ) -> list[FrameResult]:
        """Run all stages on a batch of decoded images (HWC uint8 views, any supported encoding).

        ``streams``: each image's source, for its tracker (see :meth:`launch`).
        """
        return self.finish(self.launch(images, encodings, streams))

    def process_stream(
        self, batches: Iterable[tuple[Sequence[np.ndarray], Sequence[str]]]
    ) -> Iterator[list[FrameResult]]:
        """``process`` over ``(images, encodings)`` batches, overlapping host and device work.

        Yields each batch's results in input order, equal to what ``process`` would return
        for the same sequence of calls: batch *k + 1* is preprocessed and its inference
        enqueued before batch *k* is postprocessed and tracked, and on the CUDA backend the
        GPU runs it meanwhile (on other backends ``infer`` blocks and nothing overlaps).
        ``batches`` is read one batch ahead of the results (a batch's images are copied by
        the preprocessor when it is read, so their buffers are free from then on). If a batch
        raises (a bad image, say), the batch before it is yielded first and the error then
        propagates; a generator closed early drops the one batch in flight, untracked.
        """
        lanes = self.lanes()
        pending: InFlight | None = None
        for images, encodings in batches:
            try:
                launched = self.launch(images, encodings, lane=lanes.take())
            except Exception:
                if pending is not None:
                    done, pending = pending, None
                    yield self.finish(done)
                raise
            if pending is not None:
                yield self.finish(pending)
            pending = launched
        if pending is not None:
            yield self.finish(pending)

    def launch(
        self,
        images: Sequence[np.ndarray],
        encodings: Sequence[str],
        streams: Sequence[Hashable] | None = None,
        lane: Any = None,
    ) -> InFlight:
        """Preprocess and start inference; :meth:`finish` completes the batch.

        ``streams`` names each image's source (a camera): each stream has its own tracker.
        Without it every image is a frame of one stream, in batch order. The images' buffers
        are free once this returns (the preprocessor has copied them). With a lane (a torch
        stream, see :class:`_Lanes`) the output is ready on that stream.
        """
        prof = self.profiler
        with prof.stage("preprocess"):
            tensor, letterboxes = self.preprocessor(images, encodings)
        with prof.stage("inference"), _on(lane):
            update = getattr(self.backend, "update_postprocess", None)  # GPU NMS: device thresholds
            if update is not None:
                update(self.postprocess_cfg)
            output = self.backend.infer(tensor)
        sources: list[Hashable] = list(streams) if streams is not None else [0] * len(images)
        return InFlight(output, letterboxes, lane, sources)

    def finish(self, job: InFlight) -> list[FrameResult]:
        """Postprocess, filter and track one launched batch (blocks until its output is ready).

        Holds the config lock for the whole batch: a parameter update waits for the batch in
        progress and applies to every later one, never to part of one (the filter and the
        trackers are updated in place). Frames of one stream go through that stream's tracker,
        in batch order.
        """
        prof = self.profiler
        with self._lock:
            post_cfg, det_filter = self.postprocess_cfg, self.filter
            output = job.output
            with prof.stage("postprocess"), _on(job.lane):
                output.wait()  # asynchronous backends: the results are on the host from here
                if output.raw is not None and not isinstance(output.raw, np.ndarray):
                    from yolov8_trt_ros.core.postprocess import postprocess_torch

                    dets = postprocess_torch(output.raw, job.letterboxes, post_cfg, output.embeddings)
                else:
                    dets = postprocess(output, job.letterboxes, post_cfg)
                dets = [det_filter(d) for d in dets]
            results: list[FrameResult] = []
            with prof.stage("tracking"):
                for d, lb, stream in zip(dets, job.letterboxes, job.streams, strict=True):
                    if not self.tracker_cfg.enabled:
                        results.append(FrameResult(d, None, lb))
                        continue
                    tracker = self._tracker_for(stream)
                    tracks = tracker.update(d)
                    results.append(FrameResult(d, tracks, lb, tracker.detection_track_ids))
        return results

    def _tracker_for(self, stream: Hashable) -> ByteTracker:
        """The tracker of one input stream (a camera), made on its first frame."""
        tracker = self.trackers.get(stream)
        if tracker is None:
            tracker = self.trackers[stream] = ByteTracker(self.tracker_cfg)
        return tracker

    def _decode_config(self, post: PostprocessConfig, filters: FilterConfig) -> PostprocessConfig:
        """Decode with the lowest threshold any class may need; the filter applies the rest.

        A per-class threshold below the global one must see that class's low-score boxes.
        """
        lowest = min([post.conf_threshold, *filters.class_thresholds.values()])
        return post.replace(num_classes=self.backend.info.num_classes, conf_threshold=lowest)

    def update_preprocess(self, cfg: PreprocessConfig) -> None:
        """The run-time part of the preprocess config (``max_image_pixels``); sizes stay the engine's."""
        with self._lock:
            self.preprocess_cfg = self.preprocess_cfg.replace(max_image_pixels=cfg.max_image_pixels)
            self.preprocessor.cfg = self.preprocess_cfg

    def update_postprocess(self, cfg: PostprocessConfig) -> None:
        with self._lock:
            self.filter.update(self.filter.cfg, cfg.conf_threshold)
            self.postprocess_cfg = self._decode_config(cfg, self.filter.cfg)

    def update_filters(self, cfg: FilterConfig) -> None:
        with self._lock:
            conf = self.filter.conf_threshold
            self.filter.update(cfg, conf)
            self.postprocess_cfg = self._decode_config(self.postprocess_cfg.replace(conf_threshold=conf), cfg)

    def update_tracker(self, cfg: TrackerConfig) -> None:
        with self._lock:
            self.tracker_cfg = cfg
            for tracker in self.trackers.values():
                tracker.update_config(cfg)

    def reset_tracker(self) -> None:
        """Forget every stream's tracks (track ids restart)."""
        with self._lock:
            self.trackers.clear()

    def close(self) -> None:
        """Free the engine and device buffers (lifecycle cleanup)."""
        self.backend.close()
        close = getattr(self.preprocessor, "close", None)
        if close is not None:
            close()
