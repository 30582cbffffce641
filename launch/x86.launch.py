"""x86 with or without NVIDIA: ros2 launch yolov8_trt_ros x86.launch.py [image_topic:=...]"""

from yolov8_trt_ros.ros.launch_common import generate


def generate_launch_description():
    return generate("x86.yaml")
