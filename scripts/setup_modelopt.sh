#!/usr/bin/env bash
# NVIDIA ModelOpt for scripts/quantize_int8.py, in its own environment (.venv-modelopt).
#
# nvidia-modelopt[onnx] pins onnx, onnxruntime(-gpu) 1.24, CuPy and a CUDA torch, which would
# replace the node's own packages; core/quantize_modelopt.py runs this environment's Python as
# a separate process. Several GB on x86-64 (CUDA torch); on a Jetson, use JetPack's torch
# (--system-site-packages) or quantize on a workstation and copy the x.int8.onnx.
#   scripts/setup_modelopt.sh [--system-site-packages]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MODELOPT_VENV:-$ROOT/.venv-modelopt}"
VERSION="${MODELOPT_VERSION:-0.47.0}"
PY="${PYTHON:-python3}"
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$@" "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "nvidia-modelopt[onnx]==$VERSION"
"$VENV/bin/python" -c 'import modelopt, modelopt.onnx.quantization; print("ModelOpt", modelopt.__version__, "ready")'
echo "scripts/quantize_int8.py now quantizes with it (or: MODELOPT_PYTHON=$VENV/bin/python)"
