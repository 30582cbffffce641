#!/usr/bin/env bash
# Lint, type-check the TensorRT module against tensorrt-stubs, run pytest. Expects scripts/env.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
echo "== ruff"
ruff check . && ruff format --check . || status=1
echo "== mypy (TensorRT backend against tensorrt-stubs)"
mypy --follow-imports=silent yolov8_trt_ros/core/backends/tensorrt_backend.py yolov8_trt_ros/core/backends/tensorrt/ \
    yolov8_trt_ros/core/backends/host_outputs.py || status=1
echo "== pytest"
python -m pytest "$@"
rc=$?
# pytest exits 5 when it collected no test: that is a failure of this suite, not a pass.
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests" >&2; rc=1; fi
[[ $rc -ne 0 ]] && status=$rc
exit $status
