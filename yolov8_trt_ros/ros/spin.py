"""The one spin loop of every entry point: a single-threaded executor, in slices, until stopped.

Why a :class:`~rclpy.executors.SingleThreadedExecutor`: the node's only frame callback stores
the message in a slot for the inference thread, so nothing is gained by running callbacks in
parallel, and rclpy's ``MultiThreadedExecutor`` costs the inference thread dearly. On the H100
host its main thread held the GIL in every stack sample (rebuilding wait sets in Python while
a callback ran on a pool thread), and the node answered a 30 Hz camera at 5 Hz while its
pipeline ran 600 FPS. With one thread, a lifecycle transition (which destroys subscriptions)
also runs on the thread that builds the wait sets: the multi-threaded executor destroyed them
on a pool thread while the main thread was building one, and the process died with rclpy's
``InvalidHandle`` (``cannot use Destroyable because destruction was requested``).

Slices (``spin_once`` with a timeout) let the SIGINT/SIGTERM flag of :mod:`.signals` stop the
loop within one slice (see there). A middleware error raised by one slice is logged and the
loop goes on: a race inside rclpy must not take the process down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

LOG = logging.getLogger(__name__)
SLICE_S = 0.1


def make_executor(*nodes: Node) -> SingleThreadedExecutor:
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    return executor


def spin_until_stopped(
    executor: SingleThreadedExecutor,
    stop: threading.Event,
    tick: Callable[[], bool] | None = None,
    slice_s: float = SLICE_S,
) -> None:
    """Spin until ``stop`` is set, rclpy shuts down, or ``tick()`` (called each slice) returns True."""
    errors = 0
    try:
        while not stop.is_set() and rclpy.ok():
            try:
                executor.spin_once(timeout_sec=slice_s)
            except (ExternalShutdownException, KeyboardInterrupt):
                raise
            except Exception as exc:  # e.g. rclpy's InvalidHandle for an entity destroyed mid-wait
                errors += 1
                if errors == 1 or errors % 1000 == 0:
                    LOG.warning("executor slice failed (%d so far): %s: %s", errors, type(exc).__name__, exc)
            if tick is not None and tick():
                return
    except ExternalShutdownException:
        pass


def shut_down(executor: SingleThreadedExecutor, *nodes: Node) -> None:
    """Stop the executor, then destroy the nodes (in that order: none is destroyed under a callback)."""
    executor.shutdown(timeout_sec=5.0)
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown()
