"""What it costs to build and publish the node's messages: rclpy message objects vs CDR bytes.

  * detections (vision_msgs/Detection2DArray, track ids set) and tracks (TrackedObjectArray):
    microseconds per object to build the message, and to build and publish it, at 1/20/100/300
    objects, through ros.conversions (message objects) and ros.serialization (bytes);
  * input images: rclpy's deserialization into an Image object (what a normal subscription
    does) plus the array view, against parsing the bytes of a ``raw=True`` subscription;
  * the debug image: Image object vs bytes, built and published.

Publishing goes to a subscriber in another process (raw, so it costs the publisher nothing
more than a real one), with the node's result QoS. Each figure is CPU time (see per_call_us).

    python benchmarks/messages.py --markdown benchmarks/messages.md --json benchmarks/messages.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))  # alone on this host
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from yolov8_trt_msgs.msg import TrackedObjectArray  # noqa: E402
from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402
from yolov8_trt_ros.core.types import Detections, Track  # noqa: E402
from yolov8_trt_ros.ros import conversions  # noqa: E402
from yolov8_trt_ros.ros.serialization import (  # noqa: E402
    DetectionArrayWriter,
    TrackArrayWriter,
    image_bytes,
    velocity_scale,
)

RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # as detector_node's
COUNTS = (1, 20, 100, 300)
SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920)}
COCO_LIKE = [f"class_name_{i}" for i in range(80)]
MARKER = "<!-- results: written by benchmarks/messages.py from here on -->"
SUBSCRIBER = """
import rclpy, sys
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray
from yolov8_trt_msgs.msg import TrackedObjectArray
rclpy.init()
node = rclpy.create_node("bench_messages_sink")
qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
for t, name in ((Detection2DArray, "bm_detections"), (TrackedObjectArray, "bm_tracks"), (Image, "bm_debug")):
    node.create_subscription(t, name, lambda raw: None, qos, raw=True)
print("ready", flush=True)
rclpy.spin(node)
"""


def per_call_us(fn: Callable[[], Any], budget_s: float, rounds: int = 7) -> dict[str, float]:
    """Microseconds per call over ``rounds`` rounds of ~``budget_s`` in all.

    ``cpu`` (the median round's CPU time of this process, all its threads, so Fast DDS's work
    in publish counts) is what the tables show: on a shared machine wall time mostly measures
    the neighbours. ``cpu_min`` and ``wall`` (median) go to the JSON.
    """
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget_s / rounds / once))
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            fn()
        cpu.append((time.process_time() - c0) / number * 1e6)
        wall.append((time.perf_counter() - w0) / number * 1e6)
    return {"cpu": statistics.median(cpu), "cpu_min": min(cpu), "wall": statistics.median(wall)}


def random_detections(rng: np.random.Generator, n: int) -> tuple[Detections, np.ndarray]:
    xy = rng.uniform(0, 1800, (n, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 200, (n, 2))])
    dets = Detections(boxes.astype(np.float32), rng.random(n, np.float32), rng.integers(0, 80, n, np.int32))
    return dets, rng.integers(-1, 5000, n)


def random_tracks(rng: np.random.Generator, n: int) -> list[Track]:
    return [
        Track(int(i), int(c), float(s), tuple(b), tuple(v), int(a), "tracked")
        for i, c, s, b, v, a in zip(
            rng.integers(0, 5000, n).tolist(),
            rng.integers(0, 80, n).tolist(),
            rng.random(n).tolist(),
            rng.uniform(0, 1900, (n, 4)).tolist(),
            rng.normal(0, 3, (n, 2)).tolist(),
            rng.integers(0, 900, n).tolist(),
            strict=True,
        )
    ]


def wait_for_subscribers(node: Any, pubs: list[Any], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(p.get_subscription_count() for p in pubs):
            return
        rclpy.spin_once(node, timeout_sec=0.05)
    raise RuntimeError("the subscriber process never matched")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=0.4, help="seconds per figure")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rclpy.init()
    sink = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        results = run(args.budget)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        rclpy.try_shutdown()
    report(results, args)


class Cases:
    """The calls measured, each a closure over one input (so the loop below binds nothing late)."""

    def __init__(self, node: Any) -> None:
        self.det_pub = node.create_publisher(Detection2DArray, "bm_detections", RESULT_QOS)
        self.trk_pub = node.create_publisher(TrackedObjectArray, "bm_tracks", RESULT_QOS)
        self.img_pub = node.create_publisher(Image, "bm_debug", RESULT_QOS)
        wait_for_subscribers(node, [self.det_pub, self.trk_pub, self.img_pub])
        self.header = Header(frame_id="camera_optical_frame")
        self.header.stamp.sec, self.header.stamp.nanosec = 1_700_000_000, 123_456_789
        self.fh = conversions.frame_header(self.header)
        self.det_writer = DetectionArrayWriter(COCO_LIKE, True)
        self.trk_writer = TrackArrayWriter(COCO_LIKE, True)
        self.dt, self.frame_rate = 1 / 30, 30.0

    def detections(self, dets: Detections, ids: np.ndarray) -> dict[str, Callable[[], Any]]:
        def objects() -> Detection2DArray:
            return conversions.detections_to_msg(dets, self.header, COCO_LIKE, True, ids)

        def raw() -> bytes:
            return self.det_writer.write(dets, self.fh, ids)

        pub = self.det_pub.publish
        return {
            "objects_build": objects,
            "objects_build_publish": lambda: pub(objects()),
            "bytes_build": raw,
            "bytes_build_publish": lambda: pub(raw()),
        }

    def tracks(self, tracks: list[Track]) -> dict[str, Callable[[], Any]]:
        scale = velocity_scale(self.dt, self.frame_rate)

        def objects() -> TrackedObjectArray:
            return conversions.tracks_to_msg(tracks, self.header, COCO_LIKE, True, self.frame_rate, self.dt)

        def raw() -> bytes:
            return self.trk_writer.write(tracks, self.fh, scale)

        pub = self.trk_pub.publish
        return {
            "objects_build": objects,
            "objects_build_publish": lambda: pub(objects()),
            "bytes_build": raw,
            "bytes_build_publish": lambda: pub(raw()),
        }

    def input_image(self, raw: bytes, max_pixels: int) -> dict[str, Callable[[], Any]]:
        return {
            "deserialize_view": lambda: conversions.image_to_array(
                deserialize_message(raw, Image), max_pixels
            ),
            "parse_view": lambda: conversions.raw_image_to_array(raw, max_pixels),
        }

    def debug_image(self, pixels: np.ndarray) -> dict[str, Callable[[], Any]]:
        pub = self.img_pub.publish
        return {
            "objects_build_publish": lambda: pub(conversions.array_to_image(pixels, "bgr8", self.header)),
            "bytes_build_publish": lambda: pub(image_bytes(pixels, "bgr8", self.fh)),
        }


def run(budget: float) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    node = rclpy.create_node("bench_messages")
    cases = Cases(node)

    def measure(calls: dict[str, Callable[[], Any]]) -> dict[str, dict[str, float]]:
        return {k: per_call_us(f, budget) for k, f in calls.items()}

    rows: dict[str, Any] = {"detections": {}, "tracks": {}, "images": {}, "debug_image": {}}
    for n in COUNTS:
        rows["detections"][n] = measure(cases.detections(*random_detections(rng, n)))
        rows["tracks"][n] = measure(cases.tracks(random_tracks(rng, n)))
        rclpy.spin_once(node, timeout_sec=0)
        print(f"{n} objects done", flush=True)
    for label, (h, w) in SIZES.items():
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        raw = serialize_message(conversions.array_to_image(pixels, "bgr8", cases.header))
        rows["images"][label] = measure(cases.input_image(raw, h * w))
        rows["debug_image"][label] = measure(cases.debug_image(pixels))
        print(f"{label} done", flush=True)
    node.destroy_node()
    return rows


def report(rows: dict[str, Any], args: argparse.Namespace) -> None:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe_machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        MARKER,
        "",
        f"## Results: {when}",
        "",
        f"{machine}; load average (1, 5, 15 min) {load} at the end of the run. ROS 2 from PyPI",
        "wheels, rmw_fastrtps_cpp, publishing to a raw subscriber in another process. CPU time of the",
        "publishing process (all threads), median over 7 rounds of the mean per call; minimum and",
        "wall-clock time in `messages.json`.",
        "",
    ]
    for kind, what in (("detections", "Detection2DArray with track ids"), ("tracks", "TrackedObjectArray")):
        lines += [
            f"### {what}: µs per object",
            "",
            "| objects | objects: build | objects: build+publish | bytes: build | bytes: build+publish |"
            " speed-up (build+publish) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for n, r in rows[kind].items():
            ob, obp, bb, bbp = (r[k]["cpu"] / n for k in r)
            lines.append(f"| {n} | {ob:.2f} | {obp:.2f} | {bb:.2f} | {bbp:.2f} | {obp / bbp:.0f}x |")
        lines.append("")
    lines += [
        "### Input image: to a NumPy view, µs per frame",
        "",
        "| size | deserialize_message + view (normal subscription) | parse raw bytes + view | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for label, r in rows["images"].items():
        d, p = r["deserialize_view"]["cpu"], r["parse_view"]["cpu"]
        lines.append(f"| {label} | {d:.0f} | {p:.1f} | {d / p:.0f}x |")
    lines += [
        "",
        "### Debug image (bgr8): build + publish, µs per frame",
        "",
        "| size | Image object | bytes | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for label, r in rows["debug_image"].items():
        o, b = r["objects_build_publish"]["cpu"], r["bytes_build_publish"]["cpu"]
        lines.append(f"| {label} | {o:.0f} | {b:.0f} | {o / b:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        # keep the hand-written part above the marker, replace the results below it
        old = args.markdown.read_text() if args.markdown.exists() else ""
        intro = old.split(MARKER)[0] if MARKER in old else "# Building and publishing messages\n\n"
        args.markdown.write_text(intro + text)
    if args.json:
        args.json.write_text(json.dumps({"date": when, "machine": machine, "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
