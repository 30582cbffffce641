#!/usr/bin/env bash
# Rewrite constraints-x86.txt from the dev venv (after scripts/setup.sh and a green test run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/deploy/docker/constraints-x86.txt"
{
  echo "# Exact versions of the x86 image's Python packages (pip constraints): the versions the"
  echo "# project's tests ran with on $(date -u +%F) (pip freeze of the dev venv, development-only and"
  echo "# local builds removed). Regenerate with deploy/docker/freeze_constraints.sh."
  "$ROOT/.venv/bin/python" -m pip freeze | grep -v -e '^-e' -e '@ file' -e '+cpu' -e '^torch' -e '^ultralytics' -e '^yolov8'
} > "$OUT"
echo "wrote $OUT"
