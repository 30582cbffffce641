"""The launch description shared by launch/orin.launch.py and launch/x86.launch.py.

Imported only by launch files (``launch`` and ``launch_ros`` come with a ROS distro). Uses
lifecycle events rather than ``LifecycleNode(autostart=...)`` so it runs on Humble too.

``params_file:=`` replaces the board's YAML and ``backend:=`` overrides the backend it names, so
that one launch file serves a robot (its YAML, TensorRT, and an unconfigured node with a clear
error where TensorRT is broken, never a silent CPU fall-back) and a test or a bench without a GPU
(``backend:=onnxruntime``).
"""

from __future__ import annotations

import os

import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.action import Action
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue

BACKENDS = ("auto", "tensorrt", "cuda", "onnxruntime")


def generate(config_name: str) -> LaunchDescription:
    share = get_package_share_directory("yolov8_trt_ros")
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", config_name),
            description="the detector's parameters (ROS 2 parameters YAML)",
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="",
            description="override the params file's backend: " + " | ".join(BACKENDS) + " (empty: keep it)",
        ),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw"),
        DeclareLaunchArgument(
            "use_camera",
            default_value="false",
            description="start the package's camera source instead of a driver",
        ),
        DeclareLaunchArgument("camera_source", default_value="samples"),
        DeclareLaunchArgument("camera_rate", default_value="30.0", description="camera source frames/s"),
        DeclareLaunchArgument("use_rviz", default_value="false"),
    ]
    camera = Node(
        package="yolov8_trt_ros",
        executable="camera_source",
        name="camera_source",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            {
                "source": LaunchConfiguration("camera_source"),
                "rate": ParameterValue(LaunchConfiguration("camera_rate"), value_type=float),
                "loops": 0,
            }
        ],
        remappings=[("image", LaunchConfiguration("image_topic"))],
        condition=IfCondition(LaunchConfiguration("use_camera")),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "config", "yolov8.rviz")],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription([*args, OpaqueFunction(function=_detector), camera, rviz])


def _detector(context: LaunchContext) -> list[Action]:
    """The lifecycle node and the events that configure and then activate it.

    Built once the arguments are known: an empty ``backend`` must add no override at all (a
    parameter dict cannot be left out by a substitution).
    """
    backend = LaunchConfiguration("backend").perform(context).strip()
    if backend and backend not in BACKENDS:
        raise ValueError(f"backend:={backend} is not one of {', '.join(BACKENDS)}")
    parameters: list = [LaunchConfiguration("params_file")]
    if backend:
        parameters.append({"backend": backend})  # later entries win over the file
    detector = LifecycleNode(
        package="yolov8_trt_ros",
        executable="yolov8_trt_node",
        name="yolov8_trt_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        # Remapping rules match whole names: image/compressed needs its own, or a node with
        # compressed_input listens on <namespace>/image/compressed whatever image_topic says.
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("image/compressed", [LaunchConfiguration("image_topic"), "/compressed"]),
        ],
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
            # Only after configuring: on every arrival at inactive, a `ros2 lifecycle set
            # deactivate` would be undone at once.
            start_state="configuring",
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
    return [activate_when_configured, detector, configure]
