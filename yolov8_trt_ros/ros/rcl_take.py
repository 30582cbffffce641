"""ctypes bindings to the few rcl calls that take a camera's messages without holding the GIL.

Why ctypes and not rclpy: rclpy's ``take_message`` copies a serialized frame twice (into an
rcl buffer, then into a fresh Python ``bytes``) inside one call that never releases the GIL,
so each 6 MB 1080p frame stalls the inference thread for milliseconds
(``benchmarks/node_rate.md``). A ctypes foreign call releases the GIL for its whole length,
so ``rcl_wait`` and ``rcl_take_serialized_message`` run beside the inference thread, and the
frame is taken once, into a buffer that is reused instead of freshly allocated. Why not a
compiled extension: these are stable C entry points of the ``librcl`` that rclpy has already
loaded; binding them at run time needs no compiler and no link against a distribution's
library layout (apt's ``/opt/ros``, the PyPI wheels), and where they cannot be bound the node
falls back to rclpy's executor (``ros/rcl_intake.py``).

Only structures whose layout is the same from Humble to Kilted are declared: the allocator,
``rcutils_uint8_array_t``, the wait set, and the leading fields of ``rmw_message_info_t``
(the rest, whose GID size differs between distributions, is padding).
"""

from __future__ import annotations

import ctypes
import functools
import re
import weakref
from collections.abc import Callable
from ctypes import POINTER, c_char, c_int, c_int64, c_size_t, c_uint8, c_uint64, c_void_p
from typing import Any

RET_OK = 0
RET_TIMEOUT = 2
RET_TAKE_FAILED = 401  # RCL_RET_SUBSCRIPTION_TAKE_FAILED: nothing to take
#: Bound on the takes of one drain, so a publisher faster than a take cannot hold the thread.
MAX_TAKES = 64
#: A new buffer's size; the middleware grows it to the first message's.
INITIAL_CAPACITY = 4096


class RclError(RuntimeError):
    """An rcl call failed; the message carries rcl's error string."""


class Allocator(ctypes.Structure):
    """``rcutils_allocator_t``."""

    _fields_ = [
        ("allocate", c_void_p),
        ("deallocate", c_void_p),
        ("reallocate", c_void_p),
        ("zero_allocate", c_void_p),
        ("state", c_void_p),
    ]


class Uint8Array(ctypes.Structure):
    """``rcutils_uint8_array_t`` (= ``rcl_serialized_message_t``)."""

    _fields_ = [
        ("buffer", c_void_p),
        ("buffer_length", c_size_t),
        ("buffer_capacity", c_size_t),
        ("allocator", Allocator),
    ]


INFO_KEYS = (
    "source_timestamp",
    "received_timestamp",
    "publication_sequence_number",
    "reception_sequence_number",
)


class MessageInfo(ctypes.Structure):
    """The leading, distribution-independent fields of ``rmw_message_info_t``; the rest is room."""

    _fields_ = [
        *zip(INFO_KEYS, (c_int64, c_int64, c_uint64, c_uint64), strict=True),
        ("_rest", c_uint8 * 224),
    ]

    def as_dict(self) -> dict[str, int]:
        """The same keys rclpy hands a subscription callback."""
        return {name: int(getattr(self, name)) for name in INFO_KEYS}


class WaitSet(ctypes.Structure):
    """``rcl_wait_set_t``: six (entity array, size) pairs and an implementation pointer."""

    _fields_ = [
        ("subscriptions", POINTER(c_void_p)),
        ("size_of_subscriptions", c_size_t),
        ("guard_conditions", POINTER(c_void_p)),
        ("size_of_guard_conditions", c_size_t),
        ("timers", POINTER(c_void_p)),
        ("size_of_timers", c_size_t),
        ("clients", POINTER(c_void_p)),
        ("size_of_clients", c_size_t),
        ("services", POINTER(c_void_p)),
        ("size_of_services", c_size_t),
        ("events", POINTER(c_void_p)),
        ("size_of_events", c_size_t),
        ("impl", c_void_p),
    ]


class ErrorString(ctypes.Structure):
    """``rcutils_error_string_t``."""

    _fields_ = [("str", c_char * 1024)]


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    # rcutils
    "rcutils_get_default_allocator": (Allocator, []),
    "rcutils_uint8_array_init": (c_int, [POINTER(Uint8Array), c_size_t, POINTER(Allocator)]),
    "rcutils_uint8_array_fini": (c_int, [POINTER(Uint8Array)]),
    "rcutils_get_error_string": (ErrorString, []),
    "rcutils_reset_error": (None, []),
    # rcl
    "rcl_get_zero_initialized_wait_set": (WaitSet, []),
    "rcl_wait_set_init": (c_int, [POINTER(WaitSet), *[c_size_t] * 6, c_void_p, Allocator]),
    "rcl_wait_set_fini": (c_int, [POINTER(WaitSet)]),
    "rcl_wait_set_clear": (c_int, [POINTER(WaitSet)]),
    "rcl_wait_set_add_subscription": (c_int, [POINTER(WaitSet), c_void_p, POINTER(c_size_t)]),
    "rcl_wait_set_add_guard_condition": (c_int, [POINTER(WaitSet), c_void_p, POINTER(c_size_t)]),
    "rcl_wait": (c_int, [POINTER(WaitSet), c_int64]),
    "rcl_take_serialized_message": (c_int, [c_void_p, POINTER(Uint8Array), POINTER(MessageInfo), c_void_p]),
}


def _loaded_library(stem: str) -> str:
    """The path of ``lib<stem>.so`` as this process loaded it (rclpy's), else the bare soname."""
    pattern = re.compile(rf"/lib{re.escape(stem)}(-[0-9a-f]{{8}})?\.so(\.\d+)*$")
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)  # address perms offset dev inode [path]
                if len(fields) == 6 and pattern.search(fields[5].strip()):
                    return fields[5].strip()
    except OSError:  # not Linux: let the dynamic loader search
        pass
    return f"lib{stem}.so"


class RclLibrary:
    """The bound functions (attributes named as in C); :meth:`load` once per process."""

    # Set from _SIGNATURES in __init__; each releases the GIL while it runs.
    rcutils_get_default_allocator: Callable[[], Allocator]
    rcutils_uint8_array_init: Callable[..., int]
    rcutils_uint8_array_fini: Callable[[Any], int]
    rcutils_get_error_string: Callable[[], ErrorString]
    rcutils_reset_error: Callable[[], None]
    rcl_get_zero_initialized_wait_set: Callable[[], WaitSet]
    rcl_wait_set_init: Callable[..., int]
    rcl_wait_set_fini: Callable[[Any], int]
    rcl_wait_set_clear: Callable[[Any], int]
    rcl_wait_set_add_subscription: Callable[[Any, int, Any], int]
    rcl_wait_set_add_guard_condition: Callable[[Any, int, Any], int]
    rcl_wait: Callable[[Any, int], int]
    rcl_take_serialized_message: Callable[[int, Any, Any, Any], int]

    def __init__(self) -> None:
        import rclpy.impl.implementation_singleton  # noqa: F401  (loads librcl into the process)

        libraries = [ctypes.CDLL(_loaded_library(stem)) for stem in ("rcl", "rcutils")]
        for name, (restype, argtypes) in _SIGNATURES.items():
            library = libraries[0] if name.startswith("rcl_") else libraries[1]
            function = getattr(library, name)  # AttributeError: symbol missing
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)
        self.allocator: Allocator = self.rcutils_get_default_allocator()

    @staticmethod
    @functools.cache
    def load() -> RclLibrary:
        """The process's bindings; raises OSError/AttributeError where rcl cannot be bound."""
        return RclLibrary()

    def call(self, name: str, *args: Any) -> None:
        """Call the bound function ``name``; :class:`RclError` unless it returns OK."""
        self.check(getattr(self, name)(*args), name)

    def check(self, ret: int, what: str) -> None:
        """Raise :class:`RclError` with rcl's message unless ``ret`` is OK (resets rcl's error)."""
        if ret != RET_OK:
            text = self.rcutils_get_error_string().str.decode(errors="replace")
            self.rcutils_reset_error()
            raise RclError(f"{what} failed ({ret}): {text}")


@functools.lru_cache(maxsize=64)
def _view_type(capacity: int) -> type[ctypes.Array[c_uint8]]:
    """A byte-array type of ``capacity`` that can be weakly referenced (a Python subclass)."""
    return type(f"ReceiveBuffer{capacity}", (c_uint8 * capacity,), {})


class ReceiveBuffer:
    """One reusable ``rcl_serialized_message_t``; busy while a view of its bytes is alive.

    :meth:`view` hands the taken bytes out as a memoryview over the buffer itself, no copy.
    Every array made from it (the decoded image, a slice, a debug frame) keeps the view's
    owner alive, and the buffer is free again only once all of them are gone: no consumer
    has to remember to release it.
    """

    def __init__(self, lib: RclLibrary) -> None:
        self._lib = lib
        self.message = Uint8Array()
        allocator = ctypes.byref(lib.allocator)
        lib.call("rcutils_uint8_array_init", ctypes.byref(self.message), INITIAL_CAPACITY, allocator)
        self._owner: weakref.ref[Any] | None = None

    @property
    def free(self) -> bool:
        return self._owner is None or self._owner() is None

    def view(self) -> memoryview:
        """The last taken message's bytes (valid until the buffer is taken into again)."""
        message = self.message
        owner = _view_type(message.buffer_capacity).from_address(message.buffer)
        self._owner = weakref.ref(owner)
        return memoryview(owner).cast("B")[: message.buffer_length]

    def close(self) -> None:
        """Free the memory now, or once the last view is gone."""
        owner = self._owner() if self._owner is not None else None
        if owner is None:
            self._fini()
        else:
            weakref.finalize(owner, self._fini)

    def _fini(self) -> None:
        if self.message.buffer:
            self._lib.rcutils_uint8_array_fini(ctypes.byref(self.message))
            self.message.buffer = None


class ReceiveBuffers:
    """The buffers of one subscription: a free one is reused, a new one made up to ``limit``."""

    def __init__(self, lib: RclLibrary, limit: int) -> None:
        self._lib = lib
        self.limit = limit
        self._buffers: list[ReceiveBuffer] = []

    def free_buffer(self) -> ReceiveBuffer | None:
        """A buffer no view refers to; None when ``limit`` are all in use."""
        for buffer in self._buffers:
            if buffer.free:
                return buffer
        if len(self._buffers) >= self.limit:
            return None
        self._buffers.append(ReceiveBuffer(self._lib))
        return self._buffers[-1]

    def __len__(self) -> int:
        return len(self._buffers)

    def close(self) -> None:
        for buffer in self._buffers:
            buffer.close()
        self._buffers = []


def take_newest(lib: RclLibrary, subscription: int, buffer: ReceiveBuffer, drain: bool) -> MessageInfo | None:
    """Take the next message of ``subscription`` into ``buffer``; with ``drain``, every waiting one
    (the newest stays). None when there was nothing to take.

    A keep-last history of depth 1 (the node's default) holds one message at most, so one take
    is enough: one foreign call, whose GIL hand-over is what this path pays per frame.
    """
    info = MessageInfo()
    message, info_ref = ctypes.byref(buffer.message), ctypes.byref(info)
    taken = None
    for _ in range(MAX_TAKES if drain else 1):
        ret = lib.rcl_take_serialized_message(subscription, message, info_ref, None)
        if ret == RET_TAKE_FAILED:
            break
        lib.check(ret, "rcl_take_serialized_message")
        taken = MessageInfo.from_buffer_copy(info)
    return taken
