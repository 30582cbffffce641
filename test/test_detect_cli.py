"""``python -m yolov8_trt_ros.detect``: the first check a user runs on a new machine, without ROS.

Its boxes must be the core Pipeline's own, its pictures drawn by the node's drawing, and bad
input must end in one line and exit code 2 rather than a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov8_trt_ros import detect

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "test" / "yolov8n_synth.onnx"
ARGS = ["--model", str(MODEL), "--backend", "onnxruntime", "--precision", "fp32"]


@pytest.fixture(scope="module")
def pipeline():
    """The core Pipeline as the tool builds it (same thresholds, tracker off), called directly."""
    from yolov8_trt_ros.core.config import EngineConfig, TrackerConfig
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig

    assert MODEL.is_file(), f"the committed test model {MODEL} is missing"
    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(MODEL), precision="fp32")
    cfg.tracker = TrackerConfig(enabled=False)
    p = Pipeline.create(cfg)
    yield p
    p.close()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """What a user runs: a fresh interpreter, the module as ``-m``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "yolov8_trt_ros.detect", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_same(frame: dict, dets, names) -> None:
    got = frame["detections"]
    assert len(got) == len(dets.boxes)
    if got:
        np.testing.assert_allclose([d["box_xyxy"] for d in got], dets.boxes, atol=1e-3)
        np.testing.assert_allclose([d["score"] for d in got], dets.scores, atol=1e-4)
        assert [d["class_id"] for d in got] == dets.class_ids.tolist()
        assert [d["class_name"] for d in got] == [names[c] for c in dets.class_ids.tolist()]


def test_image_folder_matches_pipeline(tmp_path, assets_dir, pipeline):
    from yolov8_trt_ros.core.drawing import annotate

    src = tmp_path / "images"
    src.mkdir()
    shutil.copy(assets_dir / "bus.jpg", src / "bus.jpg")
    bus = cv2.imread(str(src / "bus.jpg"))
    cv2.imwrite(str(src / "bus_lossless.png"), bus)  # lossless: its picture can be compared exactly
    out = tmp_path / "out"

    proc = _cli(*ARGS, "--source", str(src), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "preprocess" in proc.stdout and "inference" in proc.stdout and "postprocess" in proc.stdout

    report = json.loads((out / "detections.json").read_text())
    assert [f["source"] for f in report["frames"]] == ["bus.jpg", "bus_lossless.png"]
    names = tuple(report["class_names"])
    (expected,) = pipeline.process([bus], ["bgr8"])
    assert len(expected.detections.boxes) > 0, "the test model finds shapes on bus.jpg"
    for frame in report["frames"]:
        _assert_same(frame, expected.detections, names)

    for name in ("bus.jpg", "bus_lossless.png"):
        drawn = cv2.imread(str(out / name))
        assert drawn.shape == bus.shape
        assert np.abs(drawn.astype(np.int16) - bus).max() > 100, f"{name}: no boxes drawn"
    png = cv2.imread(str(out / "bus_lossless.png"))
    np.testing.assert_array_equal(png, annotate(bus, "bgr8", expected.detections, None, names))


def test_video_to_mp4(tmp_path, capsys):
    from yolov8_trt_ros.datasets.tracking import render_tracking_frame

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (320, 240))
    for i in range(5):
        writer.write(render_tracking_frame(0, 0, i, 5, 320, 240, 4)[0])
    writer.release()
    out = tmp_path / "out"

    assert detect.main([*ARGS, "--source", str(clip), "--output", str(out), "--show-timings"]) == 0
    report = json.loads((out / "detections.json").read_text())
    assert [(f["source"], f["index"]) for f in report["frames"]] == [("clip.mp4", i) for i in range(5)]
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3)
    assert capsys.readouterr().out.count("inference") == 6  # one line per frame, one summary row


def test_missing_model_is_one_line(tmp_path):
    proc = _cli("--model", "no/such/model.onnx", "--source", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "no/such/model.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["empty folder", "no such file"])
def test_bad_source_exits_2(tmp_path, capsys, kind):
    source = tmp_path if kind == "empty folder" else tmp_path / "missing.mp4"
    assert detect.main([*ARGS, "--source", str(source), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(source) in err and len(err.strip().splitlines()) == 1


def test_corrupt_image_is_skipped(tmp_path, assets_dir, capsys):
    src = tmp_path / "images"
    src.mkdir()
    shutil.copy(assets_dir / "bus.jpg", src / "b_good.jpg")
    (src / "a_corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"

    assert detect.main([*ARGS, "--source", str(src), "--output", str(out)]) == 0
    assert "a_corrupt.jpg" in capsys.readouterr().err
    report = json.loads((out / "detections.json").read_text())
    assert [f["source"] for f in report["frames"]] == ["b_good.jpg"]
    assert [s["source"] for s in report["skipped"]] == ["a_corrupt.jpg"]
    assert (out / "b_good.jpg").is_file() and not (out / "a_corrupt.jpg").exists()
