#!/usr/bin/env python3
"""Generate the synthetic detection set (YOLO + COCO val json) and MOT17-style sequences.

Writes ``OUT/detection`` (``data.yaml`` inside) and ``OUT/tracking/SYNTH-NN``. The same seed and
generator version give byte-identical label files on any machine and any ``--workers``.

Example (the test model's data; the val split alone is ``--train 0 --calib 0 --sequences 0``)::

    python scripts/make_synthetic_data.py --out data/synth --seed 0 \\
        --train 6000 --val 500 --calib 500 --sequences 4 --frames 300 --workers 2

Occlusion / re-entry sequences for the ReID evaluation (``benchmarks/tracking.md``)::

    python scripts/make_synthetic_data.py --out data/reid --seed 0 --train 0 --val 0 --calib 0 \\
        --sequences 6 --frames 600 --kinds occlusion reentry crossing crowd --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "data" / "synth")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--calib", type=int, default=500)
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--objects", type=int, default=8, help="objects per tracking sequence")
    ap.add_argument(
        "--kinds",
        nargs="+",
        default=["mixed"],
        help="tracking sequence kinds, cycled over the sequences: mixed occlusion reentry crossing crowd",
    )
    ap.add_argument(
        "--tracking-version",
        default=None,
        help="tracking generator version (default: the newest; 1.0.0 = class-coloured looks, mixed only)",
    )
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--check-manifest",
        type=Path,
        default=None,
        help="MANIFEST.json of a model: exit 1 unless the val/calib labels written are byte-identical",
    )
    args = ap.parse_args()

    from yolov8_trt_ros.datasets import (
        GENERATOR_VERSION,
        TRACKING_GENERATOR_VERSION,
        generate_detection_dataset,
        generate_tracking_sequences,
        label_digest,
    )

    tracking_version = args.tracking_version or TRACKING_GENERATOR_VERSION
    print(
        f"generator {GENERATOR_VERSION} (tracking {tracking_version}), seed {args.seed}, "
        f"{args.workers} workers",
        flush=True,
    )
    if args.train + args.val + args.calib > 0:
        t0 = time.perf_counter()
        root = generate_detection_dataset(
            args.out / "detection",
            args.seed,
            args.train,
            args.val,
            args.calib,
            width=args.width,
            height=args.height,
            workers=args.workers,
        )
        n = args.train + args.val + args.calib
        dt = time.perf_counter() - t0
        print(f"detection: {n} images in {dt:.1f} s ({n / dt:.0f}/s) -> {root / 'data.yaml'}", flush=True)
    if args.sequences > 0:
        t0 = time.perf_counter()
        seqs = generate_tracking_sequences(
            args.out / "tracking",
            args.seed,
            args.sequences,
            args.frames,
            width=args.width,
            height=args.height,
            n_objects=args.objects,
            workers=args.workers,
            kinds=args.kinds,
            version=tracking_version,
        )
        dt = time.perf_counter() - t0
        print(
            f"tracking: {len(seqs)} x {args.frames} frames in {dt:.1f} s -> {args.out / 'tracking'}",
            flush=True,
        )
    if args.check_manifest is not None:
        gen = json.loads(args.check_manifest.read_text())["generator"]
        ok = True
        for split in ("val", "calib"):
            want, got = gen[f"{split}_label_sha256"], label_digest(args.out / "detection", split)
            same = want == got and gen["seed"] == args.seed and gen["sizes"][split] == getattr(args, split)
            ok &= same
            print(f"{split}: {'byte-identical to' if same else 'DIFFERENT from'} {args.check_manifest}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
