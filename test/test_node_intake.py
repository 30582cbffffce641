"""The node's image intakes: frames taken by the rcl intake thread or by rclpy's executor.

Its own module: the detector here must be the only one answering on ``detections``.
"""

from __future__ import annotations

from itertools import count

import pytest

from _ros import image_msg, node_and_probe, read_bgr, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]
_stamps = count(500)


def _boxes(msg) -> list[tuple[str, float, float, float, float, float]]:
    return sorted(
        (
            d.results[0].hypothesis.class_id,
            round(d.results[0].hypothesis.score, 4),
            round(d.bbox.center.position.x, 2),
            round(d.bbox.center.position.y, 2),
            round(d.bbox.size_x, 2),
            round(d.bbox.size_y, 2),
        )
        for d in msg.detections
    )


@pytest.mark.parametrize("intake", ["rcl", "executor"])
def test_either_intake_answers_with_the_core_pipelines_detections(
    intake, rclpy_session, detector_model, assets_dir, tmp_path
):
    """The rcl intake (the default here) and the executor fallback hand the node the same frame."""
    from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig

    frame = read_bgr(assets_dir / "bus.jpg")
    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(detector_model), num_threads=1)
    cfg.postprocess = PostprocessConfig(conf_threshold=0.01)
    reference = Pipeline.create(cfg)
    try:
        expected = reference.process([frame], ["bgr8"])[0].detections
    finally:
        reference.close()
    params = {"backend": "onnxruntime", "model_path": str(detector_model), "autostart": True}
    params |= {"diagnostics_period": 0.2, "conf_threshold": 0.01, "image_intake": intake}
    with node_and_probe(f"{intake}_intake_detector", params, tmp_path, subscribed=True) as (proc, probe):
        # Answered: the node is active, and the diagnostics from now on say which intake it runs.
        got = probe.send_and_wait(image_msg(frame, stamp_sec=next(_stamps)))
        assert spin_until(
            probe.executor, lambda: probe.latest_diagnostics().get("image_intake") == intake, 10
        )
        assert proc.alive()
    assert len(got.detections) == len(expected.scores) > 0
    want = sorted(
        (float(score), (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
        for score, (x0, y0, x1, y1) in zip(expected.scores, expected.boxes.tolist(), strict=True)
    )
    got_rows = sorted(row[1:] for row in _boxes(got))  # (score, cx, cy, w, h)
    for row, want_row in zip(got_rows, want, strict=True):
        assert row == pytest.approx(want_row, abs=0.05)
