#!/usr/bin/env python3
"""Train a small embedding branch on a frozen detector's features (JDE's identity head).

The fixed reduction (``core/embeddings.py``: one mean of 2-4 channels per value) throws away
most of what the Detect head receives, and a map learnt on its 64 values found too little
identity (``scripts/fit_reid_projection.py``, ``benchmarks/tracking.md``); fine-tuning the
detector for identity made it a worse detector. This script keeps the detector bit-identical
and learns a head per pyramid level that sees every channel of the kept anchor's cell and its
3x3 neighbourhood: ``Conv 3x3 (C_l -> H) -> SiLU -> Conv 1x1 (H -> D)``, L2-normalised. With
``--early`` it also reads the first C2f's stride-4 map pooled to the level's cells, which keeps
the colour and texture the neck folded into classes: on the test model that is what carries
identity (``benchmarks/tracking.md``).

How, without a GPU or a training graph:

1. A *patch* model (temporary): the detector with its ``embeddings`` output replaced by each
   anchor's raw 3x3 neighbourhood (zero-padded at the border, as the conv pads), laid out
   ``(dy, dx, channel)``, padded to one width, plus the level as the last value.
2. ``scripts/detect_sequences.py`` runs it on labelled MOT-layout sequences, so every kept
   detection comes with the exact input the branch will see at that anchor in the graph.
3. Detections matched to ground truth (IoU >= ``--match-iou``) take its identity; the branch
   (per level ``Linear(9 C_l, H) -> SiLU -> Linear(H, D)``, which is the conv pair at one cell)
   is trained by supervised contrastive loss within a sequence (``train_reid.supcon_loss``), on
   the CPU; inputs standardised per channel, folded back into the first conv on export.

    python scripts/fit_reid_branch.py --early --model models/test/yolov8n_synth.onnx \\
        --sequences data/reid_train/tracking --out runs/branch/branch.npz \\
        --onnx-out runs/branch/yolov8n_synth.onnx
    # later, or for another copy of the model:
    python -m yolov8_trt_ros.core.embeddings MODEL.onnx -o OUT.onnx --replace --branch runs/branch/branch.npz

``--apply PATCH_DETS --apply-out DIR`` (after training, or with ``--branch B.npz`` instead) maps
the patch model's detections of other sequences (``--patch-model-out`` keeps that model) through
the branch: a branch is compared on held-out sequences without re-running detection.

The output model's detections are the input model's, bit for bit; only ``embeddings`` changes
(D = ``--dim``). Every backend computes the branch: ONNX Runtime and TensorRT in the graph, the
CUDA backend from the ONNX's initializers (``cuda_backend.anchor_embeddings``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from scripts import detect_sequences
from scripts.evaluate_tracker import embeddings_file, find_sequences
from scripts.fit_reid_projection import SupConSchedule, labelled_embeddings, train_supcon, write_fit_info
from yolov8_trt_ros.core.backends.model_info import EMBEDDINGS_OUTPUT
from yolov8_trt_ros.core.embeddings import (
    BranchLevel,
    add_embedding_output_file,
    branch_inputs,
    find_head_inputs,
    load_branch,
    save_branch,
    strip_embeddings,
)

if TYPE_CHECKING:
    import onnx

F32 = npt.NDArray[np.float32]
_PATCH = "/reid_patches"


def patch_model(model: onnx.ModelProto, early: bool = False) -> tuple[onnx.ModelProto, list[int]]:
    """The detector with ``embeddings`` = each anchor's raw 3x3 neighbourhood (see module doc):
    ``[B, 9 * max(C) + 1, A]`` float32, the last row the anchor's level. Returns it and the
    branch's input channels per level. ``early``: the head's inputs with the early backbone map
    pooled to each level concatenated (``embeddings.branch_inputs``), as the branch will read
    them. For training only: the width makes it slow to run."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = strip_embeddings(model)
    head = find_head_inputs(out)
    inputs, channels = [h.tensor for h in head], [h.channels for h in head]
    nodes: list[onnx.NodeProto] = []
    if early:
        inputs, channels, nodes = branch_inputs(out, head, _PATCH)
    width = 9 * max(channels)
    inits: list[onnx.TensorProto] = []

    def const(name: str, values: object, dtype: str) -> str:
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), f"{_PATCH}/{name}"))
        return f"{_PATCH}/{name}"

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        y = f"{_PATCH}/{name}_output_0"
        nodes.append(helper.make_node(op, inputs, [y], name=f"{_PATCH}/{name}", **attrs))
        return y

    per_level = []
    for h, x, c in zip(head, inputs, channels, strict=True):
        tag = f"level{h.level}"
        if h.elem_type != TensorProto.FLOAT:
            x = node("Cast", [x], f"{tag}/Cast", to=TensorProto.FLOAT)
        padded = node("Pad", [x, const(f"{tag}/pads", [0, 0, 1, 1, 0, 0, 1, 1], "int64")], f"{tag}/Pad")
        shifts = []
        for dy in range(3):
            for dx in range(3):
                # cell (y, x) of this slice is input (y + dy - 1, x + dx - 1): a 3x3 conv's tap
                starts = const(f"{tag}/s{dy}{dx}/starts", [dy, dx], "int64")
                ends = node("Add", [node("Shape", [x], f"{tag}/s{dy}{dx}/Shape", start=2), starts],
                            f"{tag}/s{dy}{dx}/Add")  # fmt: skip
                axes = const(f"{tag}/s{dy}{dx}/axes", [2, 3], "int64")
                shifts.append(node("Slice", [padded, starts, ends, axes], f"{tag}/s{dy}{dx}/Slice"))
        taps = node("Concat", shifts, f"{tag}/Concat", axis=1)  # [B, 9 C, H, W], (dy, dx, c)
        pads = const(f"{tag}/width", [0, 0, 0, 0, 0, width - 9 * c, 0, 0], "int64")
        wide = node("Pad", [taps, pads], f"{tag}/PadWidth")
        first = node("Slice", [wide] + [const(f"{tag}/one_{k}", [v], "int64") for k, v in
                                        (("s", 0), ("e", 1), ("a", 1))], f"{tag}/First")  # fmt: skip
        level = node("Add", [node("Mul", [first, const(f"{tag}/zero", [0.0], "float32")], f"{tag}/Zero"),
                             const(f"{tag}/level", [float(h.level)], "float32")], f"{tag}/Level")  # fmt: skip
        cells = node("Concat", [wide, level], f"{tag}/WithLevel", axis=1)
        nhwc = node("Transpose", [cells], f"{tag}/Transpose", perm=[0, 2, 3, 1])
        per_level.append(node("Reshape", [nhwc, const(f"{tag}/shape", [0, -1, width + 1], "int64")],
                              f"{tag}/Reshape"))  # fmt: skip
    rows = node("Concat", per_level, "Concat", axis=1)
    nodes.append(
        helper.make_node("Transpose", [rows], [EMBEDDINGS_OUTPUT], name=f"{_PATCH}/Out", perm=[0, 2, 1])
    )
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    out.graph.output.append(
        helper.make_tensor_value_info(EMBEDDINGS_OUTPUT, TensorProto.FLOAT, [None, width + 1, None])
    )
    onnx.checker.check_model(out)
    return out, channels


class Branch(nn.Module):
    """The branch at one cell per level: ``Linear(9 C_l, H) -> SiLU -> Linear(H, D)``."""

    def __init__(self, channels: list[int], hidden: int, dim: int, mean: list[F32], std: list[F32]) -> None:
        super().__init__()
        self.channels = channels
        self.dim = dim
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Linear(9 * c, hidden), nn.SiLU(), nn.Linear(hidden, dim)) for c in channels
        )
        for i, (m, s) in enumerate(zip(mean, std, strict=True)):
            self.register_buffer(f"mean{i}", torch.from_numpy(m))
            self.register_buffer(f"std{i}", torch.from_numpy(s))

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(len(x), self.dim)
        for i, (c, mlp) in enumerate(zip(self.channels, self.levels, strict=True)):
            sel = level == i
            if bool(sel.any()):
                z = (x[sel, : 9 * c] - getattr(self, f"mean{i}")) / getattr(self, f"std{i}")
                out[sel] = mlp(z)
        return F.normalize(out, dim=1)

    def export(self) -> list[BranchLevel]:
        """As conv weights: the standardisation folded into the first conv."""
        levels = []
        for i, (c, mlp) in enumerate(zip(self.channels, self.levels, strict=True)):
            lin1, lin2 = (cast(nn.Linear, cast(nn.Sequential, mlp)[k]) for k in (0, 2))
            mean = getattr(self, f"mean{i}").double()
            std = getattr(self, f"std{i}").double()
            w1 = lin1.weight.detach().double() / std  # [H, 9C] on raw inputs
            b1 = lin1.bias.detach().double() - w1 @ mean
            hidden = w1.shape[0]
            conv1 = w1.reshape(hidden, 3, 3, c).permute(0, 3, 1, 2)  # (dy, dx, c) -> [H, C, 3, 3]
            levels.append(
                BranchLevel(
                    conv1.float().numpy().copy(),
                    b1.float().numpy(),
                    lin2.weight.detach().float().numpy().reshape(self.dim, hidden, 1, 1).copy(),
                    lin2.bias.detach().float().numpy().copy(),
                )
            )
        return levels


def standardisation(
    data: list[tuple[F32, npt.NDArray[np.int64]]], channels: list[int]
) -> tuple[list[F32], list[F32]]:
    """Per level, per input the mean and standard deviation over the training samples (0 and 1
    for a level without samples, whose branch then stays as initialised: said on stdout)."""
    x = np.concatenate([d for d, _ in data])
    level = x[:, -1].astype(np.int64)
    means, stds = [], []
    for i, c in enumerate(channels):
        v = x[level == i, : 9 * c].astype(np.float64)
        if len(v) < 2:
            print(
                f"level {i}: {len(v)} training samples; its branch stays untrained (no objects of that size?)"
            )
            v = np.stack([np.ones(9 * c), -np.ones(9 * c)])
        means.append(v.mean(0).astype(np.float32))
        stds.append(np.maximum(v.std(0), 1e-3).astype(np.float32))
    return means, stds


def fit(
    data: list[tuple[F32, npt.NDArray[np.int64]]],
    channels: list[int],
    hidden: int,
    dim: int,
    schedule: SupConSchedule,
) -> tuple[Branch, list[float]]:
    """The branch by SupCon, batches of ``per_batch`` samples from each of a few sequences."""
    torch.manual_seed(schedule.seed)  # the initial weights
    model = Branch(channels, hidden, dim, *standardisation(data, channels))
    losses = train_supcon(
        data, lambda x: model(x, x[:, -1].long()), list(model.parameters()), schedule, log_every=200
    )
    return model.eval(), losses


def embed_patches(levels: list[BranchLevel], x: F32) -> F32:
    """The branch's embedding of each patch row (the convs at one cell, as the graph computes
    them from the exported weights), L2-normalised: ``[N, D]``."""
    out = np.zeros((len(x), levels[0].b2.shape[0]), np.float32)
    level = x[:, -1].astype(np.int64)
    for i, part in enumerate(levels):
        sel = level == i
        hidden, c = part.w1.shape[:2]
        w1 = part.w1.transpose(0, 2, 3, 1).reshape(hidden, 9 * c)  # [H, C, 3, 3] -> (dy, dx, c)
        h = x[sel, : 9 * c] @ w1.T + part.b1
        h = h / (1.0 + np.exp(-h))  # SiLU
        out[sel] = h @ part.w2[:, :, 0, 0].T + part.b2
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def apply_to_detections(levels: list[BranchLevel], src: Path, dst: Path) -> int:
    """Copy a patch model's ``detect_sequences.py`` directory with every detection's patch
    replaced by its branch embedding: what the baked model would write, without running it."""
    n = 0
    width = 9 * max(p.w1.shape[1] for p in levels) + 1
    for det in sorted(src.glob("*/det/det.txt")):
        x = np.load(embeddings_file(det)).astype(np.float32)
        if x.ndim != 2 or x.shape[1] != width:
            raise SystemExit(f"{det.parent}: patches of width {x.shape[1:]}, the branch reads {width}")
        out = dst / det.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(det, out)
        np.save(embeddings_file(out), embed_patches(levels, x))
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="YOLOv8 ONNX (with or without embeddings)")
    ap.add_argument("--sequences", type=Path, help="labelled MOT-layout sequences (or their parent)")
    ap.add_argument("--out", type=Path, help="where the branch is written (.npz)")
    ap.add_argument("--onnx-out", type=Path, help="also write --model with the branch as its embeddings")
    ap.add_argument("--patches", type=Path, help="keep the patch detections here (default: a temporary dir)")
    ap.add_argument(
        "--early",
        action="store_true",
        help="the branch also reads the early backbone map (model.2, stride 4)",
    )
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--per-batch", type=int, default=256, help="samples per sequence in a batch")
    ap.add_argument("--sequences-per-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--match-iou", type=float, default=0.5)
    ap.add_argument("--min-visibility", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--patch-model-out", type=Path, help="also keep the patch model (to make --apply's input)"
    )
    ap.add_argument(
        "--apply",
        type=Path,
        help="detections of the patch model (detect_sequences.py) to map through the branch",
    )
    ap.add_argument("--apply-out", type=Path, help="where the mapped copy of --apply goes")
    ap.add_argument(
        "--branch", type=Path, help="with --apply: a trained branch (.npz) instead of training one"
    )
    args = ap.parse_args(argv)
    if (args.apply is None) != (args.apply_out is None):
        ap.error("--apply and --apply-out go together")
    if args.branch is not None:
        if args.apply is None:
            ap.error("--branch is for --apply")
        levels = load_branch(args.branch)
        print(f"{apply_to_detections(levels, args.apply, args.apply_out)} sequences -> {args.apply_out}")
        return 0
    if args.sequences is None or args.out is None:
        ap.error("training needs --sequences and --out")
    import onnx

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        patches = args.patches or Path(tmp) / "patches"
        model, channels = patch_model(onnx.load(str(args.model)), args.early)
        if args.patch_model_out is not None:
            args.patch_model_out.write_bytes(model.SerializeToString())
        if not (patches / "channels.json").is_file():
            patch_onnx = Path(tmp) / "patches.onnx"
            patch_onnx.write_bytes(model.SerializeToString())
            detect_sequences.main(
                ["--sequences", str(args.sequences), "--out", str(patches), "--model", str(patch_onnx)]
            )
            (patches / "channels.json").write_text(json.dumps(channels))
        elif json.loads((patches / "channels.json").read_text()) != channels:
            ap.error(f"{patches} holds patches of other channels (--early or another model?)")
        data = [
            labelled_embeddings(p, patches, args.match_iou, args.min_visibility)
            for p in find_sequences(args.sequences)
        ]
    data = [d for d in data if len(d[1]) > 1]
    if not data:
        ap.error("no detection matched a ground-truth box")
    print(f"{sum(len(i) for _, i in data)} samples from {len(data)} sequences ({time.time() - t0:.0f} s)")
    branch, losses = fit(data, channels, args.hidden, args.dim, SupConSchedule.from_args(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_branch(args.out, branch.export())
    write_fit_info(args, data, losses, t0)
    if args.apply is not None:
        n = apply_to_detections(branch.export(), args.apply, args.apply_out)
        print(f"{n} sequences -> {args.apply_out}")
    if args.onnx_out is not None:
        args.onnx_out.parent.mkdir(parents=True, exist_ok=True)
        dim = add_embedding_output_file(args.model, args.onnx_out, branch=branch.export(), replace=True)
        print(f"{args.onnx_out}: embeddings [B, {dim}, A] from the branch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
