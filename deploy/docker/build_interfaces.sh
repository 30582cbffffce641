#!/usr/bin/env bash
# colcon build of the interface packages against the PyPI ROS wheels in VENV, installed in WS.
# The same steps as scripts/setup.sh's wheels path, without the development tools or the model.
# Usage: build_interfaces.sh VENV WS   (run from the source root)
set -euo pipefail
VENV="$1"
WS="$2"
PY="$VENV/bin/python"
# The wheels' CMake exports hard-code the manylinux image's Python and NumPy include paths.
PYINC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NPINC="$("$PY" -c 'import numpy; print(numpy.get_include())')"
grep -rl "/opt/python/cp3" "$VENV/share" --include='*.cmake' 2>/dev/null | xargs -r sed -i \
  -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$PYINC#g" \
  -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$NPINC#g"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
mkdir -p "$WS"
colcon --log-base "$WS/log" build --base-paths "$PWD/ros_deps/vision_msgs" "$PWD/yolov8_trt_msgs" \
  --build-base "$WS/build" --install-base "$WS/install" --merge-install \
  --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF
rm -rf "$WS/build" "$WS/log"
