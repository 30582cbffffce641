"""The node's side of a ``Type=notify`` systemd unit: READY, WATCHDOG while healthy, STOPPING.

The protocol is one datagram per message to the unix socket named by ``$NOTIFY_SOCKET``
(``@name`` is Linux's abstract namespace), so it is written out here in a few lines rather than
taken from a library: ``sdnotify`` (PyPI) is unmaintained since 2017 and its whole content is the
same ``sendto``; ``cysystemd``/``systemd-python`` need libsystemd headers to build, which a
container or a Jetson image may not have. Outside systemd (no ``$NOTIFY_SOCKET``) every call is
a no-op.

Health decides the pings: systemd restarts the service when they stop for ``WatchdogSec``. A
ping is sent only while the pipeline is healthy: the node active (or inactive with its engine
loaded), its worker thread alive, and frames flowing, or none arriving (idle, engine live). A
stalled pipeline (frames arriving, none finished for ``watchdog_stall_s``) stops the pings.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

if TYPE_CHECKING:  # the node imports this module
    from yolov8_trt_ros.ros.detector_node import YoloDetectorNode


def notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``message`` (``READY=1``, ``WATCHDOG=1``, ...) to systemd; False outside systemd."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False  # systemd gone (shutdown) or a wrong path: nothing to tell, nothing to fix
    return True


def watchdog_period_s(environ: dict[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` (systemd's advice), if the watchdog is meant for this process."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.05)
    except ValueError:
        return None


@dataclass
class Progress:
    """Frames in and frames finished, as the node counts them."""

    received: int
    finished: int  # processed + bad (a bad frame is handled, not stuck)


class StallDetector:
    """Frames arrived since the last finished one, and none finished for ``stall_s``: stalled."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._finished = -1
        self._received_at_progress = 0
        self._progress_time = time.monotonic()

    def update(self, p: Progress, now: float | None = None) -> bool:
        """True while stalled."""
        now = time.monotonic() if now is None else now
        if p.finished != self._finished:
            self._finished = p.finished
            self._received_at_progress = p.received
            self._progress_time = now
            return False
        waiting = p.received > self._received_at_progress
        return waiting and now - self._progress_time > self.stall_s


def node_progress(node: Any) -> Progress:
    counters = node.counters.snapshot()  # the inference thread counts while we read
    bad = sum(v for k, v in counters.items() if k.startswith("bad."))
    return Progress(int(counters.get("received", 0)), int(counters.get("processed", 0)) + bad)


class SystemdNotifier:
    """Created once in the node's ``__init__``; call :meth:`stopping` when shutdown begins.

    Reads the node's ``_state``, ``pipeline``, ``_worker`` and ``counters`` (the detector's own
    bookkeeping; one place to adapt if those move).
    """

    def __init__(self, node: YoloDetectorNode, environ: dict[str, str] | None = None) -> None:
        self.node = node
        self.environ = dict(os.environ if environ is None else environ)
        stall_s = float(node.declare_parameter("watchdog_stall_s", 5.0).value or 5.0)
        self.stall = StallDetector(stall_s)
        self.ready = False
        self.pings = 0
        self.reason = "starting"
        self.enabled = bool(self.environ.get("NOTIFY_SOCKET"))
        self.watchdog_s = watchdog_period_s(self.environ)
        if not self.enabled:
            return
        period = min(self.watchdog_s or 1.0, 1.0)
        # Its own group: a slow callback elsewhere in the node never delays a ping.
        self._timer = node.create_timer(period, self.tick, callback_group=MutuallyExclusiveCallbackGroup())

    def health(self) -> tuple[bool, str]:
        node = self.node
        state = str(getattr(node, "_state", "unknown"))
        if getattr(node, "pipeline", None) is None:
            return False, f"{state}, no engine loaded"
        if state == "inactive":
            return True, "inactive, engine loaded"
        if state != "active":
            return False, state
        worker = getattr(node, "_worker", None)
        if worker is not None and not worker.alive:
            return False, "worker thread died"
        p = node_progress(node)
        waited = node.waiting_frame_age_s()
        if waited > self.stall.stall_s:  # the gated intake stops while inference is stuck
            return False, f"stalled: a frame has waited {waited:.1f} s for inference"
        if self.stall.update(p):
            return False, f"stalled: no frame finished for {self.stall.stall_s:.0f} s while frames arrive"
        return True, f"active, {p.finished} frames handled"

    def tick(self) -> None:
        healthy, reason = self.health()
        state = str(getattr(self.node, "_state", ""))
        if not self.ready and state == "active":
            self.ready = notify(f"READY=1\nSTATUS={reason}", self.environ)
        elif reason != self.reason:
            notify(f"STATUS={reason}", self.environ)
        self.reason = reason
        if healthy and self.ready and self.watchdog_s is not None and notify("WATCHDOG=1", self.environ):
            self.pings += 1

    def stopping(self) -> None:
        if self.enabled:
            notify("STOPPING=1\nSTATUS=stopping", self.environ)
