"""A camera stand-in: publishes frames of a video, an image folder or generated scenes at a set rate.

Used by the demo, the bring-up without a real camera and the throughput scripts; on a robot
the image topic comes from the camera driver instead.
"""

from __future__ import annotations

import itertools
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from yolov8_trt_ros.core.sources import convert_bgr, iter_frames
from yolov8_trt_ros.ros import signals
from yolov8_trt_ros.ros.conversions import array_to_image


class CameraSourceNode(Node):
    """Publishes ``image`` (sensor-data QoS) from ``source`` at ``rate`` Hz; ``done`` when finished."""

    def __init__(self, node_name: str = "camera_source", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self.declare_parameter
        source = p(
            "source",
            "samples",
            ParameterDescriptor(
                description="a video, an image folder or file, 'samples' or 'synthetic[:seed]'",
                read_only=True,
            ),
        ).value
        rate = p(
            "rate",
            30.0,
            ParameterDescriptor(
                description="frames per second",
                floating_point_range=[FloatingPointRange(from_value=0.1, to_value=10000.0, step=0.0)],
                read_only=True,
            ),
        ).value
        loops = p(
            "loops", 1, ParameterDescriptor(description="passes over the source (0: forever)", read_only=True)
        ).value
        max_frames = p(
            "max_frames",
            0,
            ParameterDescriptor(
                description="stop after this many frames (0: no limit)",
                integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1, step=1)],
                read_only=True,
            ),
        ).value
        synthetic_frames = p(
            "synthetic_frames",
            300,
            ParameterDescriptor(description="length of a synthetic sequence", read_only=True),
        ).value
        self.encoding = p(
            "encoding", "bgr8", ParameterDescriptor(description="bgr8 | rgb8 | mono8 | bgra8 | rgba8")
        ).value
        self.frame_id = p("frame_id", "camera", ParameterDescriptor(description="header.frame_id")).value
        frames = iter_frames(source, loops=loops, synthetic_frames=synthetic_frames)
        self._frames = itertools.islice(frames, max_frames) if max_frames else frames
        self.publisher = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.sent = 0
        self.done = False
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


def main(args: list[str] | None = None) -> None:
    stop = signals.init(args)
    node = CameraSourceNode()
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
