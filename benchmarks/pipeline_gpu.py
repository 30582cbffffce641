#!/usr/bin/env python3
"""Engine-only vs full-pipeline throughput on the same frames, with ultralytics as the peer.

    python3 benchmarks/pipeline_gpu.py --json benchmarks/pipeline_gpu.json --markdown out.md   # GPU
    python3 benchmarks/pipeline_gpu.py --smoke      # ONNX Runtime on the CPU, a few frames: a dry run

Frames: the JPEGs of ``--frames-dir`` (default: synthetic tracking sequence SYNTH-01, 640x480),
decoded once to host bgr8 arrays before any timing; every mode reads the same frames, cycled.
For each backend precision and input size (``--sizes``; the CUDA backend takes its input size
from the weights' ``train_args.imgsz`` when no ONNX sits beside them, so 416 runs on a copy of
the ``.pt`` with that one field changed) and each batch size:

* **engine, sync**: ``backend.infer`` on an already preprocessed device tensor (8 different
  batches of real frames, rotated), then ``torch.cuda.synchronize``; one call timed at a time.
  The CUDA backend's engine includes its detection end (decode + NMS in the same CUDA graph,
  ``EngineConfig.end2end_nms``, on by default; ``--raw-head`` turns it off, so the engine is
  the network alone and NMS runs in postprocess, as before), like a TensorRT engine with NMS.
* **engine, queued**: ``--chunk`` ``infer`` calls back to back, one synchronisation; time per
  call = chunk time / chunk. The engine's throughput: no host/device round trip per call.
* **process**: ``Pipeline.process`` on host images (preprocess on the GPU, engine, postprocess,
  filters, ByteTrack), one call timed at a time: what the node does per message.
* **stream**: ``Pipeline.process_stream`` over the same batches (batch k + 1's preprocessing
  and inference enqueued before batch k is postprocessed and tracked), timed in chunks of
  ``--chunk`` batches between yields, like the queued engine. ``stream, no tracker`` is the
  same with the tracker off (batch 1 only), to show what the tracker costs.
* **sync breakdown**: ``process`` again with the Profiler's ``sync`` (``torch.cuda.synchronize``
  after each stage): per-stage times with the device work attributed to the stage that queued
  it. A diagnostic: it removes all overlap, so it is not a throughput figure.

Every figure is the median (and 90th percentile) of per-batch times over ``--iters`` timed
batches (``--iters / --chunk`` chunks for the queued modes) after ``--warmup``; FPS = batch /
median. Efficiency = stream FPS / queued-engine FPS (the stricter denominator; the ratio to the
synchronised engine is given too). Memory: ``memory_snapshot`` (RSS, torch allocated/reserved,
NVML) after the warm-up and after ``--memory-frames`` frames through ``process_stream`` at batch
1, with a ``DeviceSampler`` (GPU utilisation, power) during the run. Ultralytics ``predict`` and
``track`` (ByteTrack) run the same frames one by one through the same ``.pt`` (FP16, imgsz 640,
``stream=True``), each call timed to the moment its boxes are on the host.

Each measurement is wrapped: a failure is recorded in the JSON (``error``) and the rest runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolov8_trt_ros.core.backends.base import Backend  # noqa: E402
from yolov8_trt_ros.core.backends.factory import create_backend  # noqa: E402
from yolov8_trt_ros.core.config import EngineConfig, TrackerConfig  # noqa: E402
from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig  # noqa: E402
from yolov8_trt_ros.core.profiling import (  # noqa: E402
    STAGES,
    DeviceMonitor,
    DeviceSampler,
    Profiler,
    markdown_table,
    memory_snapshot,
    open_device_monitor,
)
from yolov8_trt_ros.core.sources import SourceError, read_frames  # noqa: E402

Batch = tuple[list[np.ndarray], list[str]]
DEFAULT_FRAMES = REPO / "data" / "synth" / "tracking" / "SYNTH-01" / "img1"


# ---- inputs ---------------------------------------------------------------------------------


def batch_cycle(frames: Sequence[np.ndarray], batch: int) -> list[Batch]:
    """The frames cut into whole batches, in order (a short tail is dropped)."""
    return [(list(frames[i : i + batch]), ["bgr8"] * batch) for i in range(0, len(frames) - batch + 1, batch)]


def take(batches: Sequence[Batch], n: int, start: int = 0) -> Iterator[Batch]:
    """``n`` batches from ``batches``, cycling."""
    for k in range(start, start + n):
        yield batches[k % len(batches)]


def weights_at(pt: Path, size: int, tmp: Path) -> Path:
    """``pt`` itself for 640, else a copy whose ``train_args.imgsz`` is ``size``.

    The CUDA backend reads its input size from an ONNX beside the weights, else from that
    field; the copy has no ONNX beside it. Only that field changes, so it is the same network
    with anchors laid out for ``size``.
    """
    if size == 640:
        return pt
    import torch

    ckpt = torch.load(pt, map_location="cpu", weights_only=False)  # our own test model
    ckpt["train_args"]["imgsz"] = size
    out = tmp / f"{pt.stem}_{size}.pt"
    torch.save(ckpt, out)
    return out


# ---- statistics -----------------------------------------------------------------------------
def summary(per_batch_s: Sequence[float], batch: int) -> dict[str, float]:
    """Median and p90 of per-batch seconds, in ms, with per-frame ms and FPS from the median."""
    ms = np.asarray(per_batch_s, np.float64) * 1e3
    med, p90 = (float(v) for v in np.percentile(ms, [50, 90]))
    return {
        "n": int(ms.size),
        "median_ms": med,
        "p90_ms": p90,
        "per_frame_ms": med / batch,
        "fps": batch * 1e3 / med,
    }


def chunked(stamps: Sequence[float], chunk: int) -> list[float]:
    """Per-batch seconds of consecutive chunks of ``chunk`` intervals between time stamps."""
    t = np.asarray(stamps)
    return [float(t[i + chunk] - t[i]) / chunk for i in range(0, len(t) - chunk, chunk)]


def stage_medians(prof: Profiler) -> dict[str, float]:
    return {name: st.p50_ms for name, st in prof.stats().items()}


# ---- measurements ---------------------------------------------------------------------------
def bench_engine(
    backend: Backend, inputs: Sequence[Any], sync: Callable[[], None], args: argparse.Namespace, batch: int
) -> dict[str, Any]:
    for i in range(args.warmup):
        backend.infer(inputs[i % len(inputs)])
        sync()
    one: list[float] = []
    for i in range(args.iters):
        t0 = time.perf_counter()
        backend.infer(inputs[i % len(inputs)])
        sync()
        one.append(time.perf_counter() - t0)
    queued: list[float] = []
    for _ in range(max(args.iters // args.chunk, 3)):
        t0 = time.perf_counter()
        for j in range(args.chunk):
            backend.infer(inputs[j % len(inputs)])
        sync()
        queued.append((time.perf_counter() - t0) / args.chunk)
    return {"sync": summary(one, batch), "queued": summary(queued, batch)}


def bench_process(
    pipe: Pipeline, batches: Sequence[Batch], args: argparse.Namespace, batch: int
) -> dict[str, Any]:
    for images, encodings in take(batches, args.warmup):
        pipe.process(images, encodings)
    pipe.profiler.reset()
    times: list[float] = []
    for images, encodings in take(batches, args.iters, args.warmup):
        t0 = time.perf_counter()
        pipe.process(images, encodings)
        times.append(time.perf_counter() - t0)
    return {**summary(times, batch), "host_stages_ms": stage_medians(pipe.profiler)}


def bench_stream(
    pipe: Pipeline, batches: Sequence[Batch], args: argparse.Namespace, batch: int
) -> dict[str, Any]:
    stamps: list[float] = []
    detections = 0
    for k, results in enumerate(pipe.process_stream(take(batches, args.warmup + args.iters))):
        stamps.append(time.perf_counter())
        detections += sum(len(r.detections) for r in results)
        if k == args.warmup - 1:
            pipe.profiler.reset()
    per_batch = chunked(stamps[args.warmup - 1 :], args.chunk)
    return {
        **summary(per_batch, batch),
        # Host time per stage (no sync): postprocess includes waiting for the inference.
        "host_stages_ms": stage_medians(pipe.profiler),
        "detections_per_frame": detections / (len(stamps) * batch),
    }


def bench_sync_breakdown(
    pipe: Pipeline, batches: Sequence[Batch], sync: Callable[[], None], args: argparse.Namespace
) -> dict[str, float]:
    pipe.profiler = Profiler(window=args.iters, sync=sync)
    for images, encodings in take(batches, args.warmup):
        pipe.process(images, encodings)
    pipe.profiler.reset()
    for images, encodings in take(batches, args.iters, args.warmup):
        pipe.process(images, encodings)
    return stage_medians(pipe.profiler)


def memory_run(
    pipe: Pipeline, frames: Sequence[np.ndarray], monitor: DeviceMonitor | None, args: argparse.Namespace
) -> dict[str, Any]:
    """``--memory-frames`` frames at batch 1 through ``process_stream``, memory before and after."""
    batches = batch_cycle(frames, 1)
    for _ in pipe.process_stream(take(batches, max(args.warmup, len(batches)))):
        pass
    out: dict[str, Any] = {"after_warmup": memory_snapshot(monitor)}
    sampler = DeviceSampler(monitor).start() if monitor is not None else None
    t0 = time.perf_counter()
    n = 0
    for results in pipe.process_stream(take(batches, args.memory_frames)):
        n += len(results)
    seconds = time.perf_counter() - t0
    if sampler is not None:
        s = sampler.stop()
        out["device"] = {k: getattr(s, k) for k in s.__dataclass_fields__}
    out["after_run"] = memory_snapshot(monitor)
    out.update(frames=n, seconds=seconds, fps=n / seconds)
    return out


def bench_ultralytics(
    pt: Path, frames: Sequence[np.ndarray], mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    """ultralytics ``predict`` or ``track`` (ByteTrack) one frame per call, FP16, imgsz 640."""
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(str(pt))
    device = 0 if args.backend == "cuda" else "cpu"
    kwargs: dict[str, Any] = {"half": True, "imgsz": 640, "verbose": False, "stream": True, "device": device}

    def call(frame: np.ndarray) -> int:
        results: Any
        if mode == "track":
            results = model.track(frame, persist=True, tracker="bytetrack.yaml", **kwargs)
        else:
            results = model.predict(frame, batch=1, **kwargs)
        n = 0
        for r in results:
            boxes: Any = r.boxes
            n += len(boxes.xyxy.cpu())  # boxes on the host, as ours are
        return n

    times: list[float] = []
    detections = 0
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        n = call(frames[i % len(frames)])
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            detections += n
    return {
        **summary(times, 1),
        "version": ultralytics.__version__,
        "detections_per_frame": detections / len(times),
    }


# ---- driver ---------------------------------------------------------------------------------
def environment(args: argparse.Namespace, n_frames: int, shape: tuple[int, ...]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe_machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "command": "python3 " + " ".join(shlex.quote(a) for a in sys.argv),
        "frames": {"dir": str(args.frames_dir), "count": n_frames, "shape": list(shape)},
    }
    with contextlib.suppress(Exception):
        import torch

        env["torch"] = torch.__version__
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(Exception):
        import cv2

        env["opencv"] = cv2.__version__
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:  # decoded once, before any timing, by the camera source's own reader
        frames = read_frames(str(args.frames_dir), args.max_frames)
    except SourceError as exc:
        raise SystemExit(f"{exc} (regenerate data/synth: see scripts/make_synthetic_data.py)") from exc
    out: dict[str, Any] = {"env": environment(args, len(frames), frames[0].shape), "configs": []}
    save(out, args)
    monitor = open_device_monitor() if args.backend != "onnxruntime" else None
    out["env"]["device_monitor"] = monitor.name if monitor is not None else None
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if args.backend == "cuda":
        import torch

        sync = torch.cuda.synchronize
        out["env"]["gpu"] = torch.cuda.get_device_name(0)
    tmp = Path(tempfile.mkdtemp(prefix="pipeline_gpu_"))
    plans = [(p, s, args.batches) for p in args.precisions for s in args.sizes]
    plans += [(p, s, [1]) for p in args.batch1_precisions for s in args.sizes[:1]]
    memory_done = False
    for precision, size, batch_sizes in plans:
        try:
            model = args.model if args.backend == "onnxruntime" else weights_at(args.model, size, tmp)
            engine = EngineConfig(
                backend=args.backend,
                model_path=str(model),
                precision=precision,
                max_batch_size=max(args.batches),
                end2end_nms=not args.raw_head,
            )
            cfg = PipelineConfig.default()
            cfg.engine = engine
            backend = create_backend(engine, cfg.postprocess)
        except Exception as exc:
            out["configs"].append({"precision": precision, "size": size, "error": _err(exc)})
            save(out, args)
            continue
        info = backend.info
        print(
            f"== {info.name} {info.precision} {info.input_width}x{info.input_height}: {info.detail}",
            flush=True,
        )
        if not memory_done:  # first backend: a process like the node's (one backend, batch 1)
            memory_done = True
            pipe = Pipeline(cfg, backend, Profiler(window=10_000))
            out["memory"] = _attempt(memory_run, pipe, frames, monitor, args)
            _close_stages(pipe)
            save(out, args)
        for batch in batch_sizes:
            row = measure_config(cfg, backend, frames, batch, sync, args)
            out["configs"].append(row)
            print(json.dumps(_brief(row)), flush=True)
            save(out, args)
        backend.close()
        if args.ultralytics and "ultralytics" not in out:  # after the first backend is freed
            pt = args.model.with_suffix(".pt")
            out["ultralytics"] = {
                m: _attempt(bench_ultralytics, pt, frames, m, args) for m in ("predict", "track")
            }
            print(json.dumps({"ultralytics": out["ultralytics"]}, default=str), flush=True)
            save(out, args)
    if monitor is not None:
        monitor.close()
    return out


def measure_config(
    cfg: PipelineConfig,
    backend: Backend,
    frames: Sequence[np.ndarray],
    batch: int,
    sync: Callable[[], None],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Every mode at one batch size on one loaded backend; one row of the results."""
    info = backend.info
    row: dict[str, Any] = {
        "backend": info.name,
        "precision": info.precision,
        "size": info.input_width,
        "input": f"{info.input_width}x{info.input_height}",
        "batch": batch,
    }
    batches = batch_cycle(frames, batch)
    pipe = Pipeline(cfg, backend, Profiler(window=max(args.iters, 1000)))
    inputs = _engine_inputs(pipe, batches[: args.inputs], sync)
    row["engine"] = _attempt(bench_engine, backend, inputs, sync, args, batch)
    row["process"] = _attempt(bench_process, pipe, batches, args, batch)
    row["stream"] = _attempt(bench_stream, pipe, batches, args, batch)
    if batch == 1:
        cfg_off = PipelineConfig(
            cfg.preprocess, cfg.engine, cfg.postprocess, cfg.filters, TrackerConfig(enabled=False)
        )
        pipe_off = Pipeline(cfg_off, backend, Profiler(window=max(args.iters, 1000)))
        row["stream_no_tracker"] = _attempt(bench_stream, pipe_off, batches, args, batch)
        _close_stages(pipe_off)
    row["sync_stages_ms"] = _attempt(bench_sync_breakdown, pipe, batches, sync, args)
    _close_stages(pipe)
    _ratios(row)
    return row


def _engine_inputs(pipe: Pipeline, batches: Sequence[Batch], sync: Callable[[], None]) -> list[Any]:
    """Preprocessed copies of ``batches`` on the backend's device (the engine-only inputs)."""
    inputs: list[Any] = []
    for images, encodings in batches:
        tensor, _ = pipe.preprocessor(images, encodings)
        sync()
        if isinstance(tensor, np.ndarray):
            inputs.append(tensor.copy())
        else:
            import torch

            inputs.append(torch.as_tensor(tensor, device=pipe.backend.info.device).clone())
            sync()
    return inputs


def _ratios(row: dict[str, Any]) -> None:
    eng, proc, stream = row.get("engine", {}), row.get("process", {}), row.get("stream", {})
    if "queued" in eng and "fps" in stream:
        row["efficiency_stream_vs_engine_queued"] = stream["fps"] / eng["queued"]["fps"]
        row["efficiency_stream_vs_engine_sync"] = stream["fps"] / eng["sync"]["fps"]
    if "sync" in eng and "fps" in proc:
        row["efficiency_process_vs_engine_sync"] = proc["fps"] / eng["sync"]["fps"]


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("precision", "input", "batch")
    brief = {k: row[k] for k in keep}
    for key in ("engine", "process", "stream", "stream_no_tracker"):
        part = row.get(key, {})
        if "error" in part:
            brief[key] = "ERROR"
        elif key == "engine":
            brief["engine_sync_fps"] = round(part["sync"]["fps"], 1)
            brief["engine_queued_fps"] = round(part["queued"]["fps"], 1)
        elif part:
            brief[f"{key}_fps"] = round(part["fps"], 1)
    if "efficiency_stream_vs_engine_queued" in row:
        brief["efficiency"] = round(row["efficiency_stream_vs_engine_queued"], 3)
    return brief


def _close_stages(pipe: Pipeline) -> None:
    """Free a pipeline's preprocessor but not the backend it shares with the next pipeline."""
    close = getattr(pipe.preprocessor, "close", None)
    if close is not None:
        close()


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"


def _attempt(fn: Callable[..., Any], *fn_args: Any) -> Any:
    """``fn(*fn_args)``, or ``{"error": ...}`` if it raises (the run goes on)."""
    try:
        return fn(*fn_args)
    except Exception as exc:
        print(f"FAILED: {_err(exc)}", file=sys.stderr, flush=True)
        return {"error": _err(exc)}


def save(out: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the JSON now (after every measurement: a crash later keeps what was measured)."""
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ---- Markdown -------------------------------------------------------------------------------
def fig(part: dict[str, Any], field: str) -> float:
    """``part[field]`` as a float, NaN (written "–") where it is missing."""
    return float(part[field]) if field in part else float("nan")


def markdown(out: dict[str, Any]) -> str:
    """The result tables (the narrative lives in ``benchmarks/pipeline_gpu.md``)."""
    env = out["env"]
    lines = [
        f"- date: {env['date_utc']}",
        f"- machine: {env['machine']}; torch {env.get('torch')}, OpenCV {env.get('opencv')}, "
        f"NumPy {env['numpy']}",
        f"- frames: {env['frames']['count']} x {env['frames']['shape']} from `{env['frames']['dir']}`",
        f"- command: `{env['command']}`",
        "",
    ]
    nan = float("nan")
    rows: list[list[object]] = []
    stage_rows: list[list[object]] = []
    host_rows: list[list[object]] = []
    for c in out["configs"]:
        if "error" in c and "batch" not in c:
            lines.append(f"- {c['precision']} {c['size']}: ERROR {c['error'].splitlines()[0]}")
            continue
        key = [c["precision"], c["input"], c["batch"]]
        e, p, s, s0 = (c.get(k, {}) for k in ("engine", "process", "stream", "stream_no_tracker"))

        rows.append(
            [
                *key,
                fig(e.get("sync", {}), "median_ms"),
                fig(e.get("queued", {}), "median_ms"),
                fig(p, "median_ms"),
                fig(p, "p90_ms"),
                fig(s, "median_ms"),
                fig(s, "p90_ms"),
                fig(e.get("queued", {}), "fps"),
                fig(p, "fps"),
                fig(s, "fps"),
                fig(s0, "fps"),
                c.get("efficiency_stream_vs_engine_queued", nan),
                c.get("efficiency_stream_vs_engine_sync", nan),
            ]
        )
        sync_st = c.get("sync_stages_ms", {})
        if "error" not in sync_st:
            vals = [sync_st.get(k, nan) for k in STAGES[1:5]]
            stage_rows.append([*key, *vals, float(np.nansum(vals))])
        host = s.get("host_stages_ms", {})
        if host:
            vals = [host.get(k, nan) for k in STAGES[1:5]]
            host_rows.append([*key, *vals, float(np.nansum(vals)), fig(s, "median_ms")])
    lines.append(
        markdown_table(
            [
                "precision",
                "input",
                "batch",
                "engine sync ms",
                "engine queued ms",
                "process ms",
                "process p90",
                "stream ms",
                "stream p90",
                "engine FPS",
                "process FPS",
                "stream FPS",
                "stream FPS, no tracker",
                "efficiency (stream / engine queued)",
                "stream / engine sync",
            ],
            rows,
        )
    )
    lines += [
        "",
        "Per-stage medians, ms per batch, Profiler `sync` on (device time attributed to its stage):",
        "",
    ]
    lines.append(
        markdown_table(
            ["precision", "input", "batch", "preprocess", "inference", "postprocess", "tracking", "sum"],
            stage_rows,
        )
    )
    lines += [
        "",
        "Host time per stage in the stream (ms per batch, no sync; postprocess includes the wait):",
        "",
    ]
    lines.append(
        markdown_table(
            [
                "precision",
                "input",
                "batch",
                "preprocess",
                "inference",
                "postprocess",
                "tracking",
                "sum",
                "stream ms",
            ],
            host_rows,
        )
    )
    ul = out.get("ultralytics", {})
    if ul:
        lines += ["", "ultralytics, one frame per call, FP16, imgsz 640:", ""]
        best = max(
            (c.get("stream", {}).get("fps", 0.0) for c in out["configs"] if c.get("batch") == 1), default=0.0
        )
        urows = []
        for mode, r in ul.items():
            if "error" in r:
                urows.append([mode, "ERROR", "", "", "", r["error"].splitlines()[0][:80]])
            else:
                urows.append([mode, r["median_ms"], r["p90_ms"], r["fps"], best / r["fps"], r["version"]])
        lines.append(
            markdown_table(
                ["mode", "median ms", "p90 ms", "FPS", "our best batch-1 stream / this", "version"], urows
            )
        )
    mem = out.get("memory", {})
    if mem and "error" not in mem:
        lines += [
            "",
            f"Memory, batch 1, {mem['frames']} frames through `process_stream` ({mem['fps']:.0f} FPS):",
            "",
        ]
        keys = list(dict.fromkeys([*mem["after_warmup"], *mem["after_run"]]))
        mrows = [
            [k, mem["after_warmup"].get(k, float("nan")), mem["after_run"].get(k, float("nan"))] for k in keys
        ]
        lines.append(markdown_table(["MiB", "after warm-up", f"after {mem['frames']} frames"], mrows))
        dev = mem.get("device")
        if dev:
            lines += [
                "",
                f"- device during the run: GPU utilisation mean {dev['gpu_util_mean']} %, "
                f"max {dev['gpu_util_max']} %; "
                f"power mean {dev['power_mean_w']} W, max {dev['power_max_w']} W; energy {dev['energy_j']} J "
                f"over {dev['seconds']:.1f} s ({dev['samples']} samples)",
            ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", type=Path, default=REPO / "models/test/yolov8n_synth.pt", help="the .pt (ONNX beside it)"
    )
    ap.add_argument("--frames-dir", type=Path, default=DEFAULT_FRAMES)
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--backend", default="cuda", choices=["cuda", "onnxruntime"])
    ap.add_argument("--precisions", nargs="+", default=["fp16"], help="at every batch size and input size")
    ap.add_argument(
        "--batch1-precisions", nargs="*", default=["fp32"], help="at batch 1, first input size only"
    )
    ap.add_argument("--sizes", nargs="+", type=int, default=[640, 416])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--chunk", type=int, default=10, help="batches per timed chunk (queued engine, stream)")
    ap.add_argument(
        "--inputs", type=int, default=8, help="distinct preprocessed batches for the engine-only run"
    )
    ap.add_argument("--memory-frames", type=int, default=10_000)
    ap.add_argument("--no-ultralytics", dest="ultralytics", action="store_false")
    ap.add_argument(
        "--raw-head",
        action="store_true",
        help="CUDA backend without its GPU NMS (end2end_nms off): the raw head, NMS in postprocess",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="ONNX Runtime on the CPU, tiny counts (a dry run)")
    args = ap.parse_args()
    if args.smoke:
        args.backend, args.precisions, args.batch1_precisions = "onnxruntime", ["fp32"], []
        args.sizes, args.batches, args.max_frames = [640], [1, 2], 16
        args.iters, args.warmup, args.chunk, args.memory_frames = 6, 2, 2, 12
        args.model = args.model.with_suffix(".onnx")
    out = run(args)
    text = markdown(out)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
