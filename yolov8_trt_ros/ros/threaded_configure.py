"""Configure's long part off the executor: engine load or TensorRT build, and warm-up.

rclpy runs a lifecycle transition inside the ``change_state`` service callback, on the
executor's thread. The node spins one single-threaded executor (``spin.py`` says why), so a
TensorRT build of several minutes would leave ``get_state``, the parameter services, the
diagnostics timer and every other node of the process silent until it ends: a launch file, an
operator or a fleet monitor would see a dead node.

Here ``configure`` requested through the service (``ros2 lifecycle set``, a launch file's
lifecycle event, a manager), autostart and model updates run as a coroutine: it moves the
state machine to ``configuring`` (what ``get_state`` answers meanwhile), runs the node's
``prepare`` on a thread of its own and awaits it, then finishes the transition back on the
executor's thread, where ``on_configure`` creates the node's publishers: every ROS entity is
created and destroyed on that one thread. Other transitions, and ``trigger_configure()``
called directly, run as rclpy runs them (synchronously).

The coroutine lives in a reentrant callback group: rclpy keeps a callback group busy while a
coroutine of it waits, and the parameter services share the node's default group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import Executor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.task import Future

T = TypeVar("T")
ChangeStateHandler = Callable[[ChangeState.Request, ChangeState.Response], ChangeState.Response]


def run_on_thread(executor: Executor | None, fn: Callable[[], T], name: str) -> Future[T]:
    """``fn()`` on a daemon thread, as an rclpy Future a coroutine callback can await.

    Completing the future from the thread schedules its (no-op) done callback on ``executor``,
    which wakes the executor's wait: without it a ``spin()`` with no timeout would not resume
    the waiting coroutine until some unrelated event arrived.
    """
    future: Future[T] = Future(executor=executor)
    future.add_done_callback(lambda _: None)

    def run() -> None:
        try:
            future.set_result(fn())
        except Exception as exc:  # handed to the awaiting coroutine
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class ThreadedConfigure:
    """Installed once on a lifecycle node (in its ``__init__``, before it spins).

    ``prepare`` does the long, ROS-free part (load, build, warm up) and returns what
    ``on_configure`` needs; ``on_configure`` gets it through :meth:`take` (None when configure
    was triggered directly and must load by itself).
    """

    def __init__(
        self, node: LifecycleNode, prepare: Callable[[], Any], group: ReentrantCallbackGroup
    ) -> None:
        self._node = node
        self._prepare = prepare
        self._prepared: Any = None
        self.group = group
        # The mixin keeps the service as an attribute of its own; swap its callback for ours.
        service = node._service_change_state
        self._rclpy_change_state: ChangeStateHandler = service.callback
        service.callback = self._on_change_state

    def take(self) -> Any:
        """What ``prepare`` returned for the configure in progress (once), or None."""
        prepared, self._prepared = self._prepared, None
        return prepared

    async def _on_change_state(self, request: ChangeState.Request, response: ChangeState.Response) -> Any:
        transition = request.transition
        if transition.label:
            wanted = transition.label == "configure"
        else:
            wanted = transition.id == Transition.TRANSITION_CONFIGURE
        if not wanted:
            return self._rclpy_change_state(request, response)
        response.success = await self.configure() == TransitionCallbackReturn.SUCCESS
        return response

    async def configure(self) -> TransitionCallbackReturn:
        """The configure transition with ``prepare`` awaited off the executor (rclpy's steps otherwise)."""
        node = self._node
        machine = node._state_machine
        state_id, label = machine.current_state
        start = LifecycleState(label=label, state_id=state_id)
        log = node.get_logger()
        try:
            machine.trigger_transition_by_id(Transition.TRANSITION_CONFIGURE, True)
        except Exception:  # rclpy's RCLError: not a state configure starts from
            log.error(f"configure refused: the node is {start.label}")
            return TransitionCallbackReturn.ERROR
        try:
            self._prepared = await run_on_thread(node.executor, self._prepare, "configure")
        except Exception as exc:  # prepare catches its own errors; this is a bug, not a bad model
            log.error(f"configure's preparation failed: {type(exc).__name__}: {exc}")
            self._prepared = exc
        try:
            result = node.on_configure(start)
        except Exception as exc:
            log.error(f"on_configure raised {type(exc).__name__}: {exc}")
            result = TransitionCallbackReturn.ERROR
        finally:
            self._prepared = None
        machine.trigger_transition_by_label(result.to_label(), True)
        if result == TransitionCallbackReturn.ERROR:  # as rclpy: error processing, then its outcome
            machine.trigger_transition_by_label(node.on_error(start).to_label(), True)
        return result
