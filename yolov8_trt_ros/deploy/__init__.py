"""Shipping models to robots: signed bundles, atomic installs with a health gate, rollback.

One file per idea: ``manifest`` (what a bundle holds), ``signing`` (Ed25519 keys),
``bundle`` (create and read the archive), ``store`` (the robot's model directory and its atomic
switch), ``smoke`` (expected detections), ``gate`` (the new model through the ROS-free
pipeline before the switch), ``installer`` (verify → stage → gate → switch) and ``cli``
(``python -m yolov8_trt_ros.deploy``). Nothing here imports rclpy: the installer runs beside
the node, which only watches the store (``ros/model_update.py``).
"""
