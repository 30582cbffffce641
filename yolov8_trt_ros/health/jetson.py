"""A Jetson's thermal and power state from sysfs: the seed's troubleshooting list, read directly.

What ``cat /sys/devices/virtual/thermal/thermal_zone*/temp``, ``nvpmodel -q`` and
``jetson_clocks --show`` tell, without running them (both need root; ``nvpmodel -q`` only
prints ``/var/lib/nvpmodel/status`` with the name from ``/etc/nvpmodel.conf``):

* temperatures: ``thermal_zone*/type`` and ``temp`` (millidegrees C);
* throttling: a soctherm throttle cooling device (``*-balanced``, ``*throttle*``) with
  ``cur_state > 0``, and the GPU's devfreq ``max_freq`` capped below its highest
  ``available_frequencies``;
* power mode: ``pmode:NNNN`` in ``/var/lib/nvpmodel/status``, named by ``/etc/nvpmodel.conf``;
* pinned clocks (``jetson_clocks``): GPU devfreq ``min_freq == max_freq`` and every CPU's
  ``scaling_min_freq == scaling_max_freq``.

``root`` is ``/`` on a robot and a fixture tree in tests. Nothing here raises on a missing
file: a reading that does not exist is ``None`` (not a Jetson, or another L4T layout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

GPU_DEVFREQ_NAMES = ("ga10b", "gv11b", "gp10b", "gm20b", "gpu")
_THROTTLE = re.compile(r"balanced|throttl", re.IGNORECASE)
_PMODE = re.compile(r"pmode:(\d+)")
_POWER_MODEL = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)\s*>")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class JetsonReport:
    temperatures_c: dict[str, float] = field(default_factory=dict)
    throttling: list[str] = field(default_factory=list)  # active throttle devices
    gpu_max_freq_capped: bool | None = None
    power_mode: str | None = None  # "0 (MAXN)"
    clocks_pinned: bool | None = None

    @property
    def is_jetson(self) -> bool:
        return self.power_mode is not None or self.gpu_max_freq_capped is not None

    @property
    def hottest(self) -> tuple[str, float] | None:
        if not self.temperatures_c:
            return None
        name = max(self.temperatures_c, key=lambda k: self.temperatures_c[k])
        return name, self.temperatures_c[name]

    def as_values(self) -> dict[str, str]:
        """Diagnostics key/values (``jetson.*``), for the node's diagnostics or a report."""
        values = {f"jetson.temp_c.{k}": f"{v:.1f}" for k, v in self.temperatures_c.items()}
        values["jetson.throttling"] = ",".join(self.throttling) or "none"
        if self.gpu_max_freq_capped is not None:
            values["jetson.gpu_max_freq_capped"] = str(self.gpu_max_freq_capped).lower()
        if self.power_mode is not None:
            values["jetson.power_mode"] = self.power_mode
        if self.clocks_pinned is not None:
            values["jetson.clocks_pinned"] = str(self.clocks_pinned).lower()
        return values

    def problems(self, max_temp_c: float, fail_on_throttle: bool) -> list[str]:
        out = []
        hot = self.hottest
        if hot is not None and hot[1] >= max_temp_c:
            out.append(f"{hot[0]} at {hot[1]:.1f} C (limit {max_temp_c:.0f} C)")
        if fail_on_throttle and self.throttling:
            out.append(f"throttling ({', '.join(self.throttling)})")
        return out

    def summary(self) -> str:
        parts = []
        hot = self.hottest
        if hot is not None:
            parts.append(f"hottest {hot[0]} {hot[1]:.1f} C")
        if self.power_mode is not None:
            parts.append(f"power mode {self.power_mode}")
        if self.clocks_pinned is not None:
            parts.append("clocks pinned" if self.clocks_pinned else "clocks not pinned")
        if self.throttling or self.gpu_max_freq_capped:
            parts.append(f"throttling: {', '.join(self.throttling) or 'GPU max clock capped'}")
        return ", ".join(parts)


def read_temperatures(sys_root: Path) -> dict[str, float]:
    temps: dict[str, float] = {}
    for zone in sorted(sys_root.glob("devices/virtual/thermal/thermal_zone*")):
        name, milli = _read(zone / "type"), _int(zone / "temp")
        if name and milli is not None and milli > -40000:  # -256000: a zone the firmware disabled
            temps[name] = milli / 1000.0
    return temps


def read_throttling(sys_root: Path) -> list[str]:
    active = []
    for dev in sorted(sys_root.glob("class/thermal/cooling_device*")):
        kind, state = _read(dev / "type"), _int(dev / "cur_state")
        if kind and _THROTTLE.search(kind) and state:
            active.append(kind)
    return active


def gpu_devfreq(sys_root: Path) -> Path | None:
    for dev in sorted(sys_root.glob("class/devfreq/*")):
        if any(name in dev.name for name in GPU_DEVFREQ_NAMES):
            return dev
    return None


def read_power_mode(root: Path) -> str | None:
    status = _read(root / "var/lib/nvpmodel/status")
    match = _PMODE.search(status or "")
    if match is None:
        return None
    mode = int(match.group(1))
    names = dict((int(i), n) for i, n in _POWER_MODEL.findall(_read(root / "etc/nvpmodel.conf") or ""))
    return f"{mode} ({names[mode]})" if mode in names else str(mode)


def read_report(root: Path = Path("/")) -> JetsonReport:
    sys_root = root / "sys"
    report = JetsonReport(read_temperatures(sys_root), read_throttling(sys_root))
    report.power_mode = read_power_mode(root)
    gpu = gpu_devfreq(sys_root)
    gpu_pinned: bool | None = None
    if gpu is not None:
        cur_max, cur_min = _int(gpu / "max_freq"), _int(gpu / "min_freq")
        available = [int(f) for f in (_read(gpu / "available_frequencies") or "").split() if f.isdigit()]
        if cur_max is not None and available:
            report.gpu_max_freq_capped = cur_max < max(available)
        if cur_max is not None and cur_min is not None:
            gpu_pinned = cur_min == cur_max
    cpus = []
    for cpufreq in sorted(sys_root.glob("devices/system/cpu/cpu[0-9]*/cpufreq")):
        lo, hi = _int(cpufreq / "scaling_min_freq"), _int(cpufreq / "scaling_max_freq")
        if lo is not None and hi is not None:
            cpus.append(lo == hi)
    if gpu_pinned is not None and report.is_jetson:
        report.clocks_pinned = gpu_pinned and all(cpus)
    return report
