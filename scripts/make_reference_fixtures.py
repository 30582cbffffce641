"""Write ultralytics' own stage outputs for real photos as test fixtures.

For each image: ultralytics' ``LetterBox`` result, the PyTorch model's raw ``[1, 4+C, 8400]``
head output and ``non_max_suppression`` of that tensor scaled back with ``scale_boxes``, so
tests compare our stages and the running node against the reference implementation without
running it. Regenerate (the command is also stored in the fixture):

    python scripts/make_reference_fixtures.py --weights models/test/yolov8n_synth.pt \
        --out test/fixtures/reference_synth.npz
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")

CONF, IOU, MAX_DET, IMGSZ = 0.05, 0.45, 300, 640


def reference(weights: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    from ultralytics.data.augment import LetterBox
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    model, _ = load_checkpoint(str(weights), device="cpu", fuse=True)
    model = model.float().eval()
    boxed = LetterBox((IMGSZ, IMGSZ), auto=False, stride=32)(image=image)
    x = torch.from_numpy(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))).float()[None] / 255.0
    with torch.no_grad():
        raw = model(x)
        raw = raw[0] if isinstance(raw, (list, tuple)) else raw
    det = non_max_suppression(raw.clone(), CONF, IOU, max_det=MAX_DET)[0]
    det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], image.shape[:2])
    return {
        "letterbox": boxed,
        "raw": raw.numpy().astype(np.float32),
        "boxes": det[:, :4].numpy().astype(np.float32),
        "scores": det[:, 4].numpy().astype(np.float32),
        "classes": det[:, 5].numpy().astype(np.int32),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", nargs="*", type=Path, help="default: ultralytics' bus.jpg and zidane.jpg")
    args = ap.parse_args()
    if not args.images:
        from ultralytics.utils import ASSETS

        args.images = [Path(ASSETS) / "bus.jpg", Path(ASSETS) / "zidane.jpg"]
    arrays: dict[str, np.ndarray] = {}
    for path in args.images:
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f"cannot read {path}")
        for key, value in reference(args.weights, image).items():
            arrays[f"{path.stem}/{key}"] = value
        arrays[f"{path.stem}/image_sha256"] = np.array(hashlib.sha256(path.read_bytes()).hexdigest())
    arrays["meta/command"] = np.array(" ".join(["python", *sys.argv]))
    arrays["meta/weights_sha256"] = np.array(hashlib.sha256(args.weights.read_bytes()).hexdigest())
    arrays["meta/nms"] = np.array([CONF, IOU, MAX_DET, IMGSZ], np.float64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {sorted(arrays)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
