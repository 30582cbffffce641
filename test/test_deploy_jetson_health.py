"""The Jetson readings of the health check against a fixture copy of an Orin's sysfs files.

Each test copies the tree and changes the files a real event would change (a hot zone, a
throttle device switched on, ``jetson_clocks`` pinning the clocks, another power mode).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from yolov8_trt_ros.health import jetson

FIXTURE = Path(__file__).parent / "fixtures" / "jetson_orin_sysfs"


@pytest.fixture
def board(tmp_path: Path) -> Path:
    root = tmp_path / "orin"
    shutil.copytree(FIXTURE, root)
    return root


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).write_text(text + "\n")


def test_idle_board_in_maxn(board):
    r = jetson.read_report(board)
    assert r.is_jetson
    assert r.temperatures_c == {
        "cpu-thermal": 48.5,
        "gpu-thermal": 47.218,
        "cv0-thermal": 46.0,
        "soc0-thermal": 47.906,
        "tj-thermal": 48.5,
    }  # the disabled pmic zone (-256 C) is left out
    assert r.throttling == [] and r.gpu_max_freq_capped is False
    assert r.power_mode == "0 (MAXN)" and r.clocks_pinned is False
    assert r.problems(max_temp_c=90.0, fail_on_throttle=True) == []
    assert r.as_values()["jetson.power_mode"] == "0 (MAXN)"


def test_hot_zone_and_throttling_are_problems(board):
    _write(board, "sys/devices/virtual/thermal/thermal_zone1/temp", "96500")
    _write(board, "sys/class/thermal/cooling_device2/cur_state", "1")  # gpu-balanced on
    _write(board, "sys/class/devfreq/17000000.ga10b/max_freq", "918000000")  # capped by the throttle
    r = jetson.read_report(board)
    assert r.hottest == ("gpu-thermal", 96.5)
    assert r.throttling == ["gpu-balanced"] and r.gpu_max_freq_capped is True
    assert r.problems(max_temp_c=90.0, fail_on_throttle=False) == ["gpu-thermal at 96.5 C (limit 90 C)"]
    assert r.problems(max_temp_c=100.0, fail_on_throttle=True) == ["throttling (gpu-balanced)"]
    assert "throttling: gpu-balanced" in r.summary()
    # A fan spinning is cooling, not throttling.
    _write(board, "sys/class/thermal/cooling_device2/cur_state", "0")
    assert jetson.read_report(board).throttling == []


def test_jetson_clocks_and_power_mode(board):
    gpu = "sys/class/devfreq/17000000.ga10b"
    _write(board, f"{gpu}/min_freq", "1300500000")  # what jetson_clocks writes
    assert jetson.read_report(board).clocks_pinned is False, "the CPUs are not pinned yet"
    for cpu in range(4):
        _write(board, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_min_freq", "2201600")
    assert jetson.read_report(board).clocks_pinned is True
    _write(board, "var/lib/nvpmodel/status", "pmode:0001 fmode:quiet")
    assert jetson.read_report(board).power_mode == "1 (MODE_15W)"
    (board / "etc/nvpmodel.conf").unlink()
    assert jetson.read_report(board).power_mode == "1"


def test_not_a_jetson(tmp_path):
    r = jetson.read_report(tmp_path)
    assert not r.is_jetson and r.temperatures_c == {} and r.clocks_pinned is None and r.summary() == ""
