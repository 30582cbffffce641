"""The node as a ROS user checks it: ``ros2 launch``, ``ros2 topic hz``, ``ros2 lifecycle``, ``ros2 param``.

Every command is the real CLI in its own process, as typed in a shell (nothing imported from
the tools). Needs them installed (a ROS distro, or scripts/setup.sh --dev beside
../shared/ros-src); elsewhere these tests skip with the reason. One bring-up serves the module:
x86.launch.py with ``backend:=onnxruntime`` and ``params_file:=`` a copy of config/x86.yaml
pointed at the test model, fed by the camera source at 5 Hz; a second one checks the compressed
topic's remapping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from _ros import GraphClient, ros_tools_missing

MISSING = ros_tools_missing()
pytestmark = [
    pytest.mark.launch_test,
    pytest.mark.ros,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
]
REPO = Path(__file__).resolve().parents[1]
NODE = "/yolov8_trt_node"
CAMERA_RATE = 5.0


def ros2(*args: str, timeout: float = 60.0, tries: int = 5) -> str:
    """``ros2 ARGS`` without the daemon (no process outlives the test); its stdout and stderr.

    Without the daemon a command discovers the graph itself in its spin time (2 s here, 0.5 s by
    default) and may, on a loaded machine, not see the node yet: such an answer is retried
    (seen on the 2-core machine: one answer in three was "Node not found" with 1 s).

    A command that never returns is retried too: a fresh client's service request can be
    answered before the service has matched the client's reply reader, and that reply is lost
    (the discovery race of ros2/rmw_fastrtps#390 and #418; seen here once in CI: ``ros2 param
    set`` silent for 60 s, the test passing on three reruns). The last try's timeout raises.
    """
    out = ""
    for attempt in range(tries):
        try:
            proc = subprocess.run(
                ["ros2", *args, "--no-daemon", "--spin-time", "2.0"],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=REPO,
            )
        except subprocess.TimeoutExpired:
            if attempt == tries - 1:
                raise
            continue
        out = proc.stdout + proc.stderr
        if "not found" not in out.lower() and "waiting for service" not in out.lower():
            return out
        time.sleep(1.0)
    return out


@contextmanager
def _launch(
    tmp: Path, detector_model: Path, *launch_args: str, **node_params: object
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``ros2 launch yolov8_trt_ros x86.launch.py`` with the test model; stopped with SIGINT after."""
    cfg = yaml.safe_load((REPO / "config" / "x86.yaml").read_text())
    cfg["/**/yolov8_trt_node"]["ros__parameters"].update(model_path=str(detector_model), **node_params)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(cfg))
    log = open(tmp / "launch.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            "ros2",
            "launch",
            "yolov8_trt_ros",
            "x86.launch.py",
            "backend:=onnxruntime",
            f"params_file:={params}",
            "use_camera:=true",
            "camera_source:=synthetic:0",
            f"camera_rate:={CAMERA_RATE}",
            *launch_args,
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the SIGINT below reaches every node
    )
    try:
        yield proc, tmp / "launch.log"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the shell does
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory, detector_model: Path) -> Iterator[GraphClient]:
    """The module's bring-up: raw camera images in, detections flowing."""
    with _launch(tmp_path_factory.mktemp("ros_cli"), detector_model) as (proc, log):
        client = GraphClient("cli_probe")
        try:
            from vision_msgs.msg import Detection2DArray

            got = client.record(Detection2DArray, "/detections")
            if not client.wait(lambda: len(got) >= 2 or proc.poll() is not None, timeout=120):
                pytest.fail("no detections from ros2 launch:\n" + log.read_text()[-3000:])
            yield client
        finally:
            client.close()


def _subscribed(client: GraphClient, namespace: str = "/") -> dict[str, list[str]]:
    """The node's subscriptions by topic (empty while the graph does not know the node yet)."""
    from rclpy.impl.implementation_singleton import rclpy_implementation

    try:
        return dict(client.node.get_subscriber_names_and_types_by_node("yolov8_trt_node", namespace))
    except rclpy_implementation.NodeNameNonExistentError:
        return {}


def test_launch_remaps_image(launched: GraphClient) -> None:
    assert _subscribed(launched).get("/camera/image_raw") == ["sensor_msgs/msg/Image"], _subscribed(launched)


def test_launch_remaps_the_compressed_topic_which_replaces_the_raw_one(
    tmp_path: Path, detector_model: Path
) -> None:
    """A remapping rule matches a whole name: without its own rule image/compressed would stay
    /image/compressed whatever image_topic:= says. And compressed input is one transport: the raw
    topic is not subscribed beside it (both fed one slot and advanced the tracker twice).

    A bring-up of its own, in a namespace so that it is told apart from the module's node.
    """
    with _launch(tmp_path, detector_model, "namespace:=cmp", compressed_input=True) as (_, log):
        client = GraphClient("cli_probe_compressed")
        try:
            ok = client.wait(
                lambda: "/camera/image_raw/compressed" in _subscribed(client, "/cmp"), timeout=120
            )
            assert ok, log.read_text()[-3000:]
            subscribed = _subscribed(client, "/cmp")
            assert subscribed["/camera/image_raw/compressed"] == ["sensor_msgs/msg/CompressedImage"], (
                subscribed
            )
            assert "/camera/image_raw" not in subscribed, subscribed
        finally:
            client.close()


def test_ros2_topic_hz_reads_the_detection_rate(launched: GraphClient) -> None:
    from vision_msgs.msg import Detection2DArray

    stamps: list[float] = []
    launched.node.create_subscription(
        Detection2DArray, "/detections", lambda _m: stamps.append(time.monotonic()), 10
    )
    hz = subprocess.Popen(
        # A window longer than the run: hz averages everything it received, as the probe does.
        ["ros2", "topic", "hz", "/detections", "--window", "1000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        launched.spin(8.0)  # hz prints once a second; meanwhile count the same messages here
    finally:
        hz.send_signal(signal.SIGINT)
        out, _ = hz.communicate(timeout=20)
    rates = [float(r) for r in re.findall(r"average rate: ([0-9.]+)", out)]
    assert rates, f"ros2 topic hz printed no rate:\n{out}"
    assert len(stamps) >= 3, "the probe saw fewer than 3 detections in 8 s"
    seen = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    # One result per camera frame at most; what hz reports is what a subscriber receives.
    assert rates[-1] <= CAMERA_RATE * 1.2, (rates, out)
    assert abs(rates[-1] - seen) <= 0.4 * seen, f"hz says {rates[-1]:.2f} Hz, the probe saw {seen:.2f} Hz"


def test_ros2_lifecycle_and_param_drive_the_node(launched: GraphClient) -> None:
    from vision_msgs.msg import Detection2DArray

    assert ros2("lifecycle", "get", NODE).strip() == "active [3]"
    assert "Transitioning successful" in ros2("lifecycle", "set", NODE, "deactivate")
    assert ros2("lifecycle", "get", NODE).strip() == "inactive [2]"
    got = launched.record(Detection2DArray, "/detections")
    launched.spin(1.5)
    assert got == [], "an inactive node published detections"

    assert "Set parameter successful" in ros2("param", "set", NODE, "conf_threshold", "0.6")
    assert ros2("param", "get", NODE, "conf_threshold").strip() == "Double value is: 0.6"
    refused = ros2("param", "set", NODE, "conf_threshold", "1.5")
    assert "Setting parameter failed" in refused, refused
    assert ros2("param", "get", NODE, "conf_threshold").strip() == "Double value is: 0.6"

    assert "Transitioning successful" in ros2("lifecycle", "set", NODE, "activate")
    assert launched.wait(lambda: sum(len(m.detections) for m in got) >= 3, timeout=60), (
        "no detections after activate"
    )
    scores = [d.results[0].hypothesis.score for m in got for d in m.detections]
    assert min(scores) >= 0.6, "the threshold set with ros2 param does not apply"
