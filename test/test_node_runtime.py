"""An active detector process under load: run-time parameters, bad input, debug image on demand."""

from __future__ import annotations

import math
import re
from itertools import count, pairwise

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data

from _ros import image_msg, node_and_probe, read_bgr, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]
_stamps = count(100)


@pytest.fixture(scope="module")
def active_node(rclpy_session, detector_model, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("runtime")
    params = {
        "backend": "onnxruntime",
        "model_path": str(detector_model),
        "autostart": True,
        "diagnostics_period": 0.2,
        "conf_threshold": 0.01,
        "tracker.enabled": True,
    }
    with node_and_probe("rt_detector", params, log_dir, subscribed=True) as (proc, probe):
        yield proc, probe


def _send(probe, img, encoding="bgr8"):
    return probe.send_and_wait(image_msg(img, encoding, stamp_sec=next(_stamps)))


def _scores(msg):
    return [d.results[0].hypothesis.score for d in msg.detections]


def test_parameter_updates_apply_to_the_next_frame(active_node, assets_dir):
    _, probe = active_node
    frame = read_bgr(assets_dir / "bus.jpg")
    low = _send(probe, frame)
    assert len(low.detections) > 0 and min(_scores(low)) >= 0.01
    threshold = float(np.median(_scores(low)))
    assert probe.set_params(conf_threshold=threshold)[0].successful
    high = _send(probe, frame)
    assert all(s >= threshold - 1e-6 for s in _scores(high))
    assert 0 < len(high.detections) < len(low.detections)

    keep = low.detections[0].results[0].hypothesis.class_id
    assert probe.set_params(conf_threshold=0.01, classes=[keep])[0].successful
    only = _send(probe, frame)
    assert {d.results[0].hypothesis.class_id for d in only.detections} == {keep}

    h, w = frame.shape[:2]
    assert probe.set_params(classes=["__all__"])[0].successful is False  # unknown class: refused
    assert probe.set_params(roi=[0.0, 0.0, w / 2, h / 2])[0].successful
    boxed = _send(probe, frame)
    for d in boxed.detections:
        assert d.bbox.center.position.x <= w / 2 and d.bbox.center.position.y <= h / 2
    assert probe.set_params(roi=[0.0, 0.0, float(w), float(h)])[0].successful


@pytest.mark.parametrize(
    "changes, reason_word",
    [
        ({"conf_threshold": 1.5}, ""),
        ({"roi": [1.0, 2.0, 3.0]}, "roi"),
        ({"roi_mode": "inside"}, "roi_mode"),
        ({"tracker__low_thresh": 0.9}, "low_thresh"),
        ({"class_thresholds": ["nonsense"]}, "class_thresholds"),
        ({"iou_threshold": float("nan")}, ""),
    ],
)
def test_invalid_parameters_are_refused_with_a_reason(active_node, changes, reason_word):
    _, probe = active_node
    result = probe.set_params(**changes)[0]
    assert not result.successful
    assert result.reason and reason_word in result.reason


def test_bad_frames_never_stop_detections(active_node, assets_dir):
    proc, probe = active_node
    assert probe.set_params(max_image_pixels=1_000_000)[0].successful
    good = read_bgr(assets_dir / "zidane.jpg")[:480, :640]
    small = np.zeros((4, 6, 3), np.uint8)

    def bad_messages():
        unsupported = image_msg(small, "32FC1")  # float depth: no detector input
        zero = image_msg(small)
        zero.width = 0
        short = image_msg(small)
        short.data = bytes(short.data)[:10]
        narrow_step = image_msg(small)
        narrow_step.step = 5
        huge = image_msg(np.zeros((1100, 1000, 3), np.uint8))
        return [unsupported, zero, short, narrow_step, huge]

    counted: dict[str, int] = {}
    for round_ in range(2):
        for bad in bad_messages():
            before = sum(counted.values())

            def bad_total() -> int:
                diag = probe.latest_diagnostics()
                counted.update({k: int(v) for k, v in diag.items() if k.startswith("frames.bad.")})
                return sum(counted.values())

            # Best-effort delivery: resend the bad frame until the node has counted it.
            for _ in range(10):
                probe.image_pub.publish(bad)
                if bad_total() > before:
                    break
            assert bad_total() > before, f"bad frame {round_} not counted: {counted}"
            msg = _send(probe, good)
            coords = [
                v
                for d in msg.detections
                for v in (d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y)
            ]
            assert all(math.isfinite(v) for v in coords)
    assert proc.alive()
    assert len(counted) >= 4, f"each kind of bad input has its own counter: {counted}"
    # Throttled: each kind is logged when first seen, then at most once per 10 s.
    times: dict[str, list[float]] = {}
    for m in re.finditer(r"\[(\d+\.\d+)\] \[rt_detector\]: frame skipped \((\w+),", proc.log()):
        times.setdefault(m.group(2), []).append(float(m.group(1)))
    assert set(times) == {k.removeprefix("frames.bad.") for k in counted}
    for stamps in times.values():
        assert all(b - a >= 9.9 for a, b in pairwise(stamps)), stamps
    assert probe.set_params(max_image_pixels=4096 * 4096)[0].successful


def test_debug_image_only_with_subscribers(active_node, assets_dir):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    _, probe = active_node
    frame = read_bgr(assets_dir / "bus.jpg")
    _send(probe, frame)
    before = int(probe.latest_diagnostics().get("frames.debug_images", "0"))
    _send(probe, frame)
    assert int(probe.latest_diagnostics().get("frames.debug_images", "0")) == before, "drawn without a viewer"

    images: list[Image] = []
    sub = probe.node.create_subscription(
        Image, "debug_image", images.append, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    assert spin_until(probe.executor, lambda: sub.get_publisher_count() > 0)
    probe.spin(0.5)
    _send(probe, frame)
    assert spin_until(probe.executor, lambda: len(images) > 0)
    assert (images[-1].height, images[-1].width, images[-1].encoding) == (*frame.shape[:2], "bgr8")
    probe.node.destroy_subscription(sub)


def test_tracks_are_published_with_the_image_header(active_node, assets_dir):
    _, probe = active_node
    frame = read_bgr(assets_dir / "bus.jpg")
    for _ in range(3):
        msg = _send(probe, frame)
    stamp = msg.header.stamp.sec
    assert spin_until(probe.executor, lambda: any(t.header.stamp.sec == stamp for t in probe.tracks))
    tracks = next(t for t in probe.tracks if t.header.stamp.sec == stamp)
    ids = [o.id for o in tracks.objects]
    assert len(ids) == len(set(ids))


def test_compressed_images_are_decoded_and_corrupt_ones_counted(detector_model, assets_dir, tmp_path):
    """``compressed_input`` subscribes to image/compressed *instead of* image: one transport.

    Regression: both subscriptions fed one slot, so a camera publishing both transports was
    answered twice per frame and advanced the tracker twice.
    """
    from sensor_msgs.msg import CompressedImage

    from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig

    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=str(detector_model), num_threads=1)
    cfg.postprocess = PostprocessConfig(conf_threshold=0.01)
    reference = Pipeline.create(cfg)
    try:  # the same photo through the core, as bgr8 pixels
        raw = reference.process([read_bgr(assets_dir / "bus.jpg")], ["bgr8"])[0]
    finally:
        reference.close()
    params = {"backend": "onnxruntime", "model_path": str(detector_model), "autostart": True}
    params |= {"diagnostics_period": 0.2, "conf_threshold": 0.01, "compressed_input": True}
    with node_and_probe("jpeg_detector", params, tmp_path) as (_, probe):
        pub = probe.node.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        assert spin_until(probe.executor, lambda: pub.get_subscription_count() > 0, 60)
        probe.spin(0.5)
        raw_subscribers = {i.node_name for i in probe.node.get_subscriptions_info_by_topic("/image")}
        assert "jpeg_detector" not in raw_subscribers, "raw image subscribed beside compressed"
        jpeg = CompressedImage(format="jpeg", data=(assets_dir / "bus.jpg").read_bytes())
        stamp = next(_stamps)
        jpeg.header.stamp.sec = stamp

        def answered():
            return any(d.header.stamp.sec == stamp for d in probe.detections)

        for _ in range(10):
            pub.publish(jpeg)
            if spin_until(probe.executor, answered, 1.0):
                break
        got = next(d for d in probe.detections if d.header.stamp.sec == stamp)
        assert abs(len(got.detections) - len(raw.detections.scores)) <= 1, "same photo, JPEG vs raw pixels"

        def corrupt_count():
            return int(probe.latest_diagnostics().get("frames.bad.corrupt_compressed", "0"))

        before = corrupt_count()
        for _ in range(10):
            pub.publish(CompressedImage(format="jpeg", data=b"\xff\xd8 not really a jpeg"))
            if corrupt_count() > before:
                break
        assert corrupt_count() > before
        probe.node.destroy_publisher(pub)
