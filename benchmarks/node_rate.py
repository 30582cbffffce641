"""The node over DDS as a user sees it: `/detections` rate and latency against camera rate and size.

Three kinds of process, as on a robot: the detector node (``detector_node``, what
``ros2 launch`` runs, or the bring-up), one publisher process per camera sending bgr8 frames at
a set rate (0 = as fast as it can), and this process, which subscribes to every camera's
``detections`` on its own executor and records arrival times and the latency from the image
stamp (same host clock). Before the node starts, the same frames go through
``Pipeline.process_stream`` in this process: the pipeline's FPS at each size, the reference for
"the node keeps up with its pipeline".

    python benchmarks/node_rate.py --backend cuda --precision fp16 --json out.json --markdown out.md
    python benchmarks/node_rate.py --backend onnxruntime --rates 10,30 --sizes 640x480 --seconds 5

Rates in the table are what ``ros2 topic hz`` prints: answers per second over the window.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.sources import iter_frames  # noqa: E402

FLOOD = 0.0


def _frames(width: int, height: int, count: int = 8) -> list[np.ndarray]:
    import cv2

    return [
        cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
        for f in iter_frames("synthetic:0", loops=1, synthetic_frames=count)
    ]


# --- publisher process -------------------------------------------------------------------
def publish(topic: str, width: int, height: int, rate: float, seconds: float) -> None:
    """Send bgr8 frames on ``topic`` (sensor-data QoS) at ``rate`` Hz (0: flat out), stamped now.

    Frames go out pre-serialized, only the stamp patched in, as a camera driver in C++ sends
    them: Python's per-message serialization (milliseconds at 1080p) is the publisher's cost,
    not the node's, and would otherwise sit inside the measured latency and cap the input rate.
    """
    import struct

    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from yolov8_trt_ros.ros.serialization import FrameHeader, image_bytes

    rclpy.init()
    node = rclpy.create_node(f"bench_cam_{os.getpid()}")
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    frames = [bytearray(image_bytes(f, "bgr8", FrameHeader(0, 0, "camera"))) for f in _frames(width, height)]
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    start = next_t = time.monotonic()
    wall_start = time.time()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        if rate > 0:
            if now < next_t:
                time.sleep(min(next_t - now, 0.0005))
                continue
            next_t += 1.0 / rate
        buf = frames[sent % len(frames)]
        t = time.time()
        struct.pack_into("<iI", buf, 4, int(t), int((t % 1) * 1e9))  # header.stamp after the CDR header
        pub.publish(bytes(buf))
        sent += 1
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start, "start": wall_start}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


# --- relay process: the floor ------------------------------------------------------------
def relay(topics: list[str]) -> None:
    """Answer every image at once with an empty ``Detection2DArray`` carrying its header.

    The same middleware path as the node (raw subscription with the camera QoS, the header
    parsed from the bytes, a serialized answer published), without inference: its latency is
    what DDS delivery and rclpy's wake-ups cost, the floor under the node's figures.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from yolov8_trt_ros.core.types import Detections
    from yolov8_trt_ros.ros.conversions import raw_image_to_array
    from yolov8_trt_ros.ros.serialization import DetectionArrayWriter

    rclpy.init()
    node = rclpy.create_node(f"bench_relay_{os.getpid()}")
    writer = DetectionArrayWriter((), False)
    empty = Detections.empty()
    for topic in topics:
        out = topic.rsplit("/", 1)[0] + "/detections"
        pub = node.create_publisher(
            Detection2DArray, out, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )

        def answer(raw: bytes, pub: Any = pub) -> None:
            _, _, header = raw_image_to_array(raw, 1 << 30)
            pub.publish(writer.write(empty, header))

        node.create_subscription(Image, topic, answer, qos_profile_sensor_data, raw=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.spin()


# --- pipeline reference ------------------------------------------------------------------
def pipeline_fps(args: argparse.Namespace, width: int, height: int, batch: int, iters: int) -> float:
    """``process_stream`` FPS on the same frames, in this process, before the node starts."""
    from yolov8_trt_ros.core.config import EngineConfig
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig

    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(
        backend=args.backend, model_path=args.model, precision=args.precision, max_batch_size=max(batch, 1)
    )
    pipeline = Pipeline.create(cfg)
    frames = _frames(width, height)
    batches = [
        ([frames[(i * batch + k) % len(frames)] for k in range(batch)], ["bgr8"] * batch)
        for i in range(iters)
    ]
    for _ in pipeline.process_stream(batches[:20]):
        pass
    start = time.perf_counter()
    for _ in pipeline.process_stream(batches):
        pass
    fps = iters * batch / (time.perf_counter() - start)
    pipeline.close()
    return fps


# --- the node ----------------------------------------------------------------------------
@contextlib.contextmanager
def node_process(
    args: argparse.Namespace, entry: str, topics: list[str], log: Path, intake: str = "auto"
) -> Iterator[subprocess.Popen]:
    params: dict[str, Any] = {
        "autostart": True,
        "backend": args.backend,
        "model_path": args.model,
        "precision": args.precision,
        "debug_image": False,
        "diagnostics_period": 1.0,
        "batch_size": max(1, len(topics)),
        "max_batch_size": max(1, len(topics)),
        "tracker.enabled": True,
        "image_intake": intake,
    }
    if len(topics) > 1:
        params["image_topics"] = topics
    if entry == "relay":
        cmd = [sys.executable, str(Path(__file__).resolve()), "relay", "--topic", ",".join(topics)]
    elif entry == "bringup":
        import yaml

        cfg = Path(tempfile.mkdtemp()) / "bench.yaml"
        cfg.write_text(yaml.safe_dump({"yolov8_trt_node": {"ros__parameters": params}}))
        cmd = [sys.executable, "-m", "yolov8_trt_ros.ros.bringup", "--params", str(cfg), "--no-camera"]
        if len(topics) == 1:
            cmd += ["--ros-args", "-r", f"image:={topics[0]}"]
    else:
        cmd = [sys.executable, "-m", "yolov8_trt_ros.ros.detector_node", "--ros-args"]
        for k, v in params.items():
            value = (
                json.dumps(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
            )
            cmd += ["-p", f"{k}:={value}"]
        if len(topics) == 1:
            cmd += ["-r", f"image:={topics[0]}"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy())
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Listener:
    """Subscribes to each camera's detections on its own thread; arrival times and latencies."""

    def __init__(self, det_topics: list[str]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import Detection2DArray

        self.node = rclpy.create_node(f"bench_listener_{os.getpid()}")
        self.lock = threading.Lock()
        self.events: list[tuple[int, float, float]] = []  # (camera, arrival, latency)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for cam, topic in enumerate(det_topics):
            self.node.create_subscription(Detection2DArray, topic, lambda m, c=cam: self._on(c, m), qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._stop = False
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _on(self, cam: int, msg: Any) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            self.events.append((cam, now, now - stamp))

    def _spin(self) -> None:
        while not self._stop:
            self.executor.spin_once(timeout_sec=0.05)

    def window(self, t0: float, t1: float) -> list[tuple[int, float, float]]:
        with self.lock:
            return [e for e in self.events if t0 <= e[1] < t1]

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.node.destroy_node()


def run_phase(
    topics: list[str],
    size: tuple[int, int],
    rate: float,
    seconds: float,
    listener: Listener,
    publishers: int = 1,
) -> dict:
    """All cameras publish at ``rate`` for ``seconds``; the middle of the run is measured.

    ``publishers`` processes per camera share its rate (each flat out for a flood): one Python
    process cannot send 1080p frames as fast as the node takes them.
    """
    cams = [c for c in range(len(topics)) for _ in range(publishers)]
    pubs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "publish",
                "--topic",
                t,
                "--size",
                f"{size[0]}x{size[1]}",
                "--rate",
                str(rate / publishers),
                "--seconds",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for t in (topics[c] for c in cams)
    ]
    sent = []
    for p in pubs:
        out, _ = p.communicate(timeout=seconds + 90)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        sent.append(json.loads(lines[-1]) if lines else {"sent": 0, "seconds": seconds, "start": time.time()})
    time.sleep(0.5)
    # From 1 s after the last camera started (matching, first frames) to 0.5 s before the end.
    t0 = max(s["start"] for s in sent) + 1.0
    dur = max(seconds - 1.5, 0.5)
    events = listener.window(t0, t0 + dur)
    lat = [e[2] * 1e3 for e in events]
    per_cam = [sum(1 for e in events if e[0] == c) / dur for c in range(len(topics))]
    sent_rate = [
        sum(s["sent"] / max(s["seconds"], 1e-9) for s, c in zip(sent, cams, strict=True) if c == cam)
        for cam in range(len(topics))
    ]
    return {
        "size": f"{size[0]}x{size[1]}",
        "rate_requested": rate,
        "cameras": len(topics),
        "publishers_per_camera": publishers,
        "input_hz": [round(r, 1) for r in sent_rate],
        "detections_hz": [round(r, 1) for r in per_cam],
        "total_hz": round(sum(per_cam), 1),
        "latency_ms_p50": round(statistics.median(lat), 2) if lat else None,
        "latency_ms_p90": round(float(np.percentile(lat, 90)), 2) if lat else None,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        relay(sys.argv[sys.argv.index("--topic") + 1].split(","))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "publish":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--topic")
        ap.add_argument("--size")
        ap.add_argument("--rate", type=float)
        ap.add_argument("--seconds", type=float)
        a = ap.parse_args()
        w, h = (int(v) for v in a.size.split("x"))
        publish(a.topic, w, h, a.rate, a.seconds)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--model", default=str(REPO / "models" / "test" / "yolov8n_synth.onnx"))
    ap.add_argument(
        "--entries", default="detector_node,bringup", help="also relay: the middleware floor, no inference"
    )
    ap.add_argument(
        "--intakes",
        default="auto",
        help="image_intake values to run the node entries with, e.g. rcl,executor",
    )
    ap.add_argument("--sizes", default="640x480,1920x1080")
    ap.add_argument(
        "--rates", default="30,60,240,1000,0", help="Hz per camera; 0 = as fast as the publisher can"
    )
    ap.add_argument("--cameras", default="1", help="e.g. 1,2,4: multi-camera phases at --multi-rates")
    ap.add_argument("--multi-rates", default="60,1000")
    ap.add_argument(
        "--publishers", type=int, default=1, help="publisher processes per camera at 1 kHz and flat out"
    )
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pipeline-iters", type=int, default=300)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    sizes = [(int(w), int(h)) for w, h in (s.split("x") for s in args.sizes.split(","))]
    rates = [float(r) for r in args.rates.split(",")]
    cameras = [int(c) for c in args.cameras.split(",")]

    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe_machine(),
        "command": " ".join(["python", *sys.argv]),
        "backend": f"{args.backend} {args.precision}",
        "pipeline_fps": {},
        "phases": [],
    }
    for w, h in sizes:
        result["pipeline_fps"][f"{w}x{h}"] = round(pipeline_fps(args, w, h, 1, args.pipeline_iters), 1)
        print(f"pipeline {w}x{h}: {result['pipeline_fps'][f'{w}x{h}']} FPS", flush=True)
    for n in cameras:
        if n > 1:
            fps = pipeline_fps(args, sizes[0][0], sizes[0][1], n, args.pipeline_iters // n)
            result["pipeline_fps"][f"{sizes[0][0]}x{sizes[0][1]} batch {n}"] = round(fps, 1)

    import rclpy

    rclpy.init()
    tmp = Path(tempfile.mkdtemp())
    runs = [
        (entry, intake, n)
        for entry in args.entries.split(",")
        for intake in (["-"] if entry == "relay" else args.intakes.split(","))
        for n in cameras
    ]
    for entry, intake, n in runs:
        topics = ["/image"] if n == 1 else [f"/cam{i}/image" for i in range(n)]
        det_topics = ["/detections"] if n == 1 else [f"/cam{i}/detections" for i in range(n)]
        log = tmp / f"{entry}_{intake}_{n}.log"
        with node_process(args, entry, topics, log, intake) as proc:
            listener = Listener(det_topics)
            phases = (
                [(s, r) for s in sizes for r in rates]
                if n == 1
                else [(sizes[0], r) for r in (float(x) for x in args.multi_rates.split(","))]
            )
            for size, rate in phases:
                if proc.poll() is not None:
                    print(f"node exited ({proc.returncode}); log:\n{log.read_text()[-3000:]}", flush=True)
                    break
                heavy = rate == FLOOD or rate >= 1000
                row = run_phase(topics, size, rate, args.seconds, listener, args.publishers if heavy else 1)
                row["entry"] = entry
                row["intake"] = intake
                result["phases"].append(row)
                print(json.dumps(row), flush=True)
            listener.close()
        print(f"--- {entry} ({intake}) x{n} node log tail:\n" + log.read_text()[-1500:], flush=True)
    rclpy.try_shutdown()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        write_markdown(args.markdown, result)
    return 0


def write_markdown(path: Path, r: dict) -> None:
    lines = [
        f"\n## {r['date']}: node over DDS, {r['backend']}\n",
        f"- machine: {r['machine']}",
        f"- command: `{r['command']}`",
        "- pipeline alone (`process_stream`, same frames, same process kind): "
        + ", ".join(f"{k} {v} FPS" for k, v in r["pipeline_fps"].items()),
        "",
        "| entry point | intake | cameras | size | requested Hz/camera | input Hz | `/detections` Hz | "
        "latency p50 / p90 (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in r["phases"]:
        req = "flood" if p["rate_requested"] == FLOOD else f"{p['rate_requested']:g}"
        if p.get("publishers_per_camera", 1) > 1:
            req += f" ({p['publishers_per_camera']} publishers)"
        lines.append(
            f"| {p['entry']} | {p.get('intake', 'auto')} | {p['cameras']} | {p['size']} | {req} | "
            f"{' + '.join(f'{x:g}' for x in p['input_hz'])} | "
            f"{' + '.join(f'{x:g}' for x in p['detections_hz'])} | "
            f"{p['latency_ms_p50']} / {p['latency_ms_p90']} |"
        )
    with path.open("a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
