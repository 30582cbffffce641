# Source me on the GPU machine: what every node-over-DDS benchmark needs before it runs.
# The bench wheels (ultralytics for .pt models), numba for the tracker (device_numba.sh), rclpy
# and the interface packages (device_ros_env.sh); the GPU's name and clocks into $OUT/env.log.
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/bench/*.whl || return 1
export PYTHONPATH=/tmp/site
# shellcheck disable=SC1091
source benchmarks/device_numba.sh
# shellcheck disable=SC1091
source benchmarks/device_ros_env.sh || return 1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/env.log"
