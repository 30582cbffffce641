#!/usr/bin/env bash
# The one command run on the GPU machine for the ReID fine-tune (benchmarks/tracking.md): install the
# carried ultralytics wheels (.whl/bench), render training sequences and unlabelled detection-set
# images (for the distillation) from seed 1 (the evaluation sequences are seed 0), fine-tune the
# test model with scripts/train_reid.py, export the ONNX with the embeddings output; .pt, .onnx,
# train_reid.json and the logs land in $OUT.
#
#   MINUTES=4.5 bash scripts/device_train_reid.sh [train_reid.py options]   # carry .whl/bench
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/bench/*.whl
export PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
nvidia-smi -L | tee "$OUT/env.log"
python3 scripts/make_synthetic_data.py --out /tmp/reid_train --seed 1 --train "${DISTILL_IMAGES:-3000}" --val 0 --calib 0 \
    --sequences "${SEQUENCES:-40}" --frames 300 --kinds occlusion reentry crossing crowd mixed \
    --workers "$(nproc)" 2>&1 | { grep -v iCCP || true; } | tee "$OUT/gen.log"
python3 scripts/train_reid.py --weights models/test/yolov8n_synth.pt --sequences /tmp/reid_train/tracking \
    --out "$OUT" --minutes "${MINUTES:-4.5}" --workers 12 --sequences-per-batch 6 --frames-per-sequence 4 \
    --log-every 100 --export --distill-images /tmp/reid_train/detection/images/train "$@" 2>&1 | tee "$OUT/train.log"
ls -la "$OUT"
