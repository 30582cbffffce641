"""The lifecycle node: camera images in, Detection2DArray, tracked objects and diagnostics out.

States govern resources: ``configure`` validates parameters, loads (or builds) the engine,
allocates buffers and warms up; ``activate`` subscribes and publishes; ``deactivate`` stops
without freeing the engine; ``cleanup`` frees engine and GPU memory and resets the tracker.
Frames are handed from the subscriptions to one inference thread through keep-last slots
(``core/frame_slots.py``, ``core/inference_worker.py``), so the executor never blocks on
inference and a stale frame is dropped (and counted), never queued. Several cameras
(``image_topics``) are batched into one inference, each with its own tracker and outputs.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from yolov8_trt_msgs.msg import TrackedObjectArray
from yolov8_trt_ros.core.config import ConfigError
from yolov8_trt_ros.core.frame_slots import FrameSlots
from yolov8_trt_ros.core.inference_worker import DecodedFrame, InferenceWorker, WorkerConfig
from yolov8_trt_ros.core.pipeline import FrameResult, Pipeline
from yolov8_trt_ros.core.profiling import (
    DeviceMonitor,
    Profiler,
    memory_snapshot,
    open_device_monitor,
    peak_resident_memory_mb,
    resident_memory_mb,
)
from yolov8_trt_ros.ros import conversions, signals, spin
from yolov8_trt_ros.ros.cameras import Camera, cameras_from
from yolov8_trt_ros.ros.debug_image import DebugFrame, DebugImagePublisher
from yolov8_trt_ros.ros.parameters import BY_NAME, build_configs, current_values, declare_all

RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Reliable so that rviz (reliable by default) and the recorder both connect; shallow so a slow
# viewer never holds frames back.
DEBUG_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
BAD_INPUT_LOG_PERIOD_S = 10.0


class YoloDetectorNode(LifecycleNode):
    """YOLOv8 detection + ByteTrack as a managed node (see module docstring)."""

    def __init__(self, node_name: str = "yolov8_trt_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.pipeline: Pipeline | None = None
        self.profiler = Profiler()
        self.counters: Counter[str] = Counter()
        # GPU load, power and device memory for diagnostics; sampled by the diagnostics timer only.
        self._monitor: DeviceMonitor | None = None
        self._monitor_errors = 0
        self._bad_log_times: dict[str, float] = {}
        self._cameras: list[Camera] = []
        self._slots: FrameSlots | None = None
        self._worker: InferenceWorker | None = None
        self._debug: DebugImagePublisher | None = None
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self._diagnostics_pub: Any = None
        self._state = "unconfigured"
        self._last_frame_time = 0.0
        self._class_names: tuple[str, ...] = ()
        self._node_opts = self._read_node_options()
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # --- lifecycle ------------------------------------------------------------------------
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = current_values(self)
        try:
            base = build_configs(values, class_names=None)
            self.pipeline = Pipeline.create(base, self.profiler)
            self._class_names = self.pipeline.class_names
            cfg = build_configs(values, self._class_names)
            self.pipeline.update_filters(cfg.filters)
            self._cameras = cameras_from(list(values["image_topics"]), bool(values["compressed_input"]))
            self._warm_up(min(len(self._cameras), int(values["batch_size"])))
        except Exception as exc:  # any failure leaves the node unconfigured, ready to retry
            self.get_logger().error(f"configure failed: {exc}")
            self._release_pipeline()
            return TransitionCallbackReturn.FAILURE
        self._open_monitor()
        publisher = self.create_lifecycle_publisher
        for cam in self._cameras:
            cam.detections = publisher(Detection2DArray, cam.output("detections"), RESULT_QOS)
            cam.tracks = publisher(TrackedObjectArray, cam.output("tracks"), RESULT_QOS)
            cam.debug_image = publisher(Image, cam.output("debug_image"), DEBUG_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", RESULT_QOS)
        info = self.pipeline.backend.info
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
        self._slots = FrameSlots(range(len(self._cameras)))
        self._slots.open()
        for index, cam in enumerate(self._cameras):
            msg_type = CompressedImage if cam.compressed else Image
            self._subs.append(
                self.create_subscription(
                    msg_type, cam.topic, functools.partial(self._on_image, index), qos_profile_sensor_data
                )
            )
        max_batch = min(len(self._cameras), self.pipeline.backend.info.max_batch_size, self._batch_size())
        fill = float(self.get_parameter("batch_timeout_ms").value) / 1000.0
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
        period = float(self.get_parameter("diagnostics_period").value)
        self._timers.append(self.create_timer(period, self._publish_diagnostics))
        self._timers.append(self.create_timer(1.0, self._log_timings))
        self._last_frame_time = time.monotonic()  # "no input" counts from activation
        self._state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
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

    def _warm_up(self, max_batch: int) -> None:
        """Every batch size the cameras can form through every stage, so lazy allocations,
        kernel builds and CUDA graph captures happen now rather than on the first frames."""
        assert self.pipeline is not None
        frame = np.full((480, 640, 3), 114, np.uint8)
        for batch in range(1, max(1, max_batch) + 1):
            for _ in range(3):
                self.pipeline.process([frame] * batch, ["bgr8"] * batch)
        self.pipeline.reset_tracker()
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
        self.counters.clear()

    def _open_monitor(self) -> None:
        """The device monitor for diagnostics: NVML, Jetson sysfs or tegrastats, if any.

        Opened for every backend, not only GPU ones: on a Jetson the power rails measure the
        whole module, whatever runs the network. It is optional: where none is available, or
        opening one fails, diagnostics go without ``gpu.*`` keys and configure still succeeds.
        """
        assert self.pipeline is not None
        device = self.pipeline.backend.info.device
        index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
        self._monitor_errors = 0
        try:
            self._monitor = open_device_monitor(index)
        except Exception as exc:
            self._monitor = None
            reason = f"{type(exc).__name__}: {exc}"
            self.get_logger().warning(f"no device monitor ({reason}); diagnostics go without it")
            return
        self.get_logger().info(f"device monitor: {self._monitor.name if self._monitor else 'none available'}")

    def _close_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
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
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None

    def _stop_processing(self) -> None:
        """Subscriptions and timers first (no new frames), then the threads."""
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        if self._worker is not None:
            if self._worker.stop(timeout=10.0):
                self._worker = None
            else:  # kept: on_activate refuses and cleanup will not free the engine under it
                self.get_logger().error("inference thread did not stop within 10 s")
        if self._debug is not None:
            self._debug.stop()
            self._debug = None

    # --- frames ---------------------------------------------------------------------------
    def _on_image(self, camera: int, msg: Image | CompressedImage) -> None:
        """The executor's only per-frame work: count and store (keep-last per camera)."""
        self.counters["received"] += 1
        if not self._node_opts["enable"]:
            self.counters["paused"] += 1
            return
        slots = self._slots
        if slots is not None and slots.put(camera, msg):
            self.counters["dropped"] += 1

    def _decode(self, msg: Image | CompressedImage) -> tuple[np.ndarray, str]:
        max_pixels = int(self._node_opts["max_image_pixels"])
        if isinstance(msg, CompressedImage):
            return conversions.compressed_to_array(msg, max_pixels)
        return conversions.image_to_array(msg, max_pixels)

    def _deliver(self, frames: list[DecodedFrame], results: list[FrameResult]) -> None:
        """Messages of one finished batch, on the inference thread; debug images handed off."""
        pipeline = self.pipeline
        assert pipeline is not None
        names, use_names = self._class_names, self._node_opts["publish_class_names"]
        debug = self._debug if self._node_opts["debug_image"] else None
        with self.profiler.stage("publish"):
            for frame, result in zip(frames, results, strict=True):
                cam = self._cameras[int(frame.stream)]  # type: ignore[call-overload]
                header = frame.item.header
                dets = result.detections
                cam.detections.publish(conversions.detections_to_msg(dets, header, names, use_names))
                if result.tracks is not None:
                    cam.tracks.publish(
                        conversions.tracks_to_msg(
                            result.tracks, header, names, use_names, pipeline.tracker_cfg.frame_rate
                        )
                    )
                if debug is not None and debug.wanted(cam.debug_image):
                    debug.submit(
                        DebugFrame(
                            cam.debug_image,
                            frame.image,
                            frame.encoding,
                            header,
                            result.detections,
                            result.tracks,
                            names,
                            pipeline.filter.cfg.roi,
                        )
                    )
        self.counters["processed"] += len(frames)
        self._last_frame_time = time.monotonic()

    def _debug_published(self) -> None:
        self.counters["debug_images"] += 1

    def _debug_dropped(self) -> None:
        self.counters["debug_images_dropped"] += 1

    def _debug_error(self, exc: Exception) -> None:
        self._bad_input("debug_image_error", f"{type(exc).__name__}: {exc}")

    def _bad_input(self, reason: str, text: str) -> None:
        """Count every bad frame; log each kind at most once per period, with its count."""
        self.counters[f"bad.{reason}"] += 1
        now = time.monotonic()
        if now - self._bad_log_times.get(reason, -1e9) >= BAD_INPUT_LOG_PERIOD_S:
            self._bad_log_times[reason] = now
            n = self.counters[f"bad.{reason}"]
            self.get_logger().warn(f"frame skipped ({reason}, {n} so far): {text}")

    # --- parameters -----------------------------------------------------------------------
    def _read_node_options(self) -> dict[str, Any]:
        names = ("publish_class_names", "debug_image", "log_period", "max_image_pixels", "enable")
        return {n: self.get_parameter(n).value for n in names}

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        values = current_values(self)
        for p in params:
            spec = BY_NAME.get(p.name)
            if spec is None:
                continue
            if spec.reconfigure and self._state != "unconfigured":
                return SetParametersResult(
                    successful=False,
                    reason=f"{p.name} decides what configure loads: deactivate and clean up the node, "
                    "set it, then configure again",
                )
            values[p.name] = p.value
        try:
            build_configs(values, self._class_names if self.pipeline is not None else None)
        except (ConfigError, ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        self._node_opts = self._read_node_options()
        pipeline = self.pipeline
        if pipeline is None:
            return
        cfg = build_configs(current_values(self), self._class_names)
        stages = {BY_NAME[p.name].stage for p in params if p.name in BY_NAME}
        if "postprocess" in stages:
            pipeline.update_postprocess(cfg.postprocess)
        if "filters" in stages:
            pipeline.update_filters(cfg.filters)
        if "tracker" in stages:
            pipeline.update_tracker(cfg.tracker)

    # --- diagnostics ----------------------------------------------------------------------
    def diagnostics_values(self) -> dict[str, str]:
        """Everything the diagnostics message carries, as strings (also used by the bring-up report).

        Samples the device monitor once per call (NVML queries or sysfs reads: 0.04 ms with
        NVML on an H100), so it belongs to the diagnostics timer, never to the image path.
        """
        values: dict[str, str] = {
            "state": self._state,
            "fps": f"{self.profiler.fps():.2f}",
            "rss_mb": f"{resident_memory_mb():.1f}",
            "rss_peak_mb": f"{peak_resident_memory_mb():.1f}",
        }
        values.update({f"frames.{k}": str(v) for k, v in sorted(self.counters.items())})
        for stage, st in self.profiler.stats().items():
            values[f"latency_ms.{stage}.p50"] = f"{st.p50_ms:.3f}"
            values[f"latency_ms.{stage}.p99"] = f"{st.p99_ms:.3f}"
        if self.pipeline is not None:
            info = self.pipeline.backend.info
            values.update(
                {
                    "engine.backend": info.name,
                    "engine.device": info.device,
                    "engine.precision": info.precision,
                    "engine.input": f"{info.input_width}x{info.input_height}",
                    "engine.detail": info.detail,
                }
            )
            gpu_mb = getattr(self.pipeline.backend, "device_memory_mb", None)
            if callable(gpu_mb):
                values["gpu_memory_mb"] = f"{gpu_mb():.1f}"
        values.update(self._device_values())
        return values

    def _device_values(self) -> dict[str, str]:
        """``gpu.*`` keys from one monitor sample; a failing monitor adds its error instead.

        ``gpu.memory_used_mb`` is the whole device's (discrete GPU) or the whole system's
        (Jetson, unified memory); ``gpu.process_memory_mb`` this process's, where NVML sees it.
        """
        monitor = self._monitor
        if monitor is None:
            return {}
        values = {"gpu.monitor": monitor.name}
        try:
            sample = monitor.sample()
        except Exception as exc:  # NVML errors, a tegrastats that died: diagnostics go on
            self._monitor_errors += 1
            if self._monitor_errors == 1:
                self.get_logger().warning(f"{monitor.name} monitor failed: {type(exc).__name__}: {exc}")
            values["gpu.monitor_error"] = f"{type(exc).__name__}: {exc}"[:200]
            values["gpu.monitor_errors"] = str(self._monitor_errors)
            return values
        for key, value in (
            ("gpu.util_percent", sample.gpu_util_percent),
            ("gpu.power_w", sample.power_w),
            ("gpu.memory_used_mb", sample.memory_used_mb),
            ("gpu.process_memory_mb", sample.process_memory_mb),
        ):
            if value is not None:
                values[key] = f"{value:.1f}"
        values.update({f"gpu.rail_w.{name}": f"{w:.2f}" for name, w in sample.rails_w.items()})
        return values

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
            memory = memory_snapshot(self._monitor)
        except Exception:  # the monitor's part failed: host memory alone
            memory = memory_snapshot(None)
        lines += ["", self.profiler.markdown(memory=memory)]
        layers = getattr(pipeline.backend, "layer_profiler", None) if pipeline is not None else None
        if layers is not None and layers.runs:
            lines += ["## TensorRT layers", "", layers.markdown(top=25)]
        return "\n".join(lines)

    def _publish_diagnostics(self) -> None:
        values = self.diagnostics_values()
        stale = self._state == "active" and time.monotonic() - self._last_frame_time > 5.0
        bad = sum(v for k, v in self.counters.items() if k.startswith("bad."))
        level = DiagnosticStatus.WARN if stale or bad else DiagnosticStatus.OK
        message = "no input for 5 s" if stale else (f"{bad} bad frames" if bad else "ok")
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: pipeline",
            message=message,
            hardware_id=values.get("engine.device", ""),
        )
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        if self._diagnostics_pub is not None:
            self._diagnostics_pub.publish(msg)

    def _log_timings(self) -> None:
        period = float(self._node_opts["log_period"] or 0.0)
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
        node.on_shutdown(LifecycleState(state_id=0, label="shutdown"))
        spin.shut_down(executor, node)


if __name__ == "__main__":
    main()
