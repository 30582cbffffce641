"""Reference images with expected detections: does the installed model see what it should?

``reference/expected.json``::

    {"images": [{"file": "reference/000.png",
                 "detections": [{"class_id": 3, "box": [x1, y1, x2, y2], "score": 0.91}, ...]}]}

Boxes in source pixels. The comparison is a detection-level match (same class, IoU at least
``min_iou``, each box used once, best IoU first), summed over all images into recall and
precision: a TensorRT INT8 engine on the robot will not give bit-identical boxes to the ONNX
Runtime FP32 run that recorded the expectations, but a broken export, wrong class order or
wrong preprocessing drops both figures far below any sane threshold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolov8_trt_ros.core.types import Detections
from yolov8_trt_ros.deploy.manifest import BundleError, SmokeSpec


@dataclass
class Expected:
    file: str
    detections: Detections


@dataclass
class SmokeResult:
    ok: bool
    recall: float
    precision: float
    expected: int
    predicted: int
    matched: int

    def summary(self) -> str:
        return (
            f"recall {self.recall:.2f}, precision {self.precision:.2f} "
            f"({self.matched} of {self.expected} expected boxes matched, {self.predicted} predicted)"
        )


def to_json(items: Sequence[tuple[str, Detections]]) -> str:
    images = [
        {
            "file": name,
            "detections": [
                {"class_id": int(c), "box": [round(float(v), 2) for v in b], "score": round(float(s), 4)}
                for b, s, c in zip(d.boxes, d.scores, d.class_ids, strict=True)
            ],
        }
        for name, d in items
    ]
    return json.dumps({"images": images}, indent=1) + "\n"


def load_expected(path: Path) -> list[Expected]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read expected detections {path.name}: {exc}") from exc
    return parse_expected(raw, path.name)


def parse_expected(raw: bytes, source: str = "expected detections") -> list[Expected]:
    try:
        data: Any = json.loads(raw)
        out = []
        for item in data["images"]:
            dets = item["detections"]
            out.append(
                Expected(
                    str(item["file"]),
                    Detections(
                        np.array([d["box"] for d in dets], np.float32).reshape(-1, 4),
                        np.array([d.get("score", 1.0) for d in dets], np.float32),
                        np.array([d["class_id"] for d in dets], np.int32),
                    ),
                )
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{source} is malformed: {exc}") from exc
    if not out:
        raise BundleError(f"{source} lists no reference images")
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``[N, 4]`` × ``[M, 4]``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_count(expected: Detections, predicted: Detections, min_iou: float) -> int:
    """Greedy one-to-one matches of the same class with IoU >= ``min_iou``, best IoU first."""
    if not len(expected) or not len(predicted):
        return 0
    iou = _iou(expected.boxes, predicted.boxes)
    iou[expected.class_ids[:, None] != predicted.class_ids[None, :]] = 0.0
    matched = 0
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        matched += 1
        iou[i, :] = 0.0
        iou[:, j] = 0.0
    return matched


def compare(pairs: Sequence[tuple[Detections, Detections]], spec: SmokeSpec) -> SmokeResult:
    """Recall and precision over all (expected, predicted) pairs against the spec's minimums."""
    n_exp = sum(len(e) for e, _ in pairs)
    n_pred = sum(len(p) for _, p in pairs)
    matched = sum(match_count(e, p, spec.min_iou) for e, p in pairs)
    recall = matched / n_exp if n_exp else (1.0 if n_pred == 0 else 0.0)
    precision = matched / n_pred if n_pred else (1.0 if n_exp == 0 else 0.0)
    ok = recall >= spec.min_recall and precision >= spec.min_precision
    return SmokeResult(ok, recall, precision, n_exp, n_pred, matched)
