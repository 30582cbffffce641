# Sourced by the unit's ExecStart (and by operators: bash --rcfile this -i): the ROS distro, if the
# robot has one, then the checkout's environment (its venv, the interface packages, DDS profile).
# ROS_DISTRO_SETUP: the distro's setup file (default Humble's); empty with the PyPI ROS wheels.
: "${ROS_DISTRO_SETUP=/opt/ros/humble/setup.bash}"
if [[ -n "$ROS_DISTRO_SETUP" && -f "$ROS_DISTRO_SETUP" ]]; then
  # shellcheck disable=SC1090
  source "$ROS_DISTRO_SETUP"
fi
# shellcheck disable=SC1091
source "${YOLOV8_HOME:-/opt/yolov8_trt_ros}/scripts/env.sh"
