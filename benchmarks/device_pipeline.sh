#!/usr/bin/env bash
# The GPU-machine run for benchmarks/pipeline_gpu.md: engine-only vs full pipeline vs
# ultralytics predict/track on the same frames, memory over 10,000 frames, then the GPU tests
# on the same machine. Every step logs to $OUT; a failing step does not stop the others.
#
# Not installed there, so carried as wheels (.whl/bench): ultralytics (+ thop, platform) and
# lap (ultralytics' ByteTrack).
#
#   benchmarks/device_pipeline.sh        # from the repository root on the device, carry .whl/bench
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics_cfg
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/bench/*.whl \
    2>&1 | tee "$OUT/env.log"
export PYTHONPATH=/tmp/site:$PWD
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
    nproc
    python3 -c 'import torch, numpy, cv2, ultralytics as u; print(torch.__version__, numpy.__version__, cv2.__version__, u.__version__)'
    python3 -c 'import pynvml; pynvml.nvmlInit(); print("pynvml ok, driver", pynvml.nvmlSystemGetDriverVersion())'
    python3 -c 'import torchvision; print("torchvision", torchvision.__version__)'
} 2>&1 | tee -a "$OUT/env.log"
python3 scripts/make_synthetic_data.py --out data/synth --seed 0 --train 0 --val 16 --calib 0 \
    --sequences 1 --frames 300 --workers "$(nproc)" 2>&1 | grep -v iCCP | tee -a "$OUT/env.log"
timeout 330 python3 benchmarks/pipeline_gpu.py --iters 500 --warmup 50 \
    --json "$OUT/pipeline_gpu.json" --markdown "$OUT/pipeline_gpu_tables.md" 2>&1 | tee "$OUT/bench.log"
echo "benchmark exit: $?" | tee -a "$OUT/bench.log"
timeout 140 python3 -m pytest -q -p no:cacheprovider test/test_backend_cuda.py test/test_gpu_preprocess.py \
    test/test_gpu_postprocess.py test/test_profiling.py test/test_pipeline_stream.py 2>&1 | tee "$OUT/pytest.log"
ls -la "$OUT"
