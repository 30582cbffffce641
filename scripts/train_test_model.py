#!/usr/bin/env python3
"""Train the project's test model (YOLOv8n, 10 synthetic classes) from scratch, export, record.

Runs on the GPU machine through ``scripts/device_train.sh``; ``--export-only`` re-exports a
trained ``.pt`` on any machine (CPU is enough). Nothing downloads: ``YOLO_OFFLINE=1`` is set
before ultralytics is imported, the AMP self-check (which fetches yolo26n.pt) is replaced by a
plain "AMP on" for CUDA devices (AMP is known good on Hopper), and the font check that
``check_det_dataset`` runs (it fetches Arial.ttf) is skipped; ``plots=False`` keeps the plotting
code, which needs that font, out of the run.

The ONNX is exported with ultralytics (opset 17, dynamic axes, onnxslim), then its spatial axes are
pinned to ``imgsz`` so only the batch stays dynamic: ``images [B, 3, 640, 640] -> output0
[B, 4 + 10, 8400]`` (the anchor grid folds into constants, as in a static export).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "True")

REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def patch_ultralytics_offline() -> None:
    """Neutralise the two checks that would reach the internet during training."""
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer_mod

    def _amp_ok(model: Any) -> bool:
        return next(model.parameters()).device.type == "cuda"

    trainer_mod.check_amp = _amp_ok
    data_utils.check_font = lambda *args, **kwargs: None


def pin_spatial_dims(onnx_path: Path, height: int, width: int) -> tuple[list[Any], list[Any]]:
    """Fix the input's H and W (batch stays symbolic), fold the now-static anchor grid, re-check.

    Returns the (input, output) shapes with symbolic dims as strings.
    """
    import onnx
    import onnxslim

    model = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in model.metadata_props}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis, value in ((2, height), (3, width)):
        dims[axis].Clear()
        dims[axis].dim_value = value
    n_anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    out_dims[2].Clear()
    out_dims[2].dim_value = n_anchors
    del model.graph.value_info[:]
    model = onnxslim.slim(model)
    if not {p.key for p in model.metadata_props}:
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=v)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(onnx_path))

    def shape(vi: Any) -> list[Any]:
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    return shape(model.graph.input[0]), shape(model.graph.output[0])


def export_onnx(weights: Path, out_onnx: Path, imgsz: int, opset: int = 17) -> dict[str, Any]:
    """ultralytics ONNX export (dynamic, simplified) + spatial pinning; returns shapes and timing."""
    from ultralytics import YOLO

    t0 = time.time()
    tmp = out_onnx.parent / f".{weights.stem}_export"
    tmp.mkdir(parents=True, exist_ok=True)
    staged = tmp / weights.name
    shutil.copy2(weights, staged)  # ultralytics writes the .onnx next to the .pt
    produced = Path(
        YOLO(str(staged)).export(
            format="onnx", opset=opset, dynamic=True, simplify=True, imgsz=imgsz, batch=1, device="cpu"
        )
    )
    in_shape, out_shape = pin_spatial_dims(produced, imgsz, imgsz)
    shutil.move(str(produced), out_onnx)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "input_shape": in_shape,
        "output_shape": out_shape,
        "opset": opset,
        "seconds": round(time.time() - t0, 1),
    }


def onnxruntime_check(onnx_path: Path, dataset_root: Path, imgsz: int, n_images: int = 8) -> dict[str, Any]:
    """Run a few val images through onnxruntime (batch 1 and 2): shapes and class-score stats."""
    import cv2
    import numpy as np
    import onnxruntime as ort
    from ultralytics.data.augment import LetterBox

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    lb = LetterBox((imgsz, imgsz), auto=False)
    files = sorted((dataset_root / "images" / "val").glob("*.jpg"))[:n_images]
    batch = np.stack([np.asarray(lb(image=cv2.imread(str(f))))[..., ::-1].transpose(2, 0, 1) for f in files])
    x = np.ascontiguousarray(batch, dtype=np.float32) / 255.0
    outs = [sess.run(None, {"images": x[i : i + 1]})[0] for i in range(len(x))]
    pair = sess.run(None, {"images": x[:2]})[0]
    max_scores = [float(o[0, 4:].max()) for o in outs]
    return {
        "output_shape_batch1": list(outs[0].shape),
        "output_shape_batch2": list(pair.shape),
        "batch2_matches_batch1": bool(np.allclose(pair[1], outs[1][0], atol=1e-3)),
        "max_class_score_per_image": [round(s, 4) for s in max_scores],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="dataset root holding data.yaml")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "test")
    ap.add_argument("--runs", type=Path, default=Path("/tmp/runs"), help="ultralytics project dir")
    ap.add_argument("--epochs", type=int, default=60, help="upper bound; --hours usually decides")
    ap.add_argument("--hours", type=float, default=0.0, help="ultralytics time= budget (0: off)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--device", default="0")
    ap.add_argument("--lr0", type=float, default=0.002)
    ap.add_argument("--close-mosaic", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--gen-seconds", type=float, default=None, help="dataset generation wall time")
    ap.add_argument("--skip-onnx-val", action="store_true", help="no ultralytics val of the ONNX")
    ap.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="unix time by which to finish: the ONNX val is skipped if late",
    )
    ap.add_argument("--export-only", action="store_true", help="re-export --weights, no training")
    ap.add_argument("--weights", type=Path, default=None)
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    pt_out, onnx_out = args.out / "yolov8n_synth.pt", args.out / "yolov8n_synth.onnx"
    gen = json.loads((args.data / "generator.json").read_text())
    data_yaml = args.data / "data.yaml"

    import torch
    import ultralytics

    from yolov8_trt_ros.datasets.synthetic import label_digest

    patch_ultralytics_offline()
    from ultralytics import YOLO

    manifest_path = args.out / "MANIFEST.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}

    if args.export_only:
        weights = args.weights or pt_out
        manifest["onnx_export"] = export_onnx(weights, onnx_out, args.imgsz)
        manifest["onnx_export"]["where"] = (
            f"re-exported with torch {torch.__version__} on {os.uname().nodename}"
        )
        manifest["onnxruntime_check"] = onnxruntime_check(onnx_out, args.data, args.imgsz)
        manifest["sha256"] = {"pt": sha256(weights), "onnx": sha256(onnx_out)}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(json.dumps(manifest, indent=2))
        return 0

    cuda = torch.cuda.is_available()
    t0 = time.time()
    model = YOLO("yolov8n.yaml")
    train_kw: dict[str, Any] = {
        "data": str(data_yaml),
        "epochs": args.epochs,
        "time": args.hours or None,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "workers": args.workers,
        "device": args.device if cuda else "cpu",
        "pretrained": False,
        "amp": cuda,
        "cache": "ram",
        "optimizer": "AdamW",
        "lr0": args.lr0,
        "warmup_epochs": 1.0,
        "close_mosaic": args.close_mosaic,
        "scale": 0.3,
        "plots": False,
        "project": str(args.runs),
        "name": "synth",
        "exist_ok": True,
        "seed": args.seed,
        "deterministic": False,
        "patience": 1000,
        "verbose": True,
    }
    model.train(**train_kw)
    trainer = model.trainer
    assert trainer is not None
    train_seconds = time.time() - t0
    best = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    shutil.copy2(best, pt_out)
    results_csv = Path(trainer.save_dir) / "results.csv"
    if results_csv.is_file():
        shutil.copy2(results_csv, args.out / "results.csv")

    t1 = time.time()
    metrics = YOLO(str(pt_out)).val(
        data=str(data_yaml), split="val", imgsz=args.imgsz, batch=32, device=train_kw["device"], plots=False
    )
    val = {
        "mAP50": round(float(metrics.box.map50), 4),
        "mAP50-95": round(float(metrics.box.map), 4),
        "precision": round(float(metrics.box.mp), 4),
        "recall": round(float(metrics.box.mr), 4),
        "per_class_mAP50-95": {
            n: round(float(v), 4) for n, v in zip(gen["class_names"], metrics.box.maps, strict=True)
        },
        "seconds": round(time.time() - t1, 1),
    }
    export = export_onnx(pt_out, onnx_out, args.imgsz)
    ort_check = onnxruntime_check(onnx_out, args.data, args.imgsz)
    onnx_val: dict[str, Any] | None = None
    if args.deadline is not None and time.time() + 60.0 > args.deadline:
        onnx_val = {"skipped": "too close to the device call's time limit"}
    elif not args.skip_onnx_val:
        t2 = time.time()
        try:
            m = YOLO(str(onnx_out), task="detect").val(
                data=str(data_yaml),
                split="val",
                imgsz=args.imgsz,
                batch=1,
                device="cpu",
                rect=False,
                plots=False,
            )
            onnx_val = {
                "mAP50": round(float(m.box.map50), 4),
                "mAP50-95": round(float(m.box.map), 4),
                "seconds": round(time.time() - t2, 1),
            }
        except Exception as e:  # a cross-check only: record, do not lose the trained model
            onnx_val = {"error": repr(e)}

    n_epochs = int(trainer.epoch) + 1
    manifest = {
        "model": "YOLOv8n (ultralytics yolov8n.yaml, random init, pretrained=False)",
        "classes": gen["class_names"],
        "generator": {
            "version": gen["generator_version"],
            "seed": gen["seed"],
            "sizes": gen["sizes"],
            "config": gen["config"],
            "photos_found": gen.get("photos_found"),
            "val_label_sha256": label_digest(args.data, "val"),
            "calib_label_sha256": label_digest(args.data, "calib"),
            "seconds": args.gen_seconds,
        },
        "training": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "ultralytics_args": train_kw,
            "epochs_run": n_epochs,
            "epochs_planned": int(trainer.epochs),
            "wall_seconds": round(train_seconds, 1),
            "gpu": torch.cuda.get_device_name(0) if cuda else "cpu",
            "torch": torch.__version__,
            "ultralytics": ultralytics.__version__,
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "val_ultralytics_pt": val,
        "val_ultralytics_onnx_cpu": onnx_val,
        "onnx_export": export,
        "onnxruntime_check": ort_check,
        "sha256": {"pt": sha256(pt_out), "onnx": sha256(onnx_out)},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
