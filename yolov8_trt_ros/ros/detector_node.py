"""The lifecycle node: camera images in, Detection2DArray, tracked objects and diagnostics out.

States govern resources: ``configure`` validates parameters, loads (or builds) the engine,
allocates buffers and warms up; ``activate`` subscribes and publishes; ``deactivate`` stops
without freeing the engine; ``cleanup`` frees engine and GPU memory and resets the tracker.
Frames are taken from the subscriptions by the rcl intake's thread (``ros/rcl_intake.py``; the
executor where rcl cannot be bound) and handed to one inference thread through keep-last slots
(``core/frame_slots.py``, ``core/inference_worker.py``), so nothing waits on inference and a
stale frame is dropped (and counted), never queued. Several cameras
(``image_topics``) are batched into one inference, each with its own tracker and outputs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from yolov8_trt_msgs.msg import TrackedObjectArray
from yolov8_trt_ros.core.config import EngineNms
from yolov8_trt_ros.core.frame_slots import FrameSlots
from yolov8_trt_ros.core.inference_worker import DecodedFrame, InferenceWorker, WorkerConfig
from yolov8_trt_ros.core.labels import resolve_class_names
from yolov8_trt_ros.core.pipeline import FrameResult, Pipeline
from yolov8_trt_ros.core.profiling import Profiler, memory_snapshot, open_device_monitor
from yolov8_trt_ros.ros import conversions, signals, spin
from yolov8_trt_ros.ros.cameras import Camera, cameras_from
from yolov8_trt_ros.ros.debug_image import DebugFrame, DebugImagePublisher
from yolov8_trt_ros.ros.diagnostics import DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC, NodeDiagnostics
from yolov8_trt_ros.ros.frame_gate import SequenceGaps, SlotGate, TakenElsewhere
from yolov8_trt_ros.ros.labels import LABEL_INFO_QOS, LABEL_INFO_TOPIC, label_info_msg
from yolov8_trt_ros.ros.model_update import ModelUpdater
from yolov8_trt_ros.ros.parameters import (
    NodeOptions,
    changed_stages,
    check_change,
    current_values,
    declare_all,
    validate_values,
)
from yolov8_trt_ros.ros.rcl_intake import RclIntake
from yolov8_trt_ros.ros.rcl_take import RclLibrary
from yolov8_trt_ros.ros.sd_notify import SystemdNotifier
from yolov8_trt_ros.ros.serialization import (
    DetectionArrayWriter,
    FrameHeader,
    TrackArrayWriter,
    velocity_scale,
)
from yolov8_trt_ros.ros.threaded_configure import ThreadedConfigure

RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Reliable so that rviz (reliable by default) and the recorder both connect; shallow so a slow
# viewer never holds frames back.
DEBUG_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
BAD_INPUT_LOG_PERIOD_S = 10.0


@dataclass(frozen=True)
class MessageWriters:
    """The serialized writers of the node's result messages (class labels baked in)."""

    detections: DetectionArrayWriter
    tracks: TrackArrayWriter

    @classmethod
    def create(cls, names: Sequence[str], use_names: bool) -> MessageWriters:
        return cls(DetectionArrayWriter(names, use_names), TrackArrayWriter(names, use_names))


@dataclass(frozen=True)
class LoadedModel:
    """What configure's long part hands to ``on_configure``: a warmed-up pipeline and its settings."""

    pipeline: Pipeline
    class_names: tuple[str, ...]
    opts: NodeOptions
    engine_nms: EngineNms | None
    cameras: list[Camera]
    writers: MessageWriters


class YoloDetectorNode(LifecycleNode):
    """YOLOv8 detection + ByteTrack as a managed node (see module docstring)."""

    def __init__(self, node_name: str = "yolov8_trt_node", **kwargs: Any) -> None:
        # LifecycleNode's own __init__, with a reentrant group for the lifecycle services (a
        # configure awaiting its engine build must not hold get_state back), which
        # LifecycleNode does not pass on to its mixin.
        Node.__init__(self, node_name, **kwargs)
        control = ReentrantCallbackGroup()
        LifecycleNodeMixin.__init__(self, callback_group=control)
        declare_all(self)
        self.pipeline: Pipeline | None = None
        self.profiler = Profiler()
        self._diag = NodeDiagnostics(self.get_name(), warn=self.get_logger().warning)
        self.counters = self._diag.counters  # thread-safe: the inference thread counts too
        self._engine_nms: EngineNms | None = None
        self._bad_log_times: dict[str, float] = {}
        self._cameras: list[Camera] = []
        self._slots: FrameSlots | None = None
        self._worker: InferenceWorker | None = None
        self._debug: DebugImagePublisher | None = None
        self._frame_guard: Any = None
        self._intake: RclIntake | None = None
        self._intake_kind = "none"  # "rcl" or "executor" while active
        self._subs: list[Any] = []
        # Not ``_timers``: that is rclpy's own list of the node's timers.
        self._run_timers: list[Any] = []
        self._label_pub: Any = None
        self._state = "unconfigured"
        self._class_names: tuple[str, ...] = ()
        self._writers: MessageWriters | None = None
        self._opts = NodeOptions.from_values(current_values(self))
        self._closing = False  # set at shutdown: a configure still loading then frees what it loaded
        self._configurer = ThreadedConfigure(self, self._prepare, control)
        # Diagnostics in every state, so a monitor sees "unconfigured" or "inactive", not silence.
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._diag_timer = self.create_timer(self._opts.diagnostics_period, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        # Over-the-air model updates and the systemd notify protocol (deploy/README.md).
        self.model_updater = ModelUpdater(self, self.configure_async, control)
        self.systemd = SystemdNotifier(self)
        if self.get_parameter("autostart").value:
            # A coroutine callback (rclpy awaits it; its annotations only name plain callables).
            self._autostart_timer = self.create_timer(0.0, self._autostart, callback_group=control)  # type: ignore[arg-type]

    # --- lifecycle ------------------------------------------------------------------------
    async def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if await self.configure_async() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    async def configure_async(self) -> TransitionCallbackReturn:
        """Configure with the engine loaded (or built) off the executor, from a coroutine callback."""
        return await self._configurer.configure()

    def _prepare(self) -> LoadedModel | Exception:
        """Configure's long part, ROS-free, on a thread of its own (``ros/threaded_configure.py``)."""
        self._state = "configuring"  # parameter changes are refused until it ends
        try:
            return self._load(current_values(self))
        except Exception as exc:  # reported by on_configure, on the executor's thread
            return exc

    def _load(self, values: dict[str, Any]) -> LoadedModel:
        """Validate, load (or build) the engine, warm it up; the pipeline is closed on any failure."""
        base, base_opts = validate_values(values, None)
        pipeline = Pipeline.create(base, self.profiler)
        try:
            info = pipeline.backend.info
            names = resolve_class_names(pipeline.class_names, info.num_classes, base_opts.labels_file)
            cfg, opts = validate_values(values, names)
            engine_nms = EngineNms.from_postprocess(pipeline.engine_postprocess) if info.has_nms else None
            pipeline.update_filters(cfg.filters)
            cameras = cameras_from(list(opts.image_topics), opts.compressed_input)
            self._warm_up(pipeline, min(len(cameras), cfg.engine.batch_size))
            if self._closing:
                raise RuntimeError("the node shut down while it configured")
        except BaseException:
            pipeline.close()
            raise
        writers = MessageWriters.create(names, opts.publish_class_names)
        return LoadedModel(pipeline, names, opts, engine_nms, cameras, writers)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        prepared = self._configurer.take()  # None: triggered directly, load here
        try:
            loaded = self._load(current_values(self)) if prepared is None else prepared
            if isinstance(loaded, Exception):
                raise loaded
        except Exception as exc:  # any failure leaves the node unconfigured, ready to retry
            self.get_logger().error(f"configure failed: {exc}")
            self._diag.configure_failed(str(exc))
            self._state = "unconfigured"
            return TransitionCallbackReturn.FAILURE
        self.pipeline = loaded.pipeline
        self._class_names = loaded.class_names
        self._opts = loaded.opts
        self._engine_nms = loaded.engine_nms
        self._cameras = loaded.cameras
        self._writers = loaded.writers
        info = loaded.pipeline.backend.info
        self._diag.configured()
        self._diag_timer.timer_period_ns = int(self._opts.diagnostics_period * 1e9)
        self._open_monitor()
        publisher = self.create_lifecycle_publisher
        for cam in self._cameras:
            cam.detections = publisher(Detection2DArray, cam.output("detections"), RESULT_QOS)
            cam.tracks = publisher(TrackedObjectArray, cam.output("tracks"), RESULT_QOS)
            cam.debug_image = publisher(Image, cam.output("debug_image"), DEBUG_QOS)
        # The class map, transient-local: a consumer that starts later still gets it.
        self._label_pub = self.create_publisher(LabelInfo, LABEL_INFO_TOPIC, LABEL_INFO_QOS)
        self._publish_label_info()
        self.get_logger().info(
            f"configured: backend={info.name} device={info.device} precision={info.precision} "
            f"input={info.input_width}x{info.input_height} classes={info.num_classes} {info.detail}; "
            f"cameras: {', '.join(c.topic for c in self._cameras)}"
        )
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._worker is not None:  # a worker that did not stop at the last deactivate
            self.get_logger().error("the previous inference thread is still running; activate refused")
            return TransitionCallbackReturn.FAILURE
        assert self.pipeline is not None
        # The inference thread announces a freed slot (FrameSlots.on_taken): that camera's
        # newest frame is then taken, by the rcl intake's thread or by the executor.
        slots = self._slots = FrameSlots(range(len(self._cameras)), on_taken=self._slot_freed)
        slots.open()
        self._intake_kind = self._choose_intake()
        self._subscribe(slots)
        max_batch = min(len(self._cameras), self.pipeline.backend.info.max_batch_size, self._batch_size())
        fill = self._opts.batch_timeout_ms / 1000.0
        self._debug = DebugImagePublisher(self._debug_published, self._debug_dropped, self._debug_error)
        self._worker = InferenceWorker(
            self.pipeline,
            self._slots,
            self._decode,
            self._deliver,
            self._bad_input,
            WorkerConfig(max_batch=max_batch, fill_timeout_s=fill),
        )
        self._worker.start()
        self._run_timers.append(self.create_timer(1.0, self._log_timings))
        self._diag.activated()  # "no input" counts from here
        self._state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._diag.deactivated()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._closing = True
        self._release_all()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _release_all(self) -> None:
        """Subscriptions, worker, publishers, engine and GPU memory: what cleanup and shutdown free."""
        self._stop_processing()
        self._destroy_publishers()
        self._release_pipeline()

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}; releasing resources")
        return self.on_cleanup(state)

    def _batch_size(self) -> int:
        return int(self.get_parameter("batch_size").value)

    def _warm_up(self, pipeline: Pipeline, max_batch: int) -> None:
        """Every batch size the cameras can form through every stage, so lazy allocations,
        kernel builds and CUDA graph captures happen now rather than on the first frames."""
        frame = np.full((480, 640, 3), 114, np.uint8)
        for batch in range(1, max(1, max_batch) + 1):
            for _ in range(3):
                pipeline.process([frame] * batch, ["bgr8"] * batch)
        pipeline.reset_tracker()
        self.profiler.reset()

    def _release_pipeline(self) -> None:
        if self._worker is not None and not self._worker.stop(timeout=10.0):
            # Freeing the engine under a running inference thread would crash the process:
            # keep it (leaked) and say so; a stuck thread is a bug to report, not to hide.
            self.get_logger().error("inference thread did not stop; the engine is kept, not freed")
            return
        self._worker = None
        if self.profiler.frames:  # the figures of the run that ends here, before they are reset
            self.get_logger().info(
                f"timings of this run ({self.profiler.frames} frames):\n" + self.profiler.report()
            )
        self._close_monitor()
        if self.pipeline is not None:
            try:
                self.pipeline.close()
            finally:
                self.pipeline = None
        self.profiler.reset()
        self._diag.reset()
        self._engine_nms = None

    def _open_monitor(self) -> None:
        """The device monitor for diagnostics: NVML, Jetson sysfs or tegrastats, if any.

        Opened for every backend, not only GPU ones: on a Jetson the power rails measure the
        whole module, whatever runs the network. It is optional: where none is available, or
        opening one fails, diagnostics go without ``gpu.*`` keys and configure still succeeds.
        """
        assert self.pipeline is not None
        device = self.pipeline.backend.info.device
        index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
        self._diag.monitor_errors = 0
        try:
            monitor = self._diag.monitor = open_device_monitor(index)
        except Exception as exc:
            self._diag.monitor = None
            reason = f"{type(exc).__name__}: {exc}"
            self.get_logger().warning(f"no device monitor ({reason}); diagnostics go without it")
            return
        self.get_logger().info(f"device monitor: {monitor.name if monitor else 'none available'}")

    def _close_monitor(self) -> None:
        monitor, self._diag.monitor = self._diag.monitor, None
        if monitor is None:
            return
        try:
            monitor.close()
        except Exception as exc:  # a monitor must never stop cleanup
            self.get_logger().warning(f"closing the {monitor.name} monitor failed: {exc}")

    def _destroy_publishers(self) -> None:
        for cam in self._cameras:
            for pub in (cam.detections, cam.tracks, cam.debug_image):
                if pub is not None:
                    self.destroy_lifecycle_publisher(pub)
        self._cameras = []
        if self._label_pub is not None:
            self.destroy_publisher(self._label_pub)
            self._label_pub = None

    def _subscribe(self, slots: FrameSlots) -> None:
        """The cameras' subscriptions, their frames taken by the rcl intake or by the executor.

        Where the intake cannot start (an rclpy or rcl it cannot bind), the subscriptions are
        made again for the executor and the reason is logged: the node still runs.
        """
        qos = self._opts.image_qos()
        by_intake = self._intake_kind == "rcl"
        for index, cam in enumerate(self._cameras):
            # raw: the callback gets the serialized bytes, parsed on the inference thread without
            # copying the pixels (rclpy's message conversion copies them, ~1.6 ms at 1080p).
            msg_type = CompressedImage if cam.compressed else Image
            callback = functools.partial(self._on_image, index)
            group = (
                TakenElsewhere() if by_intake else SlotGate(functools.partial(self._slot_free, slots, index))
            )
            cam.gaps = SequenceGaps()
            self._subs.append(
                self.create_subscription(msg_type, cam.topic, callback, qos, raw=True, callback_group=group)
            )
        if not by_intake:  # the executor waits on the gates again when a slot frees
            self._frame_guard = self.create_guard_condition(lambda: None)
            return
        try:
            ready = functools.partial(self._slot_free, slots)
            errors = functools.partial(self._bad_input, "intake_error")
            depth = self._opts.image_qos_depth
            self._intake = RclIntake(self, self._subs, ready, self._on_image, errors, history_depth=depth)
        except Exception as exc:
            self.get_logger().error(f"image intake: the rcl intake did not start ({exc}); using the executor")
            for sub in self._subs:
                self.destroy_subscription(sub)
            self._subs = []
            self._intake_kind = "executor"
            self._subscribe(slots)
            return
        self._intake.start()

    def _choose_intake(self) -> str:
        """``rcl`` where the ctypes bindings load (``image_intake`` auto or rcl), else ``executor``."""
        wanted = self._opts.image_intake
        if wanted != "executor":
            try:
                RclLibrary.load()
            except (OSError, AttributeError) as exc:
                log = self.get_logger().error if wanted == "rcl" else self.get_logger().info
                log(f"image intake: rcl cannot be bound here ({exc}); rclpy's executor takes the frames")
            else:
                return "rcl"
        return "executor"

    def _slot_freed(self) -> None:
        """From the inference thread: a camera's slot is free, take its next frame."""
        intake, guard = self._intake, self._frame_guard
        if intake is not None:
            intake.wake()
        elif guard is not None:
            guard.trigger()

    def _stop_processing(self) -> None:
        """The intake, subscriptions and timers first (no new frames), then the other threads."""
        intake, self._intake = self._intake, None
        if intake is not None and not intake.stop(timeout=5.0):
            # It holds the subscriptions in use, so destroying them below waits for it.
            self.get_logger().error("image intake thread did not stop within 5 s")
        self._intake_kind = "none"
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        for timer in self._run_timers:
            self.destroy_timer(timer)
        self._run_timers = []
        if self._worker is not None:
            if self._worker.stop(timeout=10.0):
                self._worker = None
            else:  # kept: on_activate refuses and cleanup will not free the engine under it
                self.get_logger().error("inference thread did not stop within 10 s")
        if self._debug is not None:
            self._debug.stop()
            self._debug = None
        if self._frame_guard is not None:
            self.destroy_guard_condition(self._frame_guard)
            self._frame_guard = None

    # --- frames ---------------------------------------------------------------------------
    @staticmethod
    def _slot_free(slots: FrameSlots, camera: int) -> bool:
        """The gate of a camera's subscription: open while its slot is empty (and slots open)."""
        return not slots.closed and not slots.waiting(camera)

    def _on_image(self, camera: int, raw: bytes | memoryview, info: MessageInfo | dict[str, int]) -> None:
        """The intake's (or executor's) only per-frame work: count and store the bytes (keep-last)."""
        overwritten = self._cameras[camera].gaps.update(info)
        if overwritten:  # reached the subscription, never taken: received and dropped
            self.counters.inc("received", overwritten)
            self.counters.inc("dropped", overwritten)
        self._diag.frame_received()
        if not self._opts.enable:
            self.counters.inc("paused")
            return
        slots = self._slots
        if slots is not None and slots.put(camera, (camera, raw)):
            self._diag.frame_dropped()

    def _decode(self, item: tuple[int, bytes | memoryview]) -> tuple[np.ndarray, str, FrameHeader]:
        camera, raw = item
        max_pixels = self._opts.max_image_pixels
        if self._cameras[camera].compressed:
            return conversions.raw_compressed_to_array(raw, max_pixels)
        return conversions.raw_image_to_array(raw, max_pixels)

    def _deliver(self, frames: list[DecodedFrame], results: list[FrameResult]) -> None:
        """Messages of one finished batch, as serialized bytes, on the inference thread.

        Debug images are handed to their own thread. Track velocities are scaled by the time
        between this camera's processed frames (header stamps), so dropped frames do not skew them.
        """
        pipeline = self.pipeline
        writers = self._writers
        assert pipeline is not None and writers is not None
        debug = self._debug if self._opts.debug_image else None
        with self.profiler.stage("publish"):
            for frame, result in zip(frames, results, strict=True):
                cam = self._cameras[int(frame.stream)]  # type: ignore[call-overload]
                header: FrameHeader = frame.meta
                cam.detections.publish(writers.detections.write(result.detections, header, result.track_ids))
                if result.tracks is not None:
                    dt = cam.interval.update(header.sec, header.nanosec)
                    scale = velocity_scale(dt, pipeline.tracker_cfg.frame_rate)
                    cam.tracks.publish(writers.tracks.write(result.tracks, header, scale))
                if debug is not None and debug.wanted(cam.debug_image):
                    roi = pipeline.filter.cfg.roi
                    names = self._class_names
                    debug.submit(
                        DebugFrame(
                            cam.debug_image,
                            frame.image,
                            frame.encoding,
                            header,
                            result.detections,
                            result.tracks,
                            names,
                            roi,
                        )
                    )
        self._diag.frame_done(len(frames))

    @property
    def debug_images_pending(self) -> int:
        """Debug images handed to the drawing thread and not yet published (0 without one)."""
        return self._debug.pending if self._debug is not None else 0

    def _debug_published(self) -> None:
        self.counters.inc("debug_images")

    def _debug_dropped(self) -> None:
        self.counters.inc("debug_images_dropped")

    def _debug_error(self, exc: Exception) -> None:
        self._bad_input("debug_image_error", f"{type(exc).__name__}: {exc}")

    def _bad_input(self, reason: str, text: str) -> None:
        """Count every bad frame; log each kind at most once per period, with its count."""
        n = self._diag.bad_frame(reason)
        now = time.monotonic()
        if now - self._bad_log_times.get(reason, -1e9) >= BAD_INPUT_LOG_PERIOD_S:
            self._bad_log_times[reason] = now
            self.get_logger().warn(f"frame skipped ({reason}, {n} so far): {text}")

    # --- parameters -----------------------------------------------------------------------
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        reason = check_change(
            current_values(self),
            {p.name: p.value for p in params},
            state=self._state,
            class_names=self._class_names if self.pipeline is not None else None,
            engine_nms=self._engine_nms,
            engine_embeddings=self._engine_embeddings(),
        )
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _engine_embeddings(self) -> bool | None:
        """Whether the loaded engine returns embeddings (None: no engine loaded)."""
        pipeline = self.pipeline
        return None if pipeline is None else bool(pipeline.backend.embedding_dim)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        values = current_values(self)
        self._opts = NodeOptions.from_values(values)
        names = {p.name for p in params}
        if "publish_class_names" in names:
            self._writers = MessageWriters.create(self._class_names, self._opts.publish_class_names)
        pipeline = self.pipeline
        if pipeline is None:
            return
        cfg, _ = validate_values(values, self._class_names)
        stages = changed_stages(names)
        if "preprocess" in stages:
            pipeline.update_preprocess(cfg.preprocess)
        if "postprocess" in stages:
            pipeline.update_postprocess(cfg.postprocess)
            self._publish_label_info()
        if "filters" in stages:
            pipeline.update_filters(cfg.filters)
        if "tracker" in stages:
            pipeline.update_tracker(cfg.tracker)

    def _publish_label_info(self) -> None:
        if self._label_pub is not None:
            conf = float(self.get_parameter("conf_threshold").value)
            self._label_pub.publish(label_info_msg(self._class_names, conf))

    # --- diagnostics ----------------------------------------------------------------------
    def diagnostics_values(self) -> dict[str, str]:
        """Everything the diagnostics message carries, as strings (also used by the bring-up report).

        Samples the device monitor once per call (NVML queries or sysfs reads: 0.04 ms with
        NVML on an H100), so it belongs to the diagnostics timer, never to the image path.
        """
        pipeline = self.pipeline  # cleanup may run between two reads
        backend = pipeline.backend if pipeline is not None else None
        values = self._diag.values(self._state, self.profiler, backend, self._opts.enable)
        values["waiting_frame_age_s"] = f"{self.waiting_frame_age_s():.2f}"
        values["image_intake"] = self._intake_kind
        return values

    def waiting_frame_age_s(self) -> float:
        """Age of the oldest frame waiting for the inference thread (0: none): a stall shows here."""
        slots = self._slots
        return slots.oldest_wait_s() if slots is not None and not slots.closed else 0.0

    def timings_markdown(self) -> str:
        """The run's figures as Markdown: engine, frame counts, per-stage table, memory, layers.

        For a report file at the end of a run (the bring-up's ``--report``): call it before
        cleanup or shutdown, which reset the profiler. Layer times appear where the backend has
        a :class:`~yolov8_trt_ros.core.profiling.LayerProfiler` attached (TensorRT).
        """
        lines = [f"# {self.get_name()}: timings", ""]
        pipeline = self.pipeline
        if pipeline is not None:
            info = pipeline.backend.info
            lines.append(
                f"- engine: {info.name} on {info.device}, {info.precision}, input "
                f"{info.input_width}x{info.input_height} ({info.detail})"
            )
        lines += [f"- frames.{k}: {v}" for k, v in sorted(self.counters.items())]
        try:
            memory = memory_snapshot(self._diag.monitor)
        except Exception:  # the monitor's part failed: host memory alone
            memory = memory_snapshot(None)
        lines += ["", self.profiler.markdown(memory=memory)]
        layers = getattr(pipeline.backend, "layer_profiler", None) if pipeline is not None else None
        if layers is not None and layers.runs:
            lines += ["## TensorRT layers", "", layers.markdown(top=25)]
        return "\n".join(lines)

    def _publish_diagnostics(self) -> None:
        values = self.diagnostics_values()
        stamp = self.get_clock().now().to_msg()
        hardware_id = values.get("engine.device", "")
        self._diag_pub.publish(self._diag.message(self._state, values, stamp, hardware_id, self._opts.enable))

    def _log_timings(self) -> None:
        period = self._opts.log_period
        now = time.monotonic()
        if period <= 0 or now - getattr(self, "_last_log", 0.0) < period:
            return
        self._last_log = now
        self.get_logger().info("timings:\n" + self.profiler.report())


def main(args: list[str] | None = None) -> None:
    """``ros2 run yolov8_trt_ros yolov8_trt_node`` (a lifecycle node: use autostart or a manager).

    One single-threaded executor spun in slices until SIGINT/SIGTERM (``ros/spin.py`` says why).
    """
    stop = signals.init(args)
    node = YoloDetectorNode()
    executor = spin.make_executor(node)
    try:
        spin.spin_until_stopped(executor, stop)
    finally:
        node.systemd.stopping()  # STOPPING=1 to systemd
        node.on_shutdown(LifecycleState(state_id=0, label="shutdown"))
        spin.shut_down(executor, node)


if __name__ == "__main__":
    main()
