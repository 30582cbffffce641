#!/usr/bin/env bash
# The GPU-machine run for the backends: CUDA-backend tests against ONNX Runtime, inference
# speed, and mAP of the CUDA backend and of ultralytics' own val on the regenerated synthetic
# val split. Logs and Markdown land in $OUT.
#
# Not installed there, so carried as wheels: ultralytics (+ thop, platform) and onnxslim from
# .whl/train, faster-coco-eval from .whl/eval. polars stays behind (54 MB; only ultralytics'
# training and exports import it).
#
#   benchmarks/device_backends.sh        # run from the repository root on the device
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/train/*.whl .whl/eval/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
MODEL=models/test/yolov8n_synth.onnx
VAL=data/synth/detection/images/val
ANN=data/synth/detection/annotations/instances_val.json
nvidia-smi -L | tee "$OUT/env.log"
python3 scripts/make_synthetic_data.py --out data/synth --seed 0 --train 0 --val 500 --calib 0 \
    --sequences 0 --workers "$(nproc)" 2>&1 | grep -v iCCP | tee -a "$OUT/env.log"
python3 -m pytest -q -p no:cacheprovider test/test_backend_cuda.py test/test_backend_factory.py \
    test/test_backend_onnxruntime.py 2>&1 | tee "$OUT/pytest.log"
cp benchmarks/accuracy.md "$OUT/accuracy.md" 2>/dev/null || true
for p in fp16 fp32; do
    python3 scripts/evaluate_accuracy.py --backend cuda --precision "$p" --model "$MODEL" \
        --images "$VAL" --annotations "$ANN" --report "$OUT/accuracy.md" 2>&1 | tail -3 | tee -a "$OUT/eval.log"
done
for rect in "" --reference-rect; do
    python3 scripts/evaluate_accuracy.py --reference ultralytics $rect --model "$MODEL" --images "$VAL" \
        --annotations "$ANN" --report "$OUT/accuracy.md" 2>&1 | tail -2 | tee -a "$OUT/eval.log"
done
python3 benchmarks/backend_fps.py --model "$MODEL" --images "$VAL" --iters 300 --warmup 30 \
    --run cuda:fp16:1 cuda:fp16:8 cuda:fp32:1 cuda:fp32:8 onnxruntime:fp32:1 \
    --markdown "$OUT/backends.md" 2>&1 | tail -20 | tee "$OUT/fps.log"
ls -la "$OUT"
