#!/usr/bin/env python3
"""MOTA / IDF1 / ID switches / wrong merges of our trackers and ultralytics' on the same detections.

Trackers (``--trackers``): ``ours`` (ByteTrack), ``ours-reid`` (our tracker with
``reid_enabled=True``, made by :func:`make_reid_tracker`), ``ultralytics`` (BYTETracker) and
``botsort`` (ultralytics' BOTSORT with ``with_reid: True, model: auto``, GMC off: the camera is
static). Every tracker sees the same detections and, where it uses them, the same embeddings.

How BOTSORT gets the embeddings: with ``model: auto`` ultralytics' ``build_encoder`` returns a
pass-through (``_auto_encoder(feats, dets)`` -> one row per detection), and
``BYTETracker.update(results, img, feats)`` slices ``feats`` with the same high/low score masks
as the boxes (``_input_for``) before ``init_track`` hands each row to its ``BOTrack``. In
ultralytics' own ``track`` mode ``feats`` is ``get_obj_feats`` of the Detect head's inputs at
the kept anchors (P3-P5 channels mean-reduced to one length); here it is the detector's
``embeddings`` output (the same reduction, L2-normalised, which does not change BOTSORT's cosine
distance), passed as ``update(results, None, feats=embeddings)``. Its ReID thresholds are
botsort.yaml's (proximity 0.5, appearance 0.8 = cosine distance <= 0.4); track thresholds and
buffer are ours, as for BYTETracker.

Detections and embeddings, in order of preference: ``--detections`` (MOT ``det.txt`` files; the
embeddings, ``[N, D]`` float32 row-aligned with the file's rows, beside them: ``det/embeddings.npy``
for ``SEQ/det/det.txt``, ``DIR/SEQ.embeddings.npy`` for ``DIR/SEQ.txt``), ``--model`` (the
project's pipeline on ONNX Runtime over ``SEQ/img1``: detections and, where the model has an
``embeddings`` output, embeddings), or simulated from the ground truth (below), with simulated
embeddings: a unit vector per identity plus Gaussian noise (``--embedding-noise``), random unit
vectors for false positives.

    # occlusion / re-entry sequences, the test model's detections + embeddings (lead's final run)
    python scripts/make_synthetic_data.py --out data/reid --seed 0 --train 0 --val 0 --calib 0 \\
        --sequences 6 --frames 600 --kinds occlusion reentry crossing crowd --workers 2
    python scripts/detect_sequences.py --sequences data/reid/tracking --out runs/reid_dets
    python scripts/evaluate_tracker.py --sequences data/reid/tracking --detections runs/reid_dets \\
        --trackers ours ours-reid ultralytics botsort --markdown benchmarks/tracking.md

    # synthetic MOT17-layout sequences from the project's generator (ground truth only, no images)
    python scripts/evaluate_tracker.py --synthetic 8 --seed 0 --markdown benchmarks/tracking.md
    # MOT17 (or any MOT-layout folder): a sequence dir, or a dir of sequence dirs
    python scripts/evaluate_tracker.py --sequences data/MOT17/train            # noisy detections from gt
    python scripts/evaluate_tracker.py --sequences data/MOT17/train --detections seq  # SEQ/det/det.txt
    python scripts/evaluate_tracker.py --sequences runs/seqs --detections runs/dets   # DIR/<SEQ>.txt

Detections come either from a detector's MOT-format file (``frame,id,x,y,w,h,score[,class+1,...]``;
boxes in the same pixel convention as gt.txt) or from the ground truth with seeded noise: box
jitter proportional to the box size, misses (more under occlusion, always when almost fully
hidden), false positives, and scores drawn so that partly occluded objects often score below
``track_thresh``, which is where ByteTrack's second association earns its keep. Both trackers
see exactly the same detections, frame by frame, with the same thresholds; scoring is
motmetrics with IoU >= 0.5 (distance ``max_iou=0.5``). For sequences whose name starts with
MOT16/MOT17/MOT20 the ground truth is filtered the standard way (class 1 = pedestrian, conf 1);
otherwise every row with conf 1 counts.

The functions are importable (the tracker tests and ``benchmarks/tracker_speed.py`` use them).
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import os
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.machine import describe_machine
from yolov8_trt_ros.core.tracking.bytetrack import ByteTracker
from yolov8_trt_ros.core.types import Detections

F64 = npt.NDArray[np.float64]
#: One frame of tracker output: ids [K] and boxes [K, 4] as x, y, w, h.
FrameHyp = tuple[npt.NDArray[np.int64], F64]
MOT_PREFIXES = ("MOT16", "MOT17", "MOT20")
#: Length of the simulated embeddings (the test model's ``embeddings`` output has 64 too).
EMBEDDING_DIM = 64


# ------------------------------------------------------------------------------------------------
# Sequences
# ------------------------------------------------------------------------------------------------
@dataclass
class Sequence:
    """Ground truth of one MOT-layout sequence; ``rows`` are per gt box, frames 1-based."""

    name: str
    path: Path
    n_frames: int
    frame_rate: float
    width: int
    height: int
    frames: npt.NDArray[np.int64]
    ids: npt.NDArray[np.int64]
    boxes: F64  # x, y, w, h
    class_ids: npt.NDArray[np.int64]  # 0-based
    visibility: F64
    kind: str = ""  # synthetic sequences: seqinfo.ini's kind= and generator=
    generator: str = ""

    def __post_init__(self) -> None:
        self._order = np.argsort(self.frames, kind="stable")
        self._sorted_frames = self.frames[self._order]

    def rows_at(self, frame: int) -> npt.NDArray[np.intp]:
        """Row indices of 1-based ``frame``, in file order."""
        lo, hi = np.searchsorted(self._sorted_frames, [frame, frame + 1])
        return self._order[lo:hi]


def _read_csv(path: Path, min_cols: int) -> F64:
    """A MOT text file as a float array; rows shorter than the longest are padded with NaN."""
    if not path.is_file():
        return np.zeros((0, min_cols))
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    if rows and min(len(r) for r in rows) < min_cols:
        raise ValueError(f"{path}: every row needs at least {min_cols} comma-separated columns")
    data = np.full((len(rows), max([min_cols, *(len(r) for r in rows)])), np.nan)
    for i, r in enumerate(rows):
        data[i, : len(r)] = [float(v) for v in r]
    return data


def read_sequence(seq_dir: Path, gt_filter: str = "auto") -> Sequence:
    """Read ``seqinfo.ini`` and ``gt/gt.txt`` (``frame,id,x,y,w,h,conf,class,visibility``).

    ``gt_filter``: ``mot17`` keeps class 1 with conf 1 (pedestrians that count), ``all`` keeps
    every row with conf 1, ``auto`` picks ``mot17`` for MOT16/17/20 sequences.
    """
    ini = configparser.ConfigParser()
    if not ini.read(seq_dir / "seqinfo.ini"):
        raise FileNotFoundError(f"{seq_dir}/seqinfo.ini not found: not a MOT-layout sequence")
    info = ini["Sequence"]
    name = info.get("name", seq_dir.name)
    gt = _read_csv(seq_dir / "gt" / "gt.txt", 6)
    if gt.shape[1] < 9:  # MOT15-style files without conf/class/visibility
        gt = np.concatenate([gt, np.full((gt.shape[0], 9 - gt.shape[1]), np.nan)], axis=1)
    gt[:, 6:9] = np.where(np.isnan(gt[:, 6:9]), 1.0, gt[:, 6:9])
    mode = gt_filter if gt_filter != "auto" else ("mot17" if name.startswith(MOT_PREFIXES) else "all")
    keep = gt[:, 6] == 1
    if mode == "mot17":
        keep &= gt[:, 7] == 1
    gt = gt[keep]
    return Sequence(
        name=name,
        path=seq_dir,
        n_frames=int(info.get("seqLength", int(gt[:, 0].max()) if len(gt) else 0)),
        frame_rate=float(info.get("frameRate", 30)),
        width=int(info.get("imWidth", 0)),
        height=int(info.get("imHeight", 0)),
        frames=gt[:, 0].astype(np.int64),
        ids=gt[:, 1].astype(np.int64),
        boxes=gt[:, 2:6].copy(),
        class_ids=np.maximum(gt[:, 7].astype(np.int64) - 1, 0),
        visibility=np.clip(gt[:, 8], 0.0, 1.0),
        kind=info.get("kind", ""),
        generator=info.get("generator", ""),
    )


def find_sequences(root: Path) -> list[Path]:
    """``root`` itself if it is a sequence, else its sub-folders that are, sorted by name."""
    if (root / "seqinfo.ini").is_file():
        return [root]
    seqs = sorted(p for p in root.iterdir() if (p / "seqinfo.ini").is_file())
    if not seqs:
        raise FileNotFoundError(f"no MOT-layout sequence (seqinfo.ini) in {root}")
    return seqs


def write_synthetic(
    out_dir: Path, n_sequences: int, seed: int, n_frames: int, n_objects: int, kinds: list[str] | None = None
) -> list[Path]:
    """Synthetic sequences in MOT17 layout: ``gt/gt.txt`` and ``seqinfo.ini`` only.

    Ground truth comes from ``tracking_ground_truth`` (identical to the ``gt.txt`` that
    ``generate_tracking_sequences`` writes next to the rendered frames); no pixels are needed
    when detections are simulated from the ground truth.
    """
    from yolov8_trt_ros.datasets.tracking import (
        FRAME_RATE,
        TRACKING_GENERATOR_VERSION,
        sequence_name,
        tracking_ground_truth,
    )

    kinds = kinds or ["mixed"]
    paths = []
    for s in range(n_sequences):
        kind = kinds[s % len(kinds)]
        gt = tracking_ground_truth(seed, s, n_frames=n_frames, n_objects=n_objects, kind=kind)
        seq_dir = out_dir / sequence_name(s)
        (seq_dir / "gt").mkdir(parents=True, exist_ok=True)
        (seq_dir / "gt" / "gt.txt").write_text(gt.mot_lines())
        (seq_dir / "seqinfo.ini").write_text(
            f"[Sequence]\nname={seq_dir.name}\nimDir=img1\nframeRate={FRAME_RATE}\nseqLength={n_frames}\n"
            f"imWidth={gt.width}\nimHeight={gt.height}\nimExt=.jpg\nkind={kind}\n"
            f"generator={TRACKING_GENERATOR_VERSION}\n"
        )
        paths.append(seq_dir)
    return paths


# ------------------------------------------------------------------------------------------------
# Detections
# ------------------------------------------------------------------------------------------------
@dataclass
class NoiseConfig:
    """How detections are simulated from the ground truth (all probabilities per box and frame)."""

    jitter: float = 0.04  # std of each box edge, as a fraction of the box width/height
    miss_rate: float = 0.05  # misses of a well visible object
    occluded_visibility: float = 0.6  # below this visibility an object counts as occluded
    occluded_miss_rate: float = 0.25  # misses of an occluded object
    min_visibility: float = 0.15  # below this it is never detected
    occluded_low_score: float = 0.7  # an occluded detection scores in the low band
    low_score_rate: float = 0.05  # a visible detection scores in the low band anyway
    high_score_min: float = 0.55  # the high band: U(high_score_min, high_score_max)
    high_score_max: float = 0.95
    low_score_min: float = 0.15  # the low band: U(low_score_min, low_score_max)
    low_score_max: float = 0.49
    fp_per_frame: float = 1.5  # Poisson mean of false positives per frame
    fp_high_rate: float = 0.15  # a false positive scores in the high band
    class_flip: float = 0.0  # a true positive gets a random other class
    embedding_noise: float = 0.5  # norm of the Gaussian noise added to an identity's unit vector

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("simulated detections (when --detections is not given)")
        for f in fields(cls):
            group.add_argument(
                f"--{f.name.replace('_', '-')}", type=float, default=f.default, dest=f"noise_{f.name}"
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NoiseConfig:
        return cls(**{f.name: getattr(args, f"noise_{f.name}") for f in fields(cls)})


def identity_embeddings(
    seed: int, seq_name: str, ids: npt.NDArray[np.int64], dim: int = EMBEDDING_DIM
) -> F64:
    """The fixed unit vector of each ground-truth identity (seeded by sequence and id)."""
    out = np.zeros((len(ids), dim))
    for k, i in enumerate(ids.tolist()):
        v = np.random.default_rng([seed, zlib.crc32(seq_name.encode()), 7, int(i)]).standard_normal(dim)
        out[k] = v / np.linalg.norm(v)
    return out


def simulate_detections(seq: Sequence, noise: NoiseConfig, seed: int) -> list[Detections]:
    """Per frame (index 0 = frame 1) noisy detections of ``seq``'s ground truth, seeded.

    Embeddings come from a stream of their own, so boxes and scores are those of earlier
    revisions: identity vector + noise of norm about ``embedding_noise`` (cosine to the identity
    about ``1 / sqrt(1 + noise**2)``), re-normalised; false positives get random unit vectors.
    """
    rng = np.random.default_rng([seed, zlib.crc32(seq.name.encode())])
    emb_rng = np.random.default_rng([seed, zlib.crc32(seq.name.encode()), 8])
    n_classes = int(seq.class_ids.max()) + 1 if len(seq.class_ids) else 1
    sizes = seq.boxes[:, 2:4] if len(seq.boxes) else np.array([[40.0, 80.0]])
    width = seq.width or float(np.max(seq.boxes[:, 0] + seq.boxes[:, 2], initial=640.0))
    height = seq.height or float(np.max(seq.boxes[:, 1] + seq.boxes[:, 3], initial=480.0))
    out = []
    for frame in range(1, seq.n_frames + 1):
        rows = seq.rows_at(frame)
        vis = seq.visibility[rows]
        occluded = vis < noise.occluded_visibility
        p_miss = np.where(occluded, noise.occluded_miss_rate, noise.miss_rate)
        hit = (vis >= noise.min_visibility) & (rng.random(rows.size) >= p_miss)
        rows, occluded = rows[hit], occluded[hit]
        b = seq.boxes[rows]
        whwh = np.concatenate([b[:, 2:4], b[:, 2:4]], axis=1)
        xyxy = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:4]], axis=1)
        xyxy = xyxy + rng.normal(0.0, noise.jitter, xyxy.shape) * whwh
        p_low = np.where(occluded, noise.occluded_low_score, noise.low_score_rate)
        low = rng.random(rows.size) < p_low
        scores = np.where(
            low,
            rng.uniform(noise.low_score_min, noise.low_score_max, rows.size),
            rng.uniform(noise.high_score_min, noise.high_score_max, rows.size),
        )
        cls = seq.class_ids[rows].copy()
        flip = rng.random(rows.size) < noise.class_flip
        if n_classes > 1 and flip.any():
            cls[flip] = (cls[flip] + rng.integers(1, n_classes, int(flip.sum()))) % n_classes
        n_fp = int(rng.poisson(noise.fp_per_frame))
        fp_wh = sizes[rng.integers(0, len(sizes), n_fp)]
        fp_xy = rng.uniform(0.0, 1.0, (n_fp, 2)) * (np.array([width, height]) - fp_wh).clip(1.0)
        fp_scores = np.where(
            rng.random(n_fp) < noise.fp_high_rate,
            rng.uniform(noise.high_score_min, noise.high_score_max, n_fp),
            rng.uniform(noise.low_score_min, noise.low_score_max, n_fp),
        )
        boxes = np.concatenate([xyxy, np.concatenate([fp_xy, fp_xy + fp_wh], axis=1)])
        all_scores = np.concatenate([scores, fp_scores])
        all_cls = np.concatenate([cls, rng.integers(0, n_classes, n_fp)])
        emb = np.concatenate(
            [identity_embeddings(seed, seq.name, seq.ids[rows]), np.zeros((n_fp, EMBEDDING_DIM))]
        )
        emb += emb_rng.standard_normal(emb.shape) * (noise.embedding_noise / np.sqrt(EMBEDDING_DIM))
        emb[len(rows) :] = emb_rng.standard_normal((n_fp, EMBEDDING_DIM))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
        order = np.argsort(-all_scores, kind="stable")
        out.append(Detections(boxes[order], all_scores[order], all_cls[order], emb[order]))
    return out


def embeddings_file(det_path: Path) -> Path:
    """Where the embeddings of a det file live: ``det/embeddings.npy`` beside ``det/det.txt``,
    else ``<stem>.embeddings.npy`` beside ``<stem>.txt``."""
    if det_path.name == "det.txt":
        return det_path.with_name("embeddings.npy")
    return det_path.with_name(det_path.stem + ".embeddings.npy")


def read_detections(path: Path, n_frames: int, embeddings: Path | None = None) -> list[Detections]:
    """MOT ``det.txt`` (``frame,id,x,y,w,h,score[,class+1]``) as per-frame Detections.

    Column 8, when present and >= 1, is taken as a 1-based class like gt.txt's; MOTChallenge's
    own det files have -1 there (world x), which reads as class 0. ``embeddings``: a ``.npy`` of
    ``[rows, D]`` aligned with the file's rows (default: :func:`embeddings_file`, if it exists).
    """
    data = _read_csv(path, 7)
    emb_path = embeddings if embeddings is not None else embeddings_file(path)
    emb: npt.NDArray[np.float32] | None = None
    if emb_path.is_file():
        emb = np.load(emb_path).astype(np.float32)
        if emb.ndim != 2 or len(emb) != len(data):
            raise ValueError(f"{emb_path}: embeddings of shape {emb.shape} for {len(data)} rows of {path}")
    frames = data[:, 0].astype(np.int64)
    cls = np.zeros(len(data), np.int32)
    if data.shape[1] > 7:
        with_class = data[:, 7] >= 1  # NaN (missing) and -1 read as class 0
        cls[with_class] = data[with_class, 7].astype(np.int32) - 1
    xyxy = np.concatenate([data[:, 2:4], data[:, 2:4] + data[:, 4:6]], axis=1)
    out = []
    for frame in range(1, n_frames + 1):
        r = np.flatnonzero(frames == frame)
        r = r[np.argsort(-data[r, 6], kind="stable")]
        out.append(Detections(xyxy[r], data[r, 6], cls[r], emb[r] if emb is not None else None))
    return out


def detect_with_model(seq: Sequence, model: str, conf: float = 0.1) -> list[Detections]:
    """The project's pipeline (ONNX Runtime, tracker off) over ``SEQ/img1``: detections and,
    for a model with an ``embeddings`` output, their embeddings (``Detections.embeddings``)."""
    import cv2

    from yolov8_trt_ros.core.config import EngineConfig
    from yolov8_trt_ros.core.pipeline import Pipeline, PipelineConfig

    cfg = PipelineConfig.default()
    cfg.engine = EngineConfig(backend="onnxruntime", model_path=model, precision="fp32")
    cfg.postprocess = cfg.postprocess.replace(conf_threshold=conf)
    cfg.tracker = TrackerConfig(enabled=False)
    pipeline = Pipeline.create(cfg, embeddings=True)
    out = []
    try:
        for frame in range(1, seq.n_frames + 1):
            path = seq.path / "img1" / f"{frame:06d}.jpg"
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f"cannot read {path}")
            (result,) = pipeline.process([image], ["bgr8"])
            out.append(result.detections)
    finally:
        pipeline.close()
    return out


def detections_file(spec: str, seq: Sequence) -> Path:
    """``seq`` for the sequence's own det/det.txt, else ``DIR/<name>.txt`` or ``DIR/<name>/det/det.txt``."""
    if spec == "seq":
        return seq.path / "det" / "det.txt"
    for candidate in (Path(spec) / f"{seq.name}.txt", Path(spec) / seq.name / "det" / "det.txt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no detections for {seq.name} in {spec} (<name>.txt or <name>/det/det.txt)")


# ------------------------------------------------------------------------------------------------
# Trackers
# ------------------------------------------------------------------------------------------------
class UltralyticsResults:
    """The slice of ``ultralytics.engine.results.Boxes`` that BYTETracker and BOTSORT read."""

    def __init__(self, xywh: F64, conf: F64, cls: F64) -> None:
        self.xywh, self.conf, self.cls = xywh, conf, cls

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, idx: Any) -> UltralyticsResults:
        return UltralyticsResults(self.xywh[idx], self.conf[idx], self.cls[idx])


def ultralytics_results(dets: Detections) -> UltralyticsResults:
    """Our detections (xyxy) as the boxes object BYTETracker reads (centre xywh)."""
    b = dets.boxes.astype(np.float64)
    xywh = np.concatenate([(b[:, :2] + b[:, 2:]) / 2.0, b[:, 2:] - b[:, :2]], axis=1)
    return UltralyticsResults(xywh, dets.scores.astype(np.float64), dets.class_ids.astype(np.float64))


def ultralytics_args(cfg: TrackerConfig) -> SimpleNamespace:
    """ultralytics' bytetrack.yaml namespace carrying our parameters.

    Its second-stage (0.5) and unconfirmed (0.7) thresholds are fixed in its code and equal
    our defaults; its ``track_buffer`` is not scaled by the frame rate, so it gets our
    ``max_time_lost``.
    """
    return SimpleNamespace(
        tracker_type="bytetrack",
        track_high_thresh=cfg.track_thresh,
        track_low_thresh=cfg.low_thresh,
        new_track_thresh=cfg.new_track_thresh,
        track_buffer=cfg.max_time_lost,
        match_thresh=cfg.match_thresh,
        fuse_score=cfg.fuse_score,
    )


class UltralyticsTracker:
    """ultralytics' BYTETracker behind our interface: Detections in, (ids, xywh boxes) out.

    Its output gets the same ``min_box_area`` filter as ours, so both publish alike.
    """

    def __init__(self, cfg: TrackerConfig) -> None:
        from ultralytics.trackers.byte_tracker import BYTETracker

        self.cfg = cfg
        self.tracker = BYTETracker(ultralytics_args(cfg))

    def update(self, dets: Detections) -> FrameHyp:
        out = np.asarray(self.tracker.update(ultralytics_results(dets))).reshape(-1, 8)
        boxes = np.concatenate([out[:, :2], out[:, 2:4] - out[:, :2]], axis=1)
        keep = boxes[:, 2] * boxes[:, 3] > self.cfg.min_box_area
        return out[keep, 4].astype(np.int64), boxes[keep]


def botsort_args(cfg: TrackerConfig) -> SimpleNamespace:
    """BOTSORT's namespace: our ByteTrack parameters, ReID on with native features
    (``model: auto``), GMC off (static camera), botsort.yaml's own ReID thresholds."""
    import yaml
    from ultralytics.utils import ROOT

    shipped = yaml.safe_load((ROOT / "cfg" / "trackers" / "botsort.yaml").read_text())
    args = ultralytics_args(cfg)
    args.tracker_type = "botsort"
    args.gmc_method = "none"
    args.proximity_thresh = float(shipped["proximity_thresh"])
    args.appearance_thresh = float(shipped["appearance_thresh"])
    args.with_reid = True
    args.model = "auto"
    return args


class BotSortTracker(UltralyticsTracker):
    """ultralytics' BOTSORT with native ReID, fed the detections' own embeddings as ``feats``."""

    def __init__(self, cfg: TrackerConfig) -> None:
        from ultralytics.trackers.bot_sort import BOTSORT

        self.cfg = cfg
        self.tracker = BOTSORT(botsort_args(cfg))

    def update(self, dets: Detections) -> FrameHyp:
        if dets.embeddings is None:
            raise ValueError("botsort (with_reid, model: auto) needs embeddings with the detections")
        feats = dets.embeddings.astype(np.float32)
        out = np.asarray(self.tracker.update(ultralytics_results(dets), None, feats=feats)).reshape(-1, 8)
        boxes = np.concatenate([out[:, :2], out[:, 2:4] - out[:, :2]], axis=1)
        keep = boxes[:, 2] * boxes[:, 3] > self.cfg.min_box_area
        return out[keep, 4].astype(np.int64), boxes[keep]


class OurTracker:
    """Our ByteTracker with the same (ids, xywh boxes) output."""

    def __init__(self, cfg: TrackerConfig) -> None:
        self.tracker: Any = ByteTracker(cfg)

    def update(self, dets: Detections) -> FrameHyp:
        tracks = self.tracker.update(dets)
        ids = np.array([t.track_id for t in tracks], dtype=np.int64)
        b = np.array([t.box_xyxy for t in tracks], dtype=np.float64).reshape(-1, 4)
        return ids, np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def make_reid_tracker(cfg: TrackerConfig) -> ByteTracker:
    """Our tracker with re-identification: the pipeline's ``ByteTracker`` with ``reid_enabled``
    (appearance fusion and the lost-track gallery; ``docs/tracking.md``)."""
    return ByteTracker(cfg.replace(reid_enabled=True))


class OurReidTracker(OurTracker):
    """Our tracker with ``reid_enabled=True`` (embeddings from the detections)."""

    def __init__(self, cfg: TrackerConfig) -> None:
        self.tracker = make_reid_tracker(cfg)


TRACKERS: dict[str, Callable[[TrackerConfig], Any]] = {
    "ours": OurTracker,
    "ours-reid": OurReidTracker,
    "ultralytics": UltralyticsTracker,
    "botsort": BotSortTracker,
}
#: Trackers that need embeddings with the detections.
NEEDS_EMBEDDINGS = ("botsort",)


def run_tracker(name: str, cfg: TrackerConfig, dets: Iterable[Detections]) -> list[FrameHyp]:
    tracker = TRACKERS[name](cfg)
    return [tracker.update(d) for d in dets]


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------
METRICS = (
    "mota",
    "idf1",
    "num_switches",
    "num_false_positives",
    "num_misses",
    "mostly_tracked",
    "num_objects",
)


def mot_iou_distance(objs: F64, hyps: F64, max_iou: float = 0.5) -> F64:
    """``motmetrics.distances.iou_matrix`` (1 - IoU, NaN = do not pair above ``max_iou``).

    Re-stated with motmetrics' own ``boxiou`` because ``iou_matrix`` in motmetrics 1.4.0 calls
    ``np.asfarray``, which NumPy 2 removed.
    """
    import motmetrics as mm

    objs = np.asarray(objs, dtype=np.float64).reshape(-1, 4)
    hyps = np.asarray(hyps, dtype=np.float64).reshape(-1, 4)
    if objs.shape[0] == 0 or hyps.shape[0] == 0:
        return np.empty((objs.shape[0], hyps.shape[0]))
    dist = 1.0 - mm.distances.boxiou(objs[:, None], hyps[None, :])
    return np.where(dist > max_iou, np.nan, dist)


def accumulate(seq: Sequence, hyps: list[FrameHyp]) -> Any:
    """A motmetrics accumulator of ``hyps`` against ``seq`` (match when IoU >= 0.5)."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for frame in range(1, seq.n_frames + 1):
        rows = seq.rows_at(frame)
        ids, boxes = hyps[frame - 1] if frame <= len(hyps) else (np.zeros(0, np.int64), np.zeros((0, 4)))
        dist = mot_iou_distance(seq.boxes[rows], boxes, max_iou=0.5)
        acc.update(seq.ids[rows].tolist(), ids.tolist(), dist)
    return acc


def wrong_merges(acc: Any) -> int:
    """Track ids that were matched to two or more different ground-truth identities.

    "Matched" is motmetrics' CLEAR-MOT assignment (a ``MATCH`` or ``SWITCH`` event of the
    accumulator, so IoU >= 0.5 and at most one pairing per object and per track in a frame,
    keeping earlier pairings where still valid). A track id counts once however many extra
    identities it took over the sequence: one id that followed A, then B, then A again is one
    wrong merge; two ids that each took A then B are two. This is what re-identification can
    get wrong that ID switches hide (a switch to an old id that belongs to another object).
    """
    ev = acc.mot_events
    matched = ev[ev["Type"].isin(["MATCH", "SWITCH"])]
    if matched.empty:
        return 0
    per_track = matched.groupby("HId")["OId"].nunique()
    return int((per_track >= 2).sum())


def _hota_metric() -> Any:
    """TrackEval's HOTA, or None where trackeval is not installed (its package import prints
    notes about optional dataset dependencies it does not find: silenced)."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from trackeval.metrics import HOTA
    except ImportError:
        return None
    return HOTA({"PRINT_CONFIG": False})


def hota_data(seq: Sequence, hyps: list[FrameHyp]) -> dict[str, Any]:
    """TrackEval's per-sequence input: ids re-numbered from 0, IoU similarity per frame."""
    import motmetrics as mm

    gt_ids, tr_ids, sims = [], [], []
    for frame in range(1, seq.n_frames + 1):
        rows = seq.rows_at(frame)
        ids, boxes = hyps[frame - 1] if frame <= len(hyps) else (np.zeros(0, np.int64), np.zeros((0, 4)))
        g = seq.boxes[rows]
        sim = mm.distances.boxiou(g[:, None], boxes[None, :]) if len(g) and len(boxes) else None
        sims.append(sim if sim is not None else np.zeros((len(g), len(boxes))))
        gt_ids.append(seq.ids[rows])
        tr_ids.append(np.asarray(ids, np.int64))
    all_gt = np.unique(np.concatenate(gt_ids)) if gt_ids else np.zeros(0, np.int64)
    all_tr = np.unique(np.concatenate(tr_ids)) if tr_ids else np.zeros(0, np.int64)
    return {
        "num_gt_ids": len(all_gt),
        "num_tracker_ids": len(all_tr),
        "num_gt_dets": int(sum(len(g) for g in gt_ids)),
        "num_tracker_dets": int(sum(len(t) for t in tr_ids)),
        "gt_ids": [np.searchsorted(all_gt, g) for g in gt_ids],
        "tracker_ids": [np.searchsorted(all_tr, t) for t in tr_ids],
        "similarity_scores": sims,
    }


def hota(seqs: list[Sequence], hyps: list[list[FrameHyp]]) -> dict[str, dict[str, float]] | None:
    """HOTA, DetA, AssA (TrackEval, averaged over IoU thresholds 0.05-0.95) per sequence and
    ``OVERALL`` (TrackEval's combination over sequences), or None without trackeval."""
    metric = _hota_metric()
    if metric is None:
        return None
    per_seq = {s.name: metric.eval_sequence(hota_data(s, h)) for s, h in zip(seqs, hyps, strict=True)}
    per_seq["OVERALL"] = metric.combine_sequences(dict(per_seq))
    return {name: {k: float(np.mean(r[k])) for k in ("HOTA", "DetA", "AssA")} for name, r in per_seq.items()}


def summarise(accs: list[Any], names: list[str]) -> Any:
    """motmetrics summary DataFrame, one row per sequence plus ``OVERALL``, with ``wrong_merges``.

    OVERALL's wrong merges are the sum over sequences (ids do not carry across sequences).
    """
    import motmetrics as mm

    mh = mm.metrics.create()
    summary = mh.compute_many(accs, metrics=list(METRICS), names=names, generate_overall=True)
    merges = [wrong_merges(a) for a in accs]
    summary["wrong_merges"] = [*merges, sum(merges)]
    return summary


@dataclass
class Comparison:
    """Per-sequence and overall metrics for each tracker (motmetrics DataFrames)."""

    sequences: list[str]
    summaries: dict[str, Any]

    def row(self, tracker: str, seq: str = "OVERALL") -> dict[str, float]:
        return {k: float(v) for k, v in self.summaries[tracker].loc[seq].items()}


def compare(
    seqs: list[Sequence], dets: list[list[Detections]], cfg: TrackerConfig, trackers: Iterable[str] = TRACKERS
) -> Comparison:
    """Run every tracker on exactly the same detections and score them."""
    names = [s.name for s in seqs]
    summaries = {}
    for name in trackers:
        hyps = [run_tracker(name, cfg, d) for d in dets]
        accs = [accumulate(seq, h) for seq, h in zip(seqs, hyps, strict=True)]
        summary = summarise(accs, names)
        scores = hota(seqs, hyps)
        if scores is not None:
            for key in ("HOTA", "DetA", "AssA"):
                summary[key.lower()] = [scores[n][key] for n in [*names, "OVERALL"]]
        summaries[name] = summary
    return Comparison(names, summaries)


def overall_table(result: Comparison) -> str:
    """One row per tracker over all sequences: MOTA and IDF1 in percent, IDsw, FP, FN, wrong merges."""
    with_hota = all("hota" in result.summaries[t] for t in result.summaries)
    extra = " HOTA | DetA | AssA |" if with_hota else ""
    lines = [
        "| tracker | MOTA | IDF1 | IDsw | FP | FN | wrong merges |" + extra,
        "|---|---|---|---|---|---|---|" + ("---|---|---|" if with_hota else ""),
    ]
    for t in result.summaries:
        r = result.row(t)
        cells = [f"{100 * r['mota']:.2f}", f"{100 * r['idf1']:.2f}"]
        counts = ("num_switches", "num_false_positives", "num_misses", "wrong_merges")
        cells += [str(int(r[k])) for k in counts]
        if with_hota:
            cells += [f"{100 * r[k]:.2f}" for k in ("hota", "deta", "assa")]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(result: Comparison) -> str:
    """Side-by-side table: MOTA and IDF1 in percent, IDsw, FP, FN, wrong merges, per sequence and overall."""
    trackers = list(result.summaries)
    head = "| sequence | GT boxes | " + " | ".join(
        f"MOTA {t} | IDF1 {t} | IDsw {t} | FP {t} | FN {t} | WM {t}" for t in trackers
    )
    lines = [head + " |", "|" + "---|" * (2 + 6 * len(trackers))]
    for seq in [*result.sequences, "OVERALL"]:
        cells = [
            f"**{seq}**" if seq == "OVERALL" else seq,
            str(int(result.row(trackers[0], seq)["num_objects"])),
        ]
        for t in trackers:
            r = result.row(t, seq)
            cells += [
                f"{100 * r['mota']:.2f}",
                f"{100 * r['idf1']:.2f}",
                str(int(r["num_switches"])),
                str(int(r["num_false_positives"])),
                str(int(r["num_misses"])),
                str(int(r["wrong_merges"])),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--sequences", type=Path, help="a MOT-layout sequence dir, or a dir of them (e.g. MOT17/train)"
    )
    src.add_argument(
        "--synthetic", type=int, metavar="N", help="generate N synthetic sequences into a temp dir"
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic sequences and detection noise")
    p.add_argument("--frames", type=int, default=600, help="frames per synthetic sequence")
    p.add_argument("--objects", type=int, default=12, help="objects per synthetic sequence")
    p.add_argument("--keep", type=Path, help="write the synthetic sequences here instead of a temp dir")
    p.add_argument("--gt-filter", choices=("auto", "mot17", "all"), default="auto")
    p.add_argument(
        "--kinds",
        nargs="+",
        default=["mixed"],
        help="synthetic sequence kinds, cycled (datasets/tracking.py)",
    )
    dsrc = p.add_mutually_exclusive_group()
    dsrc.add_argument(
        "--detections",
        help="'seq' (SEQ/det/det.txt) or a dir of <SEQ>.txt / <SEQ>/det/det.txt (+embeddings)",
    )
    dsrc.add_argument("--model", help="ONNX model: detect (and embed) SEQ/img1 through the pipeline on ORT")
    p.add_argument("--conf", type=float, default=0.1, help="--model: detection threshold (ByteTrack's low)")
    p.add_argument("--tracker-config", type=Path, help="YAML with TrackerConfig keys (defaults otherwise)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override TrackerConfig fields")
    p.add_argument("--trackers", nargs="+", choices=list(TRACKERS), default=list(TRACKERS))
    p.add_argument("--markdown", type=Path, help="append a dated results section to this Markdown file")
    NoiseConfig.add_arguments(p)
    return p.parse_args(argv)


def tracker_config(path: Path | None, overrides: list[str]) -> TrackerConfig:
    import yaml

    values: dict[str, Any] = yaml.safe_load(path.read_text()) if path else {}
    values = dict(values or {})
    for item in overrides:
        key, _, raw = item.partition("=")
        values[key] = yaml.safe_load(raw)
    return TrackerConfig.from_mapping(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = tracker_config(args.tracker_config, args.set)
    noise = NoiseConfig.from_args(args)
    with tempfile.TemporaryDirectory(prefix="synthetic_mot_") as tmp:
        if args.synthetic is not None:
            out = args.keep or Path(tmp)
            seq_dirs = write_synthetic(out, args.synthetic, args.seed, args.frames, args.objects, args.kinds)
        else:
            seq_dirs = find_sequences(args.sequences)
        seqs = [read_sequence(d, args.gt_filter) for d in seq_dirs]
        if args.detections:
            dets = [read_detections(detections_file(args.detections, s), s.n_frames) for s in seqs]
        elif args.model:
            dets = [detect_with_model(s, args.model, args.conf) for s in seqs]
        else:
            dets = [simulate_detections(s, noise, args.seed) for s in seqs]
        with_embeddings = all(d.embeddings is not None for frames in dets for d in frames)
        trackers = list(args.trackers)
        skipped = [t for t in NEEDS_EMBEDDINGS if t in trackers and not with_embeddings]
        for t in skipped:
            print(f"note: {t} skipped: the detections carry no embeddings")
            trackers.remove(t)
        if cfg.frame_rate != 30.0 or any(s.frame_rate != cfg.frame_rate for s in seqs):
            print(f"note: tracker frame_rate={cfg.frame_rate}; sequences: {[s.frame_rate for s in seqs]}")
        result = compare(seqs, dets, cfg, trackers)
    table = markdown_table(result)
    print(table)
    print(overall_table(result))
    for t in trackers:
        r = result.row(t)
        print(
            f"{t:12s} MOTA {100 * r['mota']:6.2f}  IDF1 {100 * r['idf1']:6.2f}  IDsw {int(r['num_switches'])}"
            f"  wrong merges {int(r['wrong_merges'])}"
        )
    if args.markdown:
        import ultralytics

        from yolov8_trt_ros.datasets.synthetic import GENERATOR_VERSION

        command = "python scripts/evaluate_tracker.py " + " ".join(argv if argv is not None else sys.argv[1:])
        kinds = sorted({s.kind for s in seqs if s.kind})
        gens = sorted({s.generator for s in seqs if s.generator})
        described = f", kinds {', '.join(kinds)}" if kinds else ""
        described += f", tracking generator {', '.join(gens)}" if gens else ""
        synthetic = f"{args.synthetic} synthetic (image generator {GENERATOR_VERSION}{described})"
        source = synthetic if args.synthetic is not None else f"{args.sequences}{described}"
        if args.detections:
            det_source = f"from {args.detections}" + (" with embeddings" if with_embeddings else "")
        elif args.model:
            det_source = f"{args.model} through the pipeline (ONNX Runtime CPU, conf {args.conf})"
        else:
            det_source = f"simulated, {noise}"
        section = (
            f"\n## Accuracy: {datetime.date.today().isoformat()}\n\n"
            f"- Machine: {describe_machine()}, ultralytics {ultralytics.__version__}\n"
            f"- Command: `{command}`\n"
            f"- Sequences: {source}\n- Tracker config: `{cfg.to_dict()}`\n"
            f"- Detections: {det_source}\n"
            + (f"- Skipped (no embeddings with the detections): {', '.join(skipped)}\n" if skipped else "")
            + "- Wrong merges (WM): track ids matched (IoU >= 0.5) to two or more ground-truth identities\n\n"
            + overall_table(result)
            + "\n"
            + table
        )
        with args.markdown.open("a") as fh:
            fh.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
