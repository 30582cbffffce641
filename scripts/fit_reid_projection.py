#!/usr/bin/env python3
"""Learn the appearance metric of a detector's own embeddings without touching the detector.

The network's ``embeddings`` output (``core/embeddings.py``) is a fixed reduction of the Detect
head's input: it carries what the detector needed to classify, not what tells two objects of a
class apart. Fine-tuning the detector for identity (``scripts/train_reid.py``) made it a worse
detector every time it learnt enough identity (``benchmarks/tracking.md``). This script learns a
linear map ``W`` ``[D, D]`` applied to the reduced vector before its L2 normalisation, with the
detector frozen: detections stay bit-identical, only the embedding changes. Because
normalisation only rescales, ``normalize(W^T v) == normalize(W^T normalize(v))``: ``W`` is fitted
on the embeddings the model already writes, on the CPU, in seconds.

Training samples: each detection matched (IoU >= ``--match-iou``, optimal assignment) to a
ground-truth box of its frame takes that box's identity. Loss: supervised contrastive (SupCon)
within a sequence, as in ``train_reid.py``; ``W`` starts at the identity (today's metric).

    python scripts/detect_sequences.py --sequences data/reid_train/tracking --out runs/reid_train_dets \\
        --model MODEL_WITH_EMBEDDINGS.onnx
    python scripts/fit_reid_projection.py --sequences data/reid_train/tracking \\
        --detections runs/reid_train_dets --out runs/reid_projection.npy
    python -m yolov8_trt_ros.core.embeddings MODEL.onnx OUT.onnx --projection runs/reid_projection.npy

``--apply DETS --apply-out DIR`` rewrites a detections directory's embeddings through ``W``
(how ``benchmarks/tracking.md`` evaluates a projection before baking it into a model).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from scripts.evaluate_tracker import embeddings_file, find_sequences, read_detections, read_sequence
from scripts.train_reid import supcon_loss
from yolov8_trt_ros.core.tracking.matching import iou_matrix

F32 = npt.NDArray[np.float32]


def labelled_embeddings(
    seq_dir: Path, det_dir: Path, match_iou: float, min_visibility: float
) -> tuple[F32, npt.NDArray[np.int64]]:
    """Embeddings of the detections matched to a ground-truth box, and that box's identity."""
    seq = read_sequence(seq_dir)
    det_path = det_dir / seq.name / "det" / "det.txt"
    if not embeddings_file(det_path).is_file():
        raise SystemExit(f"{det_dir / seq.name}: no embeddings beside the detections")
    gt_xyxy = np.concatenate([seq.boxes[:, :2], seq.boxes[:, :2] + seq.boxes[:, 2:4]], axis=1)
    embs: list[F32] = []
    ids: list[int] = []
    for frame, d in enumerate(read_detections(det_path, seq.n_frames), start=1):
        assert d.embeddings is not None  # the file exists: read_detections attached it to every frame
        rows = seq.rows_at(frame)
        rows = rows[seq.visibility[rows] >= min_visibility]
        iou = iou_matrix(gt_xyxy[rows], d.boxes)
        gi, di = linear_sum_assignment(-iou)
        ok = iou[gi, di] >= match_iou
        embs.append(d.embeddings[di[ok]])
        ids.extend(seq.ids[rows[gi[ok]]].tolist())
    return (np.concatenate(embs) if embs else np.zeros((0, 0), np.float32)), np.asarray(ids, np.int64)


@dataclass(frozen=True)
class SupConSchedule:
    """How :func:`train_supcon` samples and steps (each script's argparse gives the defaults)."""

    steps: int
    per_batch: int  #: samples drawn from each sequence of a batch
    sequences_per_batch: int
    lr: float  #: peak, cosine-annealed to 0
    temperature: float
    seed: int
    weight_decay: float = 0.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SupConSchedule:
        """The fields ``args`` has (``--weight-decay`` is the branch's only)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def train_supcon(
    data: list[tuple[F32, npt.NDArray[np.int64]]],
    embed: Callable[[torch.Tensor], torch.Tensor],
    params: list[torch.nn.Parameter],
    schedule: SupConSchedule,
    log_every: int = 0,
) -> list[float]:
    """Fit ``params`` so that ``embed(samples)`` (unit rows) minimises SupCon within a sequence:
    each step ``per_batch`` samples of each of ``sequences_per_batch`` sequences, AdamW with a
    cosine learning rate. Shared by the projection and the branch (``fit_reid_branch.py``)."""
    rng = np.random.default_rng(schedule.seed)
    torch.manual_seed(schedule.seed)
    opt = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    tensors = [(torch.from_numpy(e), torch.from_numpy(i)) for e, i in data]
    losses: list[float] = []
    for step in range(schedule.steps):
        picks = rng.choice(len(tensors), size=min(schedule.sequences_per_batch, len(tensors)), replace=False)
        es, ls, gs = [], [], []
        for g, k in enumerate(picks):
            e, i = tensors[k]
            sel = torch.from_numpy(rng.choice(len(e), size=min(schedule.per_batch, len(e)), replace=False))
            es.append(e[sel])
            ls.append(i[sel])
            gs.append(torch.full((len(sel),), g))
        loss = supcon_loss(embed(torch.cat(es)), torch.cat(ls), torch.cat(gs), schedule.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:
            group["lr"] = schedule.lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / schedule.steps))
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            print(f"step {step}: loss {np.mean(losses[-log_every:]):.3f}", flush=True)
    return losses


def fit(data: list[tuple[F32, npt.NDArray[np.int64]]], schedule: SupConSchedule) -> tuple[F32, list[float]]:
    """``W`` ``[D, D]`` by SupCon on ``normalize(v @ W)``, starting at the identity."""
    w = torch.nn.Parameter(torch.eye(data[0][0].shape[1]))
    losses = train_supcon(data, lambda v: F.normalize(v @ w, dim=1), [w], schedule)
    return w.detach().numpy().astype(np.float32), losses


def write_fit_info(
    args: argparse.Namespace, data: list[tuple[F32, npt.NDArray[np.int64]]], losses: list[float], t0: float
) -> None:
    """``args.out`` with ``.json``: what was fitted on what, the loss at both ends, the time; the
    same on stdout without the arguments."""
    info = {
        "sequences": len(data),
        "samples": int(sum(len(i) for _, i in data)),
        "loss_first_100": float(np.mean(losses[:100])),
        "loss_last_100": float(np.mean(losses[-100:])),
        "seconds": round(time.time() - t0, 1),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps({k: v for k, v in info.items() if k != "args"}))


def project(emb: F32, w: F32) -> F32:
    """``normalize(emb @ w)``, rows of zeros kept zero."""
    z = emb @ w
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def apply_to_detections(src: Path, dst: Path, w: F32) -> int:
    """Copy a ``detect_sequences.py`` directory with every embeddings file mapped through ``w``."""
    n = 0
    for det in sorted(src.glob("*/det/det.txt")):
        out = dst / det.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(det, out)
        emb = embeddings_file(det)
        np.save(embeddings_file(out), project(np.load(emb).astype(np.float32), w))
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=Path, help="MOT-layout training sequences (or their parent)")
    ap.add_argument("--detections", type=Path, help="detect_sequences.py output for those sequences")
    ap.add_argument("--out", type=Path, help="where W is written (.npy, float32 [D, D])")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--per-batch", type=int, default=256, help="samples per sequence in a batch")
    ap.add_argument("--sequences-per-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--match-iou", type=float, default=0.5)
    ap.add_argument("--min-visibility", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--apply", type=Path, help="a detections dir whose embeddings to map through W")
    ap.add_argument("--apply-out", type=Path, help="where the mapped copy of --apply goes")
    ap.add_argument("--projection", type=Path, help="W to apply (default: the one just fitted, --out)")
    args = ap.parse_args(argv)
    w: F32 | None = None
    if args.sequences is not None:
        if args.detections is None or args.out is None:
            ap.error("fitting needs --sequences, --detections and --out")
        t0 = time.time()
        data = [
            labelled_embeddings(p, args.detections, args.match_iou, args.min_visibility)
            for p in find_sequences(args.sequences)
        ]
        data = [d for d in data if len(d[1]) > 1]
        if not data:
            ap.error("no detection matched a ground-truth box")
        w, losses = fit(data, SupConSchedule.from_args(args))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, w)
        write_fit_info(args, data, losses, t0)
    if args.apply is not None:
        if args.apply_out is None:
            ap.error("--apply needs --apply-out")
        if args.projection is not None or w is None:  # a given W wins over the one just fitted
            if (args.projection or args.out) is None:
                ap.error("--apply needs --projection (or a fit's --out)")
            w = np.load(args.projection or args.out).astype(np.float32)
        print(f"{apply_to_detections(args.apply, args.apply_out, w)} sequences -> {args.apply_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
