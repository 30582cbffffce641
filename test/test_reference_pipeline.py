"""Our stages and the running node against ultralytics' own, on real photos.

References are fixtures (test/fixtures/reference_synth.npz) made by
scripts/make_reference_fixtures.py from the trained test model; the command is stored inside.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from _ros import image_msg, node_and_probe, read_bgr

FIXTURE = Path(__file__).parent / "fixtures" / "reference_synth.npz"
MODEL = Path(__file__).resolve().parents[1] / "models" / "test" / "yolov8n_synth.onnx"
IMAGES = ("bus", "zidane")


@pytest.fixture(scope="module")
def ref():
    data = np.load(FIXTURE)
    conf, iou, max_det, imgsz = data["meta/nms"].tolist()
    return data, {"conf": conf, "iou": iou, "max_det": int(max_det), "imgsz": int(imgsz)}


@pytest.fixture(scope="module")
def image(assets_dir, ref):
    def load(name: str) -> np.ndarray:
        path = assets_dir / f"{name}.jpg"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == str(ref[0][f"{name}/image_sha256"])
        return read_bgr(path)

    return load


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def assert_same_boxes(boxes, classes, ref_boxes, ref_classes, min_iou=0.99):
    assert len(boxes) == len(ref_boxes) > 0
    iou = _iou(np.asarray(boxes, np.float64), np.asarray(ref_boxes, np.float64))
    best = iou.argmax(axis=1)
    assert sorted(best.tolist()) == list(range(len(ref_boxes))), "one-to-one match"
    assert iou[np.arange(len(best)), best].min() >= min_iou
    np.testing.assert_array_equal(np.asarray(classes), np.asarray(ref_classes)[best])


@pytest.mark.parametrize("name", IMAGES)
def test_letterbox_matches_ultralytics(ref, image, name):
    from yolov8_trt_ros.core.config import PreprocessConfig
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor

    tensor, _ = CpuPreprocessor(PreprocessConfig())([image(name)], ["bgr8"])
    expected = ref[0][f"{name}/letterbox"][:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    assert tensor.shape == expected.shape
    assert np.abs(tensor - expected).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("name", IMAGES)
def test_onnxruntime_raw_output_matches_pytorch(ref, image, name):
    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from yolov8_trt_ros.core.config import EngineConfig, PreprocessConfig
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor

    tensor, _ = CpuPreprocessor(PreprocessConfig())([image(name)], ["bgr8"])
    backend = OnnxRuntimeBackend(EngineConfig(backend="onnxruntime", model_path=str(MODEL), precision="fp32"))
    raw = backend.infer(tensor).raw
    expected = ref[0][f"{name}/raw"]
    assert raw.shape == expected.shape
    assert np.abs(raw - expected).max() <= 1e-3 * np.abs(expected).max()


@pytest.mark.ros
@pytest.mark.slow
def test_node_answers_a_photo_like_ultralytics(rclpy_session, ref, image, tmp_path):
    data, nms = ref
    params = {
        "backend": "onnxruntime",
        "model_path": str(MODEL),
        "autostart": True,
        "conf_threshold": nms["conf"],
        "iou_threshold": nms["iou"],
        "max_detections": nms["max_det"],
        "tracker.enabled": False,
        "publish_class_names": False,
    }
    with node_and_probe("ref_detector", params, tmp_path, subscribed=True) as (_, probe):
        for i, name in enumerate(IMAGES):
            img = image(name)
            msg = probe.send_and_wait(image_msg(img, "bgr8", frame_id="camera_optical", stamp_sec=10 + i))
            assert msg.header.frame_id == "camera_optical" and msg.header.stamp.sec == 10 + i
            boxes = [
                [
                    d.bbox.center.position.x - d.bbox.size_x / 2,
                    d.bbox.center.position.y - d.bbox.size_y / 2,
                    d.bbox.center.position.x + d.bbox.size_x / 2,
                    d.bbox.center.position.y + d.bbox.size_y / 2,
                ]
                for d in msg.detections
            ]
            classes = [int(d.results[0].hypothesis.class_id) for d in msg.detections]
            assert_same_boxes(boxes, classes, data[f"{name}/boxes"], data[f"{name}/classes"])
            scores = sorted(d.results[0].hypothesis.score for d in msg.detections)
            np.testing.assert_allclose(scores, np.sort(data[f"{name}/scores"]), atol=2e-3)
