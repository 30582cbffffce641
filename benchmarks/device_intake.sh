#!/usr/bin/env bash
# GPU machine: the node over DDS with frames taken by rclpy's executor and by the rcl intake
# (image_intake executor / rcl, ros/rcl_intake.py), alternating, in the same call.
#
#   bash benchmarks/device_intake.sh      # carry .dev_ros (or .whl/ros) and .whl/bench
# ROUNDS (2) rounds of executor,rcl at 1 camera (PUBLISHERS processes per camera at 1 kHz);
# then 4 cameras and the bring-up with rcl (MORE=1), and the middleware floor (relay) when FLOOR=1.
set -uo pipefail
# shellcheck disable=SC1091
source benchmarks/device_node_env.sh || exit 1
ARGS=(--backend cuda --precision fp16 --model "$PWD/models/test/yolov8n_synth.pt" --seconds "${SECONDS_PER_PHASE:-4}")
INTAKES=executor,rcl
for _ in $(seq 2 "${ROUNDS:-2}"); do INTAKES="$INTAKES,executor,rcl"; done
run() {  # name, then node_rate.py arguments
    local name=$1
    shift
    timeout "${PHASE_TIMEOUT:-300}" python3 benchmarks/node_rate.py "${ARGS[@]}" "$@" \
        --json "$OUT/$name.json" --markdown "$OUT/intake.md" 2>&1 | grep -v "^\[INFO\]" | tail -60
}
run intake_1cam --entries detector_node --intakes "$INTAKES" --sizes 640x480,1920x1080 \
    --rates "${RATES:-30,240,1000}" --cameras 1 --pipeline-iters 300 --publishers "${PUBLISHERS:-1}"
if [[ "${MORE:-1}" == 1 ]]; then
    run intake_4cam --entries detector_node --intakes executor,rcl --cameras 4 --multi-rates 60,1000 \
        --sizes 640x480 --rates 240 --pipeline-iters 200
    run intake_bringup --entries bringup --intakes rcl --cameras 1 --rates 30,1000 --pipeline-iters 100
fi
if [[ "${FLOOR:-0}" == 1 ]]; then
    run intake_floor --entries relay --cameras 1 --rates 30,240 --pipeline-iters 50
fi
cat "$OUT/intake.md"
