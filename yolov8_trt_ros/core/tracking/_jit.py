"""The numba decorator shared by the tracker's compiled kernels, and their on-disk cache.

Why numba: the tracker's frame step is a few hundred small array operations, each well under a
microsecond of work, so NumPy's per-call overhead (about 1 µs, 2-3x more on a Jetson's ARM
cores) was the cost; see docs/tracking.md for the measurements behind this choice.

``cache=True`` writes the machine code beside the sources (``__pycache__``), in
``NUMBA_CACHE_DIR`` if set, or in numba's per-user cache directory where the package is
read-only (a system-wide colcon install), so only the first process after an install pays the
compile time (tens of seconds); :class:`ByteTracker` loads the kernels in its constructor so
that the first frame never does. numba invalidates a cached kernel when *its own* source file
changes, not when a kernel it calls from another file does, so an edit of e.g. ``lsap.py`` would
leave ``frame_step`` running the old solver (or failing at run time). The locators below
therefore stamp every kernel of this package with one hash of all its kernel modules; they
use numba's cache-locator classes, which are internal (renamed once, after 0.60: both names
are tried); without them caching still works with numba's own stamps.

No ``fastmath``: the kernels must round exactly like the NumPy formulation they replace (IEEE
operations in the same order, no fused multiply-add), which is what makes the published boxes
identical, not just close. ``error_model="numpy"``: a float division by zero gives inf/nan
instead of raising (none happens with validated boxes), which spares a branch per division.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numba
from numba.core import caching

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = Path(__file__).resolve().parent
#: One stamp for all kernels: a hash of every module of this package that defines kernels.
_KERNEL_SOURCES = [
    text
    for text in (p.read_bytes() for p in sorted(_PACKAGE.glob("*.py")))
    if b"_jit import jit" in text or b"def jit(" in text
]
_STAMP = hashlib.sha256(b"".join(_KERNEL_SOURCES)).hexdigest()


def _internal(name: str) -> Any:
    """``numba.core.caching.<name>`` under its current or its pre-0.61 (underscored) name."""
    return getattr(caching, name, None) or getattr(caching, "_" + name, None)


def _package_locator(base: type | None) -> type | None:
    """``base`` (a numba source-file cache locator) restricted to this package, stamped by its hash."""
    if base is None:
        return None

    class Locator(base):  # type: ignore[valid-type,misc]
        def get_source_stamp(self) -> str:
            return _STAMP

        @classmethod
        def from_function(cls, py_func: Callable[..., Any], py_file: str) -> Any:
            if Path(py_file).resolve().parent != _PACKAGE:
                return None
            return super().from_function(py_func, py_file)

    return Locator


_LOCATORS = [
    _package_locator(_internal(name))
    for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
]
_CACHE_IMPL = _internal("CacheImpl")
if all(_LOCATORS) and isinstance(getattr(_CACHE_IMPL, "_locator_classes", None), list):
    _CACHE_IMPL._locator_classes[:0] = _LOCATORS


def jit(func: F) -> F:
    """``numba.njit`` with the project's options (see the module docstring)."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(func))
