"""INT8 Q/DQ ONNX by NVIDIA ModelOpt's ONNX PTQ (``modelopt.onnx.quantization``), in its own Python.

Why ModelOpt: its Q/DQ placement is the one TensorRT's explicit-quantization fusions expect,
and it writes the float part in FP16 (``--high_precision_dtype fp16``), which is what TensorRT
11 builds strongly typed (no INT8/FP16 flags there; ``backends/network_typing.py``). The ONNX
Runtime quantizer's file keeps FP32 outside its Q/DQ nodes, so on TensorRT 11 those layers run
FP32. On the test model ModelOpt also lost less accuracy (``benchmarks/accuracy.md``).

Why its own interpreter: ``nvidia-modelopt[onnx]`` 0.47 pins ``onnx~=1.21``, ``onnxruntime-gpu``
(x86-64) or ``onnxruntime`` ``~=1.24`` (aarch64), CuPy and a CUDA torch, which would replace
the node's own ONNX Runtime. ``scripts/setup_modelopt.sh`` makes ``.venv-modelopt``; this
module hands that Python the calibration tensor (letterboxed by the node's own preprocessing,
``CalibrationImages``) and a *copy* of the model: ModelOpt writes shape inference into its input
file in place.

What it asks for: INT8, entropy calibration, FP16 elsewhere, and the detection head's decode
(``head_tail_nodes``, the nodes the ONNX Runtime route also keeps in float) excluded:
quantizing DFL's 1x1 convolution cost about one point of mAP50-95 on the test model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from yolov8_trt_ros.core.backends.model_info import int8_sibling
from yolov8_trt_ros.core.calibration import (
    CalibrationError,
    CalibrationImages,
    check_quantizable,
    head_tail_nodes,
    save_quantized,
)

LOG = logging.getLogger(__name__)
#: Where ``scripts/setup_modelopt.sh`` puts ModelOpt's environment (relative to the repository).
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".venv-modelopt"
ENV_PYTHON = "MODELOPT_PYTHON"


def find_python(explicit: str | Path | None = None) -> Path | None:
    """The Python that has ModelOpt: ``explicit``, ``$MODELOPT_PYTHON``, or ``.venv-modelopt``."""
    for candidate in (explicit, os.environ.get(ENV_PYTHON), DEFAULT_VENV / "bin" / "python"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def modelopt_command(
    python: Path, model: Path, data: Path, output: Path, exclude: list[str], eps: tuple[str, ...]
) -> list[str]:
    """The ModelOpt CLI call (node names are regular expressions there: escaped)."""
    cmd = [
        str(python),
        "-m",
        "modelopt.onnx.quantization",
        "--onnx_path",
        str(model),
        "--quantize_mode",
        "int8",
        "--calibration_method",
        "entropy",
        "--calibration_data_path",
        str(data),
        "--calibration_eps",
        *eps,
        "--high_precision_dtype",
        "fp16",
        "--output_path",
        str(output),
    ]
    if exclude:
        cmd += ["--nodes_to_exclude", *(re.escape(name) for name in exclude)]
    return cmd


def _stack(images: CalibrationImages) -> np.ndarray:
    """All calibration batches as one ``[N, 3, H, W]`` float32 array (ModelOpt's input), filled in place."""
    n = len(images) * images.batch_size
    out = np.empty((n, 3, images.input_height, images.input_width), np.float32)
    for i, batch in enumerate(images):
        out[i * images.batch_size : (i + 1) * images.batch_size] = batch
    return out


def quantize_modelopt(
    model_path: str | Path,
    images: CalibrationImages,
    python: Path,
    output_path: str | Path | None = None,
    eps: tuple[str, ...] = ("cpu",),
) -> Path:
    """Write ModelOpt's INT8 Q/DQ copy of ``model_path`` (default ``x.int8.onnx``); its path.

    ``eps``: ONNX Runtime execution providers ModelOpt calibrates with (``cuda:0``, ``trt``
    where its environment has them). CalibrationError with ModelOpt's last lines on failure.
    """
    import onnx

    info = check_quantizable(model_path, images)
    output = Path(output_path) if output_path else int8_sibling(model_path)
    source = onnx.load(str(model_path))
    exclude = head_tail_nodes(source)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "calibration.npy"
        np.save(data, _stack(images))
        copy = Path(tmp) / Path(model_path).name
        onnx.save(source, str(copy))
        staged = Path(tmp) / "qdq.onnx"
        cmd = modelopt_command(python, copy, data, staged, exclude, eps)
        LOG.info("ModelOpt INT8 on %d images (%s)", len(images.paths), python)
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode != 0 or not staged.is_file():
            tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-8:])
            raise CalibrationError(f"ModelOpt quantization failed ({run.returncode}):\n{tail}")
        quantized = onnx.load(str(staged))
        version = subprocess.run(
            [str(python), "-c", "import modelopt; print(modelopt.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    settings = {
        "tool": "modelopt",
        "modelopt_version": version,
        "method": "entropy",
        "high_precision_dtype": "fp16",
        "source_sha256": info.sha256,
        "image_set_sha256": images.sha256,
        "num_images": len(images.paths),
        "excluded_nodes": len(exclude),
    }
    save_quantized(quantized, source, settings, output)
    LOG.info("wrote ModelOpt Q/DQ INT8 model %s (%s)", output, json.dumps(settings, sort_keys=True))
    return output
