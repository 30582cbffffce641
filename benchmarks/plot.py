#!/usr/bin/env python3
"""The README's two figures from ``benchmarks/pipeline_gpu.json`` (written by ``pipeline_gpu.py``).

    python benchmarks/plot.py                       # -> benchmarks/latency_breakdown.png, fps_vs_batch.png
    python benchmarks/plot.py --json other.json --out-dir /tmp

* ``latency_breakdown.png``: per configuration, the per-stage medians of the synchronised
  diagnostic pass (ms per frame, stacked), with the measured per-frame time of the overlapped
  pipeline (``process_stream``) and of the engine alone (queued) marked beside them.
* ``fps_vs_batch.png``: frames per second against batch size, per input size: engine alone
  (queued), ``process_stream``, ``process``; ultralytics ``predict``/``track`` (batch 1) as points.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on the build machines
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
STAGES = ("preprocess", "inference", "postprocess", "tracking")
COLOURS = {"preprocess": "#4C72B0", "inference": "#DD8452", "postprocess": "#55A868", "tracking": "#C44E52"}


def _label(c: dict[str, Any]) -> str:
    return f"{c['precision']} {c['size']}\nbatch {c['batch']}"


def _ok(part: Any) -> bool:
    return isinstance(part, dict) and "error" not in part and bool(part)


def latency_breakdown(data: dict[str, Any], out: Path) -> None:
    rows = [c for c in data["configs"] if "batch" in c and _ok(c.get("sync_stages_ms"))]
    fig, ax = plt.subplots(figsize=(10.5, 4.6), dpi=100)
    xs = range(len(rows))
    bottom = [0.0] * len(rows)
    for stage in STAGES:
        vals = [c["sync_stages_ms"].get(stage, 0.0) / c["batch"] for c in rows]
        ax.bar(xs, vals, 0.6, bottom=bottom, label=f"{stage} (synchronised)", color=COLOURS[stage])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    stream = [c["stream"]["per_frame_ms"] if _ok(c.get("stream")) else float("nan") for c in rows]
    engine = [c["engine"]["queued"]["per_frame_ms"] if _ok(c.get("engine")) else float("nan") for c in rows]
    ax.scatter(
        [x + 0.38 for x in xs],
        stream,
        marker="D",
        color="black",
        zorder=3,
        label="process_stream (overlapped)",
    )
    ax.scatter(
        [x + 0.38 for x in xs],
        engine,
        marker="_",
        s=400,
        color="grey",
        zorder=3,
        label="engine alone (queued)",
    )
    ax.set_xticks(list(xs), [_label(c) for c in rows], fontsize=8)
    ax.set_ylabel("ms per frame (median)")
    gpu = data["env"].get("gpu", "")
    ax.set_title(f"Where a frame's time goes: {gpu}, YOLOv8n, CUDA backend", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def fps_vs_batch(data: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=100)
    configs = [c for c in data["configs"] if "batch" in c]
    styles = {
        "engine": ("grey", "engine alone (queued)"),
        "stream": ("black", "process_stream"),
        "process": ("#4C72B0", "process"),
    }
    for (precision, size), ls in ((("fp16", 640), "-"), (("fp16", 416), "--")):
        mine = sorted(
            (c for c in configs if c["precision"] == precision and c["size"] == size),
            key=lambda c: c["batch"],
        )
        if not mine:
            continue
        for key, (colour, name) in styles.items():
            pts = [
                (c["batch"], (c["engine"]["queued"] if key == "engine" else c[key])["fps"])
                for c in mine
                if _ok(c.get(key))
            ]
            if pts:
                bx, fy = zip(*pts, strict=True)
                ax.plot(bx, fy, ls, marker="o", color=colour, label=f"{name}, {precision} {size}")
    for mode, marker in (("predict", "^"), ("track", "v")):
        r = data.get("ultralytics", {}).get(mode)
        if _ok(r):
            ax.scatter(
                [1],
                [r["fps"]],
                marker=marker,
                s=80,
                color="#C44E52",
                zorder=3,
                label=f"ultralytics {mode}, fp16 640",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([1, 4, 8], ["1", "4", "8"])
    ax.set_xlabel("batch size")
    ax.set_ylabel("frames per second (median)")
    ax.set_title(f"Throughput on the same frames: {data['env'].get('gpu', '')}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=HERE / "pipeline_gpu.json")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    args = ap.parse_args()
    data = json.loads(args.json.read_text())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    latency_breakdown(data, args.out_dir / "latency_breakdown.png")
    fps_vs_batch(data, args.out_dir / "fps_vs_batch.png")
    for name in ("latency_breakdown.png", "fps_vs_batch.png"):
        path = args.out_dir / name
        print(f"{path}: {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
