"""Camera frames taken from the middleware on a thread of their own, without the GIL.

The image subscriptions are ordinary rclpy subscriptions (QoS, graph, ``ros2 node info`` as
usual) in a callback group the executor never runs (:class:`~.frame_gate.TakenElsewhere`).
This thread waits on them in ``rcl_wait`` and takes each frame with
``rcl_take_serialized_message`` into a reused buffer (``ros/rcl_take.py``), both without the
GIL, and hands the node a memoryview of that buffer, exactly what rclpy hands a ``raw=True``
callback, minus rclpy's second copy into a fresh ``bytes``. It waits only on the cameras whose
slot is free (the gate of ``ros/frame_gate.py``); the inference thread wakes it through a
guard condition when a slot frees.

Why: rclpy's take holds the GIL while it copies the frame twice, and the executor's wait-set
rebuild is Python too; both ran beside the inference thread, which needs the GIL between its
GPU launches (``benchmarks/node_rate.md``). Here the only Python per frame is the header's
parse and the hand-over.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from rclpy.guard_condition import GuardCondition
from rclpy.node import Node

from yolov8_trt_ros.ros.rcl_take import (
    RET_TIMEOUT,
    RclError,
    RclLibrary,
    ReceiveBuffer,
    ReceiveBuffers,
    take_newest,
)

#: (camera index, serialized message, message info as rclpy gives it)
OnFrame = Callable[[int, memoryview, dict[str, int]], None]
#: Buffers per camera: the one being filled, one waiting, the inference thread's two and the
#: debug image's queue, with room to spare; beyond it the camera waits for one to free.
BUFFERS_PER_CAMERA = 16
ERROR_PAUSE_S = 0.1


class RclIntake:
    """One thread taking the newest frame of every camera whose slot is free (module docstring)."""

    def __init__(
        self,
        node: Node,
        subscriptions: Sequence[Any],
        ready: Callable[[int], bool],
        on_frame: OnFrame,
        on_error: Callable[[str], None],
        poll_s: float = 0.1,
        history_depth: int = 1,
    ) -> None:
        """``ready(i)``: camera i may deliver; ``on_error`` gets each failure's text (thread-safe).

        ``history_depth``: the subscriptions' keep-last depth; deeper than 1, each take drains
        the history so the newest frame is the one handed over.
        """
        self._lib = RclLibrary.load()
        self._node = node
        self._subs = list(subscriptions)
        self._ready = ready
        self._on_frame = on_frame
        self._on_error = on_error
        self._poll_ns = int(poll_s * 1e9)
        self._drain = history_depth > 1
        self._buffers = [ReceiveBuffers(self._lib, BUFFERS_PER_CAMERA) for _ in self._subs]
        self._wake = GuardCondition(None, None, node.context)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yolov8_intake", daemon=True)
        try:  # everything that can fail fails here, where the node can still fall back
            self._pointers = [s.handle.pointer for s in self._subs]
            self._wake_pointer = self._wake.handle.pointer
            context = node.context.handle
            if context is None:
                raise RclError("the node's context is shut down")
            self._waits = self._lib.rcl_get_zero_initialized_wait_set()
            ref = ctypes.byref(self._waits)
            self._lib.call(
                "rcl_wait_set_init", ref, len(self._subs), 1, 0, 0, 0, 0, context.pointer, self._lib.allocator
            )
        except BaseException:
            self._wake.destroy()
            raise

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Make the thread look at the slots again (a slot freed, or stop). Thread-safe.

        The inference thread may still call it while the intake stops; once the guard
        condition is destroyed that call does nothing instead of raising into that thread.
        """
        try:
            self._wake.trigger()
        except Exception:
            if not self._stop.is_set():
                raise

    def stop(self, timeout: float) -> bool:
        """Stop and join the thread, then free the wait set, the guard condition and the buffers
        no frame refers to any more (the others once their last view is gone)."""
        self._stop.set()
        self.wake()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self._lib.rcl_wait_set_fini(ctypes.byref(self._waits))
        for buffers in self._buffers:
            buffers.close()
        self._wake.destroy()
        return True

    def _run(self) -> None:
        with ExitStack() as held:
            # In use while this thread runs: a subscription destroyed meanwhile is freed after.
            for handle in (self._node.context.handle, self._wake.handle, *(s.handle for s in self._subs)):
                held.enter_context(handle)
            while not self._stop.is_set():
                try:
                    self._once()
                except Exception as exc:  # never let the intake die: report, pause, go on
                    self._on_error(f"{type(exc).__name__}: {exc}")
                    time.sleep(ERROR_PAUSE_S)

    def _once(self) -> None:
        """Take what already waits for a ready camera; only when nothing did, wait for more.

        When frames come faster than the node, a frame always waits by the time its slot frees,
        so it is taken at once: one foreign call per frame instead of a wait set's five. Each
        call returns through the GIL, which the inference thread holds while it runs Python.
        """
        ready = self._ready_buffers()
        if sum(self._take(camera, buffer) for camera, buffer in ready.items()):
            return
        lib = self._lib
        ref = ctypes.byref(self._waits)
        lib.call("rcl_wait_set_clear", ref)
        for camera in ready:
            lib.call("rcl_wait_set_add_subscription", ref, self._pointers[camera], None)
        lib.call("rcl_wait_set_add_guard_condition", ref, self._wake_pointer, None)
        ret = lib.rcl_wait(ref, self._poll_ns)
        if ret == RET_TIMEOUT:
            return
        lib.check(ret, "rcl_wait")
        for slot, (camera, buffer) in enumerate(ready.items()):
            if self._waits.subscriptions[slot] and not self._stop.is_set():
                self._take(camera, buffer)

    def _ready_buffers(self) -> dict[int, ReceiveBuffer]:
        """The cameras that may deliver, each with the free buffer its next frame goes into.

        A camera whose buffers are all still referenced is left out (and reported) until one
        frees, which the next poll sees.
        """
        ready: dict[int, ReceiveBuffer] = {}
        for camera, buffers in enumerate(self._buffers):
            if not self._ready(camera):
                continue
            buffer = buffers.free_buffer()
            if buffer is None:
                self._on_error(f"camera {camera}: all {BUFFERS_PER_CAMERA} receive buffers still referenced")
            else:
                ready[camera] = buffer
        return ready

    def _take(self, camera: int, buffer: ReceiveBuffer) -> bool:
        """Hand the camera's next frame over, taken into ``buffer``; False when there was none."""
        info = take_newest(self._lib, self._pointers[camera], buffer, self._drain)
        if info is None:
            return False
        self._on_frame(camera, buffer.view(), info.as_dict())
        return True
