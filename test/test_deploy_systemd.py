"""The systemd unit: ``systemd-analyze verify`` clean, and its ExecStart line really starts the node.

``verify`` exits 0 even for unknown keys and bad values (it only prints them), so the test reads
its output, and first checks on a broken copy that such mistakes are reported at all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from _deploy_bundles import ENGINE, Kit

from yolov8_trt_ros.deploy.installer import install
from yolov8_trt_ros.deploy.store import ModelStore

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "yolov8-trt-ros.service"
ENV_FILE = REPO / "deploy" / "systemd" / "yolov8-trt-ros.env"
ANALYZE = shutil.which("systemd-analyze")


def _verify(path: Path) -> str:
    run = subprocess.run([ANALYZE or "", "verify", str(path)], capture_output=True, text=True, timeout=60)
    return run.stdout + run.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_unit_verifies_clean(tmp_path):
    broken = tmp_path / UNIT.name
    broken.write_text(
        UNIT.read_text().replace("Type=notify", "Type=notfy").replace("WatchdogSec", "WatchdogSek")
    )
    complaints = _verify(broken)
    assert "notfy" in complaints and "WatchdogSek" in complaints, "verify no longer reports mistakes"
    assert [line for line in _verify(UNIT).splitlines() if UNIT.name in line] == []


def _unit_value(key: str) -> str:
    """A [Service] value, continuation lines joined as systemd joins them."""
    text = UNIT.read_text().replace("\\\n", " ")
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}="))


def test_required_settings():
    for key, value in {
        "Type": "notify",
        "WatchdogSec": "30s",
        "Restart": "on-failure",
        "After": "network-online.target",
        "EnvironmentFile": "/etc/yolov8_trt_ros/yolov8-trt-ros.env",
    }.items():
        assert _unit_value(key) == value, key
    assert int(_unit_value("StartLimitBurst")) > 0


@pytest.mark.ros
@pytest.mark.slow
def test_exec_start_brings_the_node_to_ready(tmp_path, detector_model):
    """ExecStart as systemd runs it (bash -c, the env file's variables, its ros_setup.bash),
    on a model store holding one installed bundle."""
    kit = Kit(tmp_path / "kit", detector_model)
    store = ModelStore(tmp_path / "store")
    install(kit.make("v1", "1.0.0"), store, kit.public, ENGINE)
    params = tmp_path / "params.yaml"
    params.write_text("yolov8_trt_node:\n  ros__parameters:\n    backend: onnxruntime\n    num_threads: 1\n")
    # systemd's clean environment: nothing of this test process's venv or PYTHONPATH.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    for line in ENV_FILE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    env.update(
        ROS_SETUP=str(REPO / "deploy" / "systemd" / "ros_setup.bash"),
        YOLOV8_HOME=str(REPO),
        ROS_DISTRO_SETUP="",  # the PyPI wheels: no distro to source
        PARAMS_FILE=str(params),
        MODEL_STORE=str(store.root),
        NODE_NAME="unit_detector",
        ROS_LOG_DIR=str(tmp_path / "log"),
        ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "0"),
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(env["NOTIFY_SOCKET"])
    sock.settimeout(1.0)
    exec_start = _unit_value("ExecStart")
    assert exec_start.startswith("/bin/bash -c '") and exec_start.endswith("'")
    command = exec_start[len("/bin/bash -c '") : -1]
    log = open(tmp_path / "node.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["/bin/bash", "-c", command], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )
    messages: list[str] = []
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end and not any("READY=1" in m for m in messages):
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                assert proc.poll() is None, (tmp_path / "node.log").read_text()
        assert any("READY=1" in m for m in messages), (tmp_path / "node.log").read_text()
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "node.log").read_text()
    sock.settimeout(2.0)
    assert "STOPPING=1" in sock.recv(4096).decode()
    sock.close()
