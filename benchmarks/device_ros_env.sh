# Source me on the GPU machine: rclpy and the interface packages from carried cp312 wheels.
#
# The recipe of ../shared/docs/ros-on-the-gpu-machine.md as one step: the ros-* wheels (fetched
# here with `pip download --python-version 3.12 ... -r requirements/ros.txt`, the image's own
# numpy/pyyaml/pytest left out) installed with a prefix, their shared libraries and CMake
# exports fixed up, vision_msgs + yolov8_trt_msgs built with colcon. About a minute.
#
# The wheels travel as they are (WHEELS, a folder) or, to leave room in a call's 64 MB, unpacked
# and xz-packed (.dev_ros/ros312.tar.xz: one folder per wheel, 24 MB instead of 47 MB), zipped
# back into wheels here.
#
#   WHEELS=.whl/ros source benchmarks/device_ros_env.sh
_repo="$(pwd)"
_site=/tmp/ros/lib/python3.12/site-packages
if [[ -z "${WHEELS:-}" && -f .dev_ros/ros312.tar.xz ]]; then
    mkdir -p /tmp/ros_unpacked /tmp/ros_wheels && tar -xJf .dev_ros/ros312.tar.xz -C /tmp/ros_unpacked
    python3 - <<'PY'
import pathlib, shutil
for d in pathlib.Path("/tmp/ros_unpacked").iterdir():
    if d.is_dir():
        shutil.make_archive(f"/tmp/ros_wheels/{d.name}", "zip", d)
        pathlib.Path(f"/tmp/ros_wheels/{d.name}.zip").rename(f"/tmp/ros_wheels/{d.name}.whl")
PY
    WHEELS=/tmp/ros_wheels
fi
python3 -m pip install -q --no-index --no-deps --no-compile --prefix /tmp/ros "${WHEELS:-.whl/ros}"/*.whl || return 1
export AMENT_PREFIX_PATH=/tmp/ros CMAKE_PREFIX_PATH=/tmp/ros
export PYTHONPATH="$_site${PYTHONPATH:+:$PYTHONPATH}"
_ld=/tmp/ros/lib
for _d in "$_site"/ros_*.libs; do _ld="$_ld:$_d"; done
export LD_LIBRARY_PATH="$_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
_pyinc="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
_npinc="$(python3 -c 'import numpy; print(numpy.get_include())')"
grep -rl "/opt/python/cp3" /tmp/ros/share --include='*.cmake' | xargs -r sed -i \
    -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$_pyinc#g" \
    -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$_npinc#g"
(cd /tmp && python3 -c 'import sys; from colcon_core.command import main; sys.exit(main())' \
    --log-base /tmp/ws/log build --merge-install --base-paths "$_repo/ros_deps/vision_msgs" "$_repo/yolov8_trt_msgs" \
    --build-base /tmp/ws/build --install-base /tmp/ws/install --event-handlers console_direct- \
    --cmake-args -DPython3_EXECUTABLE="$(command -v python3)" -DBUILD_TESTING=OFF) > /tmp/colcon.log 2>&1 \
    || { tail -40 /tmp/colcon.log; return 1; }
export AMENT_PREFIX_PATH="/tmp/ws/install:$AMENT_PREFIX_PATH"
export LD_LIBRARY_PATH="/tmp/ws/install/lib:$LD_LIBRARY_PATH"
for _d in /tmp/ws/install/lib/python3.12/site-packages /tmp/ws/install/local/lib/python3.12/dist-packages; do
    [[ -d "$_d" ]] && export PYTHONPATH="$_d:$PYTHONPATH"
done
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="$_repo/config/fastdds.xml"
python3 -c 'import rclpy, vision_msgs.msg, yolov8_trt_msgs.msg; print("rclpy + interfaces ok")'
unset _repo _site _ld _d _pyinc _npinc
