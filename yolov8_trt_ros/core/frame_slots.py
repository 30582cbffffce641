"""Keep-last hand-off of camera frames from the middleware's thread to the inference worker.

One slot per input stream (camera). A frame that arrives while its stream's slot is still full
replaces the waiting one (counted as dropped), so results are never stale and the executor
never waits for inference. The worker takes *batches*: at most one frame per stream, the
newest of each.

Batching several cameras into one inference waits a bounded time for the streams that are
alive (delivered a frame in the last ``stale_after_s``): a late camera costs at most
``fill_timeout_s`` of latency for one batch, and a dead one none once it is stale. Then a
smaller batch goes; the engine has a graph for each size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

Frame = tuple[Hashable, Any]  # (stream, item)


class FrameSlots:
    """Per-stream keep-last-1 slots behind one condition variable; thread-safe."""

    def __init__(
        self,
        streams: Sequence[Hashable],
        stale_after_s: float = 1.0,
        on_taken: Callable[[], None] | None = None,
    ) -> None:
        """``on_taken`` is called (outside the lock) after frames were taken: slots are free again."""
        if not streams:
            raise ValueError("FrameSlots needs at least one stream")
        self.streams: tuple[Hashable, ...] = tuple(streams)
        self._stale_after = stale_after_s
        self._on_taken = on_taken
        self._cond = threading.Condition()
        self._items: dict[Hashable, Any] = {}
        self._arrival: dict[Hashable, float] = {}  # when each stream last delivered
        self._closed = True

    # --- producer side ----------------------------------------------------------------
    def put(self, stream: Hashable, item: Any) -> bool:
        """Store ``item`` for ``stream``; True if it replaced one not yet taken (a dropped frame).

        Items put while closed are discarded (not counted as dropped): the node is not active.
        """
        with self._cond:
            if self._closed:
                return False
            dropped = stream in self._items
            self._items[stream] = item
            self._arrival[stream] = time.monotonic()
            self._cond.notify()
            return dropped

    def oldest_wait_s(self) -> float:
        """How long the oldest waiting frame has waited (0 with none): a stuck consumer shows here.

        With gated subscriptions (ros/frame_gate.py) a stuck inference thread stops the intake,
        so counters of received frames stand still; the age of the waiting frame does not.
        """
        with self._cond:
            if not self._items:
                return 0.0
            return time.monotonic() - min(self._arrival[s] for s in self._items)

    def waiting(self, stream: Hashable) -> bool:
        """A frame of ``stream`` waits to be taken (its slot is full)."""
        return stream in self._items

    # --- consumer side ----------------------------------------------------------------
    def take_batch(
        self, max_batch: int, timeout: float, fill_timeout: float = 0.0, notify: bool = True
    ) -> list[Frame]:
        """Wait up to ``timeout`` for a frame, then up to ``fill_timeout`` for the other live streams.

        Returns at most ``max_batch`` frames, in stream order; empty on timeout or when closed.
        ``notify=False`` leaves calling ``on_taken`` to the caller (:meth:`notify_taken`).
        """
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._closed or not self._items:
                return []
            if fill_timeout > 0 and len(self.streams) > 1:
                deadline = time.monotonic() + fill_timeout
                while not self._closed and not self._full(max_batch):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            taken = self._take(max_batch)
        if notify:
            self.notify_taken()
        return taken

    def take_full(self, max_batch: int, notify: bool = True) -> list[Frame]:
        """The waiting frames if they already make a full batch (no waiting), else nothing.

        For the worker while a batch is in flight: it launches the next only if that batch
        would not have waited for more frames anyway; otherwise it finishes the current one
        first, so a frame that arrives alone is answered at once.
        """
        with self._cond:
            if self._closed or not self._items or not self._full(max_batch):
                return []
            taken = self._take(max_batch)
        if notify:
            self.notify_taken()
        return taken

    def notify_taken(self) -> None:
        """Call ``on_taken``: the slots emptied by the last take may be refilled."""
        if self._on_taken is not None:
            self._on_taken()

    def _full(self, max_batch: int) -> bool:
        """Every live stream has a frame waiting, or there are ``max_batch`` of them."""
        if len(self._items) >= max_batch:
            return True
        now = time.monotonic()
        live = [s for s in self.streams if now - self._arrival.get(s, -1e9) <= self._stale_after]
        return all(s in self._items for s in live)

    def _take(self, max_batch: int) -> list[Frame]:
        # Oldest waiting first, so with more streams than max_batch none is starved.
        order = sorted(self._items, key=lambda s: self._arrival[s])[:max_batch]
        taken = [(s, self._items.pop(s)) for s in order]
        rank = {s: i for i, s in enumerate(self.streams)}
        return sorted(taken, key=lambda f: rank.get(f[0], len(rank)))

    # --- life -------------------------------------------------------------------------
    def open(self) -> None:
        with self._cond:
            self._closed = False

    def close(self) -> None:
        """Discard waiting frames and wake the worker; ``put`` discards until :meth:`open`."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
