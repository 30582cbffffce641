#!/usr/bin/env python3
"""Run the detector over MOT-layout sequences and write MOT ``det.txt`` files for the tracker.

The detection half of "our detector + our tracker": the pipeline (any backend, tracker off)
on every ``img1/`` frame, written as ``DIR/<SEQ>/det/det.txt`` rows
``frame,-1,x,y,w,h,score,class+1`` that ``scripts/evaluate_tracker.py --detections DIR`` reads,
so both trackers see exactly these detections. Where the model has an ``embeddings`` output
(``core/embeddings.py``), each detection's appearance vector is saved beside it as
``DIR/<SEQ>/det/embeddings.npy``, float32 ``[N, D]``, row ``i`` belonging to row ``i`` of
``det.txt`` (for re-identification); a model without it writes no ``.npy`` and says so.

    python scripts/detect_sequences.py --sequences data/synth/tracking --out runs/dets
    python scripts/evaluate_tracker.py --sequences data/synth/tracking --detections runs/dets \\
        --markdown benchmarks/tracking.md

``--conf`` defaults to 0.1, ByteTrack's ``low_thresh``: the second association needs the
low-score boxes. ``--offset 1`` for 1-based ground truth (MOTChallenge); the project's
synthetic sequences are 0-based.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from scripts.evaluate_tracker import find_sequences
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig, TrackerConfig
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig
from yolov8_trt_ros.core.types import Detections


def mot_rows(frame: int, dets: Detections, offset: float) -> np.ndarray:
    """``[N, 8]``: frame, -1, x, y, w, h, score, class + 1 (MOT det.txt with a class column)."""
    b = dets.boxes.astype(np.float64)
    return np.column_stack(
        [
            np.full(len(b), frame),
            np.full(len(b), -1),
            b[:, 0] + offset,
            b[:, 1] + offset,
            b[:, 2] - b[:, 0],
            b[:, 3] - b[:, 1],
            dets.scores,
            dets.class_ids + 1,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=Path, required=True, help="a sequence dir or a dir of them")
    ap.add_argument(
        "--out", type=Path, required=True, help="directory for <SEQ>/det/det.txt (+ embeddings.npy)"
    )
    ap.add_argument("--model", default="models/test/yolov8n_synth.onnx")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--conf", type=float, default=0.1)
    ap.add_argument("--iou", type=float, default=PostprocessConfig().iou_threshold)
    ap.add_argument("--offset", type=float, default=0.0, help="added to x, y (1 for MOTChallenge)")
    args = ap.parse_args(argv)

    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend=args.backend, model_path=args.model, precision=args.precision)
    cfg.postprocess = cfg.postprocess.replace(conf_threshold=args.conf, iou_threshold=args.iou)
    cfg.tracker = TrackerConfig(enabled=False)
    pipeline = Pipeline.create(cfg, embeddings=True)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for seq_dir in find_sequences(args.sequences):
            frames = sorted((seq_dir / "img1").glob("*.jpg")) + sorted((seq_dir / "img1").glob("*.png"))
            if not frames:
                raise SystemExit(f"{seq_dir}/img1 holds no .jpg/.png frames")
            rows = []
            vectors: list[np.ndarray] | None = []
            t0 = time.perf_counter()
            for path in frames:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    raise SystemExit(f"cannot read {path}")
                (result,) = pipeline.process([image], ["bgr8"])
                rows.append(mot_rows(int(path.stem), result.detections, args.offset))
                if vectors is not None:
                    if result.detections.embeddings is None:
                        vectors = None  # the model has no embeddings output
                    else:
                        vectors.append(result.detections.embeddings)
            det_dir = args.out / seq_dir.name / "det"
            det_dir.mkdir(parents=True, exist_ok=True)
            out = det_dir / "det.txt"
            table = np.concatenate(rows) if rows else np.zeros((0, 8))
            fmt = ["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%.4f", "%d"]
            np.savetxt(out, table, fmt=fmt, delimiter=",")
            emb_path = det_dir / "embeddings.npy"
            emb_path.unlink(missing_ok=True)  # never leave a stale file beside new rows
            if vectors is not None:
                emb = np.concatenate(vectors).astype(np.float32, copy=False)
                assert len(emb) == len(table), (len(emb), len(table))
                np.save(emb_path, emb)
                note = f", embeddings [{len(emb)}, {emb.shape[1]}] -> {emb_path.name}"
            else:
                note = ", no embeddings (the model has no 'embeddings' output)"
            dt = time.perf_counter() - t0
            print(
                f"{seq_dir.name}: {len(frames)} frames, {len(table)} detections -> {out}{note} ({dt:.1f} s)"
            )
    finally:
        pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
