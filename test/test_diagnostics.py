"""ros/diagnostics.py: thread-safe counters, the input watch, the bad-frame window, the published status.

Issue 14's diagnostics defects, each against the module the node builds its diagnostics with:
"no input" right after activation, a bad-frame WARN that never cleared, silence while
inactive or unconfigured, a relative topic, and counters iterated while a worker inserts.
"""

from __future__ import annotations

import sys
import threading
import time
from itertools import count

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from test_node_diagnostics import FakeMonitor

from _ros import spin_until
from yolov8_trt_ros.core.profiling import DeviceSample, Profiler

pytestmark = pytest.mark.ros
_names = count()
OK, WARN = DiagnosticStatus.OK, DiagnosticStatus.WARN


class Clock:
    """A monotonic clock the test moves by hand (the module takes the clock as a parameter)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _diag(clock: Clock, **kw):
    from yolov8_trt_ros.ros.diagnostics import NodeDiagnostics

    return NodeDiagnostics("detector", clock=clock, **kw)


def test_counters_survive_threads_inserting_while_diagnostics_read():
    """A plain Counter read as the node read it raises 'dictionary changed size during iteration'
    within seconds under this load; every count must also come out exact (no lost increment)."""
    from yolov8_trt_ros.ros.diagnostics import Counters

    counters = Counters()
    writers, keys_per_writer = 4, 500
    done_per_writer = [0] * writers
    errors: list[BaseException] = []
    done = threading.Event()
    deadline = time.monotonic() + 2.0  # bounded in time, whatever the machine's load

    def write(w: int) -> None:
        try:
            i = 0
            while time.monotonic() < deadline or i < keys_per_writer:
                counters.inc("processed")
                counters.inc(f"bad.kind{w}_{i % keys_per_writer}")  # new keys all along
                i += 1
            done_per_writer[w] = i
        except BaseException as exc:
            errors.append(exc)

    reads = 0

    def read() -> None:
        nonlocal reads
        try:
            while not done.is_set():
                {f"frames.{k}": str(v) for k, v in sorted(counters.items())}
                sum(v for k, v in counters.items() if k.startswith("bad."))
                list(counters)
                counters.total("bad.")
                reads += 1
        except BaseException as exc:
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        reader = threading.Thread(target=read)
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        done.set()
        reader.join(timeout=30)
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[0]
    assert reads > 0
    snap = counters.snapshot()
    assert snap["processed"] == sum(done_per_writer)
    assert counters.total("bad.") == sum(done_per_writer)
    assert len(snap) == 1 + writers * keys_per_writer
    assert counters["never_seen"] == 0 and "never_seen" not in counters and "processed" in counters


def test_no_input_counts_from_activation_not_from_process_start():
    """``_last_frame_time`` started at 0.0: a node activated after 5 s of uptime said
    "no input for 5 s" before any camera had a chance to send a frame."""
    clock = Clock(start=float(np.random.default_rng().uniform(10, 1e6)))  # long after 0
    diag = _diag(clock, stale_after_s=5.0)
    diag.activated()
    assert diag.level_and_message("active") == (OK, "ok")
    clock.now += 4.9
    assert diag.level_and_message("active")[0] == OK
    clock.now += 0.2
    level, message = diag.level_and_message("active")
    assert level == WARN and message == "no input for 5 s"
    diag.frame_received()
    assert diag.level_and_message("active") == (OK, "ok")
    clock.now += 7.0
    assert diag.level_and_message("active") == (WARN, "no input for 7 s")
    # Re-activation starts the watch again, whatever came before.
    diag.deactivated()
    assert diag.seconds_without_input() is None
    clock.now += 100.0
    diag.activated()
    assert diag.level_and_message("active") == (OK, "ok")


def test_bad_frame_warning_clears_when_the_window_has_passed():
    """The WARN was cumulative since configure: one bad frame kept the node WARN for good."""
    rng = np.random.default_rng()
    clock = Clock(start=1000.0)
    diag = _diag(clock, bad_window_s=60.0)
    diag.activated()
    n_short, n_enc = (int(v) for v in rng.integers(1, 20, size=2))
    for _ in range(n_short):
        diag.bad_frame("short_data")
    for _ in range(n_enc):
        assert diag.bad_frame("unsupported_encoding") >= 1
    diag.frame_received()
    level, message = diag.level_and_message("active")
    assert level == WARN
    kinds = f"short_data: {n_short}, unsupported_encoding: {n_enc}"
    assert message == f"{n_short + n_enc} bad frames in the last 60 s ({kinds})"
    clock.now += 30.0
    diag.frame_received()
    diag.bad_frame("short_data")
    clock.now += 31.0  # the first batch is out of the window, the last one is not
    diag.frame_received()
    assert diag.bad_in_window() == {"short_data": 1}
    clock.now += 61.0
    diag.frame_received()
    assert diag.level_and_message("active") == (OK, "ok")
    # The counters stay cumulative for the record.
    assert (
        diag.counters["bad.short_data"] == n_short + 1 and diag.counters["bad.unsupported_encoding"] == n_enc
    )


def test_every_lifecycle_state_has_a_status():
    """Diagnostics went silent unless active: a monitor could not tell a stopped node from a dead one."""
    clock = Clock(start=50.0)
    diag = _diag(clock)
    assert diag.level_and_message("unconfigured") == (WARN, "unconfigured")
    diag.configure_failed("model models/x.onnx not found\nTraceback ...")
    assert diag.level_and_message("unconfigured") == (WARN, "unconfigured: model models/x.onnx not found")
    diag.configured()
    assert diag.level_and_message("inactive") == (OK, "inactive")
    diag.activated()
    clock.now += 60.0
    assert diag.level_and_message("active", enabled=False) == (OK, "paused (enable is false)")
    assert diag.level_and_message("active")[0] == WARN


@pytest.mark.parametrize("resolution", [1.0, 0.25])
def test_sliding_count_matches_a_brute_force_count(resolution):
    from yolov8_trt_ros.ros.diagnostics import SlidingCount

    rng = np.random.default_rng()
    window = float(rng.uniform(5, 30))
    gaps = rng.exponential(0.5, size=int(rng.integers(50, 500)))
    gaps[rng.random(gaps.size) < 0.05] += 2 * window  # quiet spells longer than the window
    times = np.cumsum(gaps)
    sliding = SlidingCount(window, resolution)
    for i, t in enumerate(times):
        sliding.add(float(t))
        # A monotonic clock: queries between this event and the next.
        nxt = times[i + 1] if i + 1 < len(times) else t + 3 * window
        now = float(rng.uniform(t, nxt))
        seen = times[: i + 1]
        exact = int(np.sum(seen > now - window))
        loose = int(np.sum(seen > now - window - resolution))
        assert exact <= sliding.count(now) <= loose
    assert sliding.count(float(times[-1] + window + resolution + 0.01)) == 0
    with pytest.raises(ValueError):
        SlidingCount(0.0)


def test_values_keep_the_node_keys_and_the_monitor_failure_is_contained(detector_model):
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from yolov8_trt_ros.core.config import EngineConfig

    rng = np.random.default_rng()
    backend = OnnxRuntimeBackend(
        EngineConfig(backend="onnxruntime", model_path=str(detector_model), num_threads=1)
    )
    try:
        profiler = Profiler()
        for _ in range(3):
            with profiler.stage("inference"):
                backend.infer(rng.random((1, 3, 640, 640), dtype=np.float32))
            profiler.frame_done()
        util, power = (float(v) for v in rng.uniform([1, 5], [100, 60]))
        monitor = FakeMonitor(DeviceSample(time.monotonic(), gpu_util_percent=util, power_w=power))
        warnings: list[str] = []
        clock = Clock(start=10.0)
        diag = _diag(clock, warn=warnings.append)
        diag.monitor = monitor
        diag.activated()
        diag.frame_received()
        diag.frame_done()
        diag.bad_frame("short_data")
        values = diag.values("active", profiler, backend)
        assert values["state"] == "active" and values["enabled"] == "true"
        assert values["frames.received"] == "1" and values["frames.processed"] == "1"
        assert values["frames.bad.short_data"] == "1" and values["bad_frames.last_60s"] == "1"
        assert float(values["latency_ms.inference.p50"]) > 0 and float(values["fps"]) > 0
        assert float(values["rss_mb"]) > 50 and "rss_peak_mb" in values
        assert values["engine.backend"] == "onnxruntime" and values["engine.device"] == "cpu"
        assert values["engine.input"] == "640x640"
        assert values["gpu.monitor"] == FakeMonitor.name and values["gpu.util_percent"] == f"{util:.1f}"
        assert values["gpu.power_w"] == f"{power:.1f}" and "gpu.memory_used_mb" not in values
        assert values["seconds_without_input"] == "0.0"

        monitor.fail = RuntimeError("NVML: GPU is lost")
        for n in (1, 2):
            failed = diag.values("active", profiler, backend)
            assert "GPU is lost" in failed["gpu.monitor_error"] and failed["gpu.monitor_errors"] == str(n)
            assert "gpu.util_percent" not in failed
        assert len(warnings) == 1 and "GPU is lost" in warnings[0]  # logged once, counted always
        unconfigured = diag.values("unconfigured", Profiler())
        assert "engine.backend" not in unconfigured and unconfigured["state"] == "unconfigured"
    finally:
        backend.close()


def test_published_on_absolute_diagnostics_from_a_namespaced_node(rclpy_session):
    """``diagnostics`` (relative) put a namespaced node's status on ``/<ns>/diagnostics``,
    where no aggregator listens."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from yolov8_trt_ros.ros.diagnostics import DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC, NodeDiagnostics

    i = next(_names)
    node = rclpy.create_node(f"diag_pub_{i}", namespace=f"/robot{i}/front")
    monitor = rclpy.create_node(f"diag_monitor_{i}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(monitor)
    try:
        got: list[DiagnosticArray] = []
        monitor.create_subscription(DiagnosticArray, "/diagnostics", got.append, DIAGNOSTICS_QOS)
        pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        assert pub.topic_name == "/diagnostics"
        diag = NodeDiagnostics(node.get_name())
        values = diag.values("inactive", Profiler())
        stamp = node.get_clock().now().to_msg()

        def delivered() -> bool:
            pub.publish(diag.message("inactive", values, stamp, hardware_id="cpu"))
            return bool(got)

        assert spin_until(executor, delivered, timeout=20.0)
        status = got[-1].status[0]
        assert status.name == f"diag_pub_{i}: pipeline" and status.hardware_id == "cpu"
        assert status.level == OK and status.message == "inactive"
        assert got[-1].header.stamp == stamp
        assert {kv.key: kv.value for kv in status.values}["state"] == "inactive"
    finally:
        executor.shutdown()
        node.destroy_node()
        monitor.destroy_node()
