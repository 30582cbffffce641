#!/usr/bin/env bash
# The one command run on the GPU machine for the ReID fine-tune (benchmarks/tracking.md): install the
# carried ultralytics wheels (.whl/bench), render training sequences and unlabelled detection-set
# images (for the distillation) from seed 1 (the evaluation sequences are seed 0), fine-tune the
# test model with scripts/train_reid.py, export the ONNX with the embeddings output; .pt, .onnx,
# train_reid.json and the logs land in $OUT (in $OUT/$RUN when RUN is set).
#
#   MINUTES=4.5 bash scripts/device_train_reid.sh [train_reid.py options]   # carry .whl/bench
#
# Two variants side by side on one GPU (the data is rendered once; WORKERS splits the cores):
#   GEN_ONLY=1 bash scripts/device_train_reid.sh
#   RUN=a WORKERS=7 bash scripts/device_train_reid.sh OPTS_A & RUN=b WORKERS=7 bash scripts/device_train_reid.sh OPTS_B; wait
set -euo pipefail
OUT=${OUT:-/tmp/out}
DEST="$OUT/${RUN:-}"
mkdir -p "$DEST"
DATA=/tmp/reid_train
if [ ! -f "$DATA/.done" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/bench/*.whl
    nvidia-smi -L | tee "$OUT/env.log"
    PYTHONPATH=/tmp/site:$PWD python3 scripts/make_synthetic_data.py --out "$DATA" --seed 1 \
        --train "${DISTILL_IMAGES:-3000}" --val 0 --calib 0 --sequences "${SEQUENCES:-40}" --frames 300 \
        --kinds occlusion reentry crossing crowd mixed --workers "$(nproc)" 2>&1 \
        | { grep -v iCCP || true; } | tee "$OUT/gen.log"
    touch "$DATA/.done"
fi
[ -n "${GEN_ONLY:-}" ] && exit 0
export PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
python3 scripts/train_reid.py --weights models/test/yolov8n_synth.pt --sequences "$DATA/tracking" \
    --out "$DEST" --minutes "${MINUTES:-4.5}" --workers "${WORKERS:-12}" --sequences-per-batch 6 \
    --frames-per-sequence 4 --log-every 100 --export --distill-images "$DATA/detection/images/train" \
    "$@" 2>&1 | tee "$DEST/train.log"
ls -la "$DEST"
