#!/usr/bin/env bash
# The GPU-machine run for benchmarks/pipeline_gpu.md: engine alone vs Pipeline.process vs
# process_stream on the same frames (a 20-object tracking sequence), the tree before a change
# (BASE, a copy of the earlier tree) and after it in the same call, then the GPU tests.
# Every step logs to $OUT; a failing step does not stop the others.
#
# Not installed there, so carried: .whl/bench (ultralytics, thop, platform, lap, nvidia-ml-py)
# and, where the image has no numba, .dev_numba/numba312.tar.xz (numba + llvmlite unpacked and
# xz-packed: the llvmlite wheel alone is 60 MB of the 64 MB a call may carry). It is unpacked into
# .dev_persist/, which a following call on the still-warm machine finds again.
#
#   BASE=.dev_base bash benchmarks/device_pipeline.sh   # carry .whl/bench .dev_numba .dev_base
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/bench/*.whl 2>&1 | tee "$OUT/env.log"
export PYTHONPATH=/tmp/site
# shellcheck disable=SC1091
source benchmarks/device_numba.sh
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
    nproc
    python3 -c 'import torch, numpy, cv2, numba, ultralytics as u; print(torch.__version__, numpy.__version__, cv2.__version__, numba.__version__, u.__version__)'
} 2>&1 | tee -a "$OUT/env.log"
# The test model's ONNX is re-exported from its .pt where it was left behind to fit the call.
[[ -f models/test/yolov8n_synth.onnx ]] || PYTHONPATH="$PYTHONPATH:$PWD" python3 scripts/export_onnx.py \
    --weights models/test/yolov8n_synth.pt --output models/test/yolov8n_synth.onnx 2>&1 | tail -2 | tee -a "$OUT/env.log"
python3 scripts/make_synthetic_data.py --out data/synth --seed 0 --train 0 --val 16 --calib 0 \
    --sequences 1 --frames 300 --objects 20 --workers "$(nproc)" 2>&1 | grep -v iCCP | tail -2 | tee -a "$OUT/env.log"
BENCH=(--sizes 640 --batches 1 8 --iters "${ITERS:-300}" --warmup 30 --memory-frames "${MEMORY_FRAMES:-2000}" --no-ultralytics)
if [[ -n "${BASE:-}" && -d "$BASE" ]]; then
    ln -sfn "$PWD/models" "$BASE/models"
    ln -sfn "$PWD/data" "$BASE/data"
    (cd "$BASE" && PYTHONPATH="/tmp/site:$PWD" timeout 200 python3 benchmarks/pipeline_gpu.py "${BENCH[@]}" \
        --json "$OUT/pipeline_gpu_base.json" --markdown "$OUT/pipeline_gpu_base.md") 2>&1 | tail -25 | tee "$OUT/bench_base.log"
fi
PYTHONPATH="$PYTHONPATH:$PWD" timeout 200 python3 benchmarks/pipeline_gpu.py "${BENCH[@]}" \
    --json "$OUT/pipeline_gpu.json" --markdown "$OUT/pipeline_gpu.md" 2>&1 | tail -25 | tee "$OUT/bench.log"
PYTHONPATH="$PYTHONPATH:$PWD" timeout "${TEST_TIMEOUT:-150}" python3 -m pytest -q -x -p no:cacheprovider \
    test/test_backend_cuda.py test/test_gpu_postprocess.py test/test_gpu_preprocess.py test/test_pipeline_stream.py \
    test/test_encodings.py test/test_multi_stream.py test/test_profiling.py 2>&1 | tail -15 | tee "$OUT/pytest.log"
ls -la "$OUT"
