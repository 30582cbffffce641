"""Live sources (core/live_capture.py, the camera node) against a real MJPEG-over-HTTP stream.

No camera can be had here, so a looped synthetic sequence is served on 127.0.0.1 as
``multipart/x-mixed-replace`` MJPEG (what IP cameras and mjpg-streamer serve) by a small
server thread, and read through OpenCV's FFmpeg backend as a real client would. Each served
frame carries its serial number drawn as black/white blocks, so a test can tell which frame it got.
"""

from __future__ import annotations

import http.server
import itertools
import re
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest

from yolov8_trt_ros.core.live_capture import LiveCapture, is_live_source
from yolov8_trt_ros.core.sources import SourceError, iter_frames

if TYPE_CHECKING:
    from yolov8_trt_ros.ros.camera_source import CameraSourceNode

pytestmark = pytest.mark.skipif(
    not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG), reason="this OpenCV has no FFmpeg backend"
)

BITS = 12  # serial number blocks along the top of each frame
BLOCK = 32
LAG = 5  # frames a newest frame may trail the server by (socket buffers, a busy 2-core machine)


def draw_serial(image: np.ndarray, serial: int) -> np.ndarray:
    image = image.copy()
    for bit in range(BITS):
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 if serial >> bit & 1 else 0
    return image


def read_serial(image: np.ndarray) -> int:
    """The serial drawn by draw_serial, read from the block centres (JPEG blurs only the edges)."""
    c = BLOCK // 2
    return sum(1 << bit for bit in range(BITS) if image[c, bit * BLOCK + c].mean() > 127)


class MjpegServer:
    """Serves a looped synthetic sequence as MJPEG at ``fps``; ``sent`` is the newest serial written."""

    def __init__(self, fps: float = 30.0, port: int = 0, max_seconds: float = 60.0) -> None:
        base = list(itertools.islice(iter_frames("synthetic:0", synthetic_frames=15), 15))
        self.fps = fps
        self.sent = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds  # a forgotten server still ends
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                tick = time.monotonic()
                try:
                    while not server._stop.is_set() and time.monotonic() < server._deadline:
                        server.sent += 1
                        image = draw_serial(base[server.sent % len(base)], server.sent)
                        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        tick += 1.0 / server.fps
                        time.sleep(max(0.0, tick - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Ends every stream (the clients see EOF) and closes the port."""
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stream() -> Iterator[MjpegServer]:
    server = MjpegServer()
    yield server
    server.stop()


def test_live_sources_are_told_from_files():
    for live in (
        "0",
        "/dev/video0",
        "rtsp://cam/stream",
        "http://127.0.0.1:8080/x.mjpg",
        "videotestsrc ! appsink",
    ):
        assert is_live_source(live), live
    for not_live in ("samples", "synthetic:3", "video.mp4", "/data/images", "/dev/null"):
        assert not is_live_source(not_live), not_live


def test_every_served_frame_is_read_and_a_slow_consumer_gets_the_newest(stream):
    with LiveCapture(stream.url) as cap:
        first = cap.newest(timeout=5.0)
        assert first is not None
        taken: list[tuple[int, int]] = []  # (serial in the image, newest serial served when taken)
        for _ in range(6):  # a consumer five times slower than the stream
            time.sleep(0.17)
            frame = cap.newest(timeout=2.0)
            assert frame is not None
            taken.append((read_serial(frame.image), stream.sent))
        assert cap.newest() is None, "the same frame is never handed out twice"
        read, dropped, served = cap.frames_read, cap.frames_dropped, stream.sent
    serials = [s for s, _ in taken]
    assert serials == sorted(serials) and len(set(serials)) == len(serials)
    for got, newest in taken:
        assert newest - LAG <= got <= newest, f"frame {got} handed out when {newest} was served: stale"
    # The reader keeps up with the stream: every served frame up to the last few was read.
    last_read = read_serial(first.image) + read - first.index
    assert served - LAG <= last_read <= served, (last_read, served)
    assert dropped >= read - len(taken) - 1 - LAG


def test_a_lost_stream_is_reopened_with_backoff_and_frames_resume(stream):
    with LiveCapture(stream.url, backoff=(0.1, 0.4)) as cap:
        assert cap.newest(timeout=5.0) is not None
        port = stream.port
        stream.stop()
        deadline = time.monotonic() + 10
        while cap.reconnects < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cap.state == "reconnecting" and cap.reconnects >= 3, (cap.state, cap.reconnects)
        assert cap.error == "stream lost"
        again = MjpegServer(port=port)
        try:
            frame = cap.newest(timeout=10.0)
            assert frame is not None and cap.state == "open"
            assert read_serial(frame.image) <= again.sent < 100, "a frame of the new stream"
        finally:
            again.stop()


def test_a_stream_lost_for_good_ends_in_a_failed_state(stream):
    cap = LiveCapture(stream.url, backoff=(0.05, 0.1), max_reconnects=2).open()
    try:
        assert cap.newest(timeout=5.0) is not None
        stream.stop()
        start = time.monotonic()
        assert cap.newest(timeout=10.0) is None  # wakes when the capture fails, not at the timeout
        assert time.monotonic() - start < 9.0
        assert cap.state == "failed" and cap.reconnects == 2
        assert "2 reconnect attempts failed" in str(cap.error)
    finally:
        cap.close()
    assert cap._thread is not None and not cap._thread.is_alive()


def test_close_stops_the_reader_thread(stream):
    cap = LiveCapture(stream.url).open()
    assert cap.newest(timeout=5.0) is not None
    cap.close()
    assert cap._thread is not None and not cap._thread.is_alive()
    assert cap.state == "closed"
    read = cap.frames_read
    time.sleep(0.2)
    assert cap.frames_read == read


def _closed_port() -> int:
    with socketserver.TCPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler) as s:
        return int(s.server_address[1])


@pytest.mark.parametrize(
    "source, error",
    [
        ("/dev/video99", ValueError),
        ("99", RuntimeError),
        ("http://127.0.0.1:{port}/stream.mjpg", RuntimeError),
        ("rtsp://127.0.0.1:{port}/cam", RuntimeError),
    ],
)
def test_a_source_that_cannot_open_is_refused_quickly_and_named(source, error):
    source = source.format(port=_closed_port())
    start = time.monotonic()
    with pytest.raises(error, match=re.escape(source)):
        LiveCapture(source, open_timeout=10.0).open()
    assert time.monotonic() - start < 9.0, "refused by the backend, not by our timeout"
    with pytest.raises(SourceError, match=re.escape(source)):
        iter_frames(source)


@pytest.mark.skipif(
    cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER),
    reason="this OpenCV has GStreamer: the pipeline would open",
)
def test_a_gstreamer_pipeline_without_gstreamer_says_so():
    with pytest.raises(ValueError, match="no GStreamer"):
        LiveCapture("videotestsrc ! videoconvert ! appsink").open()


def test_iter_frames_reads_a_live_stream(stream):
    frames = iter_frames(stream.url)
    got = [read_serial(f) for f in itertools.islice(frames, 5)]
    frames.close()  # type: ignore[attr-defined,unused-ignore]  # a generator: closes the capture
    assert got == sorted(got) and len(set(got)) == 5
    assert all(f.shape == (480, 640, 3) for f in itertools.islice(iter_frames(stream.url), 1))


def _run_camera(url: str, **params: object) -> tuple[CameraSourceNode, list[tuple[int, float, float]]]:
    """The camera node on ``url`` with a real subscriber beside it, spun until done (30 s at most).

    Returns the node and (serial, header stamp, arrival) of each image received.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from yolov8_trt_ros.ros.camera_source import CameraSourceNode

    overrides = [Parameter("source", value=url)] + [Parameter(k, value=v) for k, v in params.items()]
    camera = CameraSourceNode("live_camera", parameter_overrides=overrides)
    listener = rclpy.create_node("live_listener")
    got: list[tuple[int, float, float]] = []

    def on_image(msg: Image) -> None:
        now = listener.get_clock().now().nanoseconds * 1e-9
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        image = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        got.append((read_serial(image), stamp, now))

    listener.create_subscription(Image, "image", on_image, qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(camera)
    executor.add_node(listener)
    try:
        deadline = time.monotonic() + 30
        while not camera.done and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for _ in range(10):
            executor.spin_once(timeout_sec=0.05)
        assert camera.live is not None
        return camera, got
    finally:
        executor.shutdown()
        camera.destroy_node()
        listener.destroy_node()


@pytest.mark.ros
def test_camera_node_publishes_each_new_stream_frame_once(stream, rclpy_session):
    camera, got = _run_camera(stream.url, rate=0.0, max_frames=40)
    assert camera.done and camera.sent == 40
    assert camera.live is not None and camera.live.state == "closed"
    # Best-effort discovery may lose the first few; the rest come once each, in order.
    assert len(got) >= 20, len(got)
    serials = [s for s, _, _ in got]
    assert serials == sorted(serials) and len(set(serials)) == len(serials)
    stamps = [st for _, st, _ in got]
    assert stamps == sorted(stamps)
    assert all(0.0 <= now - st < 2.0 for _, st, now in got), "stamped at capture, just before arrival"
    # Uncapped, the node sends (nearly) every frame the stream serves.
    assert serials[-1] - serials[0] <= len(serials) - 1 + LAG


@pytest.mark.ros
def test_camera_node_rate_caps_a_faster_stream(stream, rclpy_session):
    camera, got = _run_camera(stream.url, rate=10.0, max_frames=12)
    assert camera.done and camera.sent == 12
    serials = [s for s, _, _ in got]
    assert len(serials) >= 6 and serials == sorted(serials)
    # 10 Hz out of a 30 Hz stream: about two served frames skipped between two sent ones.
    assert serials[-1] - serials[0] >= 2 * (len(serials) - 1), serials


@pytest.mark.ros
def test_camera_node_refuses_rate_zero_for_a_file_source(rclpy_session):
    from rclpy.parameter import Parameter

    from yolov8_trt_ros.ros.camera_source import CameraSourceNode

    with pytest.raises(ValueError, match="rate must be > 0"):
        CameraSourceNode("file_camera", parameter_overrides=[Parameter("rate", value=0.0)])


@pytest.mark.ros
@pytest.mark.slow
def test_bringup_detects_and_records_a_live_stream_at_its_own_rate(stream, tmp_path, detector_model):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    cfg["/**/camera_source"]["ros__parameters"].update(source=stream.url, rate=0.0, max_frames=15)
    cfg["/**/yolov8_trt_node"]["ros__parameters"]["model_path"] = str(detector_model)
    params = tmp_path / "live.yaml"
    params.write_text(yaml.safe_dump(cfg))
    video = tmp_path / "live.mp4"
    out = subprocess.run(
        [sys.executable, "-m", "yolov8_trt_ros.ros.bringup", "--params", str(params), "--record", str(video)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "camera frames sent: 15" in out.stdout
    processed = int(out.stdout.split("frames processed: ")[1].split()[0])
    assert processed >= 1
    cap = cv2.VideoCapture(str(video))
    assert cap.get(cv2.CAP_PROP_FPS) > 0, "recorded at a real frame rate though the camera's rate is 0"
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == processed
