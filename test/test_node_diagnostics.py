"""Diagnostics of an in-process detector node over real rclpy: stage latencies, memory, device monitor.

The node runs in this process (so a device monitor can be substituted where the machine has
none) and is driven through its real lifecycle transitions, subscriptions and publishers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from _ros import Probe, image_msg, read_bgr, spin_until
from yolov8_trt_ros.core.profiling import STAGES, DeviceSample, LayerProfiler, open_device_monitor
from yolov8_trt_ros.ros import detector_node
from yolov8_trt_ros.ros.detector_node import YoloDetectorNode

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SUCCESS = TransitionCallbackReturn.SUCCESS
_names = count()


class FakeMonitor:
    """A :class:`DeviceMonitor` with chosen readings that can be told to fail."""

    name = "fake"

    def __init__(self, sample: DeviceSample) -> None:
        self.reading = sample
        self.calls = 0
        self.fail: Exception | None = None
        self.closed = False

    def sample(self) -> DeviceSample:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self.reading

    def energy_j(self) -> float | None:
        return None

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def node_with_probe(rclpy_session, detector_model) -> Iterator[Callable[..., tuple[YoloDetectorNode, Probe]]]:
    """A factory: an unconfigured detector in this process plus a probe spinning both nodes."""
    made: list[tuple[YoloDetectorNode, Probe]] = []

    def make(namespace: str | None = None, **params: Any) -> tuple[YoloDetectorNode, Probe]:
        name = f"diag_detector_{next(_names)}"
        values = {"backend": "onnxruntime", "model_path": str(detector_model), "autostart": False, **params}
        overrides = [Parameter(k, value=v) for k, v in values.items()]
        node = YoloDetectorNode(name, namespace=namespace, parameter_overrides=overrides)
        probe = Probe(name, name=f"{name}_probe")
        probe.executor.add_node(node)
        made.append((node, probe))
        return node, probe

    yield make
    for node, probe in made:
        node.trigger_shutdown()
        probe.executor.remove_node(node)
        node.destroy_node()
        probe.close()


def _run_frames(node: YoloDetectorNode, probe: Probe, frame: np.ndarray, n: int) -> None:
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    probe.wait_subscribed()
    start = int(time.time())
    for i in range(n):
        probe.send_and_wait(image_msg(frame, stamp_sec=start + i))


def test_diagnostics_carry_stage_latencies_memory_and_engine(node_with_probe, assets_dir):
    node, probe = node_with_probe(diagnostics_period=0.2)
    _run_frames(node, probe, read_bgr(assets_dir / "bus.jpg"), 4)
    diag = probe.latest_diagnostics()
    assert diag["state"] == "active" and diag["engine.backend"] == "onnxruntime"
    assert int(diag["frames.processed"]) >= 4
    for stage in STAGES:  # every stage of the node's path, convert to publish
        p50, p99 = float(diag[f"latency_ms.{stage}.p50"]), float(diag[f"latency_ms.{stage}.p99"])
        assert 0.0 < p50 <= p99, stage
    rss, peak = float(diag["rss_mb"]), float(diag["rss_peak_mb"])
    assert rss > 50.0 and peak >= 0.99 * rss  # getrusage and /proc count pages slightly apart
    # gpu.* keys exactly where this machine has a device monitor (none on a CPU-only host).
    monitor = open_device_monitor()
    try:
        gpu_keys = {k for k in diag if k.startswith("gpu.")}
        if monitor is None:
            assert gpu_keys == set()
        else:
            assert diag["gpu.monitor"] == monitor.name and "gpu.monitor_error" not in diag
    finally:
        if monitor is not None:
            monitor.close()


def test_monitor_is_sampled_per_diagnostics_only_and_its_failure_is_contained(
    node_with_probe, assets_dir, monkeypatch
):
    rng = np.random.default_rng(5)
    util, power, used = (float(v) for v in rng.uniform([1, 5, 100], [100, 60, 8000]))
    rail = float(rng.uniform(1, 20))
    fake = FakeMonitor(
        DeviceSample(
            time.monotonic(),
            gpu_util_percent=util,
            power_w=power,
            memory_used_mb=used,
            rails_w={"VDD_GPU": rail},
        )
    )
    opened: list[int] = []

    def open_fake(index: int = 0) -> FakeMonitor:
        opened.append(index)
        return fake

    monkeypatch.setattr(detector_node, "open_device_monitor", open_fake)
    node, probe = node_with_probe(diagnostics_period=60.0)  # the timer does not fire in this test
    _run_frames(node, probe, read_bgr(assets_dir / "bus.jpg"), 5)
    assert opened == [0]  # a CPU backend: device index 0 (on Jetson the rails still apply)
    assert fake.calls == 0, "the monitor must never be sampled on the image path"

    values = node.diagnostics_values()
    assert fake.calls == 1
    assert values["gpu.monitor"] == "fake"
    assert values["gpu.util_percent"] == f"{util:.1f}"
    assert values["gpu.power_w"] == f"{power:.1f}"
    assert values["gpu.memory_used_mb"] == f"{used:.1f}"
    assert values["gpu.rail_w.VDD_GPU"] == f"{rail:.2f}"
    assert "gpu.process_memory_mb" not in values  # not reported by this source

    fake.fail = RuntimeError("NVML: GPU is lost")
    n = len(probe.diagnostics)
    node._publish_diagnostics()  # what the diagnostics timer calls
    assert spin_until(probe.executor, lambda: len(probe.diagnostics) > n)
    published = {kv.key: kv.value for kv in probe.diagnostics[-1].status[0].values}
    assert "GPU is lost" in published["gpu.monitor_error"] and published["gpu.monitor_errors"] == "1"
    assert "gpu.util_percent" not in published
    assert float(published["latency_ms.inference.p50"]) > 0 and published["state"] == "active"
    assert node.diagnostics_values()["gpu.monitor_errors"] == "2"

    report = node.timings_markdown()  # a failing monitor does not break the report either
    assert "| inference |" in report and "resident MiB" in report

    assert node.trigger_deactivate() == SUCCESS
    assert node.trigger_cleanup() == SUCCESS
    assert fake.closed
    assert not any(k.startswith("gpu.") for k in node.diagnostics_values())


def test_monitor_that_cannot_open_or_close_never_fails_a_transition(node_with_probe, monkeypatch):
    def broken(index: int = 0) -> None:
        raise PermissionError("/sys/bus/i2c/drivers/ina3221: permission denied")

    monkeypatch.setattr(detector_node, "open_device_monitor", broken)
    node, _ = node_with_probe()
    assert node.trigger_configure() == SUCCESS
    assert not any(k.startswith("gpu.") for k in node.diagnostics_values())
    assert node.trigger_cleanup() == SUCCESS

    fake = FakeMonitor(DeviceSample(time.monotonic()))

    def close_fails() -> None:
        raise OSError("tegrastats already gone")

    fake.close = close_fails  # type: ignore[method-assign]
    monkeypatch.setattr(detector_node, "open_device_monitor", lambda index=0: fake)
    assert node.trigger_configure() == SUCCESS
    assert node.diagnostics_values()["gpu.monitor"] == "fake"
    assert node.trigger_cleanup() == SUCCESS


def test_timings_report_has_stages_memory_counters_and_layers(
    node_with_probe, assets_dir, tmp_path, monkeypatch
):
    node, probe = node_with_probe()
    _run_frames(node, probe, read_bgr(assets_dir / "zidane.jpg"), 3)
    assert node.pipeline is not None
    layers = LayerProfiler()
    for ms in (0.2, 0.4):
        layers.report_layer_time("conv0", ms)
        layers.report_layer_time("detect", 2 * ms)
    # A backend with a layer profiler attached (TensorRT's enable_layer_profiling sets this).
    monkeypatch.setattr(node.pipeline.backend, "layer_profiler", layers, raising=False)
    report = node.timings_markdown()
    path = tmp_path / "timings.md"
    path.write_text(report)
    text = path.read_text()
    stats = node.profiler.stats()
    for stage in STAGES:
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {stage} |"))
        assert float(row.split("|")[2]) == pytest.approx(stats[stage].p50_ms, abs=0.006)
    assert f"frames.processed: {node.counters['processed']}" in text
    assert "resident MiB" in text and "onnxruntime on cpu" in text
    assert "## TensorRT layers" in text and "| detect |" in text


# --- issue 14: the node's diagnostics conventions (ros/diagnostics.py wired into the node) -------


def _status(probe: Probe, timeout: float) -> Any:
    n = len(probe.diagnostics)
    assert spin_until(probe.executor, lambda: len(probe.diagnostics) > n, timeout), "no diagnostics"
    return probe.diagnostics[-1].status[0]


def test_a_namespaced_node_reports_every_state_on_absolute_diagnostics(node_with_probe):
    """Silent unless active, and on ``<ns>/diagnostics``: a monitor on /diagnostics saw nothing."""
    from diagnostic_msgs.msg import DiagnosticStatus

    node, probe = node_with_probe(namespace="/robot_a", diagnostics_period=0.2)
    status = _status(probe, timeout=5.0)  # the probe listens on /diagnostics
    assert status.name == f"{node.get_name()}: pipeline"
    assert status.message == "unconfigured" and status.level == DiagnosticStatus.WARN
    assert node.trigger_configure() == SUCCESS
    assert spin_until(probe.executor, lambda: _status(probe, 5.0).message == "inactive", 10.0)
    assert probe.diagnostics[-1].status[0].level == DiagnosticStatus.OK


def test_no_input_warning_waits_for_the_stale_time_after_activation(node_with_probe):
    """``_last_frame_time`` started at 0.0: "no input for 5 s" the moment the node was activated."""
    from diagnostic_msgs.msg import DiagnosticStatus

    node, probe = node_with_probe(diagnostics_period=0.2)
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS

    def state() -> str:
        return {kv.key: kv.value for kv in _status(probe, 5.0).values}["state"]

    assert spin_until(probe.executor, lambda: state() == "active", 10.0)
    status = probe.diagnostics[-1].status[0]
    assert status.level == DiagnosticStatus.OK and status.message == "ok", status.message
