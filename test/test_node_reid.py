"""Re-identification through the node's parameters, on a real node process over DDS.

The engine computes embeddings only when ``reid.enabled`` is on at configure, so switching it on
later over an engine without them must be refused with a reason (not accepted and silently
ignored), while switching it off and on again over an engine with them applies at run time.
"""

from __future__ import annotations

import numpy as np
import pytest

from _ros import image_msg, node_and_probe

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _params(model, reid: bool) -> dict:
    return {
        "backend": "onnxruntime",
        "model_path": str(model),
        "autostart": True,
        "debug_image": False,
        "reid.enabled": reid,
    }


def test_reid_switch_follows_what_the_engine_was_loaded_with(rclpy_session, detector_model, tmp_path):
    frame = np.full((240, 320, 3), 114, np.uint8)
    with node_and_probe("reid_off_detector", _params(detector_model, False), tmp_path, subscribed=True) as (
        proc,
        probe,
    ):
        (refused,) = probe.set_params(reid__enabled=True)
        assert not refused.successful and "configure" in refused.reason
        assert "embeddings" not in proc.log().split("configured:")[1].split("\n")[0]
    with node_and_probe("reid_on_detector", _params(detector_model, True), tmp_path, subscribed=True) as (
        proc,
        probe,
    ):
        assert "embeddings D=64" in proc.log()
        assert probe.send_and_wait(image_msg(frame, stamp_sec=1)) is not None
        assert all(r.successful for r in probe.set_params(reid__enabled=False))
        assert all(r.successful for r in probe.set_params(reid__enabled=True))
        assert probe.send_and_wait(image_msg(frame, stamp_sec=2)) is not None
        assert proc.alive()


def test_node_runs_a_model_with_a_learned_branch(rclpy_session, tmp_path):
    """The test model with the committed learned branch baked in (what docs/tracking.md tells
    users to run), with the evaluated settings: the node loads it with its 64-value embeddings and
    answers frames with tracked detections."""
    from pathlib import Path

    from yolov8_trt_ros.core.embeddings import add_embedding_output_file, load_branch
    from yolov8_trt_ros.core.sources import iter_frames

    root = Path(__file__).resolve().parents[1] / "models" / "test"
    if not (root / "yolov8n_synth.reid_branch.npz").is_file() or not (root / "yolov8n_synth.onnx").is_file():
        pytest.skip("models/test not present")
    model = tmp_path / "yolov8n_synth_reid.onnx"
    branch = load_branch(root / "yolov8n_synth.reid_branch.npz")
    assert add_embedding_output_file(root / "yolov8n_synth.onnx", model, branch=branch, replace=True) == 64
    params = {**_params(model, True), "reid.gallery_thresh": 0.8, "tracker.class_aware": True}
    frames = list(iter_frames("synthetic:0", synthetic_frames=4))
    with node_and_probe("reid_branch_detector", params, tmp_path, subscribed=True) as (proc, probe):
        assert "embeddings D=64" in proc.log()
        answers = [probe.send_and_wait(image_msg(f, stamp_sec=i + 1)) for i, f in enumerate(frames)]
        assert sum(len(a.detections) for a in answers) > 0
        assert all(d.id for d in answers[-1].detections)  # tracked: every published box has a track id
        assert proc.alive()
