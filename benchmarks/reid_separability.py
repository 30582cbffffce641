#!/usr/bin/env python3
"""Can these embeddings tell objects apart? Same-identity vs other-identity cosine distances.

    python3 benchmarks/reid_separability.py --sequences data/reid/tracking --detections runs/reid_dets \\
        --markdown benchmarks/tracking.md

Reads MOT sequences (``SEQ/gt/gt.txt``) and the detector's output for them
(``DIR/SEQ/det/det.txt`` with ``DIR/SEQ/det/embeddings.npy``, as ``scripts/detect_sequences.py``
writes them). Each detection with score >= ``--score`` is given the identity of the ground-truth
box it overlaps with IoU >= ``--iou`` (objects at least 60 % visible). Then, per sequence:

* **same identity, next frame**: the distance between an object's embeddings in consecutive frames;
* **same identity, after a gap**: between its last embedding before and its first after an
  absence of more than ``--gap`` frames (what the lost-track gallery must re-find);
* **other identity, same class, same frame**: between two different objects of one class.

Re-identification can only work where the second distribution lies below the third: the table
gives their percentiles and the share of other-identity pairs closer than the 90th percentile of
the same-identity ones (0 is perfect separation, about 0.9 means no information). Run it before
turning ``reid.enabled`` on for a model and a scene.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402

KINDS = ("same identity, next frame", "same identity, after a gap", "other identity, same class, same frame")


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of ``[N, 4]`` and ``[M, 4]`` boxes given as x, y, w, h."""
    a0, a1 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b0, b1 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.prod(np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None), axis=-1)
    union = np.prod(a[:, None, 2:], -1) + np.prod(b[None, :, 2:], -1) - inter
    return inter / np.maximum(union, 1e-9)


def identity_embeddings(
    gt: np.ndarray, det: np.ndarray, emb: np.ndarray, score: float, iou: float
) -> dict[tuple[int, int, int], np.ndarray]:
    """``(frame, gt id, class) -> embedding`` of the detection best overlapping each visible object."""
    keep = det[:, 6] >= score
    det, emb = det[keep], emb[keep]
    out: dict[tuple[int, int, int], np.ndarray] = {}
    for frame in np.unique(det[:, 0]).astype(int):
        g = gt[(gt[:, 0] == frame) & (gt[:, 8] >= 0.6)]
        rows = np.flatnonzero(det[:, 0] == frame)
        if len(g) == 0 or len(rows) == 0:
            continue
        overlap = iou_xywh(g[:, 2:6], det[rows, 2:6])
        for gi, j in enumerate(overlap.argmax(axis=1)):
            if overlap[gi, j] >= iou:
                out[(frame, int(g[gi, 1]), int(g[gi, 7]))] = emb[rows[j]]
    return out


def distances(ident: dict[tuple[int, int, int], np.ndarray], gap: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    by_id: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    by_frame: dict[tuple[int, int], list[np.ndarray]] = {}
    for (frame, gid, cls), e in sorted(ident.items(), key=lambda kv: kv[0]):
        by_id.setdefault((gid, cls), []).append((frame, e))
        by_frame.setdefault((frame, cls), []).append(e)
    for seen in by_id.values():
        for (f0, a), (f1, b) in itertools.pairwise(seen):
            if f1 - f0 == 1:
                out[KINDS[0]].append(float(1 - a @ b))
            elif f1 - f0 > gap:
                out[KINDS[1]].append(float(1 - a @ b))
    for vs in by_frame.values():
        stack = np.stack(vs)
        d = 1 - stack @ stack.T
        out[KINDS[2]] += d[np.triu_indices(len(vs), 1)].tolist()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=Path, required=True)
    ap.add_argument("--detections", type=Path, required=True)
    ap.add_argument("--score", type=float, default=0.5)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--gap", type=int, default=30, help="frames of absence that count as a gap")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    pooled: dict[str, list[float]] = {k: [] for k in KINDS}
    sequences = sorted(p for p in args.sequences.iterdir() if (p / "gt" / "gt.txt").is_file())
    for seq in sequences:
        det_dir = args.detections / seq.name / "det"
        if not (det_dir / "embeddings.npy").is_file():
            print(f"{seq.name}: no embeddings.npy, skipped")
            continue
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        det = np.loadtxt(det_dir / "det.txt", delimiter=",", ndmin=2)
        emb = np.load(det_dir / "embeddings.npy")
        for k, v in distances(identity_embeddings(gt, det, emb, args.score, args.iou), args.gap).items():
            pooled[k] += v
    same90 = float(np.percentile(pooled[KINDS[1]], 90)) if pooled[KINDS[1]] else float("nan")
    lines = [
        f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}: are the embeddings separable?\n",
        f"- machine: {describe_machine()}",
        f"- command: `python3 {' '.join(sys.argv)}`",
        f"- {len(sequences)} sequences; cosine distance (0 same direction, 2 opposite)",
        "",
        "| pairs | count | p10 | p50 | p90 | p99 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k, v in pooled.items():
        p = np.percentile(v, [10, 50, 90, 99]) if v else [float("nan")] * 4
        lines.append(f"| {k} | {len(v)} | " + " | ".join(f"{x:.3f}" for x in p) + " |")
    other = np.asarray(pooled[KINDS[2]])
    share = float((other < same90).mean()) if other.size else float("nan")
    lines.append(
        f"\nOther-identity pairs closer than the 90th percentile of same-identity pairs after a gap "
        f"({same90:.3f}): **{share:.2f}** (0: separable; about 0.9: no identity in the embeddings)."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with args.markdown.open("a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
