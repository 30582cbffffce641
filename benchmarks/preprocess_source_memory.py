#!/usr/bin/env python3
"""Does the frame's memory matter to the GPU preprocessing call? Warm arrays vs fresh message buffers.

    python3 benchmarks/preprocess_source_memory.py            # needs a CUDA GPU

In the pipeline benchmark the same few frames are preprocessed again and again (their pages
warm in the caches); in the node every frame arrives in a new ``bytes`` object that rclpy has
just filled. This times ``CudaPreprocessor`` (staging copy + upload + letterbox kernel, then a
stream sync) on 1920x1080 and 640x480 bgr8 frames given three ways:

* **warm**: one of 8 preallocated arrays, cycled;
* **fresh**: a new ``bytes`` copy of the frame made just before the call (what a message is);
* **fresh, other thread**: the same copy made on another thread (as the executor's take is)
  while the call runs on this one, one frame ahead.

Medians of ``--iters`` calls after ``--warmup``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yolov8_trt_ros.core.config import PreprocessConfig  # noqa: E402
from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor  # noqa: E402


def timed_call(pre: CudaPreprocessor, image: np.ndarray) -> float:
    import torch

    t = time.perf_counter()
    pre([image], ["bgr8"])
    torch.cuda.synchronize()
    return time.perf_counter() - t


def run(pre: CudaPreprocessor, frames: list[np.ndarray], mode: str, iters: int, warmup: int) -> float:
    shape = frames[0].shape
    times: list[float] = []
    ahead: list[bytes] = []
    for i in range(warmup + iters):
        src = frames[i % len(frames)]
        if mode == "warm":
            image = src
        elif mode == "fresh":
            image = np.frombuffer(bytes(src.data), np.uint8).reshape(shape)
        else:  # the next frame's copy runs on another thread during this call, as in the node
            if not ahead:
                ahead.append(bytes(src.data))
            image = np.frombuffer(ahead.pop(), np.uint8).reshape(shape)
            nxt = frames[(i + 1) % len(frames)]
            worker = threading.Thread(target=lambda n=nxt: ahead.append(bytes(n.data)))
            worker.start()
        dt = timed_call(pre, image)
        if mode == "fresh, other thread":
            worker.join()
        if i >= warmup:
            times.append(dt)
    return statistics.median(times) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {describe_machine()}")
    print("| size | warm ms | fresh ms | fresh, other thread ms |\n| --- | --- | --- | --- |")
    for w, h in ((1920, 1080), (640, 480)):
        frames = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(8)]
        pre = CudaPreprocessor(PreprocessConfig())
        row = [run(pre, frames, m, args.iters, args.warmup) for m in ("warm", "fresh", "fresh, other thread")]
        pre.close()
        print(f"| {w}x{h} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
