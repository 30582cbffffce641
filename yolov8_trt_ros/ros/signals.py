"""rclpy start-up with SIGINT/SIGTERM turned into a flag that the spin loops check.

rclpy's own handlers wake the executor's wait set from a signal; in a clean-clone test run
one SIGTERM in about four left a node's executor waiting in ``rcl_wait`` until it was killed.
Python handlers cannot run while the main thread sits in C, so every entry point spins in
short slices (``spin_once`` with a timeout) and stops when the flag is set: shutdown then
takes at most one slice, whatever the middleware does. ``kill -USR1 <pid>`` prints every
thread's Python stack to stderr (a hung process's first clue).
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Sequence

import rclpy
from rclpy.signals import SignalHandlerOptions


def init(args: Sequence[str] | None = None) -> threading.Event:
    """``rclpy.init`` without rclpy's signal handlers; returns the flag SIGINT/SIGTERM set."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
