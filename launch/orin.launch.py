"""Jetson AGX Orin: ros2 launch yolov8_trt_ros orin.launch.py [image_topic:=...] [use_rviz:=true]"""

from yolov8_trt_ros.ros.launch_common import generate


def generate_launch_description():
    return generate("orin.yaml")
