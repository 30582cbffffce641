#!/usr/bin/env bash
# Source the ROS distro and the interface workspace, then run the command (Jetson image).
set -eo pipefail
# shellcheck disable=SC1090
source "/opt/ros/$ROS_DISTRO/setup.bash"
# shellcheck disable=SC1091
source /opt/ws/install/setup.bash
exec "$@"
