#!/usr/bin/env python3
"""CPU greedy NMS: ``core.postprocess.nms_numpy`` (blocked) against the per-kept-box loop it replaced.

    python3 benchmarks/nms_cpu.py [--repeat 20] [--markdown out.md]

Same candidates for both (sorted best first, as the decode hands them over), three scenes:
``sparse`` (objects spread out: most candidates survive), ``crowded`` (many anchors per
object: most are suppressed), ``random`` (uniform boxes). Checks that both keep the same
boxes, then reports the median time of ``--repeat`` calls.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from yolov8_trt_ros.core.machine import describe_machine
from yolov8_trt_ros.core.postprocess import iou_float32, nms_numpy


def nms_per_kept_box(
    boxes: np.ndarray, class_ids: np.ndarray | None, iou: float, max_keep: int
) -> np.ndarray:
    """The previous ``nms_numpy``: one vectorised IoU against all remaining per kept box."""
    thr = iou_float32(iou)
    b = boxes.astype(np.float64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    remaining = np.arange(len(boxes))
    keep: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        while remaining.size and len(keep) < max_keep:
            i = remaining[0]
            keep.append(int(i))
            rest = remaining[1:]
            w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0.0)
            h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0.0)
            inter = w * h
            suppress = inter / (areas[i] + areas[rest] - inter) > thr
            if class_ids is not None:
                suppress &= class_ids[rest] == class_ids[i]
            remaining = rest[~suppress]
    return np.asarray(keep, dtype=np.intp)


def scene(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "crowded":  # ~20 jittered anchors per object
        centres = rng.uniform(0, 640, (n // 20 + 1, 2))
        sizes = rng.uniform(20, 120, (n // 20 + 1, 2))
        obj = rng.integers(0, len(centres), n)
        c = centres[obj] + rng.normal(0, 3, (n, 2))
        s = sizes[obj] * rng.uniform(0.9, 1.1, (n, 2))
    elif kind == "sparse":  # small boxes spread out
        c, s = rng.uniform(0, 640, (n, 2)), rng.uniform(4, 16, (n, 2))
    else:
        c, s = rng.uniform(0, 640, (n, 2)), rng.uniform(10, 200, (n, 2))
    boxes = np.concatenate([c - s / 2, c + s / 2], axis=1).astype(np.float32)
    return boxes, rng.integers(0, 10, n).astype(np.int32)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for kind in ("sparse", "crowded", "random"):
        for n in (100, 1000, 8400):
            boxes, classes = scene(kind, n, rng)
            for cls in (classes, None):
                ref = nms_per_kept_box(boxes, cls, 0.45, 300)
                got = nms_numpy(boxes, cls, 0.45, 300)
                assert np.array_equal(ref, got), (kind, n)
                old = median_ms(functools.partial(nms_per_kept_box, boxes, cls, 0.45, 300), args.repeat)
                new = median_ms(functools.partial(nms_numpy, boxes, cls, 0.45, 300), args.repeat)
                mode = "per class" if cls is not None else "agnostic"
                rows.append(
                    f"| {kind} | {n} | {mode} | {len(ref)} | {old:.2f} | {new:.2f} | {old / new:.1f}x |"
                )
                print(rows[-1], flush=True)
    text = "\n".join(
        [
            f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
            f"- machine: {describe_machine()}",
            f"- command: `python3 benchmarks/nms_cpu.py --repeat {args.repeat}`",
            "",
            "| scene | candidates | mode | kept | per-kept-box loop ms | blocked ms | speed-up |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
