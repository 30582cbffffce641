#!/usr/bin/env bash
# Type-check the TensorRT backend against the tensorrt-stubs package (10.13).
#
# The stubs are installed as plain tensorrt/ and tensorrt_bindings/ folders without py.typed,
# so a bare `mypy` ignores them and types every trt.* as Any (a check that cannot fail). This
# copies them to a temporary MYPYPATH, fixes the few lines the stub generator got
# syntactically wrong (a parameter named `in`, a non-default after defaults) and runs
# mypy --strict on the TensorRT modules (the shim, the tensorrt/ package, host_outputs.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
SP="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[[ -f "$SP/tensorrt_bindings/tensorrt.pyi" ]] || { echo "tensorrt-stubs not installed in $SP" >&2; exit 2; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cp -r "$SP/tensorrt" "$SP/tensorrt_bindings" "$TMP/"
sed -i -E 's/\(self(: [A-Za-z0-9]+)?, in: /(self\1, in_: /; s/power: Weights = None, channel_axis: int\)/power: Weights = None, channel_axis: int = 0)/' \
  "$TMP/tensorrt_bindings/tensorrt.pyi"
# The generated stubs themselves do not pass --strict: check our module, not them.
cat > "$TMP/mypy.ini" <<'INI'
[mypy]
python_version = 3.11
strict = True
warn_unused_ignores = True
ignore_missing_imports = True
# Report this module only; the modules it imports are used for their types.
follow_imports = silent
[mypy-tensorrt.*,tensorrt_bindings.*]
ignore_errors = True
INI
cd "$ROOT"
MYPYPATH="$TMP" "$PY" -m mypy --config-file "$TMP/mypy.ini" --no-incremental \
  yolov8_trt_ros/core/backends/tensorrt_backend.py yolov8_trt_ros/core/backends/tensorrt/ \
  yolov8_trt_ros/core/backends/host_outputs.py "$@"
