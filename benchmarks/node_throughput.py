"""The detector node measured from outside, over DDS, as `ros2 topic hz` and a soak test would.

Starts the node in its own process (autostart, any backend), publishes camera frames at a set
rate (sensor-data QoS) with a share of bad frames mixed in, and subscribes to ``detections``:

  * rate of ``detections`` (mean, and the spread of the intervals, as `ros2 topic hz` prints),
  * latency: receive time minus the image's header stamp (same host clock),
  * the node's own per-stage latencies from ``diagnostics``: its overhead per frame beyond the
    backend's inference time,
  * accounting: every good frame the node received is answered or counted as dropped,
  * resident memory of the node process over time (growth after warm-up).

    python benchmarks/node_throughput.py --duration 60 --rate 30            # `topic hz` figures
    python benchmarks/node_throughput.py --duration 600 --rate 30 --bad 0.05 --markdown benchmarks/soak.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.sources import iter_frames  # noqa: E402
from yolov8_trt_ros.ros.conversions import array_to_image  # noqa: E402


def bad_frame(i: int) -> Image:
    """One of the bad-input kinds, in turn."""
    msg = Image(height=4, width=6, encoding="bgr8", step=18, data=bytes(72))
    kind = i % 4
    if kind == 0:
        msg.encoding = "bayer_rggb8"
    elif kind == 1:
        msg.width = 0
    elif kind == 2:
        msg.data = bytes(10)
    else:
        msg.step = 5
    return msg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of publishing after warm-up")
    ap.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    ap.add_argument("--bad", type=float, default=0.0, help="share of bad frames mixed in (e.g. 0.05)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--model", default=str(REPO / "models" / "yolov8n.onnx"))
    ap.add_argument("--source", default="synthetic:0")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds before memory is taken as baseline")
    ap.add_argument("--markdown", type=Path, help="append a results section to this file")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    frames = [
        array_to_image(f, "bgr8", Header(frame_id="camera"))
        for f in iter_frames(args.source, loops=1, synthetic_frames=120)
    ]
    node_cmd = [
        sys.executable,
        "-m",
        "yolov8_trt_ros.ros.detector_node",
        "--ros-args",
        "-r",
        "__node:=bench_detector",
        "-p",
        "autostart:=true",
        "-p",
        f"backend:={args.backend}",
        "-p",
        f"model_path:={args.model}",
        "-p",
        "diagnostics_period:=1.0",
        "-p",
        "debug_image:=false",
    ]
    log = open("/tmp/bench_detector.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(node_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy())
    ps = psutil.Process(proc.pid)

    rclpy.init()
    node = rclpy.create_node("bench_probe")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    pub = node.create_publisher(Image, "image", qos_profile_sensor_data)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    arrivals: list[float] = []
    latencies: list[float] = []
    diag: dict[str, str] = {}

    def on_det(msg: Detection2DArray) -> None:
        now = time.time()
        arrivals.append(now)
        latencies.append(now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    def on_diag(msg: DiagnosticArray) -> None:
        diag.clear()
        diag.update({kv.key: kv.value for kv in msg.status[0].values})

    node.create_subscription(Detection2DArray, "detections", on_det, reliable)
    node.create_subscription(DiagnosticArray, "diagnostics", on_diag, reliable)
    end_wait = time.monotonic() + 120
    while pub.get_subscription_count() == 0 and time.monotonic() < end_wait:
        ex.spin_once(timeout_sec=0.1)
    if pub.get_subscription_count() == 0:
        raise SystemExit("the node never subscribed; see /tmp/bench_detector.log")

    sent_good = sent_bad = 0
    rss: list[tuple[float, float]] = []
    period = 1.0 / args.rate
    start = time.monotonic()
    next_pub = start
    next_mem = start
    baseline_arrivals = 0
    total = args.warmup + args.duration
    while (now := time.monotonic()) - start < total:
        if now >= next_pub:
            next_pub += period
            if args.bad and rng.random() < args.bad:
                pub.publish(bad_frame(sent_bad))
                sent_bad += 1
            else:
                msg = frames[sent_good % len(frames)]
                msg.header.stamp = node.get_clock().now().to_msg()
                pub.publish(msg)
                sent_good += 1
        if now >= next_mem:
            next_mem += 5.0
            rss.append((now - start, ps.memory_info().rss / 2**20))
            if now - start < args.warmup:
                baseline_arrivals = len(arrivals)
        ex.spin_once(timeout_sec=max(0.0, min(next_pub, next_mem) - time.monotonic()))
    settle = time.monotonic() + 5
    while time.monotonic() < settle:
        ex.spin_once(timeout_sec=0.1)
    alive = proc.poll() is None
    final_diag = dict(diag)
    proc.terminate()
    proc.wait(timeout=20)
    node.destroy_node()
    rclpy.try_shutdown()

    measured = arrivals[baseline_arrivals:]
    intervals = np.diff(measured) if len(measured) > 2 else np.array([float("nan")])
    counters = {k.removeprefix("frames."): int(v) for k, v in final_diag.items() if k.startswith("frames.")}
    bad_counted = sum(v for k, v in counters.items() if k.startswith("bad."))
    received = counters.get("received", 0)
    processed, dropped = counters.get("processed", 0), counters.get("dropped", 0)
    stage = {
        k.split(".")[1]: float(v)
        for k, v in final_diag.items()
        if k.startswith("latency_ms.") and k.endswith(".p50")
    }
    overhead = sum(v for k, v in stage.items() if k != "inference")
    warm = [(t, m) for t, m in rss if t >= args.warmup]
    warm_rss = [m for _, m in warm]
    # A plateau and a leak differ in the second half: its slope is ~0 for a plateau.
    late = [(t, m) for t, m in warm if t >= args.warmup + args.duration / 2]
    late_slope = float(np.polyfit(*np.array(late).T, 1)[0]) * 60 if len(late) >= 3 else None
    timeline = [warm[i] for i in np.linspace(0, len(warm) - 1, min(len(warm), 11)).astype(int)]
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{describe_machine()}, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "command": " ".join(["python", *sys.argv]),
        "backend": final_diag.get("engine.backend"),
        "node_alive": alive,
        "rate_hz": len(intervals) / float(np.sum(intervals)) if len(measured) > 2 else 0.0,
        "interval_ms": {
            "min": float(np.min(intervals) * 1e3),
            "max": float(np.max(intervals) * 1e3),
            "std": float(np.std(intervals) * 1e3),
        },
        "latency_ms": {
            "p50": statistics.median(latencies) * 1e3 if latencies else None,
            "p99": float(np.percentile(latencies, 99) * 1e3) if latencies else None,
        },
        "stage_p50_ms": stage,
        "overhead_beyond_inference_ms": overhead,
        "sent_good": sent_good,
        "sent_bad": sent_bad,
        "node_received": received,
        "processed": processed,
        "dropped": dropped,
        "bad_counted": bad_counted,
        "answered": len(arrivals),
        "accounted": processed + dropped + bad_counted == received and len(arrivals) == processed,
        "rss_mb": {
            "after_warmup": warm_rss[0] if warm_rss else None,
            "end": warm_rss[-1] if warm_rss else None,
            "max": max(warm_rss) if warm_rss else None,
            "second_half_slope_per_min": late_slope,
            "timeline": [[round(t, 1), round(m, 1)] for t, m in timeline],
        },
    }
    print(json.dumps(result, indent=2))
    if args.markdown:
        write_markdown(args.markdown, result)
    ok = alive and result["accounted"]
    return 0 if ok else 1


def write_markdown(path: Path, r: dict) -> None:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stage_p50_ms"].items())
    lines = [
        f"\n## {r['date']}: {r['backend']} node, {r['sent_good'] + r['sent_bad']} frames\n",
        f"- machine: {r['machine']}",
        f"- command: `{r['command']}`",
        f"- node alive at the end: {r['node_alive']}",
        f"- `detections` rate: {r['rate_hz']:.2f} Hz (intervals min {r['interval_ms']['min']:.1f} / "
        f"max {r['interval_ms']['max']:.1f} / std {r['interval_ms']['std']:.1f} ms)",
        f"- latency, image stamp to result received: p50 {r['latency_ms']['p50']:.1f} ms, "
        f"p99 {r['latency_ms']['p99']:.1f} ms",
        f"- node stage p50 (ms): {stages}",
        f"- node overhead per frame beyond inference: {r['overhead_beyond_inference_ms']:.2f} ms",
        f"- frames: sent {r['sent_good']} good + {r['sent_bad']} bad; node received {r['node_received']}: "
        f"processed {r['processed']}, dropped as stale {r['dropped']}, bad counted {r['bad_counted']}; "
        f"answers received {r['answered']}; all accounted: {r['accounted']}",
        f"- resident memory of the node (MiB): after warm-up {r['rss_mb']['after_warmup']:.1f}, "
        f"max {r['rss_mb']['max']:.1f}, end {r['rss_mb']['end']:.1f}; "
        f"slope over the second half {r['rss_mb']['second_half_slope_per_min'] or 0.0:+.3f} MiB/min",
        "- resident memory over time (s: MiB): "
        + ", ".join(f"{t:.0f}: {m:.1f}" for t, m in r["rss_mb"]["timeline"]),
    ]
    with path.open("a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
