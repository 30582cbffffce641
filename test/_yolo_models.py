"""Small real YOLOv8n models for the backend tests, exported once per test session.

Not a test module (no ``test_`` prefix): the backend, export and calibration tests import
it so that they share one export of ``yolov8n.yaml`` (fixed seed) per size.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

TEST_IMGSZ = 320
_TMP = Path(tempfile.mkdtemp(prefix="yolov8_trt_ros_models_"))


@functools.cache
def yaml_onnx(imgsz: int = TEST_IMGSZ, dynamic_batch: bool = True) -> Path:
    """``yolov8n.yaml`` (seed 0, untrained) exported at ``imgsz``; cached for the session."""
    from yolov8_trt_ros.core.export import export_onnx

    name = f"yolov8n_{imgsz}_{'dyn' if dynamic_batch else 'b1'}.onnx"
    return export_onnx("yolov8n.yaml", _TMP / name, imgsz=imgsz, dynamic_batch=dynamic_batch)


@functools.cache
def yaml_torch_model():
    """The same seeded ``yolov8n.yaml`` model in PyTorch, eval mode, as the reference."""
    from yolov8_trt_ros.core.export import load_torch_model

    return load_torch_model("yolov8n.yaml").eval()


def letterbox_images(paths: list[Path], imgsz: int = TEST_IMGSZ) -> np.ndarray:
    """Real photos letterboxed with ultralytics' own LetterBox: ``[B, 3, H, W]`` RGB in [0, 1]."""
    import cv2
    from ultralytics.data.augment import LetterBox

    box = LetterBox((imgsz, imgsz), auto=False, stride=32)
    batch = []
    for path in paths:
        img = cv2.imread(str(path))
        assert img is not None, path
        lb = box(image=img)
        batch.append(lb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0)
    return np.ascontiguousarray(np.stack(batch))
