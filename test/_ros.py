"""Helpers for tests that talk to real nodes over Fast DDS (not a test module).

Tests run on their own ROS domain (set in conftest before rclpy starts) and localhost-only
discovery, so parallel runs on one machine do not see each other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue, SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

REPO = Path(__file__).resolve().parents[1]
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    "inactive_shutdown": Transition.TRANSITION_INACTIVE_SHUTDOWN,
    "active_shutdown": Transition.TRANSITION_ACTIVE_SHUTDOWN,
}
STATE_LABELS = {
    State.PRIMARY_STATE_UNCONFIGURED: "unconfigured",
    State.PRIMARY_STATE_INACTIVE: "inactive",
    State.PRIMARY_STATE_ACTIVE: "active",
    State.PRIMARY_STATE_FINALIZED: "finalized",
    State.TRANSITION_STATE_CONFIGURING: "configuring",
}


def image_msg(img: np.ndarray, encoding: str = "bgr8", frame_id: str = "cam", stamp_sec: int = 0) -> Image:
    img = np.ascontiguousarray(img)
    msg = Image(height=img.shape[0], width=img.shape[1], encoding=encoding, is_bigendian=0)
    msg.header = Header(frame_id=frame_id)
    msg.header.stamp.sec = stamp_sec
    msg.step = int(img.strides[0])
    msg.data = img.tobytes()
    return msg


def read_bgr(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, path
    return img


def spin_until(executor: Any, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


class NodeProcess:
    """The detector node in its own process (``python -m ...detector_node``), log kept for asserts."""

    def __init__(self, name: str, params: dict[str, Any], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        args = [
            sys.executable,
            "-m",
            "yolov8_trt_ros.ros.detector_node",
            "--ros-args",
            "-r",
            f"__node:={name}",
        ]
        for key, value in params.items():
            args += ["-p", f"{key}:={_ros_literal(value)}"]
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy()
        )

    def log(self) -> str:
        if not self._log.closed:  # after stop() the file is closed: what is on disk is all
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # the node dumps its threads' stacks to the log
                time.sleep(1.0)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def _ros_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, list):
        return "[" + ",".join(_ros_literal(v) if not isinstance(v, str) else f"'{v}'" for v in value) + "]"
    return repr(value)


class Probe:
    """A test-side node: publishes images, records results, drives lifecycle and parameters."""

    def __init__(self, target: str, name: str = "probe") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from vision_msgs.msg import Detection2DArray

        from yolov8_trt_msgs.msg import TrackedObjectArray

        self.node: Node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.target = target
        self.detections: list[Detection2DArray] = []
        self.tracks: list[TrackedObjectArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.image_pub = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.node.create_subscription(Detection2DArray, "detections", self.detections.append, RELIABLE)
        self.node.create_subscription(TrackedObjectArray, "tracks", self.tracks.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, "diagnostics", self.diagnostics.append, RELIABLE)
        self._change = self.node.create_client(ChangeState, f"/{target}/change_state")
        self._get = self.node.create_client(GetState, f"/{target}/get_state")
        self._set = self.node.create_client(SetParameters, f"/{target}/set_parameters")

    def wait_for_node(self, timeout: float = 60.0) -> None:
        # Every client the probe calls: a request sent before discovery has matched the service's
        # reader and writer can be lost, and its call then waits out the whole timeout.
        clients = (self._change, self._get, self._set)
        ok = spin_until(self.executor, lambda: all(c.service_is_ready() for c in clients), timeout)
        assert ok, f"node {self.target} did not come up"

    def _call(self, client: Any, request: Any, timeout: float = 120.0) -> Any:
        future = client.call_async(request)
        assert spin_until(self.executor, future.done, timeout), f"{client.srv_name} timed out"
        return future.result()

    def transition(self, name: str) -> bool:
        return bool(self._call(self._change, self._change_request(name)).success)

    def transition_async(self, name: str) -> Any:
        """Request a transition without waiting; the future completes as the probe spins."""
        return self._change.call_async(self._change_request(name))

    @staticmethod
    def _change_request(name: str) -> ChangeState.Request:
        req = ChangeState.Request()
        req.transition.id = TRANSITIONS[name]
        return req

    def state(self) -> str:
        return STATE_LABELS.get(self._call(self._get, GetState.Request()).current_state.id, "other")

    def set_params(self, **values: Any) -> list[SetParametersResult]:
        req = SetParameters.Request()
        for key, value in values.items():
            req.parameters.append(ParameterMsg(name=key.replace("__", "."), value=_param_value(value)))
        return list(self._call(self._set, req).results)

    def wait_subscribed(self, timeout: float = 20.0) -> None:
        assert spin_until(self.executor, lambda: self.image_pub.get_subscription_count() > 0, timeout), (
            "detector never subscribed to image"
        )

    def send_and_wait(self, msg: Image, timeout: float = 30.0) -> Any:
        """Publish one image until the Detection2DArray answering it (same stamp) arrives.

        Images go best-effort (sensor-data QoS, as cameras publish them), so a frame sent just
        after discovery or while the node is busy may be lost or replaced: resend it.
        """
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)

        def answer() -> Any:
            return next(
                (d for d in self.detections if (d.header.stamp.sec, d.header.stamp.nanosec) == stamp), None
            )

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.image_pub.publish(msg)
            if spin_until(self.executor, lambda: answer() is not None, 1.0):
                return answer()
        raise AssertionError(f"no detections for the frame stamped {stamp}")

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def latest_diagnostics(self, timeout: float = 10.0) -> dict[str, str]:
        """The values of the next diagnostics message of the target node (others may publish too)."""
        n = len(self.diagnostics)

        def mine() -> list[Any]:
            return [m for m in self.diagnostics[n:] if m.status[0].name.startswith(f"{self.target}:")]

        assert spin_until(self.executor, lambda: bool(mine()), timeout), "no diagnostics"
        return {kv.key: kv.value for kv in mine()[-1].status[0].values}

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


@contextmanager
def node_and_probe(
    name: str, params: dict[str, Any], log_dir: Path, *, subscribed: bool = False
) -> Iterator[tuple[NodeProcess, Probe]]:
    """The detector in its own process and a probe that sees it; both gone afterwards.

    ``subscribed`` also waits until the node's image subscription exists (an active node).
    """
    proc = NodeProcess(name, params, log_dir)
    try:  # a probe that cannot start (rclpy not initialised) must not leave the node running
        probe = Probe(name, name=f"{name}_probe")
    except BaseException:
        proc.stop()
        raise
    try:
        probe.wait_for_node()
        if subscribed:
            probe.wait_subscribed(timeout=60)
        yield proc, probe
    finally:
        probe.close()
        proc.stop()


def _param_value(value: Any) -> ParameterValue:
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
        return ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=value)
    if isinstance(value, list):
        return ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float(v) for v in value]
        )
    raise TypeError(value)


# --- the real ROS 2 tools (ros2 launch / topic / lifecycle / param, launch_pytest) ---------


def ros_tools_missing() -> str | None:
    """Why the ros2 CLI tests cannot run here, or None.

    The PyPI wheels lack the tools; scripts/setup.sh --dev installs them from ../shared/ros-src
    where that exists, and a sourced ROS distro has them.
    """
    import importlib.util
    import shutil

    for module in ("ros2cli", "ros2launch", "ros2topic", "ros2lifecycle", "ros2param", "launch_ros"):
        if importlib.util.find_spec(module) is None:
            return f"no {module} (needs a ROS distro, or setup.sh --dev beside ../shared/ros-src)"
    if shutil.which("ros2") is None:
        return "no ros2 executable on PATH"
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("yolov8_trt_ros")
    except PackageNotFoundError:
        return "yolov8_trt_ros is not in the ament index (scripts/setup.sh --dev, then source scripts/env.sh)"
    return None


ROSOUT_QOS = QoSProfile(
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


class GraphClient:
    """A test-side node in its own rclpy context: records topics, reads states and parameters.

    Its own context, so it lives beside whatever else the test process initialised (launch_ros
    keeps another) and is shut down on its own.
    """

    def __init__(self, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node: Node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def record(self, msg_type: Any, topic: str, qos: QoSProfile = RELIABLE) -> list[Any]:
        got: list[Any] = []
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def _call(self, srv_type: Any, name: str, request: Any, timeout: float = 60.0) -> Any:
        client: Any = self.node.create_client(srv_type, name)
        try:
            assert self.wait(client.service_is_ready, timeout), f"no service {name}"
            future = client.call_async(request)
            assert self.wait(future.done, timeout), f"{name} timed out"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def state(self, node_fqn: str) -> str:
        reply = self._call(GetState, f"{node_fqn}/get_state", GetState.Request())
        return STATE_LABELS.get(reply.current_state.id, "other")

    def parameters(self, node_fqn: str, names: list[str]) -> dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        reply = self._call(GetParameters, f"{node_fqn}/get_parameters", GetParameters.Request(names=names))
        return {n: parameter_value_to_python(v) for n, v in zip(names, reply.values, strict=True)}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
