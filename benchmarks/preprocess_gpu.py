"""Preprocessing speed: the fused CUDA kernel (with and without the upload) and OpenCV on the CPU.

Run on a GPU machine:   python3 benchmarks/preprocess_gpu.py --out preprocess_gpu_results.md
CPU part only:          python3 benchmarks/preprocess_gpu.py --cpu-only

Inputs are bgr8 frames of 640x480, 1280x720 and 1920x1080 (random pixels, fixed seed) letterboxed
to 640x640, batch 1 and 8. Reported, as medians:

* ``kernel``: the fused kernel alone on frames already on the device (CUDA events around
  ``CudaPreprocessor.relaunch``);
* ``H2D + kernel``: one pinned ``cuMemcpyHtoDAsync`` of the packed frames plus the kernel,
  between CUDA events (what the GPU spends per batch);
* ``full call``: ``CudaPreprocessor.__call__`` end to end on the host clock, synchronised:
  validation, the host copy into the pinned staging buffer (by 1 or 4 threads), upload and
  kernel;
* ``floor``: the bytes each part must move at the bandwidths measured here (a pinned 256 MiB
  host-to-device copy; a 1 GiB device-to-device copy counting bytes read plus written): the
  kernel reads each source byte once and writes the output once, the upload moves the frames;
* ``OpenCV CPU``: ``CpuPreprocessor`` (the reference path) on this machine's CPU.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov8_trt_ros.core.config import PreprocessConfig
from yolov8_trt_ros.core.machine import describe_machine
from yolov8_trt_ros.core.preprocess import CpuPreprocessor

SIZES = [(640, 480), (1280, 720), (1920, 1080)]
BATCHES = [1, 8]


def _median_host(fn: Callable[[], object], warmup: int, reps: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _frames(w: int, h: int, batch: int) -> list[np.ndarray]:
    rng = np.random.default_rng(w * h + batch)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(batch)]


def cpu_rows(reps: int) -> list[tuple[str, int, float]]:
    rows = []
    pre = CpuPreprocessor(PreprocessConfig())
    for w, h in SIZES:
        for batch in BATCHES:
            frames = _frames(w, h, batch)

            def run(f: list[np.ndarray] = frames) -> None:
                pre(f, ["bgr8"] * len(f))

            ms = _median_host(run, warmup=3, reps=reps)
            rows.append((f"{w}x{h}", batch, ms))
    return rows


class _Events:
    """Device-side timing of work queued on one stream, with cuda.bindings events."""

    def __init__(self, stream: int) -> None:
        from cuda.bindings import driver as cu

        from yolov8_trt_ros.core.preprocess_cuda import _check

        self.cu, self.check, self.stream = cu, _check, stream
        self.start = _check(cu.cuEventCreate(0), "cuEventCreate")
        self.end = _check(cu.cuEventCreate(0), "cuEventCreate")

    def median(self, fn: Callable[[], object], warmup: int = 20, reps: int = 200) -> float:
        cu, check = self.cu, self.check
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            check(cu.cuEventRecord(self.start, self.stream), "cuEventRecord")
            fn()
            check(cu.cuEventRecord(self.end, self.stream), "cuEventRecord")
            check(cu.cuEventSynchronize(self.end), "cuEventSynchronize")
            times.append(check(cu.cuEventElapsedTime(self.start, self.end), "cuEventElapsedTime"))
        return statistics.median(times)


def bandwidths(ev: _Events) -> tuple[float, float]:
    """(pinned host→device GB/s, device copy GB/s counting read + write)."""
    cu, check = ev.cu, ev.check
    n_h2d, n_d2d = 256 << 20, 1 << 30
    host = check(cu.cuMemHostAlloc(n_h2d, 0), "cuMemHostAlloc")
    dev_a = int(check(cu.cuMemAlloc(n_d2d), "cuMemAlloc"))
    dev_b = int(check(cu.cuMemAlloc(n_d2d), "cuMemAlloc"))
    check(cu.cuMemsetD8Async(dev_a, 7, n_d2d, ev.stream), "cuMemsetD8Async")
    try:
        h2d_ms = ev.median(lambda: check(cu.cuMemcpyHtoDAsync(dev_b, host, n_h2d, ev.stream), "H2D"), 3, 20)
        d2d_ms = ev.median(lambda: check(cu.cuMemcpyDtoDAsync(dev_b, dev_a, n_d2d, ev.stream), "D2D"), 3, 20)
    finally:
        check(cu.cuMemFreeHost(host), "cuMemFreeHost")
        check(cu.cuMemFree(dev_a), "cuMemFree")
        check(cu.cuMemFree(dev_b), "cuMemFree")
    return n_h2d / h2d_ms / 1e6, 2 * n_d2d / d2d_ms / 1e6


def gpu_rows(fp16: bool) -> tuple[list[dict[str, float | str | int]], float, float, str]:
    from cuda.bindings import driver as cu

    from yolov8_trt_ros.core.preprocess_cuda import CudaPreprocessor, _check

    cfg = PreprocessConfig(fp16=fp16)
    pre = CudaPreprocessor(cfg, copy_threads=1)
    pre4 = CudaPreprocessor(cfg, copy_threads=4)
    name = _check(cu.cuDeviceGetName(100, pre._device), "cuDeviceGetName").split(b"\0")[0].decode()
    ev = _Events(pre.stream)
    h2d_bw, dev_bw = bandwidths(ev)
    out_bytes = 3 * cfg.input_width * cfg.input_height * (2 if fp16 else 4)
    rows: list[dict[str, float | str | int]] = []
    for w, h in SIZES:
        for batch in BATCHES:
            frames = _frames(w, h, batch)
            pre(frames, ["bgr8"] * batch)  # uploads the frames and sizes the buffers
            kernel = ev.median(pre.relaunch)
            in_bytes = w * h * 3 * batch

            def upload_and_kernel(n: int = pre.staged_bytes, src: int = pre._host_ptr) -> None:
                _check(cu.cuMemcpyHtoDAsync(pre._dev_in, src, n, pre.stream), "H2D")
                pre.relaunch()

            with_h2d = ev.median(upload_and_kernel)

            def full(f: list[np.ndarray] = frames, p: CudaPreprocessor = pre) -> None:
                p(f, ["bgr8"] * len(f))
                _check(cu.cuStreamSynchronize(p.stream), "cuStreamSynchronize")

            call = _median_host(full, warmup=5, reps=100)
            call4 = _median_host(lambda: full(p=pre4), warmup=5, reps=100)
            kernel_floor = (in_bytes + out_bytes * batch) / dev_bw / 1e6
            h2d_floor = in_bytes / h2d_bw / 1e6
            rows.append(
                {
                    "input": f"{w}x{h}",
                    "batch": batch,
                    "kernel": kernel,
                    "kernel_floor": kernel_floor,
                    "h2d_kernel": with_h2d,
                    "h2d_floor": h2d_floor + kernel_floor,
                    "call": call,
                    "call4": call4,
                }
            )
    pre.close()
    pre4.close()
    return rows, h2d_bw, dev_bw, name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-only", action="store_true", help="only the OpenCV CPU path")
    parser.add_argument("--cpu-reps", type=int, default=30)
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- host: {describe_machine()}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
        f"NumPy {np.__version__}",
        f"- command: `{' '.join(['python3', *sys.argv])}`",
        "",
    ]
    if not args.cpu_only:
        for fp16 in (False, True):
            rows, h2d_bw, dev_bw, name = gpu_rows(fp16)
            if not fp16:
                lines += [
                    f"- GPU: {name}; measured pinned H2D {h2d_bw:.1f} GB/s, device copy {dev_bw:.0f} GB/s",
                    "",
                ]
            lines += [
                f"GPU, output {'FP16' if fp16 else 'FP32'} 1x3x640x640 per image (ms, median):",
                "",
                "| input bgr8 | batch | kernel | kernel floor | H2D + kernel | H2D + kernel floor "
                "| full call, 1 copy thread | full call, 4 copy threads |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {r['input']} | {r['batch']} | {r['kernel']:.3f} | {r['kernel_floor']:.3f} | "
                f"{r['h2d_kernel']:.3f} | {r['h2d_floor']:.3f} | {r['call']:.3f} | {r['call4']:.3f} |"
                for r in rows
            ]
            lines.append("")
    lines += [
        "OpenCV CPU (`CpuPreprocessor`, FP32) on this host (ms, median):",
        "",
        "| input bgr8 | batch | CPU |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {inp} | {batch} | {ms:.2f} |" for inp, batch, ms in cpu_rows(args.cpu_reps)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
