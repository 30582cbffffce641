# Source me: the environment for running yolov8_trt_ros from this checkout.
# Works for both setups made by scripts/setup.sh (ROS wheels in .venv, or a sourced distro).
_Y8_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$_Y8_ROOT/.venv/bin/python" && ( -z "${ROS_DISTRO:-}" || -n "${YOLOV8_TRT_ROS_WHEELS:-}" ) ]]; then
  # shellcheck disable=SC1091
  source "$_Y8_ROOT/.venv/bin/activate"
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
elif [[ -x "$_Y8_ROOT/.venv-ros/bin/python" && -n "${ROS_DISTRO:-}" ]]; then
  # Beside a sourced distro: the venv sees the distro's packages (--system-site-packages).
  # shellcheck disable=SC1091
  source "$_Y8_ROOT/.venv-ros/bin/activate"
fi
# .ws/install: the interface packages; .ws/ros-tools/install: composition_interfaces and this
# package's ament index entry (ros2 launch), where scripts/setup.sh built the ROS tools from source.
for _Y8_INSTALL in "$_Y8_ROOT/.ws/ros-tools/install" "$_Y8_ROOT/.ws/install"; do
  [[ -d "$_Y8_INSTALL" ]] || continue
  # colcon's setup hooks need the ROS shell helpers, which the wheels lack: set the three
  # variables the generated interface packages need by hand.
  export AMENT_PREFIX_PATH="$_Y8_INSTALL${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  for _d in "$_Y8_INSTALL"/lib/python3*/site-packages "$_Y8_INSTALL"/local/lib/python3*/dist-packages; do
    [[ -d "$_d" ]] && export PYTHONPATH="$_d${PYTHONPATH:+:$PYTHONPATH}"
  done
  export LD_LIBRARY_PATH="$_Y8_INSTALL/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export PYTHONPATH="$_Y8_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Keep DDS discovery on this host unless the user asks otherwise (robots override this).
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Large shared-memory segments so same-host camera images are not fragmented over UDP (see the file).
if [[ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$_Y8_ROOT/config/fastdds.xml"
  # Fast DDS 2.x (Humble, Iron) reads the older name; newer ones warn that it is deprecated.
  [[ "${ROS_DISTRO:-}" == humble || "${ROS_DISTRO:-}" == iron ]] \
    && export FASTRTPS_DEFAULT_PROFILES_FILE="$FASTDDS_DEFAULT_PROFILES_FILE"
fi
export YOLO_OFFLINE=1
unset _Y8_ROOT _Y8_INSTALL _d
