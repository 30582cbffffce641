"""The logrotate config: parses (``logrotate -d``) and really rotates the node's files.

The config's absolute paths and user are pointed at a tmp tree and the current user; the
directives themselves are the shipped ones.
"""

from __future__ import annotations

import getpass
import grp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "deploy" / "logrotate" / "yolov8-trt-ros"
LOGROTATE = shutil.which("logrotate") or (
    "/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None
)
pytestmark = pytest.mark.skipif(
    LOGROTATE is None, reason="logrotate is not installed (apt-get install logrotate)"
)


def _config(tmp: Path) -> Path:
    user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    text = CONFIG.read_text().replace("/var/log/yolov8_trt_ros", str(tmp / "log"))
    text = text.replace("/var/lib/yolov8_trt_ros", str(tmp / "lib")).replace(
        "su yolov8 yolov8", f"su {user} {group}"
    )
    conf = tmp / "logrotate.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    return conf


def _run(conf: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOGROTATE or "", *flags, "--state", str(tmp / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_parses(tmp_path):
    (tmp_path / "log").mkdir()
    debug = _run(_config(tmp_path), tmp_path, "-d")
    assert debug.returncode == 0, debug.stderr
    assert "error" not in debug.stderr.lower(), debug.stderr
    assert "rotating pattern" in debug.stderr
    assert str(tmp_path / "log") in debug.stderr


def test_big_ros_log_is_rotated_and_truncated_in_place(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    node_log = log_dir / "detector_node_1234_1700000000.log"
    with open(node_log, "wb") as f:  # over the 50 MB maxsize, sparse so it costs no disk
        f.truncate(51 * 1024 * 1024)
        f.seek(0)
        f.write(b"[INFO] configured\n")
    small = log_dir / "camera_source_99_1700000000.log"
    small.write_text("[INFO] one line\n")
    conf = _config(tmp_path)
    first = _run(conf, tmp_path)
    assert first.returncode == 0, first.stderr
    rotated = log_dir / (node_log.name + ".1")
    assert rotated.is_file() and rotated.read_bytes().startswith(b"[INFO] configured")
    assert node_log.exists() and node_log.stat().st_size == 0, "copytruncate keeps the open file"
    assert small.read_text() == "[INFO] one line\n" and not (log_dir / (small.name + ".1")).exists()
    with open(node_log, "wb") as f:
        f.truncate(51 * 1024 * 1024)
    second = _run(conf, tmp_path)
    assert second.returncode == 0, second.stderr
    assert (log_dir / (node_log.name + ".2.gz")).is_file(), sorted(p.name for p in log_dir.iterdir())
