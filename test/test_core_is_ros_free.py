"""The core must run without ROS: importing all of it must not pull in rclpy or ROS messages."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import yolov8_trt_ros.core as core
skip = "yolov8_trt_ros.core.backends.tensorrt"  # the backend and its package need TensorRT: mypy checks them
for mod in pkgutil.walk_packages(core.__path__, "yolov8_trt_ros.core."):
    if not mod.name.startswith(skip):
        importlib.import_module(mod.name)
ros = sorted(m for m in sys.modules if m.split(".")[0] in {"rclpy", "sensor_msgs", "vision_msgs",
                                                            "yolov8_trt_msgs", "rosidl_runtime_py"})
print(len([m for m in sys.modules if m.startswith("yolov8_trt_ros.core")]), ros)
"""


def test_core_imports_no_ros():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout
    n_modules, ros_modules = out.split(" ", 1)
    assert int(n_modules) >= 10, "the walk should reach every core module"
    assert ros_modules.strip() == "[]"
