"""Take a camera's next frame from the middleware only when the inference thread is ready for it.

A callback group is rclpy's documented switch for "may this entity run now": an executor
leaves out of its wait set every entity whose group's :meth:`can_execute` is False. The
image subscriptions of each camera get a :class:`SlotGate` that is open only while that
camera's slot is empty. While a frame waits, the executor neither wakes for nor takes the
camera's newer messages; the subscription's keep-last history holds the newest, which is taken
the moment the slot frees (the inference thread triggers a guard condition to say so).

Why: every message the executor takes costs its thread a wait-set rebuild and a callback in
Python, under the GIL the inference thread needs. Flooded at thousands of frames per second,
taking each one to drop it starved inference (the node answered 40 of 3 700 frames per second
on the H100 while its pipeline ran 900 FPS). Gated, the executor takes one frame per processed
frame, whatever the camera rate. Frames the middleware overwrote are counted from the gaps
in the publisher's sequence numbers (:class:`SequenceGaps`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.callback_groups import CallbackGroup


class SlotGate(CallbackGroup):
    """Open (callbacks may run) while ``is_open()`` says so; never blocks another entity."""

    def __init__(self, is_open: Callable[[], bool]) -> None:
        super().__init__()
        self._is_open = is_open

    def can_execute(self, entity: Any) -> bool:
        return self._is_open()

    def beginning_execution(self, entity: Any) -> bool:
        return self._is_open()

    def ending_execution(self, entity: Any) -> None:
        pass


class SequenceGaps:
    """Messages of one publisher the subscription never delivered, from its sequence numbers.

    A publisher numbers its messages 1, 2, 3, ...; a jump from 7 to 10 means 8 and 9 were
    overwritten in the keep-last history (or lost on a best-effort link). A number that goes
    back (a restarted publisher, or a second publisher on the topic) restarts the count
    without counting anything. Middlewares that do not report numbers give 0 gaps.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    def update(self, info: Any) -> int:
        number = info.get("publication_sequence_number") if isinstance(info, dict) else None
        if not number or number < 0 or number >= (1 << 63):  # unsupported: 0 or max uint64
            return 0
        last, self._last = self._last, number
        if last is None or number <= last:
            return 0
        return number - last - 1


class TakenElsewhere(CallbackGroup):
    """Never run by an executor: the subscriptions of the rcl intake (``ros/rcl_intake.py``).

    Their messages are waited on and taken by the intake's own thread; an executor that also
    waited on them would wake for every frame and take them from under it.
    """

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass
