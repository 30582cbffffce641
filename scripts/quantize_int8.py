#!/usr/bin/env python3
"""Write the INT8 Q/DQ ONNX of a model, calibrated on a directory of images.

    scripts/setup_modelopt.sh          # once: NVIDIA ModelOpt in .venv-modelopt
    python scripts/quantize_int8.py --model models/test/yolov8n_synth.onnx \\
        --calib-dir data/synth/detection/images/calib --num-images 500

Output: ``x.int8.onnx`` next to ``x.onnx`` (what the ONNX Runtime backend loads for
``precision: int8`` and TensorRT builds as explicit INT8). ``--tool``: ``modelopt`` (the default
where its environment exists; Q/DQ with FP16 elsewhere, which TensorRT 11 builds strongly
typed; ``core/quantize_modelopt.py``) or ``onnxruntime`` (ONNX Runtime's quantizer, FP32
elsewhere; ``core/calibration.py``). Their accuracy on the test model: ``benchmarks/accuracy.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.backends.model_info import read_model_info
from yolov8_trt_ros.core.calibration import CalibrationError, CalibrationImages, QuantizeOptions, quantize_qdq
from yolov8_trt_ros.core.quantize_modelopt import find_python, quantize_modelopt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="FP32 ONNX from export_onnx.py")
    ap.add_argument("--calib-dir", type=Path, required=True, help="directory of calibration images")
    ap.add_argument("--output", type=Path, help="default: <model>.int8.onnx")
    ap.add_argument(
        "--tool",
        default="auto",
        choices=["auto", "modelopt", "onnxruntime"],
        help="auto: modelopt where its Python is found (scripts/setup_modelopt.sh), else onnxruntime",
    )
    ap.add_argument("--modelopt-python", help="Python with nvidia-modelopt[onnx] (default: .venv-modelopt)")
    ap.add_argument(
        "--calibration-eps",
        nargs="+",
        default=["cpu"],
        help="ModelOpt: ONNX Runtime providers to calibrate with (cpu, cuda:0, trt)",
    )
    ap.add_argument("--num-images", type=int, default=500)
    ap.add_argument("--method", default=QuantizeOptions().method, choices=["percentile", "entropy", "minmax"])
    ap.add_argument("--percentile", type=float, default=99.999)
    ap.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weights")
    ap.add_argument("--quantize-head", action="store_true", help="also quantize the head's decode nodes")
    ap.add_argument(
        "--op-types", nargs="+", default=list(QuantizeOptions().op_types), help="ONNX op types to quantize"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("root").setLevel(logging.WARNING)  # ORT's quantizer logs every tensor at INFO
    try:
        info = read_model_info(args.model)
        images = CalibrationImages(args.calib_dir, info.input_width, info.input_height, limit=args.num_images)
        python = find_python(args.modelopt_python)
        if args.tool == "modelopt" and python is None:
            raise CalibrationError(
                "no Python with ModelOpt: run scripts/setup_modelopt.sh or pass --modelopt-python"
            )
        if args.tool != "onnxruntime" and python is not None:
            print(quantize_modelopt(args.model, images, python, args.output, tuple(args.calibration_eps)))
            return 0
        if args.tool == "auto":
            logging.info("ModelOpt not set up (scripts/setup_modelopt.sh): quantizing with ONNX Runtime")
        options = QuantizeOptions(
            method=args.method,
            per_channel=not args.per_tensor,
            keep_head_float=not args.quantize_head,
            percentile=args.percentile,
            op_types=tuple(args.op_types),
        )
        out = quantize_qdq(args.model, images, args.output, options)
    except (BackendError, CalibrationError) as exc:
        print(f"quantization failed: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
