"""The detector node's diagnostics: thread-safe frame counters and the ``DiagnosticArray`` they feed.

Conventions (those of ``diagnostic_updater``, so ``diagnostic_aggregator``, ``rqt_robot_monitor``
and ``ros2 topic echo /diagnostics`` read it like any other node's): published on the absolute
:data:`DIAGNOSTICS_TOPIC` whatever the node's namespace, one status named
``"<node name>: <component>"``, ``hardware_id`` the device the engine runs on, values as text.

What the level says, in every lifecycle state, so a monitor always sees the node:

* ``unconfigured``: WARN (the node serves nothing; after a failed configure the message
  carries the error). ``inactive``: OK (deliberately stopped). ``active`` with ``enable``
  off: OK, ``paused``.
* ``active``: WARN while no frame has arrived for ``stale_after_s`` counted from the later of
  the activation and the last frame (not from the process start), and while bad frames were
  seen in the last ``bad_window_s`` (a sliding window: the WARN clears once the input is good
  again); else OK.

The frame counters are written by the executor (received, dropped) and the worker thread
(processed, bad frames) while the diagnostics timer reads them: :class:`Counters` takes a lock
for every access and is read through snapshots, as iterating a plain ``Counter`` while another
thread inserts a key raises ``RuntimeError: dictionary changed size during iteration``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import QoSProfile, ReliabilityPolicy

from yolov8_trt_ros.core.profiling import (
    DeviceMonitor,
    Profiler,
    peak_resident_memory_mb,
    resident_memory_mb,
)

#: Absolute, as ``diagnostic_updater`` publishes: a relative name would land in the node's namespace.
DIAGNOSTICS_TOPIC = "/diagnostics"
#: Reliable keep-last 10, as the node published before (the aggregator subscribes reliable).
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STALE_AFTER_S = 5.0
BAD_FRAME_WINDOW_S = 60.0

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN


class Counters(Mapping[str, int]):
    """Named event counts shared between threads; a missing name reads as 0 (as a ``Counter``).

    Reads of more than one key (iteration, ``items()``) go through :meth:`snapshot`, a copy
    taken under the lock, so a reader never sees the dict change size under it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def inc(self, key: str, n: int = 1) -> int:
        """Add ``n`` to ``key``; returns the new count."""
        with self._lock:
            value = self._counts.get(key, 0) + n
            self._counts[key] = value
            return value

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of every count."""
        with self._lock:
            return dict(self._counts)

    def total(self, prefix: str) -> int:
        """The sum of the counts whose names start with ``prefix`` (e.g. ``bad.``)."""
        with self._lock:
            return sum(v for k, v in self._counts.items() if k.startswith(prefix))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._counts

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)

    def items(self) -> Any:  # a snapshot's view: consistent, never changes under the reader
        return self.snapshot().items()


class SlidingCount:
    """Events in the last ``window_s`` seconds, kept in ``resolution_s`` buckets.

    Memory is bounded by the number of buckets, whatever the event rate (a camera sending
    200 bad frames a second for a minute costs 60 buckets, not 12000 timestamps). A count
    can include events up to one bucket older than the window.
    """

    def __init__(self, window_s: float, resolution_s: float = 1.0) -> None:
        if not window_s > 0 or not resolution_s > 0:
            raise ValueError("window_s and resolution_s must be positive")
        self.window_s = window_s
        self.resolution_s = resolution_s
        self._buckets: deque[list[int]] = deque()  # [bucket index, count], oldest first
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        oldest = math.floor((now - self.window_s) / self.resolution_s)
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()

    def add(self, now: float, n: int = 1) -> None:
        index = math.floor(now / self.resolution_s)
        with self._lock:
            if self._buckets and self._buckets[-1][0] >= index:
                self._buckets[-1][1] += n  # same bucket (or a clock that stepped back)
            else:
                self._buckets.append([index, n])
            self._expire(now)

    def count(self, now: float) -> int:
        with self._lock:
            self._expire(now)
            return sum(c for _, c in self._buckets)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


class NodeDiagnostics:
    """The node's counters, input watch and bad-frame window, and the status built from them.

    Threads: ``frame_*`` and ``bad_frame`` may be called from any thread (executor, worker),
    the others from the node's callbacks. ``clock`` is monotonic seconds (a parameter for tests).
    """

    def __init__(
        self,
        node_name: str,
        component: str = "pipeline",
        *,
        stale_after_s: float = STALE_AFTER_S,
        bad_window_s: float = BAD_FRAME_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], object] | None = None,
    ) -> None:
        self.name = f"{node_name}: {component}"
        self.stale_after_s = stale_after_s
        self.bad_window_s = bad_window_s
        self.counters = Counters()
        #: The device monitor the node opened (``gpu.*`` values), or None.
        self.monitor: DeviceMonitor | None = None
        self.monitor_errors = 0
        self._clock = clock
        self._warn = warn
        self._lock = threading.Lock()
        self._bad = SlidingCount(bad_window_s)
        self._bad_reasons: dict[str, SlidingCount] = {}
        self._watch_since: float | None = None  # activation time; None while not active
        self._last_input: float | None = None
        self._last_error = ""

    # --- what the node reports ---------------------------------------------------------------
    def activated(self) -> None:
        """Start the input watch now: "no input" counts from here, not from the process start."""
        with self._lock:
            self._watch_since = self._clock()
            self._last_input = None

    def deactivated(self) -> None:
        with self._lock:
            self._watch_since = None

    def configured(self) -> None:
        with self._lock:
            self._last_error = ""

    def configure_failed(self, reason: str) -> None:
        """Keep the reason for the ``unconfigured`` status (until the next successful configure)."""
        with self._lock:
            self._last_error = reason.strip().splitlines()[0][:200] if reason.strip() else "configure failed"

    def reset(self) -> None:
        """Counters and windows back to zero (cleanup: a new configuration starts a new count)."""
        self.counters.clear()
        self._bad.clear()
        with self._lock:
            self._bad_reasons.clear()

    def frame_received(self) -> None:
        with self._lock:
            self._last_input = self._clock()
        self.counters.inc("received")

    def frame_dropped(self) -> None:
        self.counters.inc("dropped")

    def frame_done(self, n: int = 1) -> None:
        self.counters.inc("processed", n)

    def bad_frame(self, reason: str) -> int:
        """Count a bad frame of kind ``reason``; returns how many of that kind so far (for the log)."""
        now = self._clock()
        self._bad.add(now)
        with self._lock:
            window = self._bad_reasons.get(reason)
            if window is None:
                window = self._bad_reasons[reason] = SlidingCount(self.bad_window_s)
        window.add(now)
        return self.counters.inc(f"bad.{reason}")

    # --- what the node publishes ---------------------------------------------------------------
    def seconds_without_input(self) -> float | None:
        """Since the later of activation and the last frame; None while not active."""
        with self._lock:
            if self._watch_since is None:
                return None
            since = (
                self._watch_since if self._last_input is None else max(self._watch_since, self._last_input)
            )
        return self._clock() - since

    def bad_in_window(self) -> dict[str, int]:
        """Bad frames per kind in the last ``bad_window_s`` (kinds with none left out)."""
        now = self._clock()
        with self._lock:
            windows = list(self._bad_reasons.items())
        counts = {reason: w.count(now) for reason, w in sorted(windows)}
        return {r: n for r, n in counts.items() if n}

    def level_and_message(self, state: str, enabled: bool = True) -> tuple[int, str]:
        """The status level and message for lifecycle ``state`` (see the module docstring)."""
        if state == "unconfigured":
            with self._lock:
                error = self._last_error
            return WARN, f"unconfigured: {error}" if error else "unconfigured"
        if state == "inactive":
            return OK, "inactive"
        if state != "active":
            return WARN, state
        if not enabled:
            return OK, "paused (enable is false)"
        problems = []
        idle = self.seconds_without_input()
        if idle is not None and idle >= self.stale_after_s:
            problems.append(f"no input for {idle:.0f} s")
        bad = self.bad_in_window()
        if bad:
            kinds = ", ".join(f"{r}: {n}" for r, n in bad.items())
            problems.append(f"{sum(bad.values())} bad frames in the last {self.bad_window_s:.0f} s ({kinds})")
        return (WARN, "; ".join(problems)) if problems else (OK, "ok")

    def values(
        self, state: str, profiler: Profiler, backend: Any = None, enabled: bool = True
    ) -> dict[str, str]:
        """Every value the status carries, as text (the keys the node always published, and more).

        ``backend`` is the loaded engine (``info`` and optionally ``device_memory_mb()``), None
        while unconfigured. Samples the device monitor once (0.04 ms with NVML on an H100):
        call it from the diagnostics timer, never from the image path.
        """
        values: dict[str, str] = {
            "state": state,
            "enabled": str(bool(enabled)).lower(),
            "fps": f"{profiler.fps():.2f}",
            "rss_mb": f"{resident_memory_mb():.1f}",
            "rss_peak_mb": f"{peak_resident_memory_mb():.1f}",
        }
        values.update({f"frames.{k}": str(v) for k, v in sorted(self.counters.snapshot().items())})
        values[f"bad_frames.last_{self.bad_window_s:.0f}s"] = str(sum(self.bad_in_window().values()))
        idle = self.seconds_without_input()
        if idle is not None:
            values["seconds_without_input"] = f"{idle:.1f}"
        with self._lock:
            if self._last_error:
                values["last_error"] = self._last_error
        for stage, st in profiler.stats().items():
            values[f"latency_ms.{stage}.p50"] = f"{st.p50_ms:.3f}"
            values[f"latency_ms.{stage}.p99"] = f"{st.p99_ms:.3f}"
        if backend is not None:
            info = backend.info
            values.update(
                {
                    "engine.backend": info.name,
                    "engine.device": info.device,
                    "engine.precision": info.precision,
                    "engine.input": f"{info.input_width}x{info.input_height}",
                    "engine.detail": info.detail,
                }
            )
            gpu_mb = getattr(backend, "device_memory_mb", None)
            if callable(gpu_mb):
                values["gpu_memory_mb"] = f"{gpu_mb():.1f}"
        values.update(self.device_values())
        return values

    def device_values(self) -> dict[str, str]:
        """``gpu.*`` keys from one monitor sample; a failing monitor adds its error instead.

        ``gpu.memory_used_mb`` is the whole device's (discrete GPU) or the whole system's
        (Jetson, unified memory); ``gpu.process_memory_mb`` this process's, where NVML sees it.
        The first failure is passed to ``warn`` (the node's logger), later ones only counted.
        """
        monitor = self.monitor
        if monitor is None:
            return {}
        values = {"gpu.monitor": monitor.name}
        try:
            sample = monitor.sample()
        except Exception as exc:  # NVML errors, a tegrastats that died: diagnostics go on
            self.monitor_errors += 1
            text = f"{type(exc).__name__}: {exc}"
            if self.monitor_errors == 1 and self._warn is not None:
                self._warn(f"{monitor.name} monitor failed: {text}")
            values["gpu.monitor_error"] = text[:200]
            values["gpu.monitor_errors"] = str(self.monitor_errors)
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

    def status(
        self, state: str, values: Mapping[str, str], hardware_id: str = "", enabled: bool = True
    ) -> DiagnosticStatus:
        level, message = self.level_and_message(state, enabled)
        status = DiagnosticStatus(level=level, name=self.name, message=message, hardware_id=hardware_id)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def message(
        self,
        state: str,
        values: Mapping[str, str],
        stamp: Time,
        hardware_id: str = "",
        enabled: bool = True,
    ) -> DiagnosticArray:
        """The ``DiagnosticArray`` to publish on :data:`DIAGNOSTICS_TOPIC` (stamp: the node's clock)."""
        msg = DiagnosticArray(status=[self.status(state, values, hardware_id, enabled)])
        msg.header.stamp = stamp
        return msg
