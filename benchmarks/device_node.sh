#!/usr/bin/env bash
# GPU machine: the node over DDS (benchmarks/node_rate.py), the code before a change (BASE, a
# copy of the earlier tree with this node_rate.py in it) and after, in the same call.
#
#   BASE=.dev_base bash benchmarks/device_node.sh     # carry .dev_ros (or .whl/ros), .whl/bench, .dev_base
# numba (the tracker) as benchmarks/device_numba.sh finds it: from an earlier call on the warm
# machine, or carried in .dev_numba.
set -uo pipefail
# shellcheck disable=SC1091
source benchmarks/device_node_env.sh || exit 1
MODEL="$PWD/models/test/yolov8n_synth.pt"
ARGS=(--backend cuda --precision fp16 --model "$MODEL" --seconds "${SECONDS_PER_PHASE:-4}")
if [[ -n "${BASE:-}" && -d "$BASE" ]]; then
    (cd "$BASE" && timeout 200 python3 benchmarks/node_rate.py "${ARGS[@]}" --entries detector_node \
        --sizes 640x480,1920x1080 --rates "${BASE_RATES:-30,240,1000}" --cameras 1 --pipeline-iters 200 \
        --json "$OUT/node_base.json" --markdown "$OUT/node_base.md") 2>&1 | grep -v "^\[INFO\]" | tail -40
fi
timeout 200 python3 benchmarks/node_rate.py "${ARGS[@]}" --entries detector_node --cameras 1,2,4 \
    --pipeline-iters 300 --json "$OUT/node_new.json" --markdown "$OUT/node_new.md" 2>&1 | grep -v "^\[INFO\]" | tail -40
timeout 120 python3 benchmarks/node_rate.py "${ARGS[@]}" --entries bringup --cameras 1 --rates 30,240,1000 \
    --pipeline-iters 100 --json "$OUT/node_new_bringup.json" --markdown "$OUT/node_new.md" 2>&1 | grep -v "^\[INFO\]" | tail -20
cat "$OUT"/node_*.md
