#!/usr/bin/env python3
"""Inference latency and throughput of the backends (``Backend.infer`` alone).

    python benchmarks/backend_fps.py --model models/test/yolov8n_synth.onnx \\
        --run onnxruntime:fp32:1 onnxruntime:int8:1 --markdown benchmarks/backends.md
    python benchmarks/backend_fps.py --run cuda:fp16:1 cuda:fp16:8 cuda:fp32:1   # on a GPU

Input: real letterboxed val images (``--images``), already on the backend's device (a torch
CUDA tensor for GPU backends, as the CUDA preprocessor hands it over), so the time is the
engine's: for GPU backends it ends when the output is usable on the host stream
(``torch.cuda.synchronize``). Median and 90th percentile over ``--iters`` calls after
``--warmup`` calls (CUDA graphs are captured during the warm-up).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolov8_trt_ros.core.backends.factory import create_backend  # noqa: E402
from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig, PreprocessConfig  # noqa: E402
from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402


def load_batch(images: Path, batch: int, width: int, height: int, fp16: bool) -> np.ndarray:
    import cv2

    from yolov8_trt_ros.core.preprocess import CpuPreprocessor

    paths = sorted(images.glob("*.jpg"))[:batch]
    if len(paths) < batch:
        raise SystemExit(f"need {batch} images in {images}")
    frames = []
    for path in paths:
        frame = cv2.imread(str(path))
        if frame is None:
            raise SystemExit(f"cannot read {path}")
        frames.append(frame)
    tensor, _ = CpuPreprocessor(PreprocessConfig(input_width=width, input_height=height, fp16=fp16))(
        frames, ["bgr8"] * batch
    )
    return tensor.copy()


def measure(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    name, precision, batch_s = spec.split(":")
    batch = int(batch_s)
    engine = EngineConfig(
        backend=name,
        model_path=str(args.model),
        precision=precision,
        batch_size=batch,
        max_batch_size=max(batch, 1),
        num_threads=args.threads,
        engine_cache_dir=str(args.engine_cache_dir),
    )
    backend = create_backend(engine, PostprocessConfig())
    info = backend.info
    host = load_batch(args.images, batch, info.input_width, info.input_height, info.input_fp16)
    sync = lambda: None  # noqa: E731
    x: Any = host
    if info.device != "cpu":
        import torch

        x = torch.from_numpy(host).to(info.device)
        sync = torch.cuda.synchronize
    for _ in range(args.warmup):
        backend.infer(x)
    sync()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        backend.infer(x)
        sync()
        times.append(time.perf_counter() - start)
    backend.close()
    med = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    return {
        "backend": f"{info.name} ({info.detail.split(',')[0]})",
        "precision": info.precision,
        "batch": batch,
        "median_ms": med * 1e3,
        "p90_ms": p90 * 1e3,
        "fps": batch / med,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models/test/yolov8n_synth.onnx")
    ap.add_argument("--images", type=Path, default=REPO / "data/synth/detection/images/val")
    ap.add_argument("--run", nargs="+", default=["onnxruntime:fp32:1"], help="backend:precision:batch")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all)")
    ap.add_argument("--engine-cache-dir", type=Path, default=REPO / "models/engines")
    ap.add_argument("--markdown", type=Path, help="append the results to this Markdown file")
    args = ap.parse_args()
    rows = [measure(spec, args) for spec in args.run]
    table = [
        "| backend | precision | batch | median ms | p90 ms | images/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        table.append(
            f"| {r['backend']} | {r['precision']} | {r['batch']} | {r['median_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['fps']:.0f} |"
        )
    cmd = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    text = (
        f"\n## {datetime.date.today().isoformat()}: {describe_machine()}\n\n"
        f"Model `{args.model.name}`, {args.iters} timed calls after {args.warmup} warm-up.\n\n"
        f"    {cmd}\n\n" + "\n".join(table) + "\n"
    )
    print(text)
    if args.markdown:
        if not args.markdown.is_file():
            args.markdown.write_text(
                "# Backend inference speed\n\n`Backend.infer` alone on real letterboxed val images, input"
                " already on the\nbackend's device; written by `benchmarks/backend_fps.py`.\n"
            )
        with args.markdown.open("a") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
