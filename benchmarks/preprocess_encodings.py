"""Fused kernel time per camera encoding: does converting inside the kernel cost anything?

Run on a GPU machine:   python3 benchmarks/preprocess_encodings.py --out preprocess_encodings.md

For each encoding, frames of 1920x1080 (batch 1 and 8) and 640x480 (batch 1) of random bytes
(fixed seed) are letterboxed to 640x640, FP32 and FP16 output. Reported: the median over 200
launches of the kernel alone on frames already on the device (CUDA events around
``CudaPreprocessor.relaunch``, after 20 warm-up launches). The upload is left out: it depends
only on the bytes per frame (bgr8 3, 4:2:2 and 16-bit 2, nv12 1.5, Bayer and mono8 1 per pixel).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.image_input import buffer_rows, image_from_buffer
from yolov8_trt_ros.core.machine import describe_machine
from yolov8_trt_ros.core.types import BYTES_PER_PIXEL

ENCODINGS = [
    ("bgr8", False),
    ("mono8", False),
    ("yuv422", False),
    ("yuv422_yuy2", False),
    ("nv12", False),
    ("nv21", False),
    ("bayer_rggb8", False),
    ("bayer_grbg8", False),
    ("mono16", False),
    ("mono16", True),
]
SIZES = [(1920, 1080, 1), (1920, 1080, 8), (640, 480, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args()
    import torch

    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor

    stream = torch.cuda.Stream()
    pres = {fp16: CudaPreprocessor(PreprocessConfig(fp16=fp16), stream=stream) for fp16 in (False, True)}
    rng = np.random.default_rng(0)
    rows = []
    for enc, big in ENCODINGS:
        for w, h, batch in SIZES:
            step = w * BYTES_PER_PIXEL[enc]
            data = rng.integers(0, 256, step * buffer_rows(h, enc), dtype=np.uint8).tobytes()
            frame = image_from_buffer(data, w, h, step, enc, is_bigendian=big)
            times = {}
            for fp16, pre in pres.items():
                pre([frame] * batch, [enc] * batch)
                for _ in range(20):
                    pre.relaunch()
                samples = []
                for _ in range(200):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record(stream)
                    pre.relaunch()
                    end.record(stream)
                    end.synchronize()
                    samples.append(start.elapsed_time(end))
                times[fp16] = statistics.median(samples)
            name = f"{enc} (big-endian)" if big else enc
            rows.append(f"| {name} | {w}x{h} | {batch} | {times[False]:.4f} | {times[True]:.4f} |")
    for pre in pres.values():
        pre.close()
    lines = [
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- host: {describe_machine()}",
        f"- GPU: {torch.cuda.get_device_name()}",
        "",
        "| encoding | input | batch | kernel ms, FP32 out | kernel ms, FP16 out |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
