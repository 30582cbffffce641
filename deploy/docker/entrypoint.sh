#!/usr/bin/env bash
# Container entry point.
#   node              the detector (autostart), on the model store's current release if one is
#                     installed, else on $MODEL_PATH (default: the x86.yaml's model_path)
#   install BUNDLE    verify, gate and install a model bundle into the store (OTA by hand)
#   health            the health check (as HEALTHCHECK runs it)
#   <anything else>   run as a command (python -m ..., bash)
set -euo pipefail
cmd="${1:-node}"
shift || true
case "$cmd" in
  node)
    args=(--ros-args -r "__node:=$NODE_NAME" --params-file "$PARAMS_FILE" -p autostart:=true)
    if [[ -e "$MODEL_STORE/current/model.onnx" ]]; then
      args+=(-p "model_store:=$MODEL_STORE")
    elif [[ -n "${MODEL_PATH:-}" ]]; then
      args+=(-p "model_path:=$MODEL_PATH")
    fi
    exec python -m yolov8_trt_ros.ros.detector_node "${args[@]}" "$@"
    ;;
  install)
    exec python -m yolov8_trt_ros.deploy install "$@" --store "$MODEL_STORE" \
      --public-key "$BUNDLE_PUBLIC_KEY" --params "$PARAMS_FILE"
    ;;
  health)
    exec python -m yolov8_trt_ros.health --node "$NODE_NAME" "$@"
    ;;
  *)
    exec "$cmd" "$@"
    ;;
esac
