#!/usr/bin/env bash
# Lint, type-check the TensorRT module against tensorrt-stubs, run pytest. Expects scripts/env.sh.
#
# pytest runs twice: the launch_pytest tests (test/test_launch*.py) with the pytest plugins of
# the ROS launch tools, everything else without them. Those plugins load into every pytest run
# where the tools are installed, and importing `launch` reconfigures Python logging, which
# empties `caplog` for the other tests. The last line is the two runs' counts together, in
# pytest's own summary format. Arguments go to both runs (e.g. -x, -k EXPR, --durations=10).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
echo "== ruff"
ruff check . && ruff format --check . || status=1
echo "== mypy (TensorRT backend against tensorrt-stubs)"
mypy --follow-imports=silent yolov8_trt_ros/core/backends/tensorrt_backend.py yolov8_trt_ros/core/backends/tensorrt/ \
    yolov8_trt_ros/core/backends/host_outputs.py || status=1

LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
mapfile -t LAUNCH_FILES < <(ls test/test_launch*.py 2>/dev/null)
IGNORE=("${LAUNCH_FILES[@]/#/--ignore=}")
COLOR=()
[[ -t 1 ]] && COLOR=(--color=yes)

run_pytest() {  # NAME ARGS...: one pytest run, its output kept for the summary
  local name="$1"
  shift
  echo "== pytest ($name)"
  python -m pytest "${COLOR[@]}" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  # pytest exits 5 when it collected no test: that is a failure of this suite, not a pass.
  if [[ $rc -eq 5 ]]; then echo "pytest ($name) collected no tests" >&2; rc=1; fi
  [[ $rc -ne 0 ]] && status=$rc
  return 0
}

run_pytest main -p no:launch_testing -p no:launch_ros -p no:launch_pytest "${IGNORE[@]}" "$@"
if ((${#LAUNCH_FILES[@]})); then
  run_pytest launch "${LAUNCH_FILES[@]}" "$@"
fi

# Both runs' counts in one closing line (the one CI reads), in pytest's summary format.
python - "$LOGS"/*.log <<'PY'
import re
import sys

counts: dict[str, int] = {}
seconds = 0.0
order = ["failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "warnings", "errors"]
for path in sys.argv[1:]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(path, errors="replace").read())
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if not re.search(r"\d+ \w+.* in [0-9.]+s\b", last):  # no tests ran, or stopped before its summary
        counts["errors"] = counts.get("errors", 0) + 1
        continue
    for n, word in re.findall(r"(\d+) (\w+)", last.split(" in ")[0]):
        word = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[word] = counts.get(word, 0) + int(n)
    seconds += float(re.search(r"\bin ([0-9.]+)s\b", last).group(1))
if not counts:
    counts["errors"] = 1
parts = [f"{counts[k]} {k if counts[k] != 1 or k not in ('errors', 'warnings') else k[:-1]}" for k in order if counts.get(k)]
print("== pytest, both runs together")
print(f"{'=' * 20} {', '.join(parts)} in {seconds:.2f}s {'=' * 20}")
PY
exit $status
