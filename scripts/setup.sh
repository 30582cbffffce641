#!/usr/bin/env bash
# Set up yolov8_trt_ros on this machine; idempotent, and quick when nothing changed.
#
# Two paths:
#  * a ROS 2 distro is sourced (ROS_DISTRO set, e.g. a Jetson with JetPack + Humble/Jazzy):
#    use it; make .venv-ros with --system-site-packages (it sees rclpy and the distro's
#    messages, and pip never touches the system Python: PEP 668), install the runtime needs
#    (requirements/runtime.txt; --dev adds the tools of requirements/dev.txt) and colcon-build
#    the workspace; vision_msgs comes from the distro.
#  * no ROS: make .venv with ROS 2 Kilted from the PyPI ros-* wheels, build the vision_msgs
#    stand-in (the wheels lack vision_msgs) and yolov8_trt_msgs with colcon, install the
#    package editable into the venv, with the development tools.
# Without a distro, where ../shared/ros-src exists (this project's development and CI machines;
# YOLOV8_TRT_ROS_SRC names another folder), also the ROS 2 tools the wheels lack: ros2 launch,
# ros2 topic/lifecycle/param, launch_pytest (their tests skip elsewhere).
# Then prepare the model (scripts/prepare_model.sh).
#
# Usage: scripts/setup.sh [--weights PATH.pt] [--dev]   (default: the project's trained test model)
# Afterwards: source scripts/env.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WEIGHTS=""
DEV=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --weights) WEIGHTS="$2"; shift 2 ;;
    --dev) DEV=1; shift ;;
    *) echo "setup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
WS="$ROOT/.ws"
mkdir -p "$WS"

if [[ -n "${ROS_DISTRO:-}" && -z "${YOLOV8_TRT_ROS_WHEELS:-}" ]]; then
  MODE=system
  VENV="$ROOT/.venv-ros"
  VENV_ARGS=(--system-site-packages)
  log "using the sourced ROS 2 distro: $ROS_DISTRO"
else
  MODE=wheels
  VENV="$ROOT/.venv"
  VENV_ARGS=()
  DEV=1
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "${VENV_ARGS[@]}" "$VENV"
fi
PY="$VENV/bin/python"
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# --- Python packages -------------------------------------------------------------------
REQ_ARGS=(-r requirements/runtime.txt)
((DEV)) && REQ_ARGS=(-r requirements/dev.txt)
[[ $MODE == wheels ]] && REQ_ARGS+=(-r requirements/ros.txt)
REQ_HASH="$MODE-$DEV-$(hash_of requirements/*.txt)"
STAMP="$(cat "$WS/.pip-stamp" 2>/dev/null || true)"
# An install with the development tools also satisfies one without them.
if [[ "$STAMP" != "$REQ_HASH" && "$STAMP" != "${REQ_HASH/#$MODE-0-/$MODE-1-}" ]]; then
  log "installing Python packages (${REQ_ARGS[*]})"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q "${REQ_ARGS[@]}"
  # tensorrt-stubs (mypy of the TensorRT backend) only with the development tools.
  ((DEV)) && "$PY" -m pip install -q --no-deps -r requirements/nodeps.txt
  echo "$REQ_HASH" > "$WS/.pip-stamp"
else
  log "Python packages up to date"
fi

# --- colcon build of the interface packages --------------------------------------------
PKG_PATHS=(yolov8_trt_msgs)
if [[ $MODE == wheels ]]; then
  SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # The wheels were built in a manylinux image and their CMake exports hard-code its Python
  # and NumPy include directories; point them at this venv's (once, it is idempotent).
  PYINC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  NPINC="$("$PY" -c 'import numpy; print(numpy.get_include())')"
  mapfile -t CMAKE_FILES < <(grep -rl "/opt/python/cp3" "$VENV/share" --include='*.cmake' 2>/dev/null || true)
  if ((${#CMAKE_FILES[@]})); then
    log "patching ${#CMAKE_FILES[@]} CMake export files of the ROS wheels"
    sed -i -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$PYINC#g" \
      -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$NPINC#g" \
      "${CMAKE_FILES[@]}"
  fi
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
# The stand-in is built where no vision_msgs exists, and kept once built here (it is then ours).
if [[ -f "$WS/install/share/vision_msgs/package.xml" ]] || ! "$PY" -c 'import vision_msgs.msg' 2>/dev/null; then
  PKG_PATHS=(ros_deps/vision_msgs "${PKG_PATHS[@]}")
fi
SRC_HASH="$(hash_of $(find "${PKG_PATHS[@]}" -type f | sort))"
if [[ "$(cat "$WS/.colcon-stamp" 2>/dev/null)" != "$SRC_HASH" || ! -d "$WS/install" ]]; then
  log "colcon build: ${PKG_PATHS[*]}"
  (cd "$WS" && colcon --log-base "$WS/log" build --base-paths "${PKG_PATHS[@]/#/$ROOT/}" \
      --build-base "$WS/build" --install-base "$WS/install" --merge-install \
      --event-handlers console_direct- \
      --cmake-args -DPython3_EXECUTABLE="$(command -v "$PY")" -DBUILD_TESTING=OFF) \
    > "$WS/colcon.log" 2>&1 || { tail -50 "$WS/colcon.log"; log "colcon build failed (log: $WS/colcon.log)"; exit 1; }
  echo "$SRC_HASH" > "$WS/.colcon-stamp"
else
  log "interface packages up to date"
fi

# --- the Python package itself ---------------------------------------------------------
if [[ $MODE == wheels ]]; then
  if [[ ! -f "$SITE/yolov8_trt_ros.pth" && -z "$(ls "$SITE" | grep -i '__editable__.*yolov8_trt_ros' || true)" ]]; then
    log "installing yolov8_trt_ros into the venv (editable)"
    "$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
  fi
else
  log "colcon build: yolov8_trt_ros (ament_python)"
  (cd "$WS" && colcon --log-base "$WS/log" build --base-paths "$ROOT" --packages-select yolov8_trt_ros \
      --build-base "$WS/build" --install-base "$WS/install" --merge-install --symlink-install) \
    >> "$WS/colcon.log" 2>&1 || { tail -50 "$WS/colcon.log"; exit 1; }
fi

# --- ROS 2 command-line tools (ros2 launch/topic/lifecycle/param, launch_pytest) --------
# The PyPI wheels lack them; a sourced distro has them. Where ../shared/ros-src holds their
# sources (this project's development and CI machines), install them into the venv and make
# an ament prefix with composition_interfaces (launch_ros imports it) and this package's
# index entry (ros2 launch finds launch files and executables through it), which scripts/env.sh adds.
ROS_SRC="${YOLOV8_TRT_ROS_SRC:-$ROOT/../shared/ros-src}"
TOOLS="$WS/ros-tools"
if [[ $MODE == system ]]; then
  log "ROS 2 tools (ros2 launch, launch_pytest): from the sourced distro"
elif [[ ! -d "$ROS_SRC" ]]; then
  log "no $ROS_SRC: ros2 launch/topic/lifecycle/param and launch_pytest not installed; their tests skip"
else
  TOOL_PKGS=(launch launch_xml launch_yaml launch_testing launch_pytest launch_ros launch_testing_ros
    ros2launch rosidl_runtime_py ros2cli ros2topic ros2node ros2param ros2lifecycle ros2service
    ros2pkg ros2interface)
  # Sources (not stale build output in them), this checkout (the index links point here), the venv.
  TOOLS_HASH="$(cd "$ROS_SRC" && find "${TOOL_PKGS[@]}" composition_interfaces -type f \
    -not -path '*/build/*' -not -path '*.egg-info/*' | sort | xargs sha256sum | sha256sum | cut -c1-16)"
  TOOLS_HASH="$TOOLS_HASH-$( (echo "$ROOT $VENV"; ls launch config) | sha256sum | cut -c1-16)"
  if [[ "$(cat "$TOOLS/.stamp" 2>/dev/null)" == "$TOOLS_HASH" && -x "$VENV/bin/ros2" ]]; then
    log "ROS 2 tools up to date"
  else
    log "installing the ROS 2 tools of $ROS_SRC"
    # The source folder may be read-only (CI) and building writes build/ and *.egg-info into
    # it: build from a copy.
    TMP_SRC="$(mktemp -d)"
    trap 'rm -rf "$TMP_SRC"' EXIT
    for p in "${TOOL_PKGS[@]}" composition_interfaces; do
      cp -r "$ROS_SRC/$p" "$TMP_SRC/$p"
      chmod -R u+w "$TMP_SRC/$p"
      rm -rf "$TMP_SRC/$p/build" "$TMP_SRC/$p"/*.egg-info
    done
    "$PY" -m pip install --no-deps --no-build-isolation "${TOOL_PKGS[@]/#/$TMP_SRC/}" \
      > "$WS/ros-tools-pip.log" 2>&1 \
      || { tail -30 "$WS/ros-tools-pip.log"; log "pip install of the ROS 2 tools failed"; exit 1; }
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS"
    (cd "$TOOLS" && colcon --log-base "$TOOLS/log" build --base-paths "$TMP_SRC/composition_interfaces" \
        --build-base "$TOOLS/build" --install-base "$TOOLS/install" --merge-install \
        --event-handlers console_direct- \
        --cmake-args -DPython3_EXECUTABLE="$(command -v "$PY")" -DBUILD_TESTING=OFF) \
      > "$TOOLS/colcon.log" 2>&1 \
      || { tail -50 "$TOOLS/colcon.log"; log "colcon build failed (log: $TOOLS/colcon.log)"; exit 1; }
    # yolov8_trt_ros in the ament index, as its colcon install would be (setup.py data_files),
    # but linked to this checkout so that edits to launch/ and config/ need no rebuild (new files
    # there change the stamp); its executables are the console scripts of the editable install
    # above. (A colcon build of the package would write build output into the checkout.)
    SHARE="$TOOLS/install/share"
    mkdir -p "$SHARE/ament_index/resource_index/packages" "$SHARE/yolov8_trt_ros" \
      "$TOOLS/install/lib/yolov8_trt_ros"
    touch "$SHARE/ament_index/resource_index/packages/yolov8_trt_ros"
    ln -sfn "$ROOT/package.xml" "$SHARE/yolov8_trt_ros/package.xml"
    # One link per file (ros2 launch searches the share folder without following folder links).
    mkdir -p "$SHARE/yolov8_trt_ros/launch" "$SHARE/yolov8_trt_ros/config"
    ln -sf "$ROOT"/launch/*.launch.py "$SHARE/yolov8_trt_ros/launch/"
    ln -sf "$ROOT"/config/*.yaml "$ROOT"/config/*.rviz "$SHARE/yolov8_trt_ros/config/"
    for exe in yolov8_trt_node camera_source bringup; do
      ln -sfn "$VENV/bin/$exe" "$TOOLS/install/lib/yolov8_trt_ros/$exe"
    done
    rm -rf "$TMP_SRC"
    trap - EXIT
    echo "$TOOLS_HASH" > "$TOOLS/.stamp"
  fi
fi

# --- model -----------------------------------------------------------------------------
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
# The tracker's numba kernels compile on first use (tens of seconds) into a disk cache; do it
# here, once per change of their sources, rather than in the node's first configure or test.
TRACKER_HASH="$(hash_of yolov8_trt_ros/core/tracking/*.py)-$(python -c 'import numba; print(numba.__version__)')"
if [[ "$(cat "$WS/.tracker-stamp" 2>/dev/null)" != "$TRACKER_HASH" ]]; then
  log "compiling the tracker's kernels (numba cache)"
  python -c 'from yolov8_trt_ros.core.tracking import ByteTracker; ByteTracker()'
  echo "$TRACKER_HASH" > "$WS/.tracker-stamp"
fi
bash "$ROOT/scripts/prepare_model.sh" ${WEIGHTS:+--weights "$WEIGHTS"}
log "ready: source scripts/env.sh"
