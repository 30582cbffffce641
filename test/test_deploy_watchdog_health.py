"""systemd notify and the health command against a real detector whose pipeline is stalled on purpose.

The node runs in this process (so its engine can be made to hang: ``infer`` blocks on an event,
the way a wedged GPU call would), spun by its own executor thread, with ``$NOTIFY_SOCKET`` a
real unix datagram socket bound here. The health command runs as the separate process Docker
or systemd would start, over real DDS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from _ros import NodeProcess, Probe, image_msg, read_bgr, spin_until
from yolov8_trt_ros.ros.detector_node import YoloDetectorNode

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "jetson_orin_sysfs"
NAME = "wd_detector"


class NotifySocket:
    """What systemd's end of ``$NOTIFY_SOCKET`` receives, message by message, with arrival times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def pings_since(self, t: float) -> int:
        return sum(1 for when, m in list(self.messages) if when >= t and m == "WATCHDOG=1")

    def seen(self, text: str) -> bool:
        return any(text in m for _, m in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def health(*args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolov8_trt_ros.health",
            "--node",
            NAME,
            "--window",
            "2",
            "--timeout",
            "20",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert run.stdout.count("\n") == 1, run.stdout + run.stderr
    return run.returncode, run.stdout.strip()


def health_while_publishing(probe: Probe, frame: Any, *args: str) -> tuple[int, str]:
    """The health command while this thread keeps a camera's 10 Hz going."""
    result: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: result.append(health(*args)))
    thread.start()
    stamp = 1000
    while thread.is_alive():
        stamp += 1
        probe.image_pub.publish(image_msg(frame, stamp_sec=stamp))
        probe.spin(0.1)
    thread.join()
    return result[0]


@pytest.fixture(scope="module")
def watched(
    rclpy_session, tmp_path_factory, detector_model
) -> Iterator[tuple[YoloDetectorNode, Probe, NotifySocket]]:
    tmp = tmp_path_factory.mktemp("wd")
    notify = NotifySocket(tmp / "notify.sock")
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    os.environ["NOTIFY_SOCKET"] = str(notify.path)
    os.environ["WATCHDOG_USEC"] = "400000"  # a ping every 0.2 s
    params = {
        "backend": "onnxruntime",
        "model_path": str(detector_model),
        "num_threads": 1,
        "diagnostics_period": 0.25,
        "watchdog_stall_s": 1.0,
    }
    node = YoloDetectorNode(NAME, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(0.05) for _ in iter(stop.is_set, True)])
    spinner.start()
    probe = Probe(NAME, name=f"{NAME}_probe")
    probe.wait_for_node()
    try:
        yield node, probe, notify
    finally:
        probe.close()
        stop.set()
        spinner.join()
        executor.remove_node(node)
        node.trigger_shutdown()
        node.destroy_node()
        notify.close()


def test_ready_and_pings_while_idle_then_health_ok(watched):
    _, probe, notify = watched
    assert not notify.seen("READY=1"), "READY before the node is active"
    assert probe.transition("configure")
    assert probe.transition("activate")
    assert spin_until(probe.executor, lambda: notify.seen("READY=1"), 10)
    t = time.monotonic()
    probe.spin(1.5)
    assert notify.pings_since(t) >= 3, notify.messages[-5:]  # 7 at 0.2 s; slack for a busy machine
    code, line = health()
    assert code == 0 and line.startswith("ok: active, idle, engine onnxruntime"), line


def test_frames_flowing_then_stalled_pipeline_stops_pings_and_fails_health(watched, assets_dir):
    node, probe, notify = watched
    frame = read_bgr(assets_dir / "bus.jpg")
    probe.wait_subscribed()
    code, line = health_while_publishing(probe, frame)
    assert code == 0 and " frames in " in line, line
    t = time.monotonic()
    probe.spin(1.5)
    assert notify.pings_since(t) >= 3

    backend = node.pipeline.backend
    release = threading.Event()
    infer = backend.infer
    backend.infer = lambda tensor: (release.wait(60), infer(tensor))[1]  # the engine hangs
    try:
        stamp = 2000
        for _ in range(25):  # 2.5 s of frames: the stall is seen after watchdog_stall_s = 1 s
            stamp += 1
            probe.image_pub.publish(image_msg(frame, stamp_sec=stamp))
            probe.spin(0.1)
        t = time.monotonic()
        for _ in range(10):
            stamp += 1
            probe.image_pub.publish(image_msg(frame, stamp_sec=stamp))
            probe.spin(0.1)
        assert notify.pings_since(t) == 0, "pings went on while the pipeline was stalled"
        assert notify.seen("STATUS=stalled")
        code, line = health_while_publishing(probe, frame)
        assert code == 1 and line.startswith("stalled: ") and "none finished" in line, line
    finally:
        release.set()
        backend.infer = infer
    # The engine answers again: pings resume.
    probe.image_pub.publish(image_msg(frame, stamp_sec=9999))
    t = time.monotonic()
    assert spin_until(probe.executor, lambda: notify.pings_since(t) >= 2, 10)


def test_hot_jetson_fails_health(watched, tmp_path):
    import shutil

    board = tmp_path / "orin"
    shutil.copytree(FIXTURE, board)
    (board / "sys/devices/virtual/thermal/thermal_zone1/temp").write_text("97000\n")
    code, line = health("--jetson-root", str(board))
    assert code == 1 and "gpu-thermal at 97.0 C (limit 90 C)" in line and "power mode 0 (MAXN)" in line, line


def test_inactive_node_fails_health(watched):
    _, probe, _ = watched
    assert probe.transition("deactivate")
    code, line = health()
    assert code == 1 and line == f"node {NAME} is inactive", line


def test_unknown_node_fails_health():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolov8_trt_ros.health",
            "--node",
            "nobody_here",
            "--timeout",
            "3",
            "--window",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 1 and "does not answer /nobody_here/get_state" in run.stdout


def test_node_process_says_ready_and_stopping(rclpy_session, tmp_path, detector_model, monkeypatch):
    """The real entry point (``main``), as systemd starts it: READY once active, STOPPING on SIGTERM."""
    notify = NotifySocket(tmp_path / "proc.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    params = {
        "backend": "onnxruntime",
        "model_path": str(detector_model),
        "autostart": True,
        "num_threads": 1,
    }
    proc = NodeProcess("sd_detector", params, tmp_path)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not notify.seen("READY=1"):
            time.sleep(0.1)
        assert notify.seen("READY=1"), proc.log()
        assert not notify.seen("WATCHDOG=1"), "no WATCHDOG_USEC: no pings"
    finally:
        code = proc.stop()
    time.sleep(0.3)
    assert notify.seen("STOPPING=1") and code == 0, proc.log()
    notify.close()
