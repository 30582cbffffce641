"""Jetson AGX Orin: ros2 launch yolov8_trt_ros orin.launch.py [image_topic:=...] [use_rviz:=true]

[params_file:=my.yaml] [backend:=onnxruntime] [namespace:=robot1] [use_camera:=true camera_source:=...]
Without a working TensorRT the node stays unconfigured with the error in its log (on a robot a
silent CPU fall-back would hide a broken install); ``backend:=`` chooses another on purpose.
"""

from yolov8_trt_ros.ros.launch_common import generate


def generate_launch_description():
    return generate("orin.yaml")
