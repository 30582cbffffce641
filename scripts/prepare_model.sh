#!/usr/bin/env bash
# Make models/yolov8n.onnx, the model the demo and the default configs use.
#   --weights PATH.pt : export those ultralytics weights (e.g. yolov8n.pt on a machine with internet)
#   default           : keep an existing models/yolov8n.onnx; else the project's trained 10-class
#                       test model (models/test/), or, if it is absent, YOLOv8n built from
#                       ultralytics' yolov8n.yaml with a fixed seed (real shapes and compute,
#                       meaningless detections).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/models/yolov8n.onnx"
WEIGHTS=""
[[ "${1:-}" == "--weights" ]] && WEIGHTS="$2"
STAMP="$ROOT/models/.yolov8n.onnx.source"
if [[ -z "$WEIGHTS" && -f "$OUT" ]]; then
  # Without --weights an existing model is kept, whoever made it (an earlier --weights, an ONNX
  # copied by hand): `make demo` must not swap a robot's model for the test model.
  echo "[model] keeping $OUT ($(cat "$STAMP" 2>/dev/null || echo 'placed by hand'); --weights replaces it)"
  exit 0
fi
if [[ -z "$WEIGHTS" ]]; then
  if [[ -f "$ROOT/models/test/yolov8n_synth.pt" ]]; then
    WEIGHTS="$ROOT/models/test/yolov8n_synth.pt"
  else
    WEIGHTS="yolov8n.yaml"
  fi
fi
SRC="$WEIGHTS"
[[ -f "$WEIGHTS" ]] && SRC="$WEIGHTS $(sha256sum "$WEIGHTS" | cut -c1-16)"
if [[ -f "$OUT" && "$(cat "$STAMP" 2>/dev/null)" == "$SRC" ]]; then
  echo "[model] $OUT is up to date ($WEIGHTS)"
  exit 0
fi
if [[ "$WEIGHTS" == "$ROOT/models/test/yolov8n_synth.pt" ]] && ! python -c 'import torch, ultralytics' 2>/dev/null; then
  # A robot set up without the export tools (setup.sh without --dev): the committed ONNX is
  # that same model, exported by scripts/export_onnx.py (models/test/MANIFEST.json).
  echo "[model] no torch/ultralytics here: using the committed models/test/yolov8n_synth.onnx"
  cp "$ROOT/models/test/yolov8n_synth.onnx" "$OUT"
elif ! python -c 'import torch, ultralytics' 2>/dev/null; then
  echo "[model] exporting $WEIGHTS needs torch and ultralytics: run scripts/setup.sh --dev, or export" >&2
  echo "        elsewhere (scripts/export_onnx.py) and copy the ONNX to $OUT" >&2
  exit 1
else
  echo "[model] exporting $WEIGHTS -> $OUT"
  python "$ROOT/scripts/export_onnx.py" --weights "$WEIGHTS" --output "$OUT"
fi
echo "$SRC" > "$STAMP"
