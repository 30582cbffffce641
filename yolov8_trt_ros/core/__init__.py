"""The ROS-free core: preprocess, backends, postprocess, filters, tracking, profiling.

Nothing under this package imports rclpy (a test checks it), so the core runs in scripts,
benchmarks and other frameworks as it runs in the node.
"""
