"""Profiler statistics, device monitors (NVML, Jetson sysfs, tegrastats), sampler, layer profiler."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from yolov8_trt_ros.core import profiling
from yolov8_trt_ros.core.profiling import (
    DeviceSample,
    DeviceSampler,
    JetsonMonitor,
    LayerProfiler,
    MonitorUnavailable,
    NvmlMonitor,
    Profiler,
    TegrastatsMonitor,
    markdown_table,
    parse_tegrastats,
    total_rail_power,
)

REPO = Path(__file__).resolve().parents[1]


def _nearest_rank_like_numpy(values: list[float], q: float) -> float:
    """Linear-interpolation percentile written out (NumPy's default method), as the reference."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# --- Profiler -------------------------------------------------------------------------------------
def test_stats_match_reference_percentiles_over_the_window():
    rng = np.random.default_rng(7)
    window = 50
    prof = Profiler(window=window)
    values = rng.gamma(2.0, 3.0, size=80).tolist()
    for v in values:
        prof.record("inference", v)
    last = values[-window:]
    st = prof.stats()["inference"]
    assert st.count == window
    assert st.p50_ms == pytest.approx(_nearest_rank_like_numpy(last, 50))
    assert st.p99_ms == pytest.approx(_nearest_rank_like_numpy(last, 99))
    assert st.mean_ms == pytest.approx(sum(last) / window)
    assert st.max_ms == max(last)


def test_stats_list_pipeline_stages_in_order_then_others_sorted():
    prof = Profiler()
    for name in ("zeta", "tracking", "alpha", "preprocess", "inference"):
        prof.record(name, 1.0)
    assert list(prof.stats()) == ["preprocess", "inference", "tracking", "alpha", "zeta"]


def test_stage_time_includes_sync_callback():
    calls = []

    def slow_sync() -> None:
        calls.append(1)
        time.sleep(0.03)

    prof = Profiler(sync=slow_sync)
    with prof.stage("inference"):
        pass
    assert calls == [1]
    assert prof.samples("inference")[0] >= 30.0
    plain = Profiler()
    with plain.stage("inference"):
        pass
    assert plain.samples("inference")[0] < 30.0


def test_stage_records_even_when_the_body_raises():
    prof = Profiler()
    with pytest.raises(KeyError), prof.stage("postprocess"):
        raise KeyError("boom")
    assert prof.stats()["postprocess"].count == 1


def test_fps_from_frame_times(monkeypatch):
    clock = iter([10.0, 10.5, 11.0])  # a batch of 3 at t=10, then one frame at 10.5 and at 11
    monkeypatch.setattr(profiling.time, "perf_counter", lambda: next(clock))
    prof = Profiler()
    assert prof.fps() == 0.0
    prof.frame_done(3)
    prof.frame_done()
    prof.frame_done()
    # 5 frame stamps over 1 s: 4 intervals per second.
    assert prof.fps() == pytest.approx(4.0)
    assert prof.frames == 5
    prof.reset()
    assert prof.fps() == 0.0 and prof.frames == 0 and prof.stats() == {}


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window"):
        Profiler(window=0)


def test_markdown_report_rows_and_memory():
    prof = Profiler()
    for v in (1.0, 2.0, 3.0):
        prof.record("preprocess", v)
        prof.record("inference", 10 * v)
    text = prof.markdown(memory={"resident MiB": 123.4})
    lines = text.splitlines()
    assert lines[0].startswith("| stage | p50 ms")
    rows = {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in lines[2:5]}
    assert rows == {"preprocess": "2.00", "inference": "20.00", "sum of stages": "22.00"}
    assert "- resident MiB: 123.4" in text


def test_markdown_table_formats_cells():
    text = markdown_table(["a", "b", "c"], [["x", 0.01234, float("nan")], ["y", 12.345, 3]])
    assert text.splitlines() == [
        "| a | b | c |",
        "| --- | --- | --- |",
        "| x | 0.012 | – |",
        "| y | 12.35 | 3 |",
    ]


def test_memory_helpers_follow_an_allocation():
    """In a fresh process, allocating past its peak so that the peak has to move.

    Linux keeps the high-water mark across fork + exec, so the child starts with roughly this
    (pytest) process's peak: the block is sized above it.
    """
    script = textwrap.dedent(
        """
        import json
        import numpy as np
        from yolov8_trt_ros.core import profiling
        before = (profiling.resident_memory_mb(), profiling.peak_resident_memory_mb())
        size_mb = int(before[1]) + 256
        block = np.ones(size_mb * 2**20, np.uint8)  # every page touched
        during = (profiling.resident_memory_mb(), profiling.peak_resident_memory_mb())
        del block
        after = (profiling.resident_memory_mb(), profiling.peak_resident_memory_mb())
        print(json.dumps([size_mb, before, during, after, profiling.memory_snapshot()]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO, timeout=60
    )
    size, before, during, after, snap = json.loads(out.stdout.strip().splitlines()[-1])
    assert before[0] > 10.0  # a Python process with NumPy loaded
    assert during[0] - before[0] == pytest.approx(size, abs=16)  # MiB, not KiB or bytes
    assert during[1] == pytest.approx(during[0], abs=8)  # RSS is at its highest now
    assert after[0] < during[0] - 200  # the block went back to the OS ...
    assert after[1] >= during[1]  # ... and the peak keeps its high-water mark
    assert set(snap) == {"resident MiB", "peak resident MiB"}  # no torch, no monitor in that process


def test_memory_snapshot_adds_the_monitor_figures():
    mon = _FakeMonitor(energy_counter=False)
    snap = profiling.memory_snapshot(mon)
    assert snap["fake memory used MiB"] == 7.0 and mon.calls == 1
    assert "device memory of this process MiB" not in snap  # the fake reports none


# --- LayerProfiler --------------------------------------------------------------------------------
def test_layer_profiler_medians_order_and_totals():
    rng = np.random.default_rng(3)
    names = ["conv0", "conv1", "c2f_2", "detect"]
    runs = rng.uniform(0.01, 0.5, size=(9, len(names)))
    layers = LayerProfiler()
    for run in runs:
        for name, ms in zip(names, run, strict=True):
            layers.report_layer_time(name, float(ms))
    med = layers.medians()
    assert list(med) == names
    for j, name in enumerate(names):
        assert med[name] == pytest.approx(sorted(runs[:, j])[4])
    assert layers.runs == 9
    assert layers.total_median_ms() == pytest.approx(sorted(runs.sum(axis=1))[4])
    table = layers.markdown(top=2).splitlines()
    slowest = sorted(names, key=lambda n: -med[n])[:2]
    assert [ln.split("|")[1].strip() for ln in table[4:]] == slowest
    layers.reset()
    assert layers.medians() == {} and layers.runs == 0 and layers.total_median_ms() == 0.0


def test_layer_profiler_rejects_bad_times():
    layers = LayerProfiler()
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="conv0"):
            layers.report_layer_time("conv0", bad)


def test_trt_adapter_subclasses_iprofiler_and_forwards(monkeypatch):
    init_called = []

    class FakeIProfiler:  # TensorRT's pybind base: the subclass must call its __init__
        def __init__(self) -> None:
            init_called.append(True)

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(IProfiler=FakeIProfiler))
    layers = LayerProfiler()
    adapter = layers.trt_adapter()
    assert isinstance(adapter, FakeIProfiler) and init_called == [True]
    assert layers.trt_adapter() is adapter  # kept: the context must not hold the only reference
    adapter.report_layer_time("conv0", 0.25)
    adapter.report_layer_time("conv0", 0.75)
    assert layers.medians() == {"conv0": pytest.approx(0.5)}


def test_trt_adapter_without_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace())  # e.g. only the type stubs
    with pytest.raises(RuntimeError, match="TensorRT is not available"):
        LayerProfiler().trt_adapter()


# --- Jetson sources -------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _fake_orin_sysfs(tmp_path: Path) -> tuple[Path, Path, dict[str, float]]:
    """An AGX Orin-like hwmon tree; returns (sys root, proc root, expected watts per rail)."""
    rng = np.random.default_rng(11)
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    expected = {}
    chips = {
        "1-0040": ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"],
        "1-0041": ["NC", "VDDQ_VDD2_1V8AO", ""],
    }
    for k, (addr, labels) in enumerate(chips.items()):
        hw = sys_root / "bus/i2c/drivers/ina3221" / addr / "hwmon" / f"hwmon{k + 3}"
        for n, label in enumerate(labels, start=1):
            mv, ma = int(rng.integers(4800, 5200)), int(rng.integers(50, 2000))
            _write(hw / f"in{n}_label", label)
            _write(hw / f"in{n}_input", str(mv))
            _write(hw / f"curr{n}_input", str(ma))
            if label:
                expected[label] = mv * ma / 1e6
        _write(hw / "in7_label", "sum of shunt voltages")
        _write(hw / "in7_input", "40")
    _write(sys_root / "devices/platform/gpu.0/load", "734")
    _write(
        proc_root / "meminfo",
        "MemTotal:       31000000 kB\nMemFree:         1000000 kB\nMemAvailable:   27000000 kB\n",
    )
    return sys_root, proc_root, expected


def test_jetson_monitor_reads_hwmon_rails_load_and_memory(tmp_path):
    sys_root, proc_root, expected = _fake_orin_sysfs(tmp_path)
    mon = JetsonMonitor(root=sys_root, proc_root=proc_root)
    assert sorted(mon.rail_names) == sorted(expected)
    s = mon.sample()
    assert s.rails_w == pytest.approx(expected)
    assert s.power_w == pytest.approx(sum(expected.values()))  # Orin: disjoint rails, no input rail
    assert s.gpu_util_percent == pytest.approx(73.4)
    assert s.memory_used_mb == pytest.approx((31000000 - 27000000) / 1024)
    assert mon.energy_j() is None


def test_jetson_monitor_prefers_power_file_and_reads_legacy_iio(tmp_path):
    root = tmp_path / "sys"
    hw = root / "bus/i2c/drivers/ina3221/7-0040/hwmon/hwmon1"
    _write(hw / "in1_label", "VDD_SOC")
    _write(hw / "in1_input", "5000")
    _write(hw / "curr1_input", "100")
    _write(hw / "power1_input", "2500000")  # µW wins over V×I
    iio = root / "bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    _write(iio / "rail_name_0", "POM_5V_IN")
    _write(iio / "in_power0_input", "4321")
    _write(iio / "rail_name_1", "POM_5V_GPU")
    _write(iio / "in_power1_input", "1000")
    s = JetsonMonitor(root=root, proc_root=tmp_path / "noproc").sample()
    assert s.rails_w == pytest.approx({"VDD_SOC": 2.5, "POM_5V_IN": 4.321, "POM_5V_GPU": 1.0})
    assert s.power_w == pytest.approx(4.321)  # the input rail already contains the others
    assert s.gpu_util_percent is None and s.memory_used_mb is None


def test_jetson_monitor_unavailable_without_sources(tmp_path):
    with pytest.raises(MonitorUnavailable):
        JetsonMonitor(root=tmp_path)


ORIN_LINE = (
    "11-25-2026 10:00:00 RAM 2453/30593MB (lfb 6797x4MB) SWAP 0/15296MB (cached 0MB) "
    "CPU [1%@729,0%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 61%@[1300,1300] VIC_FREQ 729 "
    "APE 174 CPU@46.75C GPU@44.5C VDD_GPU_SOC 3591mW/3591mW VDD_CPU_CV 797mW/797mW "
    "VIN_SYS_5V0 3928mW/3928mW VDDQ_VDD2_1V8AO 503mW/503mW"
)
NANO_LINE = (
    "RAM 1730/3964MB (lfb 62x4MB) SWAP 0/1982MB (cached 0MB) CPU [7%@1479,3%@1479] "
    "EMC_FREQ 0% GR3D_FREQ 12% PLL@35C GPU@33C POM_5V_IN 1933/2001 POM_5V_GPU 40/39 POM_5V_CPU 310/300"
)


def test_parse_tegrastats_orin_and_legacy_lines():
    s = parse_tegrastats(ORIN_LINE, time_s=5.0)
    assert s.time_s == 5.0
    assert s.memory_used_mb == 2453.0 and s.gpu_util_percent == 61.0
    assert s.rails_w == pytest.approx(
        {"VDD_GPU_SOC": 3.591, "VDD_CPU_CV": 0.797, "VIN_SYS_5V0": 3.928, "VDDQ_VDD2_1V8AO": 0.503}
    )
    assert s.power_w == pytest.approx(3.591 + 0.797 + 3.928 + 0.503)
    n = parse_tegrastats(NANO_LINE)
    assert n.rails_w == pytest.approx({"POM_5V_IN": 1.933, "POM_5V_GPU": 0.040, "POM_5V_CPU": 0.310})
    assert n.power_w == pytest.approx(1.933)
    assert n.gpu_util_percent == 12.0 and n.memory_used_mb == 1730.0
    with pytest.raises(ValueError, match="not a tegrastats line"):
        parse_tegrastats("hello world")


def test_tegrastats_monitor_parses_a_running_process():
    script = textwrap.dedent(
        f"""
        import sys, time
        print("garbage first", flush=True)
        print({ORIN_LINE!r}, flush=True)
        time.sleep(30)
        """
    )
    mon = TegrastatsMonitor(command=[sys.executable, "-c", script], timeout_s=20)
    try:
        assert mon.sample().gpu_util_percent == 61.0
    finally:
        mon.close()
    assert mon._proc.poll() is not None  # the child was ended


def _unavailable(*args: object, **kwargs: object) -> None:
    raise MonitorUnavailable("not on this machine")


def test_open_device_monitor_falls_back_to_tegrastats_then_none(tmp_path, monkeypatch):
    monkeypatch.setattr(profiling, "NvmlMonitor", _unavailable)
    monkeypatch.setattr(profiling, "JetsonMonitor", _unavailable)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert profiling.open_device_monitor() is None  # no NVML, no sysfs rails, no tegrastats
    fake = tmp_path / "tegrastats"  # what a Jetson without readable sysfs has on its PATH
    fake.write_text(f"#!{sys.executable}\nimport time\nprint({ORIN_LINE!r}, flush=True)\ntime.sleep(30)\n")
    fake.chmod(0o755)
    mon = profiling.open_device_monitor()
    try:
        assert isinstance(mon, TegrastatsMonitor)
        assert mon.sample().power_w == pytest.approx(3.591 + 0.797 + 3.928 + 0.503)
    finally:
        assert mon is not None
        mon.close()


def test_open_device_monitor_prefers_nvml_then_jetson_sysfs(tmp_path, monkeypatch):
    sys_root, proc_root, expected = _fake_orin_sysfs(tmp_path)
    jetson = profiling.JetsonMonitor
    monkeypatch.setattr(profiling, "JetsonMonitor", lambda: jetson(root=sys_root, proc_root=proc_root))
    monkeypatch.setattr(profiling, "NvmlMonitor", _unavailable)
    mon = profiling.open_device_monitor()
    assert isinstance(mon, JetsonMonitor) and sorted(mon.rail_names) == sorted(expected)
    sentinel = _FakeMonitor(energy_counter=False)
    indices: list[int] = []

    def nvml(index: int) -> _FakeMonitor:
        indices.append(index)
        return sentinel

    monkeypatch.setattr(profiling, "NvmlMonitor", nvml)
    assert profiling.open_device_monitor(3) is sentinel and indices == [3]


def test_tegrastats_monitor_missing_command():
    with pytest.raises(MonitorUnavailable):
        TegrastatsMonitor(command=["/nonexistent/tegrastats"])


def test_total_rail_power_empty():
    assert total_rail_power({}) is None


# --- Sampler --------------------------------------------------------------------------------------
class _FakeMonitor:
    """Power ramps linearly with time, so ∫P dt has a closed form to compare with."""

    name = "fake"

    def __init__(self, energy_counter: bool) -> None:
        self.t0 = time.monotonic()
        self.counter = energy_counter
        self.calls = 0
        self.lock = threading.Lock()

    def sample(self) -> DeviceSample:
        with self.lock:
            self.calls += 1
        t = time.monotonic()
        return DeviceSample(
            t, gpu_util_percent=50.0, power_w=100.0 + 10.0 * (t - self.t0), memory_used_mb=7.0
        )

    def energy_j(self) -> float | None:
        return 1000.0 + 42.0 * (time.monotonic() - self.t0) if self.counter else None

    def close(self) -> None:
        pass


def test_sampler_integrates_power_without_counter():
    mon = _FakeMonitor(energy_counter=False)
    with DeviceSampler(mon, interval_s=0.01) as sampler:
        time.sleep(0.3)
    s = sampler.summary
    assert s is not None and s.samples >= 5
    t = np.array([x.time_s for x in sampler.samples]) - mon.t0
    exact = 100.0 * (t[-1] - t[0]) + 5.0 * (t[-1] ** 2 - t[0] ** 2)  # ∫ (100 + 10 t) dt
    assert s.energy_j == pytest.approx(exact, rel=1e-9)
    assert s.gpu_util_mean == 50.0 and s.memory_max_mb == 7.0 and s.process_memory_max_mb is None
    assert 100.0 <= s.power_mean_w <= s.power_max_w


def test_sampler_prefers_energy_counter():
    mon = _FakeMonitor(energy_counter=True)
    sampler = DeviceSampler(mon, interval_s=0.05).start()
    time.sleep(0.2)
    s = sampler.stop()
    assert s.energy_j == pytest.approx(42.0 * s.seconds, rel=0.2)
    with pytest.raises(RuntimeError, match="not started"):
        sampler.stop()
    with pytest.raises(ValueError):
        DeviceSampler(mon, interval_s=0)


# --- NVML -----------------------------------------------------------------------------------------
def test_nvml_unavailable_is_a_clear_error(monkeypatch):
    def fail() -> None:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=fail))
    with pytest.raises(MonitorUnavailable, match="NVML is not available"):
        NvmlMonitor()


@pytest.mark.gpu
def test_nvml_reads_this_gpu_and_this_process():
    import torch

    mon = NvmlMonitor(0)
    try:
        x = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")  # 256 MiB
        torch.cuda.synchronize()
        s = mon.sample()
        assert s.power_w is not None and s.power_w > 0
        assert 0.0 <= s.gpu_util_percent <= 100.0
        assert s.memory_used_mb >= 256
        if s.process_memory_mb is not None:  # absent where NVML sees another PID namespace
            assert s.process_memory_mb >= 256
        del x
    finally:
        mon.close()
