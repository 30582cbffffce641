#!/usr/bin/env python3
"""Export ultralytics YOLOv8 weights to the project's ONNX (dynamic batch, fixed size, opset 17).

    python scripts/export_onnx.py --weights models/test/yolov8n_synth.pt --output models/yolov8n.onnx
    python scripts/export_onnx.py --weights yolov8n.yaml --imgsz 320 --output /tmp/y.onnx  # untrained, seed 0
    python scripts/export_onnx.py --weights models/test/yolov8n_synth.pt --output m.onnx --embeddings

Same weights and arguments give the same bytes; see ``yolov8_trt_ros/core/export.py``.
``--embeddings`` adds the ``embeddings [B, D, A]`` output for re-identification afterwards
(``yolov8_trt_ros/core/embeddings.py``; ``output0`` is unchanged by it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolov8_trt_ros.core.embeddings import EmbeddingGraphError, add_embedding_output_file
from yolov8_trt_ros.core.export import DEFAULT_OPSET, YAML_SEED, export_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", required=True, help="ultralytics .pt, or a model .yaml (untrained)")
    parser.add_argument("--output", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640], help="size, or height width")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--static-batch", action="store_true", help="fix the batch to 1")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    parser.add_argument("--seed", type=int, default=YAML_SEED, help="seed for a .yaml architecture")
    parser.add_argument("--embeddings", action="store_true", help="add the ReID 'embeddings' output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(args.imgsz) not in (1, 2):
        parser.error("--imgsz takes one or two numbers")
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else (args.imgsz[0], args.imgsz[1])
    try:
        path = export_onnx(
            args.weights,
            args.output,
            imgsz=imgsz,
            opset=args.opset,
            dynamic_batch=not args.static_batch,
            simplify=not args.no_simplify,
            seed=args.seed,
        )
        if args.embeddings:
            dim = add_embedding_output_file(path, path)
            print(f"added output 'embeddings' [B, {dim}, A]", file=sys.stderr)
    except (FileNotFoundError, ValueError, EmbeddingGraphError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
