"""Ask a running detector whether it is healthy: lifecycle state, then diagnostics over a window.

Healthy means: the node answers ``/<node>/get_state`` with ``active``; its diagnostics arrive
(on ``/diagnostics`` and ``/<node>/diagnostics``, the two places the node may publish them,
matched by the status name ``<node>: ...``); the latest is not ERROR and names a loaded engine;
and over the window frames are not piling up unfinished (``frames.received`` grows while
``frames.processed`` and ``frames.bad.*`` stand still, or a frame has waited for inference
for long: a stalled pipeline). An idle node (no
frames at all) with a live engine is healthy. On a Jetson the sysfs readings are added to the
line, and an over-temperature (or, if asked, throttling) fails the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.srv import GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from yolov8_trt_ros.health import jetson

# Best effort matches reliable and best-effort publishers alike.
DIAG_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)


def _level(value: bytes | int) -> int:
    """DiagnosticStatus levels are ``byte`` fields: bytes in rclpy."""
    return value if isinstance(value, int) else int.from_bytes(value, "little")


@dataclass
class Options:
    node: str = "yolov8_trt_node"
    topics: list[str] = field(default_factory=list)  # default: /diagnostics and /<node>/diagnostics
    window_s: float = 3.0
    timeout_s: float = 10.0
    jetson_root: Path | None = Path("/")
    max_temp_c: float = 90.0
    fail_on_throttle: bool = False


@dataclass
class Sample:
    time_s: float
    level: int
    message: str
    values: dict[str, str]

    def frames(self, key: str) -> int:
        return int(self.values.get(f"frames.{key}", "0"))

    @property
    def finished(self) -> int:
        bad = sum(int(v) for k, v in self.values.items() if k.startswith("frames.bad."))
        return self.frames("processed") + bad


def judge(state: str, samples: list[Sample], window_s: float) -> tuple[bool, str]:
    """The verdict from the lifecycle state and the diagnostics seen (oldest first)."""
    if state != "active":
        return False, f"node is {state}"
    if not samples:
        return False, "no diagnostics from the node"
    last = samples[-1]
    if last.level >= _level(DiagnosticStatus.ERROR):
        return False, f"diagnostics ERROR: {last.message}"
    if "engine.backend" not in last.values:
        return False, "no engine loaded"
    engine = f"{last.values['engine.backend']}/{last.values.get('engine.precision', '?')}"
    first = samples[0]
    arrived = last.frames("received") - first.frames("received")
    done = last.finished - first.finished
    span = last.time_s - first.time_s
    if arrived > 0 and done == 0 and span >= 0.5 * window_s:
        return False, f"stalled: {arrived} frames arrived in {span:.1f} s, none finished ({engine})"
    # The node takes a camera's next frame only once the last one is done, so a stuck engine
    # stops ``received`` too: the age of the frame waiting for inference shows the stall.
    waited = float(last.values.get("waiting_frame_age_s", "0") or 0)
    if waited >= max(1.0, 0.5 * window_s) and done == 0:
        return False, f"stalled: a frame has waited {waited:.1f} s, none finished ({engine})"
    if arrived == 0:
        return True, f"ok: active, idle, engine {engine} loaded"
    fps = last.values.get("fps", "?")
    return True, f"ok: active, {done} frames in {span:.1f} s ({fps} FPS), engine {engine}"


class HealthProbe:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.node: Node = rclpy.create_node(f"health_check_{int(time.time() * 1000) % 10**9}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.samples: list[Sample] = []
        topics = opts.topics or ["/diagnostics", f"/{opts.node.lstrip('/')}/diagnostics"]
        for topic in dict.fromkeys(topics):
            self.node.create_subscription(DiagnosticArray, topic, self._on_diagnostics, DIAG_QOS)
        self.get_state: Any = self.node.create_client(GetState, f"/{opts.node.lstrip('/')}/get_state")

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        prefix = f"{self.opts.node.rsplit('/', 1)[-1]}:"
        for status in msg.status:
            if status.name.startswith(prefix):
                level = _level(status.level)
                values = {kv.key: kv.value for kv in status.values}
                self.samples.append(Sample(time.monotonic(), level, status.message, values))

    def _spin_until(self, done: object, deadline: float) -> None:
        while time.monotonic() < deadline and not done():  # type: ignore[operator]
            self.executor.spin_once(timeout_sec=0.05)

    def state(self, deadline: float) -> str | None:
        self._spin_until(self.get_state.service_is_ready, deadline)
        if not self.get_state.service_is_ready():
            return None
        future = self.get_state.call_async(GetState.Request())
        self._spin_until(future.done, deadline)
        result = future.result() if future.done() else None
        if result is None:
            return None
        return str(result.current_state.label)

    def run(self) -> tuple[bool, str]:
        opts = self.opts
        start = time.monotonic()
        state = self.state(start + opts.timeout_s)
        if state is None:
            return False, f"node {opts.node} does not answer /{opts.node.lstrip('/')}/get_state"
        if state != "active":
            return False, f"node {opts.node} is {state}"
        # Diagnostics over the window; give up at the timeout if fewer than two arrive.
        window_end = time.monotonic() + opts.window_s
        enough = lambda: time.monotonic() >= window_end and len(self.samples) >= 2  # noqa: E731
        self._spin_until(enough, start + opts.timeout_s)
        ok, reason = judge(state, self.samples, opts.window_s)
        if ok and len(self.samples) < 2:
            ok, reason = False, f"fewer than two diagnostics from {opts.node} in {opts.timeout_s:.0f} s"
        return ok, reason

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def check(opts: Options) -> tuple[bool, str]:
    """The verdict and its one-line reason (rclpy must be initialised)."""
    probe = HealthProbe(opts)
    try:
        ok, reason = probe.run()
    finally:
        probe.close()
    if opts.jetson_root is not None:
        report = jetson.read_report(opts.jetson_root)
        if report.is_jetson or report.temperatures_c:
            problems = report.problems(opts.max_temp_c, opts.fail_on_throttle)
            if problems:
                ok, reason = False, f"{reason}; {'; '.join(problems)}"
            summary = report.summary()
            if summary:
                reason = f"{reason}; {summary}"
    return ok, reason
