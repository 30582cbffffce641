#!/usr/bin/env python3
"""COCO mAP of any backend on a COCO-labelled image set, recorded in benchmarks/accuracy.md.

    python scripts/evaluate_accuracy.py --backend onnxruntime --model models/test/yolov8n_synth.onnx \\
        --precision fp32 --images data/synth/detection/images/val \\
        --annotations data/synth/detection/annotations/instances_val.json

Runs the project's own stages: ``CpuPreprocessor`` (letterbox to the engine's input) →
backend → ``postprocess`` (``postprocess_torch`` for the CUDA backend's GPU tensor), with the
thresholds ultralytics' ``val`` uses for mAP (conf 0.001, IoU 0.7, 300 detections), and
scores the detections with faster-coco-eval (COCO mAP50-95 and mAP50). The CPU
preprocessor is used for every backend so that only the engine differs between rows.

``--reference ultralytics --weights X.pt`` also runs ``YOLO(X.pt).val(...)`` on the same
split and scores its ``predictions.json`` with the same faster-coco-eval call; it needs a
machine where torchvision imports (the GPU machine; not the CPU dev machine). It is run with
``rect=False`` so that it letterboxes to the same square input as the pipeline
(``--reference-rect`` restores ultralytics' default rectangular batches). ultralytics' val NMS
is multi-label (one box may score for several classes), the pipeline's is single-label as in
deployment; ``--nms ultralytics`` runs a backend with ultralytics' val NMS to separate the two.

Each run adds (or replaces, for the same backend/precision/model/images/machine) one row in
``--report``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from yolov8_trt_ros.core.machine import describe_machine  # noqa: E402

LOG = logging.getLogger("evaluate_accuracy")
COLUMNS = (
    "date",
    "machine",
    "backend",
    "precision",
    "model (sha256)",
    "images",
    "mAP50-95",
    "mAP50",
    "s/img",
)
HEADER = "| " + " | ".join((*COLUMNS, "command")) + " |\n" + "| --- " * (len(COLUMNS) + 1) + "|"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def coco_eval(
    annotations: Path, detections: list[dict[str, Any]], image_ids: list[int]
) -> tuple[float, float]:
    """(mAP50-95, mAP50) of ``detections`` on ``image_ids`` with faster-coco-eval."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(str(annotations))
    if not detections:
        return 0.0, 0.0
    dt_ = gt.loadRes(detections)
    ev = COCOeval_faster(gt, dt_, "bbox", print_function=LOG.debug)
    ev.params.imgIds = image_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def ultralytics_nms(output: Any, letterboxes: list[Any], args: argparse.Namespace) -> list[Any]:
    """ultralytics' validation NMS (multi-label: one box may count for several classes) on a raw head.

    A diagnostic: it separates what the evaluation protocol contributes to the gap between our
    rows and ``ultralytics val`` from what the backend does.
    """
    import torch
    from ultralytics.utils.nms import non_max_suppression

    from yolov8_trt_ros.core.types import Detections

    if output.raw is None:
        raise SystemExit("--nms ultralytics needs a raw head (not an engine with NMS inside)")
    raw = output.raw if isinstance(output.raw, torch.Tensor) else torch.from_numpy(np.asarray(output.raw))
    preds = non_max_suppression(raw.float(), args.conf, args.iou, multi_label=True, max_det=args.max_det)
    dets = []
    for pred, lb in zip(preds, letterboxes, strict=True):
        p = pred.cpu().numpy()
        dets.append(Detections(lb.to_source(p[:, :4].astype(np.float32)), p[:, 4], p[:, 5].astype(np.int32)))
    return dets


def run_backend(
    args: argparse.Namespace, gt: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int], float]:
    """Detections (COCO result dicts) of the chosen backend, the image ids and seconds per image."""
    from yolov8_trt_ros.core.backends.factory import create_backend
    from yolov8_trt_ros.core.config import EngineConfig, PostprocessConfig, PreprocessConfig
    from yolov8_trt_ros.core.postprocess import postprocess, postprocess_torch
    from yolov8_trt_ros.core.preprocess import CpuPreprocessor

    post = PostprocessConfig(conf_threshold=args.conf, iou_threshold=args.iou, max_detections=args.max_det)
    engine = EngineConfig(
        backend=args.backend,
        model_path=str(args.model),
        precision=args.precision,
        batch_size=args.batch,
        max_batch_size=max(args.batch, 1),
        calibration_dir=str(args.calibration_dir),
        engine_cache_dir=str(args.engine_cache_dir),
        cuda_graph=True,
        end2end_nms=args.nms != "ultralytics",  # that NMS needs the raw head (CUDA and TensorRT)
    )
    backend = create_backend(engine, post)
    info = backend.info
    post = post.replace(num_classes=info.num_classes)
    pre = CpuPreprocessor(
        PreprocessConfig(input_width=info.input_width, input_height=info.input_height, fp16=info.input_fp16)
    )
    categories = sorted(c["id"] for c in gt["categories"])
    if len(categories) != info.num_classes:
        raise SystemExit(
            f"annotations have {len(categories)} categories, the model {info.num_classes} classes"
        )
    entries = gt["images"][: args.limit] if args.limit else gt["images"]
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i in range(0, len(entries), args.batch):
        chunk = entries[i : i + args.batch]
        frames = []
        for entry in chunk:
            frame = cv2.imread(str(args.images / Path(entry["file_name"]).name), cv2.IMREAD_COLOR)
            if frame is None:
                raise SystemExit(f"cannot read {args.images / Path(entry['file_name']).name}")
            frames.append(frame)
        tensor, letterboxes = pre(frames, ["bgr8"] * len(frames))
        output = backend.infer(tensor)
        if args.nms == "ultralytics":
            dets = ultralytics_nms(output, letterboxes, args)
        elif output.raw is not None and not isinstance(output.raw, np.ndarray):
            dets = postprocess_torch(output.raw, letterboxes, post)
        else:
            dets = postprocess(output, letterboxes, post)
        for entry, det in zip(chunk, dets, strict=True):
            for (x0, y0, x1, y1), score, cls in zip(
                det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(), strict=True
            ):
                results.append(
                    {
                        "image_id": entry["id"],
                        "category_id": categories[cls],
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": score,
                    }
                )
    seconds = (time.perf_counter() - start) / max(len(entries), 1)
    args.backend_detail = f"{info.name} {info.precision} ({info.detail})"
    backend.close()
    return results, [e["id"] for e in entries], seconds


def run_ultralytics(
    args: argparse.Namespace, gt: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int], float]:
    """``YOLO(weights).val`` on the split; its predictions.json mapped to the annotation ids."""
    import torch
    from ultralytics import YOLO

    ids_by_name = {Path(e["file_name"]).name: e["id"] for e in gt["images"]}
    categories = sorted(c["id"] for c in gt["categories"])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        YOLO(str(args.weights)).val(
            data=str(args.data),
            split="val",
            imgsz=args.imgsz,
            batch=args.batch,
            conf=args.conf,
            iou=args.iou,
            max_det=args.max_det,
            save_json=True,
            plots=False,
            project=tmp,
            name="val",
            exist_ok=True,
            rect=args.reference_rect,
            device=0 if torch.cuda.is_available() else "cpu",
            verbose=False,
        )
        seconds = (time.perf_counter() - start) / len(ids_by_name)
        preds = json.loads((Path(tmp) / "val" / "predictions.json").read_text())
    # ultralytics numbers categories 1..nc for non-COCO sets and images by file stem.
    results = [
        {
            "image_id": ids_by_name[p["file_name"]],
            "category_id": categories[int(p["category_id"]) - 1],
            "bbox": p["bbox"],
            "score": p["score"],
        }
        for p in preds
        if p["file_name"] in ids_by_name
    ]
    args.backend_detail = f"ultralytics val ({'rect' if args.reference_rect else 'square'} letterbox)"
    return results, sorted(ids_by_name.values()), seconds


def update_report(report: Path, row: dict[str, str]) -> None:
    """Add ``row`` to the table in ``report``, replacing a row with the same identity."""
    keys = ("machine", "backend", "precision", "model", "images")
    cells = ("date", "machine", "backend", "precision", "model", "images", "map", "map50", "speed", "command")
    text = report.read_text() if report.is_file() else ""
    if BEGIN not in text:
        text = (
            "# Accuracy\n\nCOCO mAP (faster-coco-eval) of each backend on the synthetic val split,\n"
            "written by `scripts/evaluate_accuracy.py` (conf 0.001, IoU 0.7, max 300 detections,\n"
            "as ultralytics val). s/img is the whole loop (read, CPU preprocess, inference,\n"
            "postprocess), not a speed benchmark.\n\n"
            f"{BEGIN}\n{HEADER}\n{END}\n"
        )
    head, rest = text.split(BEGIN, 1)
    table, tail = rest.split(END, 1)
    rows = [line for line in table.strip().splitlines()[2:] if line.startswith("|")]

    def identity(line: str) -> tuple[str, ...]:
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        return tuple(parts[cells.index(k)] for k in keys) if len(parts) >= len(cells) else ()

    new = "| " + " | ".join(row[c] for c in cells) + " |"
    rows = [r for r in rows if identity(r) != identity(new)] + [new]
    report.write_text(f"{head}{BEGIN}\n{HEADER}\n" + "\n".join(rows) + f"\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "cuda", "tensorrt", "auto"])
    ap.add_argument("--model", type=Path, default=REPO / "models/test/yolov8n_synth.onnx")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    ap.add_argument("--images", type=Path, default=REPO / "data/synth/detection/images/val")
    ap.add_argument(
        "--annotations", type=Path, default=REPO / "data/synth/detection/annotations/instances_val.json"
    )
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--conf", type=float, default=0.001)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--calibration-dir", type=Path, default=REPO / "data/synth/detection/images/calib")
    ap.add_argument("--engine-cache-dir", type=Path, default=REPO / "models/engines")
    ap.add_argument(
        "--nms",
        default="core",
        choices=["core", "ultralytics"],
        help="core: the project's postprocess (single label, as the node); ultralytics: its val NMS",
    )
    ap.add_argument("--reference", choices=["ultralytics"], help="run ultralytics val instead of a backend")
    ap.add_argument("--weights", type=Path, help="the .pt for --reference (default: --model with .pt)")
    ap.add_argument(
        "--reference-rect",
        action="store_true",
        help="let ultralytics val use its default rectangular batches (default: square, like ours)",
    )
    ap.add_argument("--data", type=Path, help="data.yaml for --reference (default: next to images/)")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--report", type=Path, default=REPO / "benchmarks/accuracy.md")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    gt = json.loads(args.annotations.read_text())
    if args.reference:
        args.weights = args.weights or args.model.with_suffix(".pt")
        args.data = args.data or args.images.parent.parent / "data.yaml"
        results, ids, seconds = run_ultralytics(args, gt)
        backend, precision, model_file = args.backend_detail, "fp32", args.weights
    else:
        results, ids, seconds = run_backend(args, gt)
        backend, precision, model_file = args.backend, args.precision, args.model
        if args.nms == "ultralytics":
            backend += " + ultralytics multi-label NMS"
    m, m50 = coco_eval(args.annotations, results, ids)
    print(
        f"{args.backend_detail}: mAP50-95 {m:.4f}  mAP50 {m50:.4f}  on {len(ids)} images, {seconds:.3f} s/img"
    )
    if not args.no_report:
        digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:12]
        cmd = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *sys.argv[1:]])
        row = {
            "date": dt.date.today().isoformat(),
            "machine": describe_machine(),
            "backend": backend,
            "precision": precision,
            "model": f"{Path(model_file).name} ({digest})",
            "images": f"{args.images.name} ({len(ids)})",
            "map": f"{m:.4f}",
            "map50": f"{m50:.4f}",
            "speed": f"{seconds:.3f}",
            "command": f"`{cmd.replace('|', '/')}`",
        }
        update_report(args.report, row)
        print(f"recorded in {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
