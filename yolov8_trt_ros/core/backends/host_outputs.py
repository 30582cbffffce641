"""Pinned host buffers for a backend's outputs, filled asynchronously, read after an event.

Shared by the CUDA and TensorRT backends so that ``infer`` returns without synchronising:
it enqueues the device-to-host copies of a batch's (small, fixed-size) outputs into a
*slot* of pinned memory, records the slot's event, and returns an
:class:`~yolov8_trt_ros.core.types.EngineOutput` whose arrays view that slot and whose
``wait()`` synchronises on the event and replaces the views by copies. The host therefore
blocks only when it reads a batch (``Pipeline._finish``), and ``Pipeline.process_stream``
overlaps batch *k + 1*'s device work with batch *k*'s host work.

Slots are reused in turn (``count`` of them). Before a slot is reused, the output still
viewing it (if it is alive and was not waited for) is waited for, so an ``EngineOutput``
is never overwritten under its reader; with ``count >= 3`` this never blocks a pipeline,
which holds at most two batches in flight. CUDA through ``cuda.bindings.runtime``, as the
TensorRT backend (the runtime API's primary context, shared with torch and TensorRT).
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from cuda.bindings import runtime as cudart

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.types import EngineOutput


def cuda_call(result: Any) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; :class:`BackendError` on failure."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise BackendError(f"CUDA error {err}: {text.decode() if isinstance(text, bytes) else text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class HostSlot:
    """One set of pinned buffers (one per output name) and the event that says they are filled."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.ptrs: dict[str, int] = {}
        self.bytes: dict[str, np.ndarray] = {}
        for name, nbytes in sizes.items():
            ptr = int(cuda_call(cudart.cudaMallocHost(max(nbytes, 1))))
            self.ptrs[name] = ptr
            raw = memoryview((ctypes.c_byte * max(nbytes, 1)).from_address(ptr)).cast("B")
            self.bytes[name] = np.frombuffer(raw, np.uint8)
        self.event: Any = cuda_call(cudart.cudaEventCreateWithFlags(cudart.cudaEventDisableTiming))
        self.owner: weakref.ReferenceType[EngineOutput] | None = None

    def view(self, name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
        """The first ``prod(shape)`` elements of buffer ``name`` as an array (no copy)."""
        count = int(np.prod(shape, dtype=np.int64))
        return self.bytes[name].view(dtype)[:count].reshape(shape)

    def free(self) -> None:
        self.bytes.clear()
        for ptr in self.ptrs.values():
            cudart.cudaFreeHost(ptr)
        self.ptrs.clear()
        cudart.cudaEventDestroy(self.event)


class HostOutputs:
    """``count`` :class:`HostSlot` s used in turn; see the module docstring."""

    def __init__(self, sizes: Mapping[str, int], count: int = 4) -> None:
        if count < 2:
            raise ValueError("at least two slots are needed to overlap batches")
        self._slots = [HostSlot(sizes) for _ in range(count)]
        self._next = 0

    def acquire(self) -> HostSlot:
        """The next slot, free: an output still viewing it is waited for (and detached) first."""
        slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        owner = slot.owner() if slot.owner is not None else None
        if owner is not None:
            owner.wait()
        slot.owner = None
        return slot

    def copy_from_device(self, slot: HostSlot, name: str, device_ptr: int, nbytes: int, stream: int) -> None:
        """Enqueue ``nbytes`` from ``device_ptr`` into the slot's buffer ``name`` on ``stream``."""
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(cudart.cudaMemcpyAsync(slot.ptrs[name], device_ptr, nbytes, kind, stream))

    def publish(
        self, slot: HostSlot, stream: int, output: EngineOutput, detach: Callable[[EngineOutput], None]
    ) -> EngineOutput:
        """Record the slot's event after the copies; ``output.wait()`` syncs it, then ``detach``.

        ``detach`` replaces ``output``'s views of the slot by copies.
        """
        cuda_call(cudart.cudaEventRecord(slot.event, stream))
        event = slot.event

        def finish(out: EngineOutput) -> None:
            cuda_call(cudart.cudaEventSynchronize(event))
            detach(out)

        output.pending = finish
        slot.owner = weakref.ref(output)
        return output

    def close(self) -> None:
        """Free the slots (the caller has synchronised its stream); outputs alive keep copies."""
        for slot in self._slots:
            owner = slot.owner() if slot.owner is not None else None
            if owner is not None:
                owner.wait()
            slot.free()
        self._slots.clear()
