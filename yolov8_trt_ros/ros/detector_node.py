"""The lifecycle node: camera images in, Detection2DArray, tracked objects and diagnostics out.

States govern resources: ``configure`` validates parameters, loads (or builds) the engine,
allocates buffers and warms up; ``activate`` subscribes and publishes; ``deactivate`` stops
without freeing the engine; ``cleanup`` frees engine and GPU memory and resets the tracker.
Frames are handed from the subscription to one worker thread through a keep-last slot, so the
executor never blocks on inference and a stale frame is dropped (and counted), never queued.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from yolov8_trt_msgs.msg import TrackedObjectArray
from yolov8_trt_ros.core.config import ConfigError
from yolov8_trt_ros.core.image_input import ImageError
from yolov8_trt_ros.core.pipeline import Pipeline
from yolov8_trt_ros.core.profiling import (
    DeviceMonitor,
    Profiler,
    memory_snapshot,
    open_device_monitor,
    peak_resident_memory_mb,
    resident_memory_mb,
)
from yolov8_trt_ros.ros import conversions, signals
from yolov8_trt_ros.ros.model_update import ModelUpdater  # deploy (issue 13)
from yolov8_trt_ros.ros.parameters import BY_NAME, build_configs, current_values, declare_all
from yolov8_trt_ros.ros.sd_notify import SystemdNotifier  # deploy (issue 13)

RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Reliable so that rviz (reliable by default) and the recorder both connect; shallow so a slow
# viewer never holds frames back.
DEBUG_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
BAD_INPUT_LOG_PERIOD_S = 10.0


class FrameSlot:
    """Keep-last-1 hand-off between the executor (producer) and the worker (consumer)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store ``item``; True if it replaced one the worker had not taken (a dropped frame)."""
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
            return dropped

    def take(self, timeout: float) -> Any:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed


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
        self._slot = FrameSlot()
        self._worker: threading.Thread | None = None
        self._subs: list[Any] = []
        # Not ``_timers``: that is rclpy's list of all the node's timers; reusing the name made
        # deactivate destroy every timer of the node (deploy, issue 13).
        self._state_timers: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._state = "unconfigured"
        self._last_frame_time = 0.0
        self._class_names: tuple[str, ...] = ()
        self._node_opts = self._read_node_options()
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        # deploy (issue 13): OTA model updates and the systemd notify protocol (own modules)
        self.model_updater = ModelUpdater(self)
        self.systemd = SystemdNotifier(self)
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
            self._warm_up()
        except Exception as exc:  # any failure leaves the node unconfigured, ready to retry
            self.get_logger().error(f"configure failed: {exc}")
            self._release_pipeline()
            return TransitionCallbackReturn.FAILURE
        self._open_monitor()
        self._pubs = {
            "detections": self.create_lifecycle_publisher(Detection2DArray, "detections", RESULT_QOS),
            "tracks": self.create_lifecycle_publisher(TrackedObjectArray, "tracks", RESULT_QOS),
            "debug_image": self.create_lifecycle_publisher(Image, "debug_image", DEBUG_QOS),
            "diagnostics": self.create_publisher(DiagnosticArray, "diagnostics", RESULT_QOS),
        }
        info = self.pipeline.backend.info
        self.get_logger().info(
            f"configured: backend={info.name} device={info.device} precision={info.precision} "
            f"input={info.input_width}x{info.input_height} classes={info.num_classes} {info.detail}"
        )
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subs.append(self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data))
        if self.get_parameter("compressed_input").value:
            self._subs.append(
                self.create_subscription(
                    CompressedImage, "image/compressed", self._on_compressed, qos_profile_sensor_data
                )
            )
        self._slot.open()
        self._worker = threading.Thread(target=self._work, name="yolov8_worker", daemon=True)
        self._worker.start()
        period = float(self.get_parameter("diagnostics_period").value)
        self._state_timers.append(self.create_timer(period, self._publish_diagnostics))
        self._state_timers.append(self.create_timer(1.0, self._log_timings))
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

    def _warm_up(self) -> None:
        """A few frames through every stage so lazy allocations and kernel builds happen now."""
        assert self.pipeline is not None
        frame = np.full((480, 640, 3), 114, np.uint8)
        for _ in range(3):
            self.pipeline.process([frame], ["bgr8"])
        self.pipeline.reset_tracker()
        self.profiler.reset()

    def _release_pipeline(self) -> None:
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
        for name, pub in self._pubs.items():
            if name == "diagnostics":
                self.destroy_publisher(pub)
            else:
                self.destroy_lifecycle_publisher(pub)
        self._pubs = {}

    def _stop_processing(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        for timer in self._state_timers:
            self.destroy_timer(timer)
        self._state_timers = []
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    # --- frames ---------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self.counters["received"] += 1
        if self._slot.put(msg):
            self.counters["dropped"] += 1

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._on_image(msg)

    def _work(self) -> None:
        while not self._slot.closed:
            msg = self._slot.take(timeout=0.1)
            if msg is None:
                continue
            try:
                self._process(msg)
            except ImageError as exc:
                self._bad_input(exc.reason, str(exc))
            except Exception as exc:  # never let one frame stop the node
                self._bad_input("processing_error", f"{exc}\n{traceback.format_exc(limit=4)}")

    def _process(self, msg: Image | CompressedImage) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        max_pixels = int(self._node_opts["max_image_pixels"])
        with self.profiler.stage("convert"):
            if isinstance(msg, CompressedImage):
                image, encoding = conversions.compressed_to_array(msg, max_pixels)
            else:
                image, encoding = conversions.image_to_array(msg, max_pixels)
        result = pipeline.process([image], [encoding])[0]
        names, use_names = self._class_names, self._node_opts["publish_class_names"]
        with self.profiler.stage("publish"):
            self._pubs["detections"].publish(
                conversions.detections_to_msg(result.detections, msg.header, names, use_names)
            )
            if result.tracks is not None:
                self._pubs["tracks"].publish(
                    conversions.tracks_to_msg(
                        result.tracks, msg.header, names, use_names, pipeline.tracker_cfg.frame_rate
                    )
                )
            debug_pub = self._pubs["debug_image"]
            if self._node_opts["debug_image"] and debug_pub.get_subscription_count() > 0:
                canvas = conversions.annotate(
                    image, encoding, result.detections, result.tracks, names, pipeline.filter.cfg.roi
                )
                debug_pub.publish(conversions.array_to_image(canvas, "bgr8", msg.header))
                self.counters["debug_images"] += 1
        self.counters["processed"] += 1
        self.profiler.frame_done()
        self._last_frame_time = time.monotonic()

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
        names = ("publish_class_names", "debug_image", "log_period", "max_image_pixels")
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
        self._pubs["diagnostics"].publish(msg)

    def _log_timings(self) -> None:
        period = float(self._node_opts["log_period"] or 0.0)
        now = time.monotonic()
        if period <= 0 or now - getattr(self, "_last_log", 0.0) < period:
            return
        self._last_log = now
        self.get_logger().info("timings:\n" + self.profiler.report())


def main(args: list[str] | None = None) -> None:
    """``ros2 run yolov8_trt_ros yolov8_trt_node`` (a lifecycle node: use autostart or a manager).

    Spins in slices until SIGINT/SIGTERM (see ``ros/signals.py`` for why not rclpy's handlers).
    """
    stop = signals.init(args)
    node = YoloDetectorNode()
    executor = rclpy.executors.MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.2)  # Python handlers run between the slices
    except ExternalShutdownException:
        pass
    finally:
        node.systemd.stopping()  # deploy (issue 13): STOPPING=1 to systemd
        # Let callbacks still running on the executor's threads finish first: destroying the
        # node under one of them fails (rclpy's InvalidHandle) and the process exits with 1.
        executor.shutdown(timeout_sec=5.0)
        node.on_shutdown(LifecycleState(state_id=0, label="shutdown"))
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
