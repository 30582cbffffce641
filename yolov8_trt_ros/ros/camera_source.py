"""Publishes camera frames: live ones at the device's rate, videos/folders/generated scenes at a set rate.

Files and generated scenes serve the demo, the bring-up without a real camera and the
throughput scripts. A live source (``0``, ``/dev/video0``, an RTSP/HTTP URL, a GStreamer
pipeline; see core/live_capture.py) is read on its own thread; each new frame is published once,
when it arrives, stamped with its capture time, so the detector never works on a stale frame.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from yolov8_trt_ros.core.live_capture import LiveCapture, is_live_source
from yolov8_trt_ros.core.sources import convert_bgr, iter_frames, open_live
from yolov8_trt_ros.ros import signals
from yolov8_trt_ros.ros.conversions import array_to_image


class CameraSourceNode(Node):
    """Publishes ``image`` (sensor-data QoS) from ``source``; ``done`` when finished.

    Files/folders/generated scenes go out at ``rate`` Hz. A live source goes out at the device's
    rate, ``rate`` capping it (0: no cap); ``done`` once the stream has failed for good.
    """

    def __init__(self, node_name: str = "camera_source", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self.declare_parameter
        source: str = p(
            "source",
            "samples",
            ParameterDescriptor(
                description="a video, an image folder or file, 'samples', 'synthetic[:seed]', or live: "
                "a V4L2 index or /dev/videoN, an rtsp/http URL, a GStreamer pipeline",
                read_only=True,
            ),
        ).value
        rate: float = p(
            "rate",
            30.0,
            ParameterDescriptor(
                description="frames per second; for a live source a cap on the device's rate (0: none)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10000.0, step=0.0)],
                read_only=True,
            ),
        ).value
        loops: int = p(
            "loops", 1, ParameterDescriptor(description="passes over the source (0: forever)", read_only=True)
        ).value
        max_frames: int = p(
            "max_frames",
            0,
            ParameterDescriptor(
                description="stop after this many frames (0: no limit)",
                integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1, step=1)],
                read_only=True,
            ),
        ).value
        synthetic_frames: int = p(
            "synthetic_frames",
            300,
            ParameterDescriptor(description="length of a synthetic sequence", read_only=True),
        ).value
        self.encoding: str = p(
            "encoding", "bgr8", ParameterDescriptor(description="bgr8 | rgb8 | mono8 | bgra8 | rgba8")
        ).value
        self.frame_id: str = p("frame_id", "camera", ParameterDescriptor(description="header.frame_id")).value
        reconnects: int = p(
            "max_reconnects",
            -1,
            ParameterDescriptor(
                description="live source: reopen tries in a row after a loss before giving up (-1: forever)",
                read_only=True,
            ),
        ).value
        self.publisher = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.sent = 0
        self.done = False
        self.max_frames = max_frames
        self.live: LiveCapture | None = None
        if is_live_source(source):
            self._period = 1.0 / rate if rate > 0 else 0.0
            self._credit = 1.0  # token bucket for the cap: jitter around the cap costs no frames
            self._last = time.monotonic()
            self._guard = self.create_guard_condition(self._on_live_frame)
            self.live = open_live(
                source,
                max_reconnects=None if reconnects < 0 else reconnects,
                on_frame=self._guard.trigger,
            )
            self._timer = self.create_timer(0.5, self._watch_live)  # notices a stream failed for good
            cap = f"capped at {rate:g} Hz" if rate > 0 else "uncapped"
            self.get_logger().info(
                f"publishing live {source!r} at the device's rate ({cap}) as {self.encoding}"
            )
            return
        if rate <= 0:
            raise ValueError(f"rate must be > 0 for a non-live source ({source!r})")
        frames = iter_frames(source, loops=loops, synthetic_frames=synthetic_frames)
        self._frames = itertools.islice(frames, max_frames) if max_frames else frames
        self._timer = self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"publishing {source!r} at {rate:g} Hz as {self.encoding}")

    def _tick(self) -> None:
        frame = next(self._frames, None)
        if frame is None:
            self.done = True
            self._timer.cancel()
            self.get_logger().info(f"source finished after {self.sent} frames")
            return
        header = Header(frame_id=self.frame_id, stamp=self.get_clock().now().to_msg())
        self.publisher.publish(array_to_image(convert_bgr(frame, self.encoding), self.encoding, header))
        self.sent += 1

    def _on_live_frame(self) -> None:
        """The reader thread has a new frame: publish the newest once, unless over the cap."""
        assert self.live is not None
        if self.done:
            return
        frame = self.live.newest()
        if frame is None:
            return  # several triggers, one frame: already sent
        now = time.monotonic()
        if self._period:
            self._credit = min(1.5, self._credit + (now - self._last) / self._period)
            self._last = now
            if self._credit < 1.0:
                return  # over the cap: this frame is skipped, a newer one will come
            self._credit -= 1.0
        # The capture time on the node's clock (ROS time may be simulated): now minus its age.
        stamp = self.get_clock().now() - Duration(nanoseconds=int((now - frame.stamp) * 1e9))
        header = Header(frame_id=self.frame_id, stamp=stamp.to_msg())
        self.publisher.publish(array_to_image(convert_bgr(frame.image, self.encoding), self.encoding, header))
        self.sent += 1
        if self.max_frames and self.sent >= self.max_frames:
            self._finish_live(f"sent {self.sent} frames (max_frames)")

    def _watch_live(self) -> None:
        assert self.live is not None
        if self.live.state == "failed" and not self.done:
            self.get_logger().error(f"live source {self.live.source!r} failed: {self.live.error}")
            self._finish_live(f"source failed after {self.sent} frames")

    def _finish_live(self, why: str) -> None:
        assert self.live is not None
        self.done = True
        self._timer.cancel()
        self.live.close(wait=0.0)
        self.get_logger().info(why)

    def destroy_node(self) -> None:
        if self.live is not None:
            self.live.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    stop = signals.init(args)
    try:
        node = CameraSourceNode()
    except ValueError as exc:  # a source that cannot open, a bad rate: one clear line, no traceback
        rclpy.logging.get_logger("camera_source").error(str(exc))
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    try:
        while rclpy.ok() and not node.done and not stop.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
