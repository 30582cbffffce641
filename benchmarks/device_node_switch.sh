#!/usr/bin/env bash
# GPU machine: does the GIL hand-over interval limit the node when flooded? benchmarks/node_rate.py
# twice per round, alternating: Python's default switch interval (5 ms) and 0.1 ms
# (sys.setswitchinterval in a sitecustomize put first on PYTHONPATH, so every process of the
# run gets it: detector, camera publishers, listener).
#
#   bash benchmarks/device_node_switch.sh     # carry .dev_ros, .whl/bench
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/switch
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/bench/*.whl || exit 1
export PYTHONPATH=/tmp/site
# shellcheck disable=SC1091
source benchmarks/device_numba.sh
# shellcheck disable=SC1091
source benchmarks/device_ros_env.sh || exit 1
echo "import sys; sys.setswitchinterval(${INTERVAL_S:-0.0001})" > /tmp/switch/sitecustomize.py
ARGS=(--backend cuda --precision fp16 --model "$PWD/models/test/yolov8n_synth.pt" --seconds "${SECONDS_PER_PHASE:-3}"
      --entries detector_node --sizes 640x480,1920x1080 --rates "${RATES:-240,1000}" --cameras 1 --pipeline-iters 150)
for round in 1 2; do
    timeout 100 python3 benchmarks/node_rate.py "${ARGS[@]}" --json "$OUT/switch_default_$round.json" 2>&1 \
        | grep "^pipeline\|^{" | sed "s/^/default r$round /"
    PYTHONPATH="/tmp/switch:$PYTHONPATH" timeout 100 python3 benchmarks/node_rate.py "${ARGS[@]}" \
        --json "$OUT/switch_short_$round.json" 2>&1 | grep "^pipeline\|^{" | sed "s/^/short r$round /"
done
