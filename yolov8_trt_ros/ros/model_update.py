"""The node's side of OTA model updates: watch the model store, reload through the lifecycle.

The installer (``python -m yolov8_trt_ros.deploy install``) verifies and gates a bundle, then
swaps the store's ``current`` symlink. This class, given the node, polls that symlink (one
``readlink`` per period: no inotify dependency, and it works on any filesystem) and, when it
moves, reloads: deactivate → cleanup → configure → activate, the transitions an operator would
take. If configure fails on the new release (the gate ran elsewhere, with other memory), it
rolls the store back to the previous release and configures that, so the node ends active on
the model it served before. What happened is logged and published (latched) on
``~/model_release`` as JSON: ``{"release", "version", "status", "error"}``.

Parameters (declared here, so the node's table stays the lead's): ``model_store`` (empty: no
updates; otherwise ``model_path`` is set to ``<store>/current/model.onnx``) and
``model_watch_period`` (seconds).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from yolov8_trt_ros.deploy.store import ModelStore, StoreError, rollback

STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
OK = TransitionCallbackReturn.SUCCESS


class ModelUpdater:
    """Created once in the node's ``__init__`` (after its parameters are declared)."""

    def __init__(
        self,
        node: LifecycleNode,
        configure: Callable[[], Awaitable[TransitionCallbackReturn]],
        group: CallbackGroup,
    ) -> None:
        """``configure`` runs the transition with the engine loaded off the executor; ``group``
        must be reentrant (the check awaits it, and a busy exclusive group would hold the
        parameter services back)."""
        self.node = node
        self._configure = configure
        root = str(node.declare_parameter("model_store", "").value or "")
        period = float(node.declare_parameter("model_watch_period", 2.0).value or 2.0)
        self.store: ModelStore | None = None
        self.loaded: str | None = None
        self._busy = False
        if not root:
            return
        self.store = ModelStore(Path(root))
        node.set_parameters([Parameter("model_path", value=str(self.store.current_model))])
        self.loaded = self.store.current
        self._pub = node.create_publisher(String, "~/model_release", STATUS_QOS)
        self._publish("loaded" if self.loaded else "empty store", "")
        # A coroutine callback (rclpy awaits it; its annotations only name plain callables).
        self._timer = node.create_timer(period, self.check, callback_group=group)  # type: ignore[arg-type]

    def _state(self) -> str:
        return str(self.node._state_machine.current_state[1])  # rclpy keeps no public getter

    def _publish(self, status: str, error: str) -> None:
        release = self.loaded
        version = None
        if release and self.store is not None:
            try:
                version = self.store.manifest(release).version
            except Exception:  # a manifest we cannot read must not stop the report
                version = None
        payload: dict[str, Any] = {"release": release, "version": version, "status": status, "error": error}
        self._pub.publish(String(data=json.dumps(payload)))

    async def check(self) -> None:
        """Timer: reload when ``current`` moved since the last load."""
        if self.store is None or self._busy:
            return
        current = self.store.current
        if current is None or current == self.loaded:
            return
        self._busy = True
        try:
            await self.reload(current)
        finally:
            self._busy = False

    async def _cycle(self, was_active: bool) -> bool:
        """deactivate → cleanup → configure (→ activate); True if it ends where it started."""
        node = self.node
        state = self._state()
        if state == "active" and node.trigger_deactivate() != OK:
            return False
        if self._state() == "inactive" and node.trigger_cleanup() != OK:
            return False
        if await self._configure() != OK:
            return False
        return not was_active or node.trigger_activate() == OK

    async def reload(self, release: str) -> bool:
        """Load ``release`` (the store's current); on failure go back to the previous one."""
        log = self.node.get_logger()
        assert self.store is not None
        was_active = self._state() == "active"
        if self._state() == "unconfigured":
            if not self.node.get_parameter("autostart").value:  # a manager configures it later
                self.loaded = release
                self._publish("installed (node unconfigured)", "")
                return True
            # An autostarted node that had no model (a robot's first release arrives over the
            # air): bring it up on this one, as autostart would have.
            was_active = True
        log.info(f"model update: {self.loaded} -> {release}; reloading through the lifecycle")
        if await self._cycle(was_active):
            self.loaded = release
            log.info(f"model update: now serving {release}")
            self._publish("loaded", "")
            return True
        error = f"reload of {release} failed (see the configure error above)"
        log.error(f"model update: {error}; rolling back to the previous release")
        try:
            _, back = rollback(self.store, reason=f"node reload failed: {release}", reject=True)
        except StoreError as exc:
            log.error(f"model update: rollback impossible ({exc}); the node stays unconfigured")
            self._publish("failed", f"{error}; rollback impossible: {exc}")
            return False
        if await self._cycle(was_active):
            self.loaded = back
            log.warning(f"model update: rolled back, serving {back} again")
            self._publish("rolled back", error)
        else:
            self.loaded = back  # not retried every period: an operator must look at it
            log.error(f"model update: the previous release {back} failed to load too")
            self._publish("failed", f"{error}; previous release {back} failed too")
        return False
