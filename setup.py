"""ament_python package yolov8_trt_ros (the ROS node and the ROS-free core)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "yolov8_trt_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["core/kernels/*.cu"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="yolov8_trt_ros maintainers",
    maintainer_email="maintainers@yolov8-trt-ros.dev",
    description="YOLOv8 + TensorRT + ByteTrack lifecycle node for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"yolov8_trt_node = {PACKAGE}.ros.detector_node:main",
            f"camera_source = {PACKAGE}.ros.camera_source:main",
            f"bringup = {PACKAGE}.ros.bringup:main",
            f"yolov8_detect = {PACKAGE}.detect:main",
        ],
    },
)
