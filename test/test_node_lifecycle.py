"""The detector as a separate process, driven over DDS through its lifecycle services.

Covers the transitions in the orders a lifecycle manager or an operator may take, failed
configure (missing and corrupt model) with retry, and parameters that need a reconfigure.
"""

from __future__ import annotations

import pytest

from _ros import NodeProcess, Probe, image_msg, node_and_probe, read_bgr, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def lifecycle_node(rclpy_session, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("lifecycle")
    params = {
        "backend": "onnxruntime",
        "model_path": str(log_dir / "missing.onnx"),
        "diagnostics_period": 0.2,
    }
    with node_and_probe("lc_detector", params, log_dir) as (proc, probe):
        yield proc, probe, log_dir


def test_lifecycle_orders_failure_and_retry(lifecycle_node, detector_model, assets_dir):
    proc, probe, log_dir = lifecycle_node
    frame = read_bgr(assets_dir / "bus.jpg")
    assert probe.state() == "unconfigured"
    assert not probe.transition("activate"), "activate from unconfigured must be refused"

    # A missing model: configure fails, says why, and leaves the node unconfigured.
    assert not probe.transition("configure")
    assert probe.state() == "unconfigured"
    assert "configure failed" in proc.log() and "missing.onnx" in proc.log()

    # A corrupt model file: the same, and the retry is possible.
    corrupt = log_dir / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not an onnx model" * 100)
    assert probe.set_params(model_path=str(corrupt))[0].successful
    assert not probe.transition("configure")
    assert probe.state() == "unconfigured"
    assert proc.log().count("configure failed") == 2

    # The right model: configure, then a parameter that decides what configure loads is refused.
    assert probe.set_params(model_path=str(detector_model))[0].successful
    assert probe.transition("configure")
    assert probe.state() == "inactive"
    refused = probe.set_params(model_path=str(corrupt))[0]
    assert not refused.successful and "configure" in refused.reason

    # Inactive: no subscription, no output.
    probe.spin(0.5)
    assert probe.image_pub.get_subscription_count() == 0

    # configure → cleanup → configure again (engine freed and reloaded).
    assert probe.transition("cleanup")
    assert probe.state() == "unconfigured"
    assert probe.transition("configure")

    # activate → frames answered; deactivate → not; activate again → answered, no reload.
    assert probe.transition("activate")
    assert probe.state() == "active"
    probe.wait_subscribed()
    first = probe.send_and_wait(image_msg(frame, stamp_sec=1))
    assert first.header.frame_id == "cam" and first.header.stamp.sec == 1
    assert probe.transition("deactivate")
    assert probe.state() == "inactive"
    assert spin_until(probe.executor, lambda: probe.image_pub.get_subscription_count() == 0)
    n = len(probe.detections)
    probe.image_pub.publish(image_msg(frame, stamp_sec=2))
    probe.spin(1.0)
    assert len(probe.detections) == n, "an inactive node must not publish"
    loads = proc.log().count("configured: backend=")
    assert probe.transition("activate")
    probe.wait_subscribed()
    again = probe.send_and_wait(image_msg(frame, stamp_sec=3))
    assert len(again.detections) == len(first.detections), "same frame, same engine, same answer"
    assert proc.log().count("configured: backend=") == loads, "activate must not reload the engine"

    # Shutdown from active: finalized, process still healthy.
    assert probe.transition("active_shutdown")
    assert probe.state() == "finalized"
    assert proc.alive()


@pytest.mark.parametrize("path", [["shutdown"], ["configure", "inactive_shutdown"]])
def test_shutdown_from_any_state(rclpy_session, detector_model, tmp_path, path):
    name = f"sd_detector_{len(path)}"
    proc = NodeProcess(name, {"backend": "onnxruntime", "model_path": str(detector_model)}, tmp_path)
    probe = Probe(name, name=f"sd_probe_{len(path)}")
    try:
        probe.wait_for_node()
        for step in path:
            assert probe.transition(step), step
        assert probe.state() == "finalized"
        assert proc.alive()
    finally:
        probe.close()
        rc = proc.stop()
        assert rc in (0, -15), f"exit code {rc}; node log:\n{proc.log()}"
