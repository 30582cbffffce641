"""``python -m yolov8_trt_ros.deploy``: see :mod:`yolov8_trt_ros.deploy.cli`."""

import sys

from yolov8_trt_ros.deploy.cli import main

sys.exit(main())
