"""The launch description shared by launch/orin.launch.py and launch/x86.launch.py.

Imported only by launch files (``launch`` and ``launch_ros`` come with a ROS distro). Uses
lifecycle events rather than ``LifecycleNode(autostart=...)`` so it runs on Humble too.
"""

from __future__ import annotations

import os

import launch
import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState


def generate(config_name: str) -> launch.LaunchDescription:
    share = get_package_share_directory("yolov8_trt_ros")
    args = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", config_name)),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw"),
        DeclareLaunchArgument(
            "use_camera",
            default_value="false",
            description="start the package's camera source instead of a driver",
        ),
        DeclareLaunchArgument("camera_source", default_value="samples"),
        DeclareLaunchArgument("use_rviz", default_value="false"),
    ]
    detector = LifecycleNode(
        package="yolov8_trt_ros",
        executable="yolov8_trt_node",
        name="yolov8_trt_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file")],
        remappings=[("image", LaunchConfiguration("image_topic"))],
        output="screen",
    )
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(detector),
            transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE,
        )
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=detector,
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(detector),
                        transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE,
                    )
                )
            ],
        )
    )
    camera = Node(
        package="yolov8_trt_ros",
        executable="camera_source",
        name="camera_source",
        namespace=LaunchConfiguration("namespace"),
        parameters=[{"source": LaunchConfiguration("camera_source"), "rate": 30.0, "loops": 0}],
        remappings=[("image", LaunchConfiguration("image_topic"))],
        condition=IfCondition(LaunchConfiguration("use_camera")),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "config", "yolov8.rviz")],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return launch.LaunchDescription([*args, activate_when_configured, detector, configure, camera, rviz])
