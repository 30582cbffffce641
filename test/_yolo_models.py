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


def synthetic_splits(root: Path, counts: dict[str, int]) -> dict[str, Path]:
    """The generator's own seeded images of each split (``{"calib": 16, "val": 8}``), written as
    scripts/make_synthetic_data.py writes them, so that a test needs no data/synth."""
    import cv2

    from yolov8_trt_ros.datasets.synthetic import SPLIT_IDS, render_detection_image

    dirs = {}
    for split, count in counts.items():
        dirs[split] = root / split
        dirs[split].mkdir()
        for index in range(count):
            image, _, quality = render_detection_image(seed=0, split_id=SPLIT_IDS[split], index=index)
            cv2.imwrite(str(dirs[split] / f"{index:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return dirs


def kept_detections(ref_raw: np.ndarray, got_raw: np.ndarray, iou: float = 0.9) -> tuple[int, int]:
    """(matched, total): ``ref_raw``'s detections (ultralytics NMS at 0.25 / 0.45) that
    ``got_raw`` has too, same class at IoU >= ``iou``."""
    import torch
    from ultralytics.utils.metrics import box_iou
    from ultralytics.utils.nms import non_max_suppression

    ref, got = (
        non_max_suppression(torch.from_numpy(np.asarray(raw, np.float32)), 0.25, 0.45)
        for raw in (ref_raw, got_raw)
    )
    matched = total = 0
    for r, g in zip(ref, got, strict=True):
        total += len(r)
        if len(r) and len(g):
            overlap = box_iou(r[:, :4], g[:, :4])
            overlap[r[:, 5][:, None] != g[:, 5][None, :]] = 0
            matched += int((overlap.max(dim=1).values >= iou).sum())
    return matched, total
