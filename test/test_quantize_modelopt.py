"""core/quantize_modelopt.py: NVIDIA ModelOpt's INT8 Q/DQ model, run in ModelOpt's own Python.

The end-to-end test needs that Python (``scripts/setup_modelopt.sh``, or ``MODELOPT_PYTHON``)
and is skipped without it; the rest runs everywhere.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _yolo_models import kept_detections, letterbox_images, synthetic_splits
from yolov8_trt_ros.core.calibration import CalibrationImages, head_tail_nodes
from yolov8_trt_ros.core.quantize_modelopt import ENV_PYTHON, find_python, modelopt_command, quantize_modelopt

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models/test/yolov8n_synth.onnx"


def test_command_asks_for_int8_fp16_elsewhere_and_excludes_nodes_literally() -> None:
    names = ["/model.22/dfl/conv/Conv", "/model.22/Concat_3"]
    cmd = modelopt_command(Path("py"), Path("m.onnx"), Path("c.npy"), Path("o.onnx"), names, ("cpu",))
    args = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert args["--quantize_mode"] == "int8" and args["--high_precision_dtype"] == "fp16"
    patterns = cmd[cmd.index("--nodes_to_exclude") + 1 :]
    assert [bool(re.fullmatch(p, n)) for p, n in zip(patterns, names, strict=True)] == [True, True]
    assert not re.fullmatch(patterns[0], "/model.22/dflXconv/Conv")  # the dots are escaped


def test_python_is_found_explicit_first_then_environment(tmp_path: Path, monkeypatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.touch()
    b.touch()
    monkeypatch.setenv(ENV_PYTHON, str(b))
    assert find_python(a) == a
    assert find_python(None) == b
    assert find_python(tmp_path / "missing") == b


def test_script_refuses_modelopt_without_its_python(tmp_path: Path, assets_dir: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", ENV_PYTHON: str(tmp_path / "nowhere")}
    args = ["--model", str(MODEL), "--calib-dir", str(assets_dir), "--tool", "modelopt"]
    run = subprocess.run(
        [sys.executable, "scripts/quantize_int8.py", *args, "--modelopt-python", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    if (REPO / ".venv-modelopt/bin/python").is_file():
        pytest.skip("this checkout has .venv-modelopt, which the script would use")
    assert run.returncode == 2
    assert "setup_modelopt.sh" in run.stderr


@pytest.mark.slow
def test_modelopt_int8_keeps_the_head_in_float_and_the_detections(tmp_path: Path) -> None:
    """On the trained test model: Q/DQ on the convolutions, FP16 elsewhere, the head's decode
    unquantized, the input file untouched, detections of 6 val images kept (IoU >= 0.9)."""
    import onnx

    from yolov8_trt_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from yolov8_trt_ros.core.config import EngineConfig

    python = find_python()
    if python is None:
        pytest.skip("no Python with ModelOpt (scripts/setup_modelopt.sh or MODELOPT_PYTHON)")
    dirs = synthetic_splits(tmp_path, {"calib": 32, "val": 6})
    fp32 = tmp_path / "synth.onnx"
    shutil.copy(MODEL, fp32)
    before = hashlib.sha256(fp32.read_bytes()).hexdigest()
    out = quantize_modelopt(fp32, CalibrationImages(dirs["calib"], 640, 640), python)
    assert hashlib.sha256(fp32.read_bytes()).hexdigest() == before  # ModelOpt got a copy
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 60 and ops.count("DequantizeLinear") >= 60
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    quantized_inputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    head = set(head_tail_nodes(onnx.load(str(fp32))))
    dfl = [n for n in model.graph.node if n.name in head and n.op_type == "Conv"]
    assert dfl and not any(set(n.input) & quantized_inputs for n in dfl)  # DFL's conv in float
    images = letterbox_images(sorted(dirs["val"].glob("*.jpg")), 640)

    def raw(path: Path) -> np.ndarray:
        return OnnxRuntimeBackend(EngineConfig(model_path=str(path), precision="fp32")).infer(images).raw

    matched, total = kept_detections(raw(fp32), raw(out))
    assert total > 15 and matched >= 0.9 * total, f"{matched}/{total}"
