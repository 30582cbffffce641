"""The bring-up entry point (what `make demo` runs): camera → detector → recorder in one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_bringup_runs_the_demo_config_to_the_end(tmp_path, detector_model):
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["/**/camera_source"]["ros__parameters"].update(synthetic_frames=12, rate=4.0)
    cfg["/**/yolov8_trt_node"]["ros__parameters"]["model_path"] = str(detector_model)
    params = tmp_path / "demo.yaml"
    params.write_text(yaml.safe_dump(cfg))
    video = tmp_path / "demo.mp4"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolov8_trt_ros.ros.bringup",
            "--params",
            str(params),
            "--record",
            str(video),
            "--report-every",
            "1",
            "--report",
            str(tmp_path / "timings.md"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = out.stdout[out.stdout.index("=== yolov8_trt_ros bring-up report ===") :]
    assert "camera frames sent: 12" in report
    processed = int(report.split("frames processed: ")[1].split()[0])
    dropped = int(report.split("dropped (stale): ")[1].split()[0])
    assert processed + dropped == 12 and processed >= 6
    for stage in ("preprocess", "inference", "postprocess", "tracking", "publish"):
        assert f"\n{stage} " in report
    assert "throughput:" in report
    # The Markdown report is written before shutdown resets the profiler: it has the stages.
    timings = (tmp_path / "timings.md").read_text()
    for stage in ("preprocess", "inference", "postprocess", "tracking"):
        assert f"| {stage} |" in timings
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == processed, "one annotated frame per processed frame"


def test_bringup_fails_cleanly_without_a_model(tmp_path):
    cfg = {
        "yolov8_trt_node": {
            "ros__parameters": {"backend": "onnxruntime", "model_path": str(tmp_path / "none.onnx")}
        }
    }
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [sys.executable, "-m", "yolov8_trt_ros.ros.bringup", "--params", str(params)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "model file not found" in out.stderr + out.stdout
