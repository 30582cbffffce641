#!/usr/bin/env python3
"""Build (or find in the cache) the TensorRT engine the node will load, ahead of time.

    python scripts/build_engine.py --model models/yolov8n.onnx --precision int8 \\
        --calib-dir calibration/images --max-batch 8

Precision: TensorRT 10+ builds strongly typed from ``x.fp16.onnx`` (``scripts/convert_fp16.py``,
or converted here into the cache) or the Q/DQ ``x.int8.onnx`` (``scripts/quantize_int8.py``),
the only way TensorRT 11 (JetPack 7) builds at all (``core/backends/network_typing.py``).
A model with custom layers needs its plugins: ``--plugin-library libmy_plugin.so`` (repeatable).

Runs only where TensorRT and a GPU exist (a Jetson, a TensorRT container). The engine goes
to the engine cache (``--cache-dir``) under its key (ONNX hash, precision, calibration,
batch profile, TensorRT version, GPU), where the node finds it at start-up; ``--plan`` also
writes the bare serialized plan for ``trtexec --loadEngine``. The NMS settings baked into
the engine must match the node's ``postprocess`` parameters, or the node rebuilds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolov8_trt_ros.core.backends.base import BackendError
from yolov8_trt_ros.core.config import ConfigError, EngineConfig, PostprocessConfig
from yolov8_trt_ros.core.engine_cache import ENGINE_MAGIC, read_keyed_header


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--precision", default="fp16", choices=["int8", "fp16", "fp32"])
    ap.add_argument("--batch", type=int, default=1, help="optimisation profile's optimum batch")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--workspace-mb", type=int, default=1024)
    ap.add_argument("--cache-dir", type=Path, default=Path("models/engines"))
    ap.add_argument("--calib-dir", type=Path, default=Path("calibration/images"))
    ap.add_argument("--calib-cache", type=Path, default=Path("calibration/yolov8n.calib"))
    ap.add_argument("--calib-images", type=int, default=500)
    ap.add_argument("--no-nms", action="store_true", help="engine outputs the raw head")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--agnostic", action="store_true")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--plan", type=Path, help="also write the bare TensorRT plan here")
    ap.add_argument(
        "--plugin-library",
        action="append",
        default=[],
        help="TensorRT plugin library (.so) for custom layers, loaded before the build; repeatable",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        engine = EngineConfig.from_mapping(
            {
                "backend": "tensorrt",
                "model_path": str(args.model),
                "engine_cache_dir": str(args.cache_dir),
                "precision": args.precision,
                "batch_size": args.batch,
                "max_batch_size": args.max_batch,
                "workspace_mb": args.workspace_mb,
                "calibration_dir": str(args.calib_dir),
                "calibration_cache": str(args.calib_cache),
                "calibration_images": args.calib_images,
                "device_id": args.device,
                "end2end_nms": not args.no_nms,
                "plugin_libraries": args.plugin_library,
            }
        )
        post = PostprocessConfig.from_mapping(
            {
                "conf_threshold": args.conf,
                "iou_threshold": args.iou,
                "max_detections": args.max_det,
                "class_agnostic": args.agnostic,
            }
        )
        from yolov8_trt_ros.core.backends.factory import available_backends

        reason = available_backends()["tensorrt"]
        if reason:
            raise BackendError(f"TensorRT is not available here: {reason}")
        from yolov8_trt_ros.core.backends.tensorrt_backend import TensorRTBackend

        start = time.perf_counter()
        backend = TensorRTBackend(engine, post)
        print(f"{backend.info.detail} ready in {time.perf_counter() - start:.1f} s: {backend.engine_path}")
        if args.plan:
            _, offset = read_keyed_header(backend.engine_path, ENGINE_MAGIC)
            with open(backend.engine_path, "rb") as fh:
                fh.seek(offset)
                args.plan.write_bytes(fh.read())
            print(f"plan written to {args.plan}")
        backend.close()
    except (BackendError, ConfigError, ImportError) as exc:
        print(f"engine build failed: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
