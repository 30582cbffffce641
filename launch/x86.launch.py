"""x86 with or without NVIDIA: ros2 launch yolov8_trt_ros x86.launch.py [image_topic:=...]

[params_file:=my.yaml] [backend:=auto|tensorrt|cuda|onnxruntime] [namespace:=robot1]
[use_camera:=true camera_source:=samples camera_rate:=30.0] [use_rviz:=true]
"""

from yolov8_trt_ros.ros.launch_common import generate


def generate_launch_description():
    return generate("x86.yaml")
