"""``python -m yolov8_trt_ros.health``: is the detector healthy? Exit 0/1 and one line.

``check`` asks the node over ROS (lifecycle state, diagnostics); ``jetson`` reads what a field
engineer checks first on a Jetson (temperatures, throttling, power mode, pinned clocks) from
sysfs, without ROS.
"""
