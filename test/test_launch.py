"""launch/orin.launch.py and x86.launch.py brought up by launch_pytest, as ``ros2 launch`` would.

Needs `launch`/`launch_pytest` (a ROS distro, or scripts/setup.sh --dev beside ../shared/ros-src)
and runs with their pytest plugins (scripts/run_tests.sh runs this file on its own for that);
elsewhere it skips with the reason. The camera source feeds the node at 5 Hz so that the CPU
model keeps up on a small CI machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from _ros import ROSOUT_QOS, GraphClient, ros_tools_missing

pytestmark = [pytest.mark.launch_test, pytest.mark.ros]
REPO = Path(__file__).resolve().parents[1]
LAUNCH_DIR = REPO / "launch"
MISSING = ros_tools_missing()

try:
    import launch_pytest
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description import LaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
except ImportError:  # skipped by the launch_test marker where launch is missing
    launch_pytest = None


def _description(name: str, **arguments: str) -> LaunchDescription:
    args = {"use_camera": "true", "camera_source": "synthetic:0", "camera_rate": "5.0", **arguments}
    return LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_DIR / name)), launch_arguments=args.items()
            ),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


def _rviz_image_topics() -> dict[str, str]:
    """Topic -> reliability of every image display in config/yolov8.rviz."""
    rviz = yaml.safe_load((REPO / "config" / "yolov8.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    return {
        d["Topic"]["Value"]: d["Topic"]["Reliability Policy"]
        for d in displays
        if d["Class"] == "rviz_default_plugins/Image"
    }


if launch_pytest is not None and MISSING is None:
    from rcl_interfaces.msg import Log
    from rclpy.qos import ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray

    from yolov8_trt_ros.core.backends import factory

    @launch_pytest.fixture
    def x86_launch():
        # The default image topic (/camera/image_raw), which config/yolov8.rviz shows.
        return _description("x86.launch.py")

    @launch_pytest.fixture
    def orin_cpu_in_namespace():
        return _description("orin.launch.py", backend="onnxruntime", namespace="robot1")

    @launch_pytest.fixture
    def orin_as_shipped():
        return _description("orin.launch.py")

    @pytest.mark.launch(fixture=x86_launch)
    def test_x86_launch_publishes_detections_on_the_topics_rviz_shows():
        client = GraphClient("launch_probe")
        try:
            got = client.record(Detection2DArray, "/detections")
            assert client.wait(lambda: len(got) >= 3, timeout=120), "no detections from x86.launch.py"
            assert client.state("/yolov8_trt_node") == "active"
            # rviz shows every image the node publishes, and each of its image displays is
            # published, as an Image, with a QoS the display's subscription accepts (a reliable
            # reader never hears a best-effort writer).
            shown = _rviz_image_topics()
            published = client.node.get_publisher_names_and_types_by_node("yolov8_trt_node", "/")
            images = {topic for topic, types in published if "sensor_msgs/msg/Image" in types}
            assert images and images <= set(shown), f"the node publishes {images}; rviz shows {shown}"
            for topic, reliability in shown.items():
                infos = client.node.get_publishers_info_by_topic(topic)
                assert infos, f"config/yolov8.rviz shows {topic}, which nothing publishes"
                assert {i.topic_type for i in infos} == {"sensor_msgs/msg/Image"}, topic
                if reliability == "Reliable":
                    assert all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos), (
                        f"rviz reads {topic} reliably but it is published best-effort"
                    )
        finally:
            client.close()

    @pytest.mark.launch(fixture=orin_cpu_in_namespace)
    def test_orin_launch_with_cpu_backend_in_a_namespace_uses_orin_yaml():
        client = GraphClient("launch_probe")
        try:
            got = client.record(Detection2DArray, "/robot1/detections")
            assert client.wait(lambda: len(got) >= 3, timeout=120), "no detections on /robot1/detections"
            node = "/robot1/yolov8_trt_node"
            assert client.state(node) == "active"
            # config/orin.yaml's values, not the built-in defaults (300 detections, fp16,
            # no calibration cache): the /**/ key reaches a node in a namespace.
            values = client.parameters(node, ["backend", "max_detections", "precision", "calibration_cache"])
            assert values == {
                "backend": "onnxruntime",  # backend:= wins over the file's tensorrt
                "max_detections": 100,
                "precision": "int8",
                "calibration_cache": "calibration/yolov8n.calib",
            }
        finally:
            client.close()

    @pytest.mark.skipif(
        factory.available_backends()["tensorrt"] is None, reason="TensorRT works here: the node configures"
    )
    @pytest.mark.launch(fixture=orin_as_shipped)
    def test_orin_launch_without_tensorrt_leaves_the_node_unconfigured_with_the_reason():
        client = GraphClient("launch_probe")
        try:
            logs = client.record(Log, "/rosout", ROSOUT_QOS)

            def failed() -> list[str]:
                return [m.msg for m in logs if m.name == "yolov8_trt_node" and m.level >= Log.ERROR]

            assert client.wait(lambda: bool(failed()), timeout=120), "no error from the node"
            assert "configure failed" in failed()[0] and "tensorrt" in failed()[0].lower(), failed()
            assert client.state("/yolov8_trt_node") == "unconfigured"
            # Still alive and answering, and it never fell back to another backend.
            assert client.parameters("/yolov8_trt_node", ["backend"]) == {"backend": "tensorrt"}
            detections = client.record(Detection2DArray, "/detections")
            client.spin(2.0)
            assert detections == [], "camera frames were detected by an unconfigured node"
        finally:
            client.close()

else:

    def test_launch_files():
        pytest.skip(MISSING or "ROS 2 launch/launch_pytest is not installed")
