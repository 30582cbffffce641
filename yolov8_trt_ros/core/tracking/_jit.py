"""The numba decorator shared by the tracker's compiled kernels.

Why numba: the tracker's frame step is a few hundred small array operations, each well under a
microsecond of work, so NumPy's per-call overhead (about 1 µs, 2-3x more on a Jetson's ARM
cores) was the cost; see docs/tracking.md for the measurements behind this choice.

``cache=True`` writes the machine code beside the sources (``__pycache__``), or in numba's
per-user cache directory where that is read-only (a colcon install), so only the first process
after an install pays the compile time (seconds); :class:`ByteTracker` warms up in its
constructor so that the first frame never does. No ``fastmath``: the kernels must round exactly
like the NumPy formulation they replace (IEEE operations in the same order, no fused
multiply-add), which is what makes the published boxes identical, not just close.
``error_model="numpy"``: a float division by zero gives inf/nan instead of raising (none
happens with validated boxes), which spares a branch per division.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])


def jit(func: F) -> F:
    """``numba.njit`` with the project's options (see the module docstring)."""
    compiled: F = numba.njit(cache=True, nogil=True, error_model="numpy")(func)
    return compiled
