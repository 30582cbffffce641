#!/usr/bin/env python3
"""Time per frame of our ByteTracker, its NumPy predecessor and ultralytics' BYTETracker.

    python benchmarks/tracker_speed.py                       # prints a Markdown table
    python benchmarks/tracker_speed.py --markdown benchmarks/tracking.md
    python benchmarks/tracker_speed.py --reid                # ours with re-identification

Scene: a 1920x1080 frame with N objects (20-100 px sides) moving at 1-6 px/frame with a wobbling
velocity, bouncing off the borders, so objects cross and overlap (200 objects cover about a
third of the frame). Detections per frame:
each object with 4 % box-edge jitter, missed 5 % of the time, 10 % scored in the low band
(second association), plus N/20 false positives. All trackers get exactly the same
detections; the time is ``update`` alone (ours returns ``list[Track]``, ultralytics its
array), median and 90th percentile over the measured frames after a warm-up. "numpy" is the
vectorised NumPy tracker that the compiled one replaced (``test/_bytetrack_numpy.py``, the
tests' reference), timed in the same run for a before/after comparison on the same machine.

``--reid``: every detection also carries a 64-d unit embedding (its object's identity vector plus
noise, a random one for false positives), and ours with re-identification on
(``TrackerConfig(reid_enabled=True)``) is timed against ours motion-only on the same detections,
in the same run: the added cost of appearance (fusion, EMA, gallery).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
os.environ.setdefault("YOLO_OFFLINE", "1")

from _bytetrack_numpy import NumpyByteTracker

from scripts.evaluate_tracker import UltralyticsTracker, ultralytics_results
from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.machine import describe_machine
from yolov8_trt_ros.core.tracking.bytetrack import ByteTracker
from yolov8_trt_ros.core.types import Detections

WIDTH, HEIGHT = 1920.0, 1080.0


EMBEDDING_DIM = 64


def scene(n_objects: int, n_frames: int, seed: int, embeddings: bool = False) -> list[Detections]:
    """Seeded detections of ``n_objects`` moving boxes for ``n_frames`` frames.

    ``embeddings``: each detection gets its object's identity vector plus noise (false positives
    a random vector), unit length; drawn from a generator of their own, so the boxes are the same.
    """
    rng = np.random.default_rng([seed, n_objects])
    rng_emb = np.random.default_rng([seed, n_objects, 1])
    identity = rng_emb.normal(size=(n_objects, EMBEDDING_DIM))
    size = rng.uniform(20.0, 100.0, (n_objects, 2))
    pos = rng.uniform(0.0, 1.0, (n_objects, 2)) * (np.array([WIDTH, HEIGHT]) - size)
    angle = rng.uniform(0.0, 2.0 * np.pi, n_objects)
    base = rng.uniform(1.0, 6.0, (n_objects, 1)) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    vel = base.copy()
    out = []
    for _ in range(n_frames):
        vel = 0.9 * vel + 0.1 * base + rng.normal(0.0, 0.2, vel.shape)  # mean-reverting wobble
        pos += vel
        for axis, limit in ((0, WIDTH), (1, HEIGHT)):
            hit = (pos[:, axis] < 0) | (pos[:, axis] + size[:, axis] > limit)
            vel[hit, axis] *= -1.0
            base[hit, axis] *= -1.0
            pos[:, axis] = np.clip(pos[:, axis], 0.0, limit - size[:, axis])
        keep = rng.random(n_objects) >= 0.05
        xyxy = np.concatenate([pos, pos + size], axis=1)[keep]
        xyxy += rng.normal(0.0, 0.04, xyxy.shape) * np.concatenate([size, size], axis=1)[keep]
        n = xyxy.shape[0]
        scores = np.where(rng.random(n) < 0.1, rng.uniform(0.15, 0.49, n), rng.uniform(0.55, 0.95, n))
        n_fp = max(1, n_objects // 20)
        fp_size = rng.uniform(20.0, 100.0, (n_fp, 2))
        fp_pos = rng.uniform(0.0, 1.0, (n_fp, 2)) * (np.array([WIDTH, HEIGHT]) - fp_size)
        boxes = np.concatenate([xyxy, np.concatenate([fp_pos, fp_pos + fp_size], axis=1)])
        scores = np.concatenate([scores, rng.uniform(0.15, 0.6, n_fp)])
        order = np.argsort(-scores)
        emb = None
        if embeddings:
            e = np.concatenate([identity[keep], rng_emb.normal(size=(n_fp, EMBEDDING_DIM))])
            e += rng_emb.normal(0.0, 0.05, e.shape)
            emb = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)[order]
        out.append(Detections(boxes[order], scores[order], np.zeros(len(order), np.int32), emb))
    return out


def time_tracker(name: str, dets: list[Detections], warmup: int) -> list[float]:
    """Seconds per ``update`` for every frame after the first ``warmup``.

    Converting our detections to ultralytics' input happens before timing.
    """
    cfg = TrackerConfig()
    update: Callable[[Any], object]
    inputs: list[Any]
    if name == "ours":
        update, inputs = ByteTracker(cfg).update, list(dets)
    elif name == "ours-reid":
        update, inputs = ByteTracker(TrackerConfig(reid_enabled=True)).update, list(dets)
    elif name == "numpy":
        update, inputs = NumpyByteTracker(cfg).update, list(dets)
    else:
        update, inputs = UltralyticsTracker(cfg).tracker.update, [ultralytics_results(d) for d in dets]
    times = []
    for i, item in enumerate(inputs):
        t0 = time.perf_counter()
        update(item)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--frames", type=int, default=1000, help="measured frames per size")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", type=Path, help="append a dated results section to this file")
    p.add_argument("--reid", action="store_true", help="time ours with re-identification vs motion-only")
    args = p.parse_args(argv)
    if args.reid:
        return reid_main(args, argv)

    names = ("ours", "numpy", "ultralytics")
    rows = ["| objects | tracks out (median) | ours median ms | ours p90 ms | numpy (before) median ms | "
            "numpy p90 ms | ultralytics median ms | ultralytics p90 ms | speed-up vs numpy | "
            "speed-up vs ultralytics |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for n in args.objects:
        dets = scene(n, args.frames + args.warmup, args.seed)
        tracker = ByteTracker(TrackerConfig())
        n_out = statistics.median(len(tracker.update(d)) for d in dets)
        res = {}
        for name in names:
            t = np.array(time_tracker(name, dets, args.warmup)) * 1e3
            res[name] = (float(np.median(t)), float(np.percentile(t, 90)))
        ours, old, ref = res["ours"], res["numpy"], res["ultralytics"]
        rows.append(
            f"| {n} | {n_out:.0f} | {ours[0]:.3f} | {ours[1]:.3f} | {old[0]:.3f} | {old[1]:.3f} | "
            f"{ref[0]:.3f} | {ref[1]:.3f} | {old[0] / ours[0]:.1f}x | {ref[0] / ours[0]:.1f}x |"
        )
    _report(args, argv, "\n".join(rows) + "\n", "")
    return 0


def reid_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Ours with re-identification against ours motion-only, same detections with embeddings."""
    rows = ["| objects | tracks out (median) | motion-only median ms | motion-only p90 ms | "
            "reid median ms | reid p90 ms | added median ms |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for n in args.objects:
        dets = scene(n, args.frames + args.warmup, args.seed, embeddings=True)
        tracker = ByteTracker(TrackerConfig(reid_enabled=True))
        n_out = statistics.median(len(tracker.update(d)) for d in dets)
        res = {}
        for name in ("ours", "ours-reid"):
            t = np.array(time_tracker(name, dets, args.warmup)) * 1e3
            res[name] = (float(np.median(t)), float(np.percentile(t, 90)))
        base, reid = res["ours"], res["ours-reid"]
        rows.append(
            f"| {n} | {n_out:.0f} | {base[0]:.3f} | {base[1]:.3f} | {reid[0]:.3f} | {reid[1]:.3f} | "
            f"{reid[0] - base[0]:.3f} |"
        )
    _report(args, argv, "\n".join(rows) + "\n", " (re-identification)")
    return 0


def _report(args: argparse.Namespace, argv: list[str] | None, table: str, title: str) -> None:
    print(table)
    if args.markdown:
        command = "python benchmarks/tracker_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with args.markdown.open("a") as fh:
            fh.write(
                f"\n## Speed{title}: {datetime.date.today().isoformat()}\n\n- Machine: {describe_machine()}\n"
                f"- Command: `{command}`\n"
                f"- {args.frames} measured frames after {args.warmup} warm-up frames, one process.\n\n"
                + table
            )


if __name__ == "__main__":
    sys.exit(main())
