"""Where the time and the memory go: per-stage latency, throughput, device load, power, layers.

* :class:`Profiler`: rolling per-stage wall-clock latencies (p50/p99) and frame throughput, cheap
  enough for the node's hot path. GPU stages enqueue work and return, so by default a stage's
  time is the *host* time it took; pass ``sync`` (``torch.cuda.synchronize``, say) to make each
  stage wait for the device before its clock stops, which attributes device time to the stage
  that queued it at the price of losing host/device overlap (a diagnostic mode, not for
  production throughput).
* Memory: :func:`resident_memory_mb`, :func:`peak_resident_memory_mb`, :func:`memory_snapshot`.
* Device load and power, one interface (:class:`DeviceMonitor`) over three sources:
  :class:`NvmlMonitor` (x86 / discrete GPUs, NVML through ``nvidia-ml-py``'s ``pynvml``),
  :class:`JetsonMonitor` (Jetson: INA3221 power rails and the GPU load file in sysfs, unified
  memory from ``/proc/meminfo``) and :class:`TegrastatsMonitor` (Jetson, parsing ``tegrastats``
  when sysfs is not readable). :func:`open_device_monitor` picks the first that works;
  :class:`DeviceSampler` polls one on a background thread and integrates energy.
* :class:`LayerProfiler`: per-layer medians from TensorRT's ``IProfiler`` callbacks.
* :func:`markdown_table`: the table format of the reports.

Why hand-written rather than a library: NVML is used through its official binding, and the
Jetson sources are a handful of sysfs files; ``jetson-stats`` (jtop) would need its root
service installed on the robot, and nothing on PyPI reads all three behind one interface.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats are written with 2 decimals (3 under 0.1)."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            v = float(value)
            if math.isnan(v):
                return "–"
            return f"{v:.3f}" if abs(v) < 0.1 and v != 0 else f"{v:.2f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Profiler:
    """Rolling per-stage latencies (last ``window`` samples) and frame throughput.

    Cheap enough for the hot path: one ``perf_counter_ns`` pair and a deque append per stage.
    ``sync``, if given, is called at the end of every stage before the clock stops (see the
    module docstring).
    """

    def __init__(self, window: int = 1000, sync: Callable[[], None] | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.sync = sync
        self._samples: dict[str, deque[float]] = {}
        self._frame_times: deque[float] = deque(maxlen=window)
        self.frames = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
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

    def samples(self, name: str) -> np.ndarray:
        """The stage's latencies in the window (ms, oldest first); empty for an unknown stage."""
        return np.fromiter(self._samples.get(name, ()), dtype=np.float64)

    def stats(self) -> dict[str, StageStats]:
        out: dict[str, StageStats] = {}
        names = [s for s in STAGES if s in self._samples] + sorted(set(self._samples) - set(STAGES))
        for name in names:
            arr = self.samples(name)
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

    def markdown(self, memory: dict[str, float] | None = None) -> str:
        """The report as Markdown: per-stage table, throughput and (optionally) memory lines.

        ``memory`` is e.g. :func:`memory_snapshot`'s result; each key becomes one bullet.
        """
        stats = self.stats()
        rows: list[list[object]] = [
            [name, st.p50_ms, st.p99_ms, st.mean_ms, st.max_ms, st.count] for name, st in stats.items()
        ]
        # Sums of percentiles are not percentiles of the sum; the row says what a frame costs
        # if every stage hits its p50 (or p99) together.
        fields = ("p50_ms", "p99_ms", "mean_ms", "max_ms")
        sums = [sum(getattr(st, f) for st in stats.values()) for f in fields]
        rows.append(["sum of stages", *sums, ""])
        text = markdown_table(["stage", "p50 ms", "p99 ms", "mean ms", "max ms", "n"], rows)
        text += f"\n\n- throughput: {self.fps():.1f} FPS over the last {len(self._frame_times)} frames"
        if self.sync is not None:
            text += " (stages synchronised with the device: no host/device overlap)"
        for key, value in (memory or {}).items():
            text += f"\n- {key}: {value:.1f}"
        return text + "\n"


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------
def resident_memory_mb() -> float:
    """Resident set size of this process, in MiB (psutil; 0 where it is unavailable)."""
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except Exception:
        return 0.0


def peak_resident_memory_mb() -> float:
    """Largest resident set size this process has had, in MiB (``getrusage``; 0 on Windows)."""
    try:
        import resource
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def memory_snapshot(monitor: DeviceMonitor | None = None) -> dict[str, float]:
    """Host and device memory now, in MiB, under descriptive keys (for reports).

    PyTorch's figures are included only if this process has already initialised CUDA through
    torch (nothing is imported or initialised here); the monitor adds what NVML / the Jetson
    sources see, which also counts memory allocated outside PyTorch (cuda-python, TensorRT).
    """
    snap = {"resident MiB": resident_memory_mb(), "peak resident MiB": peak_resident_memory_mb()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        snap["torch allocated MiB"] = torch.cuda.memory_allocated() / 2**20
        snap["torch reserved MiB"] = torch.cuda.memory_reserved() / 2**20
    if monitor is not None:
        sample = monitor.sample()
        if sample.process_memory_mb is not None:
            snap["device memory of this process MiB"] = sample.process_memory_mb
        if sample.memory_used_mb is not None:
            snap[f"{monitor.name} memory used MiB"] = sample.memory_used_mb
    return snap


# --------------------------------------------------------------------------------------------
# Device load and power
# --------------------------------------------------------------------------------------------
class MonitorUnavailable(RuntimeError):
    """The monitor's source (NVML, sysfs files, tegrastats) is not on this machine."""


@dataclass(frozen=True)
class DeviceSample:
    """One reading; ``None`` where the source does not report the quantity."""

    time_s: float  # time.monotonic()
    gpu_util_percent: float | None = None
    power_w: float | None = None
    memory_used_mb: float | None = None  # whole device (discrete) / whole system RAM (Jetson)
    process_memory_mb: float | None = None  # this process's device memory (NVML only)
    rails_w: dict[str, float] = field(default_factory=dict)  # Jetson power rails


class DeviceMonitor(Protocol):
    name: str

    def sample(self) -> DeviceSample: ...

    def energy_j(self) -> float | None:
        """A monotonic energy counter in joules, or None where the source has none."""
        ...

    def close(self) -> None: ...


#: Rails that measure the whole module's input; where one is present it alone is the power.
_INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN", "VIN")


def total_rail_power(rails: dict[str, float]) -> float | None:
    """Module power from Jetson rails: the input rail if there is one, else the sum of all.

    AGX Orin's INA3221s measure VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0 and VDDQ_VDD2_1V8AO, which
    are disjoint branches: their sum is the module's power (without the carrier board). Boards
    with a VDD_IN / POM_5V_IN rail measure the input itself, which already contains the others.
    """
    if not rails:
        return None
    for name in _INPUT_RAILS:
        if name in rails:
            return rails[name]
    return float(sum(rails.values()))


class NvmlMonitor:
    """NVML (``pynvml`` from ``nvidia-ml-py``): utilisation, board power, memory, energy counter."""

    def __init__(self, device_index: int = 0) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # ImportError, or NVMLError_LibraryNotFound / DriverNotLoaded
            raise MonitorUnavailable(f"NVML is not available: {type(exc).__name__}: {exc}") from exc
        self._nvml = pynvml
        try:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            raw_name = pynvml.nvmlDeviceGetName(self._handle)
        except Exception as exc:
            pynvml.nvmlShutdown()
            raise MonitorUnavailable(f"NVML has no device {device_index}: {exc}") from exc
        self.device_name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        self.name = "nvml"
        self._pid = os.getpid()
        self._closed = False

    def _try(self, fn: Callable[[], Any]) -> Any:
        """A query's result, or None where this GPU does not support it (NVMLError_NotSupported)."""
        try:
            return fn()
        except self._nvml.NVMLError:
            return None

    def sample(self) -> DeviceSample:
        nv, h = self._nvml, self._handle
        util = self._try(lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu)
        power_mw = self._try(lambda: nv.nvmlDeviceGetPowerUsage(h))
        mem = self._try(lambda: nv.nvmlDeviceGetMemoryInfo(h).used)
        procs = self._try(lambda: nv.nvmlDeviceGetComputeRunningProcesses(h)) or []
        own = [p.usedGpuMemory for p in procs if p.pid == self._pid and p.usedGpuMemory is not None]
        return DeviceSample(
            time_s=time.monotonic(),
            gpu_util_percent=None if util is None else float(util),
            power_w=None if power_mw is None else power_mw / 1000.0,
            memory_used_mb=None if mem is None else mem / 2**20,
            process_memory_mb=float(sum(own)) / 2**20 if own else None,
        )

    def energy_j(self) -> float | None:
        mj = self._try(lambda: self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        return None if mj is None else mj / 1000.0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()


def _read_number(path: Path) -> float | None:
    try:
        return float(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _meminfo_used_mb(proc_root: Path) -> float | None:
    """``MemTotal - MemAvailable`` from ``/proc/meminfo`` (Jetson: CPU and GPU share it)."""
    try:
        text = (proc_root / "meminfo").read_text()
    except OSError:
        return None
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.M)}
    if "MemTotal" not in values or "MemAvailable" not in values:
        return None
    return (values["MemTotal"] - values["MemAvailable"]) / 1024.0


class JetsonMonitor:
    """Jetson power rails (INA3221 in sysfs), GPU load and unified memory, without tegrastats.

    Two sysfs layouts of the INA3221 driver are read:

    * hwmon (``ina3221``, JetPack 5/6, Orin): ``/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/``
      with ``in<N>_label``, bus voltage ``in<N>_input`` (mV), current ``curr<N>_input`` (mA);
      the driver's ``sum of shunt voltages`` channel is not a rail and is skipped.
    * iio (``ina3221x``, JetPack 4, Xavier/Nano/TX2): ``.../iio:device*/rail_name_<N>`` with
      ``in_power<N>_input`` (mW).

    GPU load: the first of the known ``.../load`` files (per mille, 0..1000). ``root`` and
    ``proc_root`` exist so tests can point the reader at a fake tree.
    """

    GPU_LOAD_GLOBS = (
        "devices/gpu.0/load",
        "devices/platform/gpu.0/load",
        "devices/platform/*.ga10b/load",
        "devices/platform/bus@0/*.gpu/load",
        "devices/platform/*.gpu/load",
    )

    def __init__(self, root: str | Path = "/sys", proc_root: str | Path = "/proc") -> None:
        self.name = "jetson"
        self._root = Path(root)
        self._proc = Path(proc_root)
        self._rails = self._find_rails()
        loads = [p for g in self.GPU_LOAD_GLOBS for p in sorted(self._root.glob(g))]
        self._load_file: Path | None = loads[0] if loads else None
        if not self._rails and self._load_file is None:
            raise MonitorUnavailable(f"no INA3221 rails or GPU load file under {self._root}")

    def _find_rails(self) -> dict[str, Callable[[], float | None]]:
        rails: dict[str, Callable[[], float | None]] = {}
        hwmons = sorted(self._root.glob("bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
        for hw in hwmons:
            for label_file in sorted(hw.glob("in*_label")):
                match = re.fullmatch(r"in(\d+)_label", label_file.name)
                label = label_file.read_text().strip() if match else ""
                if not match or not label or label.lower().startswith("sum of shunt"):
                    continue
                n = match.group(1)
                volt, curr, power = hw / f"in{n}_input", hw / f"curr{n}_input", hw / f"power{n}_input"
                rails[label] = self._hwmon_reader(volt, curr, power)
        for dev in sorted(self._root.glob("bus/i2c/drivers/ina3221x/*/iio:device*")):
            for name_file in sorted(dev.glob("rail_name_*")):
                n = name_file.name.rsplit("_", 1)[1]
                label = name_file.read_text().strip()
                if label:
                    rails[label] = self._mw_reader(dev / f"in_power{n}_input")
        return rails

    @staticmethod
    def _hwmon_reader(volt: Path, curr: Path, power: Path) -> Callable[[], float | None]:
        def read() -> float | None:
            if power.exists():  # hwmon ABI: microwatts, where the driver offers it
                uw = _read_number(power)
                return None if uw is None else uw / 1e6
            mv, ma = _read_number(volt), _read_number(curr)
            return None if mv is None or ma is None else mv * ma / 1e6

        return read

    @staticmethod
    def _mw_reader(path: Path) -> Callable[[], float | None]:
        def read() -> float | None:
            mw = _read_number(path)
            return None if mw is None else mw / 1000.0

        return read

    @property
    def rail_names(self) -> list[str]:
        return list(self._rails)

    def sample(self) -> DeviceSample:
        rails = {name: w for name, read in self._rails.items() if (w := read()) is not None}
        load = _read_number(self._load_file) if self._load_file is not None else None
        return DeviceSample(
            time_s=time.monotonic(),
            gpu_util_percent=None if load is None else load / 10.0,
            power_w=total_rail_power(rails),
            memory_used_mb=_meminfo_used_mb(self._proc),
            rails_w=rails,
        )

    def energy_j(self) -> float | None:
        return None

    def close(self) -> None:
        pass


_TEGRA_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_TEGRA_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
# JetPack 5/6: "VDD_GPU_SOC 3591mW/3591mW"; JetPack 4: "GPU 0/0", "POM_5V_IN 1933/1933".
_TEGRA_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM", "LFB"})


def parse_tegrastats(line: str, time_s: float | None = None) -> DeviceSample:
    """One ``tegrastats`` line: RAM used, GR3D (GPU) load, and each rail's current power.

    Raises ValueError for a line with none of them (not tegrastats output).
    """
    ram = _TEGRA_RAM.search(line)
    gr3d = _TEGRA_GR3D.search(line)
    rails = {
        m.group(1): float(m.group(2)) / 1000.0
        for m in _TEGRA_RAIL.finditer(line)
        if m.group(1) not in _NOT_RAILS
    }
    if ram is None and gr3d is None and not rails:
        raise ValueError(f"not a tegrastats line: {line[:80]!r}")
    return DeviceSample(
        time_s=time.monotonic() if time_s is None else time_s,
        gpu_util_percent=None if gr3d is None else float(gr3d.group(1)),
        power_w=total_rail_power(rails),
        memory_used_mb=None if ram is None else float(ram.group(1)),
        rails_w=rails,
    )


class TegrastatsMonitor:
    """Runs ``tegrastats`` and keeps its latest line parsed (Jetson without readable sysfs).

    ``sample()`` returns the last line's figures (tegrastats prints every ``interval_ms``);
    it waits up to ``timeout_s`` for the first line. ``command`` is for tests.
    """

    def __init__(
        self,
        interval_ms: int = 100,
        command: Sequence[str] | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        self.name = "tegrastats"
        cmd = list(command) if command is not None else ["tegrastats", "--interval", str(interval_ms)]
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError as exc:
            raise MonitorUnavailable(f"cannot run {cmd[0]}: {exc}") from exc
        self._latest: DeviceSample | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.close()
            raise MonitorUnavailable(f"{cmd[0]} printed no parsable line in {timeout_s} s")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):  # the pipe closed under us by close()
            for line in self._proc.stdout:
                try:
                    self._latest = parse_tegrastats(line)
                except ValueError:
                    continue
                self._ready.set()

    def sample(self) -> DeviceSample:
        if self._latest is None:
            raise MonitorUnavailable("tegrastats has not reported yet")
        return self._latest

    def energy_j(self) -> float | None:
        return None

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._thread.join(timeout=2)  # the reader sees EOF once the process is gone
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def open_device_monitor(device_index: int = 0) -> DeviceMonitor | None:
    """NVML, else Jetson sysfs, else tegrastats; None where none of them is available."""
    with contextlib.suppress(MonitorUnavailable):
        return NvmlMonitor(device_index)
    with contextlib.suppress(MonitorUnavailable, OSError):
        return JetsonMonitor()
    if any(os.access(os.path.join(d, "tegrastats"), os.X_OK) for d in os.get_exec_path()):
        with contextlib.suppress(MonitorUnavailable):
            return TegrastatsMonitor()
    return None


@dataclass(frozen=True)
class SamplerSummary:
    """What a :class:`DeviceSampler` saw between start and stop (None: not reported)."""

    samples: int
    seconds: float
    gpu_util_mean: float | None
    gpu_util_max: float | None
    power_mean_w: float | None
    power_max_w: float | None
    energy_j: float | None  # the device's counter where it has one, else ∫ power dt
    memory_max_mb: float | None
    process_memory_max_mb: float | None


def _stat(values: list[float], fn: Callable[[np.ndarray], Any]) -> float | None:
    return float(fn(np.asarray(values))) if values else None


class DeviceSampler:
    """Poll a :class:`DeviceMonitor` every ``interval_s`` on a daemon thread.

    Usage: ``with DeviceSampler(monitor) as s: run(); summary = s.summary``. NVML's utilisation
    is the share of the last sample period (1/6 s to 1 s, by GPU) in which a kernel ran, so
    intervals much below 0.1 s add samples but no resolution.
    """

    def __init__(self, monitor: DeviceMonitor, interval_s: float = 0.1) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.monitor = monitor
        self.interval_s = interval_s
        self.samples: list[DeviceSample] = []
        self.summary: SamplerSummary | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._e0: float | None = None

    def start(self) -> DeviceSampler:
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self.samples = []
        self._stop.clear()
        self._t0 = time.monotonic()
        self._e0 = self.monitor.energy_j()
        self._thread = threading.Thread(target=self._run, name="device-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            with contextlib.suppress(MonitorUnavailable):
                self.samples.append(self.monitor.sample())
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> SamplerSummary:
        if self._thread is None:
            raise RuntimeError("sampler not started")
        self._stop.set()
        self._thread.join()
        self._thread = None
        t1 = time.monotonic()
        with contextlib.suppress(MonitorUnavailable):
            self.samples.append(self.monitor.sample())
        e1 = self.monitor.energy_j()
        s = self.samples
        util = [x.gpu_util_percent for x in s if x.gpu_util_percent is not None]
        power = [(x.time_s, x.power_w) for x in s if x.power_w is not None]
        mem = [x.memory_used_mb for x in s if x.memory_used_mb is not None]
        pmem = [x.process_memory_mb for x in s if x.process_memory_mb is not None]
        if self._e0 is not None and e1 is not None:
            energy: float | None = e1 - self._e0
        elif len(power) >= 2:
            t, p = np.array(power).T
            energy = float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(t)))
        else:
            energy = None
        self.summary = SamplerSummary(
            samples=len(s),
            seconds=t1 - self._t0,
            gpu_util_mean=_stat(util, np.mean),
            gpu_util_max=_stat(util, np.max),
            power_mean_w=_stat([p for _, p in power], np.mean),
            power_max_w=_stat([p for _, p in power], np.max),
            energy_j=energy,
            memory_max_mb=_stat(mem, np.max),
            process_memory_max_mb=_stat(pmem, np.max),
        )
        return self.summary

    def __enter__(self) -> DeviceSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# TensorRT layer timing
# --------------------------------------------------------------------------------------------
class LayerProfiler:
    """Per-layer medians from TensorRT's ``IProfiler.report_layer_time(layer_name, ms)``.

    TensorRT calls ``report_layer_time`` once per layer per inference, in execution order. This
    class only aggregates (so it is testable without TensorRT); :meth:`trt_adapter` wraps it
    in the ``trt.IProfiler`` subclass that TensorRT's Python binding requires. Attaching it::

        layers = LayerProfiler()
        context.profiler = layers.trt_adapter()   # keep ``layers`` referenced
        context.enqueue_emits_profile = False     # enqueue stays asynchronous ...
        context.execute_async_v3(stream); cudaStreamSynchronize(stream)
        context.report_to_profiler()              # ... and the timings are read here
        print(layers.markdown(top=15))

    Replaying a captured CUDA graph bypasses the profiler: run without the graph while
    profiling. Layer names need the engine built with ``ProfilingVerbosity.LAYER_NAMES_ONLY``
    (the default) or ``DETAILED``; with ``NONE`` they are indices.
    """

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._times: dict[str, deque[float]] = {}
        self._run_totals: deque[float] = deque(maxlen=window)
        self._first: str | None = None
        self._current = 0.0
        self._adapter: Any = None

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"layer {layer_name!r}: time must be a finite ms >= 0, got {ms}")
        if self._first is None:
            self._first = layer_name
        elif layer_name == self._first:  # the first layer again: the previous inference is done
            self._run_totals.append(self._current)
            self._current = 0.0
        self._current += ms
        times = self._times.get(layer_name)
        if times is None:
            times = self._times[layer_name] = deque(maxlen=self.window)
        times.append(ms)

    @property
    def runs(self) -> int:
        """Complete inferences seen (the one in progress counts once it has a layer)."""
        return len(self._run_totals) + (1 if self._first is not None else 0)

    def medians(self) -> dict[str, float]:
        """Median ms per layer, in execution order."""
        return {name: float(np.median(np.fromiter(t, np.float64))) for name, t in self._times.items()}

    def total_median_ms(self) -> float:
        """Median over inferences of the sum of all layer times (0 before any report)."""
        totals = [*self._run_totals, self._current] if self._first is not None else []
        return float(np.median(totals)) if totals else 0.0

    def markdown(self, top: int | None = None) -> str:
        """Layers by median time, slowest first, with their share of the sum of medians."""
        med = self.medians()
        total = sum(med.values()) or 1.0
        ranked = sorted(med.items(), key=lambda kv: -kv[1])[:top]
        rows = [[name, ms, 100.0 * ms / total, len(self._times[name])] for name, ms in ranked]
        head = f"{len(med)} layers, {self.runs} inferences, median total {self.total_median_ms():.3f} ms\n\n"
        return head + markdown_table(["layer", "median ms", "share %", "n"], rows) + "\n"

    def reset(self) -> None:
        self._times.clear()
        self._run_totals.clear()
        self._first = None
        self._current = 0.0

    def trt_adapter(self) -> Any:
        """A ``tensorrt.IProfiler`` instance forwarding to this object (for ``context.profiler``).

        Built on first use (TensorRT's binding needs a real subclass whose ``__init__`` calls
        the base's) and kept, so the context never holds the only reference.
        """
        if self._adapter is None:
            try:
                import tensorrt as trt

                base = trt.IProfiler
            except (ImportError, AttributeError) as exc:
                raise RuntimeError(f"TensorRT is not available for a layer profiler: {exc}") from exc
            target = self

            class _Adapter(base):  # type: ignore[misc, valid-type]
                def __init__(self) -> None:
                    base.__init__(self)

                def report_layer_time(self, layer_name: str, ms: float) -> None:
                    target.report_layer_time(layer_name, ms)

            self._adapter = _Adapter()
        return self._adapter
