#!/usr/bin/env python3
"""Engine-only vs full-pipeline throughput on the CPU (ONNX Runtime, FP32 vs INT8), and memory.

    python benchmarks/pipeline_cpu.py --models models/test/yolov8n_synth.onnx \\
        --precisions fp32 int8 --batches 1 4 --iters 200 --memory-frames 10000 \\
        --json benchmarks/pipeline_cpu.json --markdown benchmarks/pipeline_cpu.md
    python benchmarks/pipeline_cpu.py --iters 10 --warmup 2 --memory-frames 50   # quick check

For every model (an FP32 ONNX; ``precision int8`` runs its ``x.int8.onnx`` sibling written by
``scripts/quantize_int8.py``), precision and batch size:

* **engine**: ``backend.infer`` on letterboxed tensors of the same frames, prepared before the
  clock starts (the network alone, as ``backend_fps.py`` measures it);
* **pipeline**: ``Pipeline.process`` on host BGR frames (``--frames``, decoded once before the
  clock starts): preprocess → engine → decode + NMS → filters → ByteTrack, the frames in
  sequence order (looped; the loop point is a scene cut for the tracker).

The two alternate in blocks of ``--block`` calls, so that a change in machine load during the
run affects both alike; the efficiency ratio (pipeline FPS / engine FPS) is taken from medians
measured in the same run. The per-stage breakdown is the pipeline's own :class:`Profiler`.

Memory (``--memory-frames``, 0 skips it; run first, in a fresh process state): resident set
before the pipeline exists, after warm-up, every ``--memory-every`` frames and at the end, of
one FP32 batch-1 pipeline on the first model.

The JSON (``--json``) has the shape documented in ``benchmarks/pipeline_cpu.md``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")

from benchmarks.pipeline_gpu import summary  # noqa: E402
from yolov8_trt_ros.core.backends.factory import create_backend  # noqa: E402
from yolov8_trt_ros.core.backends.model_info import int8_sibling  # noqa: E402
from yolov8_trt_ros.core.config import EngineConfig  # noqa: E402
from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig  # noqa: E402
from yolov8_trt_ros.core.profiling import (  # noqa: E402
    Profiler,
    markdown_table,
    memory_snapshot,
    resident_memory_mb,
)
from yolov8_trt_ros.core.sources import SourceError, read_frames  # noqa: E402

SCHEMA = "yolov8_trt_ros.pipeline_benchmark/1"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def model_for(fp32_model: Path, precision: str) -> Path:
    if precision == "fp32":
        return fp32_model
    sibling = int8_sibling(fp32_model)
    if not sibling.is_file():
        raise SystemExit(
            f"no INT8 model {sibling}: run scripts/quantize_int8.py --model {fp32_model} --calib-dir ..."
        )
    return sibling


def make_pipeline(model: Path, precision: str, batch: int, threads: int, window: int) -> Pipeline:
    """An ONNX Runtime pipeline with the default stage configs (tracker on), as the node runs it."""
    base = PipelineConfig.default()
    engine = EngineConfig(
        backend="onnxruntime",
        model_path=str(model),
        precision=precision,
        batch_size=batch,
        max_batch_size=max(batch, base.engine.max_batch_size),
        num_threads=threads,
    )
    cfg = PipelineConfig(base.preprocess, engine, base.postprocess, base.filters, base.tracker)
    backend = create_backend(engine, cfg.postprocess)
    if backend.info.precision != precision:  # the backend says so in the log but runs anyway
        backend.close()
        raise SystemExit(f"{model.name}: asked for {precision}, the backend loaded {backend.info.precision}")
    return Pipeline(cfg, backend, Profiler(window=window))


class FrameFeed:
    """Consecutive batches from the decoded sequence, looping at its end."""

    def __init__(self, frames: Sequence[np.ndarray], batch: int) -> None:
        self.frames, self.batch, self.cursor = frames, batch, 0
        self.encodings = ["bgr8"] * batch

    def next(self) -> list[np.ndarray]:
        n = len(self.frames)
        out = [self.frames[(self.cursor + i) % n] for i in range(self.batch)]
        self.cursor = (self.cursor + self.batch) % n
        return out


def summarise(times_s: Sequence[float], batch: int) -> dict[str, Any]:
    """Per-call ms statistics: ``pipeline_gpu.py``'s ``summary`` (same JSON keys) plus the mean."""
    return {**summary(times_s, batch), "mean_ms": float(np.mean(times_s)) * 1e3}


def timed(fn: Callable[[], object], n: int, out: list[float]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)


def ort_op_profile(model: Path, tensor: np.ndarray, runs: int, threads: int) -> dict[str, dict[str, float]]:
    """Time per ONNX op type (mean ms per run, node count), from ONNX Runtime's own profiler.

    A separate session with the backend's options plus profiling (which costs a little per
    node): it shows which kernels ORT actually runs after its graph fusions, e.g. whether Q/DQ
    pairs became ``QLinearConv`` or stayed float ``Conv`` with a ``DequantizeLinear`` per run.
    """
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: tensor}
        session.run(None, feed)  # first run allocates; profiled but dropped below
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(kernels) // (runs + 1)
    out: dict[str, dict[str, float]] = {}
    for e in kernels[per_run:]:  # skip the first run
        entry = out.setdefault(e["args"]["op_name"], {"ms": 0.0, "nodes": 0})
        entry["ms"] += e["dur"] / 1e3 / runs
        entry["nodes"] += 1
    for entry in out.values():
        entry["nodes"] = entry["nodes"] // runs
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["ms"]))


def measure(
    fp32_model: Path, precision: str, batch: int, frames: Sequence[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    model = model_for(fp32_model, precision)
    pipe = make_pipeline(model, precision, batch, args.threads, window=args.iters + args.warmup)
    info = pipe.backend.info
    feed = FrameFeed(frames, batch)
    # Engine input: the same frames letterboxed by the pipeline's own preprocessor, copied out
    # of its reused buffer; a few batches in turn so the engine never sees one tensor only.
    tensors = [pipe.preprocessor(feed.next(), feed.encodings)[0].copy() for _ in range(args.engine_batches)]
    feed.cursor = 0
    k = 0

    def engine_call() -> None:
        nonlocal k
        pipe.backend.infer(tensors[k % len(tensors)])
        k += 1

    def pipeline_call() -> None:
        pipe.process(feed.next(), feed.encodings)

    for _ in range(args.warmup):
        engine_call()
        pipeline_call()
    pipe.profiler.reset()
    engine_s: list[float] = []
    pipeline_s: list[float] = []
    remaining = args.iters
    while remaining > 0:
        n = min(args.block, remaining)
        timed(engine_call, n, engine_s)
        timed(pipeline_call, n, pipeline_s)
        remaining -= n
    engine = summarise(engine_s, batch)
    process = summarise(pipeline_s, batch)
    stats = pipe.profiler.stats()
    process["host_stages_ms"] = {name: st.p50_ms for name, st in stats.items()}
    process["stages"] = {
        name: {"p50_ms": st.p50_ms, "p99_ms": st.p99_ms, "mean_ms": st.mean_ms, "n": st.count}
        for name, st in stats.items()
    }
    # Time spent in Pipeline.process outside its profiled stages (locking, result objects).
    process["outside_stages_mean_ms"] = process["mean_ms"] - sum(st.mean_ms for st in stats.values())
    pipe.close()
    row: dict[str, Any] = {
        "backend": info.name,
        "precision": info.precision,
        "size": info.input_width,
        "input": f"{info.input_width}x{info.input_height}",
        "batch": batch,
        "model": model.name,
        "detail": info.detail,
        # ONNX Runtime's run() returns when the output is ready: "sync" is the only engine mode.
        "engine": {"sync": engine},
        "process": process,
        "efficiency_process_vs_engine_sync": process["fps"] / engine["fps"],
    }
    if args.ort_profile_runs and batch == 1:
        row["ort_ops"] = ort_op_profile(model, tensors[0], args.ort_profile_runs, args.threads)
    log(
        f"{model.name} {precision} {row['input']} b{batch}: engine {engine['median_ms']:.2f} ms "
        f"({engine['fps']:.1f} FPS), process {process['median_ms']:.2f} ms ({process['fps']:.1f} FPS), "
        f"efficiency {row['efficiency_process_vs_engine_sync']:.3f}"
    )
    return row


def measure_memory(
    fp32_model: Path, frames: Sequence[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    """RSS of one FP32 batch-1 pipeline: before it exists, after warm-up, then over the run."""
    gc.collect()
    before = memory_snapshot()
    pipe = make_pipeline(fp32_model, "fp32", 1, args.threads, window=1000)
    feed = FrameFeed(frames, 1)
    for _ in range(args.warmup):
        pipe.process(feed.next(), feed.encodings)
    gc.collect()
    after_warmup = memory_snapshot()
    trace: list[list[float]] = [[0, after_warmup["resident MiB"]]]
    start = time.perf_counter()
    for i in range(1, args.memory_frames + 1):
        pipe.process(feed.next(), feed.encodings)
        if i % args.memory_every == 0 or i == args.memory_frames:
            trace.append([i, resident_memory_mb()])
            if i % (10 * args.memory_every) == 0:
                log(f"memory: {i} frames, RSS {trace[-1][1]:.1f} MiB")
    seconds = time.perf_counter() - start
    gc.collect()
    after = memory_snapshot()
    pipe.close()
    # Growth per 1000 frames: least-squares slope over the second half of the checkpoints, so
    # allocator warm-up in the first thousands of frames does not count as a leak.
    half = np.array([p for p in trace if p[0] >= args.memory_frames / 2])
    slope = float(np.polyfit(half[:, 0], half[:, 1], 1)[0]) * 1000 if len(half) >= 3 else math.nan
    return {
        "model": fp32_model.name,
        "precision": "fp32",
        "batch": 1,
        "before_pipeline": before,
        "after_warmup": after_warmup,
        "after_run": after,
        "frames": args.memory_frames,
        "seconds": seconds,
        "fps": args.memory_frames / seconds,
        "rss_growth_mb": after["resident MiB"] - after_warmup["resident MiB"],
        "rss_slope_mb_per_1000_frames_second_half": slope,
        "rss_trace": trace,
    }


def environment(
    args: argparse.Namespace, frames: Sequence[np.ndarray], load_start: Sequence[float]
) -> dict[str, Any]:
    """Where and how it ran; the keys of ``pipeline_gpu.py``'s ``env`` plus CPU-run settings."""
    import cv2
    import onnxruntime

    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe_machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "frames": {"dir": _display(args.frames), "count": len(frames), "shape": list(frames[0].shape)},
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "settings": {
            "iters": args.iters,
            "warmup": args.warmup,
            "block": args.block,
            "intra_op_threads": args.threads or os.cpu_count(),
            "ort_profile_runs": args.ort_profile_runs,
            "memory_every": args.memory_every,
        },
    }


def _display(path: Path) -> str:
    """``path`` relative to the repository where it is inside it (reports stay machine-neutral)."""
    full = path.resolve()
    return str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(path)


def to_markdown(report: dict[str, Any]) -> str:
    """The results section: settings, throughput table, stage breakdown, ORT op types, memory."""
    env, rows_in = report["env"], report["configs"]
    s = env["settings"]
    frames = env["frames"]
    lines = [
        f"## {env['date_utc']}: {env['machine']}",
        "",
        f"- command: `{env['command']}`",
        f"- onnxruntime {env['onnxruntime']} (CPU provider, {s['intra_op_threads']} intra-op threads), "
        f"OpenCV {env['opencv']}, NumPy {env['numpy']}",
        f"- frames: {frames['count']} of `{frames['dir']}` ({frames['shape'][1]}x{frames['shape'][0]} BGR, "
        "decoded before timing)",
        f"- {s['iters']} timed calls per mode after {s['warmup']} warm-up, engine and pipeline alternating "
        f"in blocks of {s['block']}",
        f"- load average (1 min) at start / end: {env['load_average']['start'][0]:.2f} / "
        f"{env['load_average']['end'][0]:.2f}",
        "",
        "Throughput (FPS = batch / median call time; efficiency = pipeline FPS / engine FPS):",
        "",
    ]
    table: list[list[object]] = []
    for r in rows_in:
        e, p = r["engine"]["sync"], r["process"]
        eff = r["efficiency_process_vs_engine_sync"]
        table.append([r["model"], r["precision"], r["input"], r["batch"], e["median_ms"], e["p90_ms"]])
        table[-1] += [e["fps"], p["median_ms"], p["p90_ms"], p["fps"], eff]
    head = ["model", "precision", "input", "batch", "engine ms", "engine p90", "engine FPS"]
    head += ["pipeline ms", "pipeline p90", "pipeline FPS", "efficiency"]
    lines += [markdown_table(head, table), ""]
    stage_names = list(dict.fromkeys(n for r in rows_in for n in r["process"]["stages"]))
    lines += [
        "Pipeline stages per call, p50 / p99 ms (Profiler); last column: mean time outside the stages:",
        "",
    ]
    table = []
    for r in rows_in:
        st = r["process"]["stages"]
        cells = [f"{st[n]['p50_ms']:.2f} / {st[n]['p99_ms']:.2f}" if n in st else "–" for n in stage_names]
        table.append([r["precision"], r["input"], r["batch"], *cells, r["process"]["outside_stages_mean_ms"]])
    lines += [markdown_table(["precision", "input", "batch", *stage_names, "outside"], table), ""]
    profiled = [r for r in rows_in if "ort_ops" in r]
    if profiled:
        largest: dict[str, float] = {}
        for r in profiled:
            for op, e in r["ort_ops"].items():
                largest[op] = max(largest.get(op, 0.0), e["ms"])
        ops = sorted(largest, key=lambda op: -largest[op])[:12]
        table = []
        for op in ops:
            row: list[object] = [op]
            for r in profiled:
                e = r["ort_ops"].get(op)
                row.append(f"{e['ms']:.2f} ({e['nodes']})" if e else "–")
            table.append(row)
        table.append(["total", *(sum(e["ms"] for e in r["ort_ops"].values()) for r in profiled)])
        lines += [
            "ONNX Runtime kernel time per op type at batch 1, ms per inference (nodes run), from its "
            f"profiler over {s['ort_profile_runs']} runs; the twelve largest:",
            "",
            markdown_table(["op type", *(f"{r['precision']} {r['input']}" for r in profiled)], table),
            "",
        ]
    mem = report.get("memory")
    if mem:
        lines += [
            f"Memory (MiB), one FP32 batch-1 pipeline over {mem['frames']} frames "
            f"({mem['fps']:.1f} FPS sustained):",
            "",
            markdown_table(
                ["", "before the pipeline", "after warm-up", f"after {mem['frames']} frames"],
                [
                    [key, mem["before_pipeline"][key], mem["after_warmup"][key], mem["after_run"][key]]
                    for key in mem["after_run"]
                ],
            ),
            "",
            f"Resident growth from warm-up to the end: {mem['rss_growth_mb']:.1f} MiB; slope over the "
            f"second half of the run: {mem['rss_slope_mb_per_1000_frames_second_half']:.3f} MiB per 1000 "
            f'frames. "Before the pipeline" includes the {frames["count"]} decoded frames.',
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models",
        type=Path,
        nargs="+",
        default=[REPO / "models/test/yolov8n_synth.onnx"],
        help="FP32 ONNX files (one per input size); int8 uses each one's .int8.onnx sibling",
    )
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--frames", type=Path, default=REPO / "data/synth/tracking/SYNTH-01/img1")
    ap.add_argument("--max-frames", type=int, default=300, help="frames decoded from --frames")
    ap.add_argument("--iters", type=int, default=200, help="timed calls per mode and configuration")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls per mode first")
    ap.add_argument("--block", type=int, default=25, help="engine and pipeline alternate in blocks of this")
    ap.add_argument("--engine-batches", type=int, default=4, help="distinct input tensors for the engine")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    ap.add_argument("--memory-frames", type=int, default=10000, help="frames of the memory run (0: skip)")
    ap.add_argument("--memory-every", type=int, default=500, help="RSS checkpoint period in frames")
    ap.add_argument(
        "--ort-profile-runs", type=int, default=20, help="ORT op-type profile runs at batch 1 (0: none)"
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--markdown", type=Path, help="append the results section to this Markdown file")
    args = ap.parse_args(argv)
    if min(args.iters, args.block, args.engine_batches, args.memory_every) < 1 or args.warmup < 0:
        ap.error("--iters, --block, --engine-batches, --memory-every must be >= 1, --warmup >= 0")
    for model in args.models:
        if not model.is_file():
            ap.error(f"no such model: {model}")
        if "int8" in args.precisions:
            model_for(model, "int8")  # fail before hours of timing, not after

    load_start = os.getloadavg()
    try:  # decoded once, before any timing, by the camera source's own reader
        frames = read_frames(str(args.frames), args.max_frames)
    except SourceError as exc:
        raise SystemExit(f"{exc} (regenerate data/synth: see scripts/make_synthetic_data.py)") from exc
    log(f"{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} decoded")
    memory = measure_memory(args.models[0], frames, args) if args.memory_frames > 0 else None
    configs = [
        measure(model, precision, batch, frames, args)
        for model in args.models
        for precision in args.precisions
        for batch in args.batches
    ]
    report: dict[str, Any] = {
        "env": environment(args, frames, load_start),
        "configs": configs,
        "memory": memory,
    }
    text = to_markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        with args.markdown.open("a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
