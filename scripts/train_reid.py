#!/usr/bin/env python3
"""Fine-tune a YOLOv8 detector so that its own features re-identify objects.

A detector trained for classes only has no reason to tell two objects of one class apart: the
test model's ``embeddings`` (``core/embeddings.py``) did not (``benchmarks/tracking.md``,
separability). JDE and FairMOT train identity into the detector's features; this script does
the same for the exact vector the exported graph emits, so nothing changes downstream (same
export, same surgery, same backends, same tracker):

* the **embedding** of an anchor is the CUDA backend's ``anchor_embeddings``: the Detect head's
  input at that anchor's level, channels-last, means of contiguous channel groups down to D,
  L2-normalised (ultralytics' ``get_obj_feats``, what the ONNX surgery adds; a test holds the
  two equal);
* the **anchors** that learn an object's identity are those ultralytics' task-aligned assigner
  makes positive for it (the detection loss computes them anyway), so whichever of them
  survives NMS carries the identity;
* the **identity loss** is supervised contrastive (SupCon, Khosla et al. 2020) *within each
  sequence*: MOT ids are numbered per sequence and two sequences' objects may look alike, so an
  anchor's candidates are only the other samples of its own sequence;
* the **detector is held to the original**: a frozen copy of the starting checkpoint is the
  teacher, and the head's outputs are held to its outputs (class scores by BCE against the
  teacher's probabilities, box distributions by KL weighted by the teacher's confidence), on the
  sequence frames and on unlabelled images of other scenes (``--distill-images``), with
  BatchNorm statistics frozen. Ultralytics' ground-truth detection loss alone (run 1 in
  ``benchmarks/tracking.md``; ``--det-weight`` still offers it) learnt identities best but adapted
  the detector to the training scenes: twice the false positives on the evaluation sequences.
  The defaults are run 3's, which kept the detector. Check detection with
  ``scripts/evaluate_accuracy.py`` afterwards.

Data: MOT-layout sequences (``SEQ/img1/*.jpg``, ``SEQ/gt/gt.txt`` rows
``frame,id,x,y,w,h,conf,class,visibility``, class 1-based = model class + 1, 0-based pixels as the
project's generator writes them; ``--offset 1`` for MOTChallenge's 1-based boxes). Rows with
conf 1 and visibility >= ``--min-visibility`` are the labels. A batch is ``--sequences-per-batch``
sequences x ``--frames-per-sequence`` random frames of each, so every batch holds the same
objects seen at different times. No colour augmentation: colour is identity.

    # training sequences (and unlabelled images) from another seed than the evaluation's (0)
    python scripts/make_synthetic_data.py --out /tmp/reid_train --seed 1 --train 3000 --val 0 \\
        --calib 0 --sequences 40 --frames 300 --kinds occlusion reentry crossing crowd mixed
    python scripts/train_reid.py --weights models/test/yolov8n_synth.pt \\
        --sequences /tmp/reid_train/tracking --distill-images /tmp/reid_train/detection/images/train \\
        --out runs/reid_train --minutes 4.3 --export

Writes ``OUT/<name>.pt`` (an ultralytics checkpoint, loadable by ``YOLO``), with ``--export``
``OUT/<name>.onnx`` (exported as ``scripts/train_test_model.py`` does, then the embeddings output
added), and ``OUT/train_reid.json`` (arguments, losses over time, steps, wall time, device).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from scripts.evaluate_tracker import Sequence, find_sequences, read_sequence
from yolov8_trt_ros.core.backends.cuda_backend import anchor_embeddings

MIN_BOX_PX = 2.0  # a label narrower or lower than this (after clipping to the frame) is dropped


def supcon_loss(
    emb: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """Supervised contrastive loss where only samples of one group (sequence) are compared.

    ``emb`` [N, D] unit vectors, ``labels`` [N] identities, ``groups`` [N] sequence of each
    sample. For sample ``i`` the positives are the other samples with its group and label, the
    candidates every other sample of its group; samples without a positive do not count.
    Returns 0 (with a gradient path) when no sample has one.
    """
    n = emb.shape[0]
    logits = emb @ emb.T / temperature
    same_group = groups[:, None] == groups[None, :]
    not_self = ~torch.eye(n, dtype=torch.bool, device=emb.device)
    candidates = same_group & not_self
    positives = candidates & (labels[:, None] == labels[None, :])
    logits = logits.masked_fill(~candidates, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = positives.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return emb.sum() * 0.0
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    return -(pos_log_prob[has] / n_pos[has]).mean()


@dataclass
class Labels:
    """One frame's training labels in letterboxed pixel space."""

    boxes: npt.NDArray[np.float32]  # [N, 4] cx, cy, w, h, normalised by the input size
    classes: npt.NDArray[np.float32]  # [N]
    ids: npt.NDArray[np.int64]  # [N]


def load_letterboxed(
    path: Path, imgsz: int
) -> tuple[npt.NDArray[np.uint8], tuple[int, int], float, tuple[int, int]]:
    """RGB ``[imgsz, imgsz, 3]`` letterboxed as the pipeline does (pad 114, centred), with the
    source's (h, w), the scale and the (left, top) offset."""
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read {path}")
    h, w = image.shape[:2]
    scale = min(imgsz / w, imgsz / h)
    nw, nh = round(w * scale), round(h * scale)
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = (imgsz - nw) // 2, (imgsz - nh) // 2
    canvas = np.full((imgsz, imgsz, 3), 114, np.uint8)
    canvas[top : top + nh, left : left + nw] = image
    return np.ascontiguousarray(canvas[..., ::-1]), (h, w), scale, (left, top)


class SequenceFrames:
    """Frames and labels of one MOT-layout sequence, letterboxed to a square input."""

    def __init__(self, seq: Sequence, imgsz: int, min_visibility: float, offset: float) -> None:
        self.seq = seq
        self.imgsz = imgsz
        self.files = sorted((seq.path / "img1").glob("*.jpg")) + sorted((seq.path / "img1").glob("*.png"))
        if not self.files:
            raise FileNotFoundError(f"{seq.path}/img1 has no .jpg or .png frames")
        self.min_visibility = min_visibility
        self.offset = offset

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[npt.NDArray[np.uint8], Labels]:
        """RGB ``[imgsz, imgsz, 3]`` letterboxed (pad 114, centred) and the frame's labels."""
        canvas, (h, w), scale, (left, top) = load_letterboxed(self.files[index], self.imgsz)
        rows = self.seq.rows_at(index + 1)
        rows = rows[self.seq.visibility[rows] >= self.min_visibility]
        xywh = self.seq.boxes[rows] - np.array([self.offset, self.offset, 0.0, 0.0])
        x0 = np.clip(xywh[:, 0], 0, w)
        y0 = np.clip(xywh[:, 1], 0, h)
        x1 = np.clip(xywh[:, 0] + xywh[:, 2], 0, w)
        y1 = np.clip(xywh[:, 1] + xywh[:, 3], 0, h)
        ok = (x1 - x0 >= MIN_BOX_PX) & (y1 - y0 >= MIN_BOX_PX)
        x0, y0, x1, y1 = x0[ok], y0[ok], x1[ok], y1[ok]
        boxes = np.stack(
            [
                ((x0 + x1) / 2 * scale + left) / self.imgsz,
                ((y0 + y1) / 2 * scale + top) / self.imgsz,
                (x1 - x0) * scale / self.imgsz,
                (y1 - y0) * scale / self.imgsz,
            ],
            axis=1,
        ).astype(np.float32)
        labels = Labels(boxes, self.seq.class_ids[rows][ok].astype(np.float32), self.seq.ids[rows][ok])
        return canvas, labels


class BatchSource(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Item ``i`` is a whole batch drawn from a generator seeded with ``(seed, i)``.

    The sequences' frames come first (with labels and identities); then ``n_extra`` unlabelled
    images drawn from ``extra`` (group -1), which only the distillation sees.
    """

    def __init__(
        self,
        seqs: list[SequenceFrames],
        per_batch: int,
        frames: int,
        seed: int,
        flip: bool,
        extra: list[Path] | None = None,
        n_extra: int = 0,
    ) -> None:
        self.seqs = seqs
        self.extra = extra or []
        self.n_extra = n_extra if self.extra else 0
        self.per_batch = min(per_batch, len(seqs))
        self.frames = frames
        self.seed = seed
        self.flip = flip

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        images: list[npt.NDArray[np.uint8]] = []
        batch_idx: list[npt.NDArray[np.float32]] = []
        classes: list[npt.NDArray[np.float32]] = []
        boxes: list[npt.NDArray[np.float32]] = []
        ids: list[npt.NDArray[np.int64]] = []
        groups: list[int] = []
        for s in rng.choice(len(self.seqs), self.per_batch, replace=False):
            seq = self.seqs[int(s)]
            for f in rng.choice(len(seq), min(self.frames, len(seq)), replace=False):
                image, lab = seq.load(int(f))
                if self.flip and rng.random() < 0.5:  # the same flip for a whole frame keeps ids valid
                    image = np.ascontiguousarray(image[:, ::-1])
                    lab.boxes[:, 0] = 1.0 - lab.boxes[:, 0]
                batch_idx.append(np.full(len(lab.ids), len(images), np.float32))
                images.append(image)
                classes.append(lab.classes)
                boxes.append(lab.boxes)
                ids.append(lab.ids)
                groups.append(int(s))
        imgsz = self.seqs[0].imgsz
        for k in rng.choice(len(self.extra), self.n_extra) if self.n_extra else []:
            images.append(load_letterboxed(self.extra[int(k)], imgsz)[0])
            groups.append(-1)
        return {
            "img": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            "batch_idx": torch.from_numpy(np.concatenate(batch_idx)),
            "cls": torch.from_numpy(np.concatenate(classes))[:, None],
            "bboxes": torch.from_numpy(np.concatenate(boxes)),
            "ids": torch.from_numpy(np.concatenate(ids)),
            "groups": torch.tensor(groups),
        }


def padded_ids(batch: dict[str, torch.Tensor], n_images: int) -> torch.Tensor:
    """``[B, M]`` ids in the order ultralytics' loss pads each image's targets (file order), -1 pad.

    That loss (``v8DetectionLoss.preprocess``) needs targets grouped by image, as here.
    """
    idx = batch["batch_idx"].long()
    if len(idx) and bool((idx[1:] < idx[:-1]).any()):
        raise ValueError("targets must be grouped by image (batch_idx non-decreasing)")
    counts = torch.bincount(idx, minlength=n_images)
    out = torch.full((n_images, max(int(counts.max()) if len(idx) else 0, 1)), -1, dtype=torch.long)
    for i in range(n_images):
        sel = batch["ids"][idx == i]
        out[i, : len(sel)] = sel
    return out


def identity_samples(
    emb: torch.Tensor,
    fg_mask: torch.Tensor,
    target_gt_idx: torch.Tensor,
    ids: torch.Tensor,
    groups: torch.Tensor,
    max_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embeddings, identities and sequences of the assigner's positive anchors (a random subset)."""
    b, a = fg_mask.nonzero(as_tuple=True)
    if len(b) > max_samples:
        keep = torch.randperm(len(b), generator=generator, device="cpu")[:max_samples].to(b.device)
        b, a = b[keep], a[keep]
    labels = ids[b, target_gt_idx[b, a]]
    return emb[b, a], labels, groups[b]


def distill_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """How far the head's outputs moved from the teacher's: class BCE + confidence-weighted box KL.

    ``boxes`` are ``[B, 4 * reg_max, A]`` DFL logits, ``scores`` ``[B, nc, A]`` class logits.
    Both terms are normalised by the teacher's total confidence, as ultralytics normalises its
    losses by the target scores' sum, so they do not grow with the number of empty anchors.
    """
    t_prob = teacher["scores"].float().sigmoid()
    weight = t_prob.amax(1)  # [B, A] the teacher's confidence per anchor
    norm = weight.sum().clamp(min=1.0)
    t_logits = teacher["scores"].float()
    entropy = F.binary_cross_entropy_with_logits(
        t_logits, t_prob, reduction="sum"
    )  # BCE's floor: 0 when equal
    cls = (
        F.binary_cross_entropy_with_logits(student["scores"].float(), t_prob, reduction="sum") - entropy
    ) / norm
    b, c, a = student["boxes"].shape
    s_log = F.log_softmax(student["boxes"].float().view(b, 4, c // 4, a), dim=2)
    t_log = F.log_softmax(teacher["boxes"].float().view(b, 4, c // 4, a), dim=2)
    kl = (t_log.exp() * (t_log - s_log)).sum(2).sum(1)  # [B, A]
    return cls + (kl * weight).sum() / norm


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """BatchNorm layers use (and keep) the checkpoint's running statistics, as at inference."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def load_detector(weights: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any], Any]:
    """The checkpoint's model in float32 on ``device`` with ultralytics' detection criterion."""
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.utils import IterableSimpleNamespace
    from ultralytics.utils.loss import v8DetectionLoss

    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    model = (ckpt.get("ema") or ckpt["model"]).float().to(device)
    train_args = dict(ckpt.get("train_args") or {})
    model.args = IterableSimpleNamespace(**{**DEFAULT_CFG_DICT, **train_args})
    for p in model.parameters():
        p.requires_grad_(True)
    return model, train_args, v8DetectionLoss(model)


def save_checkpoint(
    model: torch.nn.Module, train_args: dict[str, Any], path: Path, info: dict[str, Any]
) -> None:
    """An ultralytics checkpoint (fp16 model, as ultralytics saves ``best.pt``) with ``reid`` info."""
    import copy

    import ultralytics

    half = copy.deepcopy(model).half().eval()
    for p in half.parameters():
        p.requires_grad_(False)
    torch.save(
        {
            "date": datetime.now(timezone.utc).isoformat(),
            "version": ultralytics.__version__,
            "epoch": -1,
            "model": half,
            "ema": None,
            "train_args": train_args,
            "reid_finetune": info,
        },
        path,
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    torch.manual_seed(args.seed)
    model, train_args, criterion = load_detector(args.weights, device)
    teacher = None
    if args.distill_weight > 0:
        teacher, _, _ = load_detector(args.weights, device)
        teacher.eval().requires_grad_(False)
    imgsz = int(train_args.get("imgsz", 640))
    seqs = [
        SequenceFrames(read_sequence(p), imgsz, args.min_visibility, args.offset)
        for root in args.sequences
        for p in find_sequences(root)
    ]
    source = BatchSource(
        seqs, args.sequences_per_batch, args.frames_per_sequence, args.seed, not args.no_flip
    )
    loader = torch.utils.data.DataLoader(
        source,
        batch_size=None,
        shuffle=False,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if args.workers > 0 else None,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    model.train()
    freeze_batchnorm(model)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    budget = args.minutes * 60.0
    log: list[dict[str, float]] = []
    start = time.time()
    step = 0
    sums = np.zeros(4)
    for batch in loader:
        elapsed = time.time() - start
        if elapsed >= budget or (args.max_steps and step >= args.max_steps):
            break
        progress = min(elapsed / budget, 1.0) if not args.max_steps else step / args.max_steps
        warm = min(1.0, (step + 1) / args.warmup_steps)
        lr = args.lr * warm * (args.lr_final + (1 - args.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        img = batch["img"].to(device, non_blocking=True).float() / 255.0
        targets = {k: batch[k].to(device) for k in ("batch_idx", "cls", "bboxes")}
        n_img = img.shape[0]
        with autocast:
            preds = model(img)
            if teacher is not None:
                with torch.no_grad():
                    teacher_preds = teacher(img)[1]
        assigned, det_loss, _ = criterion.get_assigned_targets_and_loss(
            {k: (v.float() if k != "feats" else [f.float() for f in v]) for k, v in preds.items()}, targets
        )
        fg_mask, target_gt_idx = assigned[0], assigned[1]
        emb = anchor_embeddings(preds["feats"])
        ids = padded_ids(batch, n_img).to(device)
        groups = batch["groups"].to(device)
        e, lab, grp = identity_samples(emb, fg_mask, target_gt_idx, ids, groups, args.max_samples)
        id_loss = supcon_loss(e, lab, grp, args.temperature)
        loss = args.det_weight * det_loss.sum() + args.id_weight * id_loss
        dist = distill_loss(preds, teacher_preds) if teacher is not None else torch.zeros((), device=device)
        loss = loss + args.distill_weight * dist
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        sums += [float(det_loss.sum().detach()), float(id_loss.detach()), float(dist.detach()), len(e)]
        if step % args.log_every == 0:
            det, idl, dis, n = sums / args.log_every
            log.append(
                {
                    "step": step,
                    "seconds": round(time.time() - start, 1),
                    "lr": lr,
                    "det_loss": round(det, 4),
                    "id_loss": round(idl, 4),
                    "distill_loss": round(dis, 5),
                    "samples": round(n, 1),
                }
            )
            print(json.dumps(log[-1]), flush=True)
            sums[:] = 0
    wall = time.time() - start
    info = {
        "weights": str(args.weights),
        "sequences": [str(s) for s in args.sequences],
        "n_sequences": len(seqs),
        "steps": step,
        "images": step * source.per_batch * args.frames_per_sequence,
        "seconds": round(wall, 1),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "args": {
            k: v for k, v in json.loads(json.dumps(vars(args), default=str)).items() if k != "sequences"
        },
        "log": log,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / f"{args.name}.pt"
    save_checkpoint(model, train_args, pt, {k: v for k, v in info.items() if k != "log"})
    info["checkpoint"] = str(pt)
    return info


def export(pt: Path, onnx_path: Path, imgsz: int) -> Path:
    """ONNX as the test model's (``train_test_model.export_onnx``) plus the embeddings output."""
    from scripts.train_test_model import export_onnx
    from yolov8_trt_ros.core.embeddings import add_embedding_output_file

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(pt, onnx_path, imgsz)
    add_embedding_output_file(onnx_path, onnx_path)
    return onnx_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights", type=Path, required=True, help="ultralytics YOLOv8 detection checkpoint (.pt)"
    )
    ap.add_argument(
        "--sequences", type=Path, nargs="+", default=[], help="MOT-layout sequence dirs or their parents"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/reid_train"))
    ap.add_argument("--name", default="yolov8n_synth_reid")
    ap.add_argument(
        "--minutes", type=float, default=4.0, help="training time budget (the LR schedule spans it)"
    )
    ap.add_argument(
        "--max-steps", type=int, default=0, help="stop after this many steps instead (0: time only)"
    )
    ap.add_argument("--sequences-per-batch", type=int, default=4)
    ap.add_argument("--frames-per-sequence", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lr-final", type=float, default=0.05, help="final LR as a fraction of --lr (cosine)")
    ap.add_argument("--warmup-steps", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--id-weight", type=float, default=1.0)
    ap.add_argument("--det-weight", type=float, default=0.0, help="ultralytics' ground-truth detection loss")
    ap.add_argument("--distill-weight", type=float, default=10.0, help="outputs held to the starting model's")
    ap.add_argument(
        "--distill-images",
        type=Path,
        nargs="*",
        default=[],
        help="unlabelled image dirs the distillation also sees",
    )
    ap.add_argument("--distill-batch", type=int, default=8, help="images of --distill-images per batch")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument(
        "--max-samples", type=int, default=2048, help="positive anchors per batch for the identity loss"
    )
    ap.add_argument("--min-visibility", type=float, default=0.5)
    ap.add_argument("--offset", type=float, default=0.0, help="1 for 1-based ground truth (MOTChallenge)")
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument(
        "--export", action="store_true", help="also write OUT/NAME.onnx with the embeddings output"
    )
    ap.add_argument(
        "--export-only",
        action="store_true",
        help="no training: export --weights (a fine-tuned .pt) to OUT/NAME.onnx",
    )
    args = ap.parse_args(argv)
    if args.export_only:
        print(f"-> {export(args.weights, args.out / f'{args.name}.onnx', 640)}")
        return 0
    if not args.sequences:
        ap.error("--sequences is required for training")
    info = train(args)
    if args.export:
        t0 = time.time()
        checkpoint = Path(info["checkpoint"])
        info["onnx"] = str(export(checkpoint, checkpoint.with_suffix(".onnx"), 640))
        info["export_seconds"] = round(time.time() - t0, 1)
    (args.out / "train_reid.json").write_text(json.dumps(info, indent=1) + "\n")
    print(
        f"steps {info['steps']} in {info['seconds']} s -> {info['checkpoint']}"
        + (f", {info['onnx']}" if args.export else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
