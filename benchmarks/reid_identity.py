#!/usr/bin/env python3
"""Identity keeping with and without re-identification on a labelled synthetic scene.

    python benchmarks/reid_identity.py                       # prints a Markdown table
    python benchmarks/reid_identity.py --markdown benchmarks/tracking.md

Scene: ``benchmarks/tracker_speed.py``'s bouncing boxes (1920x1080, 5 % misses, 10 % low scores)
plus long absences: each object starts a 40-90 frame absence with probability 0.4 % per frame
(longer than ByteTrack's 30-frame buffer: it left the frame or was hidden). Each detection
carries its object's unit identity vector plus N(0, noise) per component, re-normalised.
Identity vectors are ``common + spread * own`` (random, 64-d, unit): a small ``spread`` makes
different objects look alike, as a detector's features may for objects of one class; the table
gives, per regime, the median cosine distance of one object's consecutive detections and of each
identity to its nearest other one.

Counts (the detection-to-track ids, against the labels): *switches*, how often an object's
detection gets another id than its previous one; *merged ids*, ids given to more than one
object (a wrong merge); *ids*, ids used (the objects are ``--objects``). Ablations: appearance in
the first association only (``gallery_thresh = 0``), the gallery only (``appearance_thresh = 0``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.machine import describe_machine
from yolov8_trt_ros.core.tracking import ByteTracker
from yolov8_trt_ros.core.types import Detections

WIDTH, HEIGHT, DIM = 1920.0, 1080.0, 64
Frame = tuple[Detections, np.ndarray]  # detections and the object of each


def scene(n_objects: int, n_frames: int, seed: int, spread: float, noise: float) -> list[Frame]:
    """Seeded labelled detections; the boxes do not depend on ``spread`` and ``noise``."""
    rng = np.random.default_rng([seed, n_objects])
    rng_emb = np.random.default_rng([seed, n_objects, 1])
    common = rng_emb.normal(size=(1, DIM))
    own = rng_emb.normal(size=(n_objects, DIM))
    ident = common / np.linalg.norm(common) + spread * own / np.linalg.norm(own, axis=1, keepdims=True)
    ident /= np.linalg.norm(ident, axis=1, keepdims=True)
    size = rng.uniform(20.0, 100.0, (n_objects, 2))
    pos = rng.uniform(0.0, 1.0, (n_objects, 2)) * (np.array([WIDTH, HEIGHT]) - size)
    angle = rng.uniform(0.0, 2.0 * np.pi, n_objects)
    base = rng.uniform(1.0, 6.0, (n_objects, 1)) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    vel = base.copy()
    absent = np.zeros(n_objects, dtype=int)
    out = []
    for _ in range(n_frames):
        vel = 0.9 * vel + 0.1 * base + rng.normal(0.0, 0.2, vel.shape)
        pos += vel
        for axis, limit in ((0, WIDTH), (1, HEIGHT)):
            hit = (pos[:, axis] < 0) | (pos[:, axis] + size[:, axis] > limit)
            vel[hit, axis] *= -1.0
            base[hit, axis] *= -1.0
            pos[:, axis] = np.clip(pos[:, axis], 0.0, limit - size[:, axis])
        leave = (absent == 0) & (rng.random(n_objects) < 0.004)
        absent[leave] = rng.integers(40, 90, int(leave.sum()))
        keep = (absent == 0) & (rng.random(n_objects) >= 0.05)
        absent = np.maximum(absent - 1, 0)
        xyxy = np.concatenate([pos, pos + size], axis=1)[keep]
        xyxy += rng.normal(0.0, 0.04, xyxy.shape) * np.concatenate([size, size], axis=1)[keep]
        n = xyxy.shape[0]
        scores = np.where(rng.random(n) < 0.1, rng.uniform(0.15, 0.49, n), rng.uniform(0.55, 0.95, n))
        emb = ident[keep] + rng_emb.normal(0.0, noise, (n, DIM))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        dets = Detections(xyxy, scores, np.zeros(n, np.int32), emb.astype(np.float32))
        out.append((dets, keep.nonzero()[0]))
    return out


def count(cfg: TrackerConfig, frames: list[Frame]) -> tuple[int, int, int]:
    """(switches, merged ids, ids used) of the tracker on ``frames``."""
    tracker = ByteTracker(cfg)
    last: dict[int, int] = {}
    owners: dict[int, set[int]] = {}
    switches = 0
    for dets, objects in frames:
        tracker.update(dets)
        for obj, tid in zip(objects.tolist(), tracker.detection_track_ids.tolist(), strict=True):
            if tid < 0:
                continue
            switches += obj in last and last[obj] != tid
            last[obj] = tid
            owners.setdefault(tid, set()).add(obj)
    return switches, sum(len(s) > 1 for s in owners.values()), len(owners)


def distances(frames: list[Frame]) -> tuple[float, float]:
    """Median cosine distance of consecutive detections of one object, and of a detection to
    the nearest detection of another object in the same frame."""
    same, other = [], []
    prev: dict[int, np.ndarray] = {}
    for dets, objects in frames:
        emb = dets.embeddings
        assert emb is not None
        for obj, e in zip(objects.tolist(), emb, strict=True):
            if obj in prev:
                same.append(1.0 - float(prev[obj] @ e))
            prev[obj] = e
        if len(emb) > 1:
            d = 1.0 - emb @ emb.T
            np.fill_diagonal(d, np.inf)
            other.extend(d.min(axis=1).tolist())
    return float(np.median(same)), float(np.median(other))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=50)
    p.add_argument("--frames", type=int, default=900)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", type=Path, help="append a dated results section to this file")
    args = p.parse_args(argv)

    reid = TrackerConfig(reid_enabled=True)
    configs = {
        "motion only": TrackerConfig(),
        "fusion only": dataclasses.replace(reid, gallery_thresh=0.0),
        "gallery only": dataclasses.replace(reid, appearance_thresh=0.0),
        "reid (defaults)": reid,
        "reid, gallery_thresh 0.1": dataclasses.replace(reid, gallery_thresh=0.1),
    }
    rows = [
        "| spread | noise | same-object distance | nearest other | tracker | switches | merged ids | ids |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spread, noise in ((10.0, 0.02), (10.0, 0.05), (0.2, 0.05), (0.1, 0.05)):
        frames = scene(args.objects, args.frames, args.seed, spread, noise)
        same, other = distances(frames)
        for name, cfg in configs.items():
            sw, merged, ids = count(cfg, frames)
            rows.append(
                f"| {spread} | {noise} | {same:.3f} | {other:.3f} | {name} | {sw} | {merged} | {ids} |"
            )
    table = "\n".join(rows) + "\n"
    print(table)
    if args.markdown:
        command = "python benchmarks/reid_identity.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with args.markdown.open("a") as fh:
            fh.write(
                f"\n## Identity keeping with re-identification (synthetic embeddings): "
                f"{datetime.date.today().isoformat()}\n\n- Machine: {describe_machine()}\n"
                f"- Command: `{command}`\n"
                f"- {args.objects} objects, {args.frames} frames, seed {args.seed}.\n\n" + table
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
