"""Per-stage latency with rolling percentiles, throughput and memory, for diagnostics and reports.

Wall-clock timing of each stage on the host. GPU stages are synchronous at their boundaries
(the backend returns host results), so host time includes device time; benchmarks that need
device-only time use CUDA events directly.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

#: Stage names in pipeline order; reports list them in this order.
STAGES: tuple[str, ...] = ("convert", "preprocess", "inference", "postprocess", "tracking", "publish")


@dataclass(frozen=True)
class StageStats:
    """Latency summary of one stage over the window, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float


class Profiler:
    """Rolling per-stage latencies (last ``window`` samples) and frame throughput.

    Cheap enough for the hot path: one ``perf_counter_ns`` pair and a deque append per stage.
    """

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._samples: dict[str, deque[float]] = {}
        self._frame_times: deque[float] = deque(maxlen=window)
        self.frames = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.record(name, (time.perf_counter_ns() - start) / 1e6)

    def record(self, name: str, ms: float) -> None:
        samples = self._samples.get(name)
        if samples is None:
            samples = self._samples[name] = deque(maxlen=self.window)
        samples.append(ms)

    def frame_done(self, count: int = 1) -> None:
        """Mark ``count`` frames finished now (for the throughput figure)."""
        now = time.perf_counter()
        for _ in range(count):
            self._frame_times.append(now)
        self.frames += count

    def fps(self) -> float:
        """Frames per second over the window (0 until two frames are done)."""
        if len(self._frame_times) < 2:
            return 0.0
        span = self._frame_times[-1] - self._frame_times[0]
        return (len(self._frame_times) - 1) / span if span > 0 else 0.0

    def stats(self) -> dict[str, StageStats]:
        out: dict[str, StageStats] = {}
        names = [s for s in STAGES if s in self._samples] + sorted(set(self._samples) - set(STAGES))
        for name in names:
            arr = np.fromiter(self._samples[name], dtype=np.float64)
            if arr.size == 0:
                continue
            p50, p99 = np.percentile(arr, [50, 99])
            out[name] = StageStats(int(arr.size), float(arr.mean()), float(p50), float(p99), float(arr.max()))
        return out

    def reset(self) -> None:
        self._samples.clear()
        self._frame_times.clear()
        self.frames = 0

    def report(self) -> str:
        """A small fixed-width table: stage, p50, p99, mean (ms), then FPS."""
        lines = [f"{'stage':<12}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'n':>7}"]
        total = 0.0
        for name, st in self.stats().items():
            lines.append(f"{name:<12}{st.p50_ms:9.2f}{st.p99_ms:9.2f}{st.mean_ms:9.2f}{st.count:7d}")
            total += st.mean_ms
        lines.append(f"{'sum of means':<12}{'':>18}{total:9.2f}")
        lines.append(f"throughput: {self.fps():.1f} FPS over the last {len(self._frame_times)} frames")
        return "\n".join(lines)


def resident_memory_mb() -> float:
    """Resident set size of this process, in MiB (psutil; 0 where it is unavailable)."""
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except Exception:
        return 0.0
