"""One line that names the machine a figure was measured on, for every benchmark's report."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` (``platform`` only knows the ISA)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The first CUDA GPU's name, only where torch is already imported (never imports it here)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # a broken CUDA install must not break a report
        return None
    return None


def describe_machine() -> str:
    """E.g. ``Intel(R) Xeon(R) Processor, 2 cores, Python 3.11.2, Linux[, NVIDIA H100 80GB HBM3]``."""
    desc = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    gpu = gpu_name()
    return f"{desc}, {gpu}" if gpu else desc
