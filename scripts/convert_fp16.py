#!/usr/bin/env python3
"""Write the FP16 ONNX of a model next to it (``x.onnx`` → ``x.fp16.onnx``).

    python scripts/convert_fp16.py --model models/test/yolov8n_synth.onnx

FP16 weights and activations, float32 I/O, the head's decode kept FP32: what TensorRT 10 and
11 build strongly typed for ``precision: fp16``. How and why: ``yolov8_trt_ros/core/fp16_onnx.py``.
The TensorRT build converts on its own where this file is missing; this writes it ahead of time
(to check its accuracy, ship it in a model bundle, or build on a machine without
onnxconverter-common).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.fp16_onnx import convert_fp16


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="FP32 ONNX from export_onnx.py")
    ap.add_argument("--output", type=Path, help="default: <model>.fp16.onnx")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = convert_fp16(args.model, args.output)
    except (BackendError, ValueError) as exc:
        print(f"conversion failed: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
