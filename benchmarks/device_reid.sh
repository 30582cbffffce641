#!/usr/bin/env bash
# The GPU-machine run for issue 12 with a learned embedding model: the embedding GPU tests, then
# benchmarks/reid_cost.py (motion-only vs embeddings + ReID tracker, CUDA backend FP16) for the
# committed test model (the fixed reduction) and for MODEL (e.g. a branch from
# scripts/fit_reid_branch.py), in the same call. Every step logs to $OUT; a failing step does not
# stop the others. The test model's .pt is copied beside MODEL (the CUDA backend runs the .pt and
# reads the embeddings' weights from the ONNX next to it).
#
# BASE: a copy of an earlier tree's code (yolov8_trt_ros, benchmarks, scripts) whose cost for
# MODEL is measured in the same call, before the current tree's (a hot-path change's before/after).
#
#   MODEL=runs/branch/b0/yolov8n_synth.onnx bash benchmarks/device_reid.sh   # carry .whl/bench runs/branch/b0
#   git archive REV yolov8_trt_ros benchmarks scripts | tar -x -C runs/base   # then BASE=runs/base, carried too
set -uo pipefail
OUT=${OUT:-/tmp/out}
MODEL=${MODEL:?set MODEL to the ONNX with the learned embeddings}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/bench/*.whl 2>&1 | tee "$OUT/env.log"
export PYTHONPATH="/tmp/site:$PWD"
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
    python3 -c 'import torch, numpy, ultralytics as u; print(torch.__version__, numpy.__version__, u.__version__)'
} 2>&1 | tee -a "$OUT/env.log"
[[ -f "${MODEL%.onnx}.pt" ]] || cp models/test/yolov8n_synth.pt "${MODEL%.onnx}.pt"
python3 scripts/make_synthetic_data.py --out data/synth --seed 0 --train 0 --val 16 --calib 0 \
    --sequences 1 --frames 300 --objects 20 --workers "$(nproc)" 2>&1 | grep -v iCCP | tail -2 | tee -a "$OUT/env.log"
timeout 300 python3 -m pytest -q -p no:cacheprovider -p no:launch_testing -p no:launch_ros -p no:launch_pytest \
    test/test_gpu_embeddings.py test/test_embeddings.py test/test_fit_reid_branch.py 2>&1 | tail -15 | tee "$OUT/tests.log"
COST=(--rounds "${ROUNDS:-3}" --iters "${ITERS:-300}")
timeout 200 python3 benchmarks/reid_cost.py "${COST[@]}" --json "$OUT/reid_cost_reduction.json" \
    --markdown "$OUT/reid_cost_reduction.md" 2>&1 | tail -12
if [[ -n "${BASE:-}" && -d "$BASE" ]]; then
    ln -sfn "$PWD/models" "$BASE/models"
    ln -sfn "$PWD/data" "$BASE/data"
    (cd "$BASE" && PYTHONPATH="/tmp/site:$PWD" timeout 200 python3 benchmarks/reid_cost.py "${COST[@]}" \
        --model "$OLDPWD/$MODEL" --json "$OUT/reid_cost_model_base.json" --markdown "$OUT/reid_cost_model_base.md") 2>&1 | tail -12
fi
timeout 200 python3 benchmarks/reid_cost.py "${COST[@]}" --model "$MODEL" --json "$OUT/reid_cost_model.json" \
    --markdown "$OUT/reid_cost_model.md" 2>&1 | tail -12
