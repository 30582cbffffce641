"""launch/orin.launch.py and x86.launch.py brought up by ros2 launch (where launch_pytest exists).

The development and CI machines have no `launch` (not on PyPI): these tests are marked
`launch_test` and skip there; on a ROS install they start the launch file with the package's
camera source and check that detections flow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.launch_test, pytest.mark.ros]
LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"

try:
    import launch
    import launch_pytest
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
except ImportError:  # pragma: no cover - skipped by the marker where launch is missing
    launch_pytest = None


def _description(name: str):
    return launch.LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_DIR / name)),
                launch_arguments={
                    "use_camera": "true",
                    "camera_source": "samples",
                    "image_topic": "/launch_test/image",
                }.items(),
            ),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


if launch_pytest is not None:

    @launch_pytest.fixture
    def x86_launch():
        return _description("x86.launch.py")

    @pytest.mark.launch(fixture=x86_launch)
    def test_x86_launch_publishes_detections():
        import rclpy
        from vision_msgs.msg import Detection2DArray

        from _ros import RELIABLE, spin_until

        rclpy.init()
        node = rclpy.create_node("launch_probe")
        got: list[Detection2DArray] = []
        node.create_subscription(Detection2DArray, "/detections", got.append, RELIABLE)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        try:
            assert spin_until(executor, lambda: len(got) >= 3, timeout=120)
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
else:

    def test_x86_launch_publishes_detections():
        pytest.skip("ROS 2 launch/launch_pytest is not installed")
