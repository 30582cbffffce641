#!/usr/bin/env bash
# The one command run on the GPU machine (no internet, no ultralytics there): install the carried
# wheels, generate the detection set on all cores, train YOLOv8n, export ONNX, validate, and
# leave .pt, .onnx, MANIFEST.json, results.csv and the logs in $OUT.
#
#   scripts/device_train.sh smoke   # ~2.5 min: tiny set, ~1 min of training, every step once
#   scripts/device_train.sh full    # ~8.5 min: 6000/500/500 images, ~6 min of training
#
# Wheels (python 3.12, manylinux x86-64) are fetched here beforehand into .whl/train/ (ignored)
# and the call names .whl/train in `carry`; see models/test/README.md for the exact list.
set -euo pipefail
START=$(date +%s)
MODE=${1:-full}
OUT=${OUT:-/tmp/out}
DATA=/tmp/synth
WORKERS=$(nproc)
mkdir -p "$OUT"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/train/*.whl
export PYTHONPATH=/tmp/site:$PWD
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

case "$MODE" in
    smoke) SIZES=(--train 1200 --val 200 --calib 50); TRAIN=(--hours 0.018 --epochs 30) ;;
    full) SIZES=(--train 6000 --val 500 --calib 500); TRAIN=(--hours "${HOURS:-0.1}" --epochs 200) ;;
    *) echo "usage: $0 smoke|full" >&2; exit 2 ;;
esac

{
    nvidia-smi -L
    python3 -c 'import sys, torch, torchvision, cv2, numpy, skimage, ultralytics, onnx, onnxruntime
print(sys.version.split()[0], "torch", torch.__version__, "tv", torchvision.__version__, "cv2", cv2.__version__,
      "numpy", numpy.__version__, "skimage", skimage.__version__, "ultralytics", ultralytics.__version__,
      "onnx", onnx.__version__, "ort", onnxruntime.__version__)'
} 2>&1 | tee "$OUT/env.log"

t0=$(date +%s.%N)
python3 scripts/make_synthetic_data.py --out "$DATA" --seed 0 "${SIZES[@]}" --sequences 0 \
    --workers "$WORKERS" 2>&1 | { grep -v iCCP || true; } | tee "$OUT/gen.log"
gen_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")

python3 scripts/train_test_model.py --data "$DATA/detection" --out "$OUT" --runs /tmp/runs \
    --workers "$WORKERS" --gen-seconds "$gen_s" --deadline $((START + ${BUDGET_S:-530})) "${TRAIN[@]}" 2>&1 | tee "$OUT/train.log"
ls -la "$OUT"
