#!/usr/bin/env python3
"""What re-identification costs per frame: motion-only ByteTrack vs embeddings + ReID tracker.

    python3 benchmarks/reid_cost.py --markdown benchmarks/pipeline_gpu.md        # CUDA backend
    python3 benchmarks/reid_cost.py --backend onnxruntime --iters 30 --warmup 5   # CPU dry run

Same frames as ``pipeline_gpu.py`` (default: the 20-object synthetic sequence), batch 1, the
test model. Two pipelines share nothing but the frames:

* **motion**: the backend without the embedding output (CUDA backend: ``embeddings=False``;
  ONNX Runtime: the same model, output ignored) and ``reid_enabled`` off: the tracker as before
  the issue;
* **reid**: the embedding output computed and gathered with the detections, and the tracker
  with appearance fusion and the lost-track gallery.

Each mode runs ``Pipeline.process`` (one frame at a time, what the node does per message) and
``process_stream``, measured by ``pipeline_gpu.py``'s own ``bench_process`` / ``bench_stream``;
the modes alternate in ``--rounds`` rounds so drift (clocks, other load) falls on both alike.
Reported: the median over rounds of each round's per-frame median, the difference
(reid - motion), and the same for the tracker's host stage median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pipeline_gpu import DEFAULT_FRAMES, batch_cycle, bench_process, bench_stream  # noqa: E402

from yolov8_trt_ros.core.config import EngineConfig, TrackerConfig  # noqa: E402
from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig  # noqa: E402
from yolov8_trt_ros.core.profiling import Profiler  # noqa: E402
from yolov8_trt_ros.core.sources import read_frames  # noqa: E402


def make_pipeline(args: argparse.Namespace, reid: bool) -> Pipeline:
    cfg = PipelineConfig.default()
    model = args.model if args.backend == "onnxruntime" else args.model.with_suffix(".pt")
    cfg.engine = EngineConfig(backend=args.backend, model_path=str(model), precision=args.precision)
    cfg.tracker = TrackerConfig(reid_enabled=reid)
    if args.backend == "cuda":
        from yolov8_trt_ros.core.backends.cuda_backend import CudaBackend

        backend: Any = CudaBackend(cfg.engine, cfg.postprocess, embeddings=reid)
    else:
        from yolov8_trt_ros.core.backends.factory import create_backend

        backend = create_backend(cfg.engine, cfg.postprocess, embeddings=reid)
    return Pipeline(cfg, backend, Profiler(window=100_000))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="cuda", choices=["cuda", "onnxruntime"])
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "test" / "yolov8n_synth.onnx")
    ap.add_argument("--frames-dir", type=Path, default=DEFAULT_FRAMES)
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--chunk", type=int, default=10, help="frames per timed chunk of process_stream")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    frames = read_frames(str(args.frames_dir), args.max_frames)
    batches = batch_cycle(frames, 1)
    pipes = {"motion": make_pipeline(args, False), "reid": make_pipeline(args, True)}
    # Per round and mode: pipeline_gpu's own measurements (per-frame medians, host stage medians).
    rounds: dict[str, list[float]] = {f"{m} {k}": [] for m in pipes for k in ("process", "stream")}
    track_rounds: dict[str, list[float]] = {m: [] for m in pipes}
    for _ in range(args.rounds):
        for mode, pipe in pipes.items():
            for kind, bench in (("process", bench_process), ("stream", bench_stream)):
                pipe.reset_tracker()
                row = bench(pipe, batches, args, 1)
                rounds[f"{mode} {kind}"].append(row["per_frame_ms"])
                track_rounds[mode].append(row["host_stages_ms"]["tracking"])
    objects: dict[str, float] = {}
    for mode, pipe in pipes.items():
        objects[mode] = statistics.mean(len(pipe.process([f], ["bgr8"])[0].detections) for f in frames[:50])
    tracking = {m: round(statistics.median(v), 4) for m, v in track_rounds.items()}
    med = {k: statistics.median(v) for k, v in rounds.items()}
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe_machine(),
        "command": " ".join(["python3", *sys.argv]),
        "backend": f"{args.backend} {args.precision}",
        "detections_per_frame": objects,
        "median_ms": {k: round(v, 4) for k, v in med.items()},
        "reid_minus_motion_ms": {
            k: round(med[f"reid {k}"] - med[f"motion {k}"], 4) for k in ("process", "stream")
        },
        "tracking_stage_median_ms": tracking,
        "frames_per_mode": args.iters * args.rounds,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        with args.markdown.open("a") as f:
            f.write(
                f"\n## {result['date']}: re-identification's cost per frame "
                f"({result['backend']}, batch 1)\n\n"
                f"- machine: {result['machine']}\n- command: `{result['command']}`\n"
                f"- {result['frames_per_mode']} frames per mode and kind, {args.rounds} alternating rounds; "
                f"detections per frame: {objects['motion']:.1f} (motion), {objects['reid']:.1f} (reid)\n\n"
                "| mode | `process` median ms | `process_stream` median ms per frame "
                "| tracking stage median ms |\n"
                "| --- | --- | --- | --- |\n"
                + "".join(
                    f"| {m} | {med[f'{m} process']:.3f} | {med[f'{m} stream']:.3f} | {tracking[m]:.3f} |\n"
                    for m in pipes
                )
                + f"| reid − motion | {result['reid_minus_motion_ms']['process']:+.3f} | "
                f"{result['reid_minus_motion_ms']['stream']:+.3f} | "
                f"{tracking['reid'] - tracking['motion']:+.3f} |\n"
            )
    for pipe in pipes.values():
        pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
