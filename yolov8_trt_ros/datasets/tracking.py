"""Seeded synthetic MOT17-style sequences: moving shapes that cross, leave, re-enter and hide.

Ground truth is pure geometry (no pixels), so :func:`tracking_ground_truth` gives a tracker test
its boxes in milliseconds and :func:`generate_tracking_sequences` renders the same boxes to JPEG.

Motion model
------------
Each object moves with a constant base velocity plus a small mean-reverting (AR(1)) velocity
perturbation and a per-frame position jitter. Horizontal speed is 2-4.5 px/frame and vertical
at most 1 px/frame. Objects 0-3 form two pairs (one in the upper, one in the lower part of the
frame) whose members start on opposite sides of a common row and cross. An object whose box is
completely out of the frame while moving away waits 8-40 frames and then turns back (same id),
so tracks leave and re-enter. One or two full-height pillars are drawn in front of everything;
narrow enough (45-80 px) that, at these speeds, a full occlusion behind one lasts under a
second. Objects also hide one another (by box, in depth order); two that happen to move alike
can overlap for longer than that.

Ground-truth conventions (``gt/gt.txt``)
---------------------------------------
``frame,id,x,y,w,h,conf,class,visibility`` with frames and ids from 1, ``conf`` = 1, ``class``
1-based (= model class index + 1). Boxes are *amodal* (the whole shape, as in MOT17), in
**0-based** pixel coordinates (MOTChallenge uses 1-based; 0-based here so they compare directly
with detector output), two decimals, and may extend past the frame border. A row is written for
every frame in which the box overlaps the frame. ``visibility`` is the fraction of the box that
is inside the frame and not covered by a pillar or by the box of an object in front; fully
occluded objects stay in the file with visibility 0. Rows are sorted by id, then frame (MOT17).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from yolov8_trt_ros.datasets.synthetic import (
    NUM_CLASSES,
    TRACKING_SPLIT_ID,
    ShapeSpec,
    class_colour,
    composite,
    encode_jpeg,
    make_background,
    make_texture,
    parallel_map,
    rasterise,
    sample_shape,
)

FRAME_RATE = 30


@dataclass(frozen=True)
class TrackingGroundTruth:
    """MOT ground truth of one sequence as arrays (one row per object per frame in view)."""

    frames: np.ndarray  # int32 [N], 1-based
    ids: np.ndarray  # int32 [N], 1-based
    boxes: np.ndarray  # float64 [N, 4] x, y, w, h (0-based pixels, amodal)
    class_ids: np.ndarray  # int32 [N], 0-based (file column is +1)
    visibility: np.ndarray  # float64 [N] in [0, 1]
    occluders: np.ndarray  # float64 [K, 4] x0, y0, x1, y1 of the static pillars
    depth: np.ndarray  # int [n_objects], indexed by id - 1: larger is nearer the camera
    width: int
    height: int
    n_frames: int
    frame_rate: int = FRAME_RATE

    def at_frame(self, frame: int) -> np.ndarray:
        """Row indices of a 1-based frame."""
        return np.flatnonzero(self.frames == frame)

    def mot_lines(self) -> str:
        """``gt.txt`` content (see module docstring for the conventions)."""
        return "".join(
            f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,{c + 1},{v:.4f}\n"
            for f, i, (x, y, w, h), c, v in zip(
                self.frames.tolist(),
                self.ids.tolist(),
                self.boxes.tolist(),
                self.class_ids.tolist(),
                self.visibility.tolist(),
                strict=True,
            )
        )


@dataclass(frozen=True)
class _Simulation:
    shapes: tuple[ShapeSpec, ...]
    depth: np.ndarray  # int [n_obj]: larger is nearer (drawn later)
    centres: np.ndarray  # float64 [n_obj, n_frames, 2]
    occluders: np.ndarray  # float64 [K, 4] xyxy


def _covered_area(box: np.ndarray, rects: np.ndarray) -> float:
    """Exact area of ``box`` (xyxy) covered by the union of ``rects`` (coordinate compression)."""
    if len(rects) == 0:
        return 0.0
    r = np.stack(
        [
            np.clip(rects[:, 0], box[0], box[2]),
            np.clip(rects[:, 1], box[1], box[3]),
            np.clip(rects[:, 2], box[0], box[2]),
            np.clip(rects[:, 3], box[1], box[3]),
        ],
        axis=1,
    )
    r = r[(r[:, 2] > r[:, 0]) & (r[:, 3] > r[:, 1])]
    if len(r) == 0:
        return 0.0
    xs, ys = np.unique(r[:, [0, 2]]), np.unique(r[:, [1, 3]])
    cx, cy = (xs[:-1] + xs[1:]) / 2.0, (ys[:-1] + ys[1:]) / 2.0
    inside = (
        (cx[None, None, :] > r[:, 0, None, None])
        & (cx[None, None, :] < r[:, 2, None, None])
        & (cy[None, :, None] > r[:, 1, None, None])
        & (cy[None, :, None] < r[:, 3, None, None])
    ).any(axis=0)
    return float((np.diff(ys)[:, None] * np.diff(xs)[None, :] * inside).sum())


def _simulate(
    seed: int, sequence: int, n_frames: int, width: int, height: int, n_objects: int
) -> _Simulation:
    """Trajectories from the streams ``[seed, 3, sequence, 0, ...]``; no pixels involved."""
    rng = np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 0])
    n_occ = 1 + int(rng.integers(2))
    pw = 45.0 + 35.0 * rng.random(n_occ)
    slots = [(0.3, 0.7)] if n_occ == 1 else [(0.2, 0.35), (0.65, 0.8)]
    occ = np.array(
        [[width * (lo + (hi - lo) * u) - w / 2, 0.0, width * (lo + (hi - lo) * u) + w / 2, float(height)]
         for (lo, hi), u, w in zip(slots, rng.random(n_occ), pw, strict=True)]
    )  # fmt: skip
    shapes: list[ShapeSpec] = []
    starts = np.zeros((n_objects, 2))
    vels = np.zeros((n_objects, 2))
    for i in range(n_objects):
        class_id = int(rng.integers(NUM_CLASSES))
        shapes.append(sample_shape(rng, class_id, 28.0 + 72.0 * float(rng.random())))
        u = rng.random(5)
        speed = 2.0 + 2.5 * u[0]
        vy = 2.0 * u[1] - 1.0
        if i < 4 and n_objects >= 4:  # two crossing pairs
            if i % 2 == 0:
                row = height * ((0.2 if i == 0 else 0.6) + 0.2 * u[2])  # one band per pair
                starts[i] = (width * (-0.05 + 0.3 * u[3]), row)
                vels[i] = (speed, 0.3 * vy)
            else:
                starts[i] = (width * (0.75 + 0.3 * u[3]), starts[i - 1, 1] + 30.0 * (u[2] - 0.5))
                vels[i] = (-speed, -vels[i - 1, 1])
        else:
            starts[i] = (width * (0.1 + 0.8 * u[2]), height * (0.15 + 0.7 * u[3]))
            vels[i] = (speed if u[4] < 0.5 else -speed, vy)
    depth = rng.permutation(n_objects)
    centres = np.zeros((n_objects, n_frames, 2))
    for i, spec in enumerate(shapes):
        # Per-object, per-purpose streams drawn frame by frame: a shorter sequence is an exact
        # prefix of a longer one with the same seed.
        streams = [np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 0, i, k]) for k in range(3)]
        vel_noise = streams[0].normal(0.0, 0.05, (n_frames, 2))
        jitter = streams[1].normal(0.0, 0.3, (n_frames, 2))
        waits = streams[2].integers(8, 41, n_frames // 8 + 2)
        ext = spec.extent()
        pos, vb, e = starts[i].copy(), vels[i].copy(), np.zeros(2)
        wait, n_wait = -1, 0
        for t in range(n_frames):
            centres[i, t] = pos + jitter[t]
            e = 0.9 * e + vel_noise[t]
            pos = pos + vb + e
            x0, y0, x1, y1 = ext + np.array([pos[0], pos[1], pos[0], pos[1]])
            away_x = (x1 < 0 and vb[0] < 0) or (x0 > width and vb[0] > 0)
            away_y = (y1 < 0 and vb[1] < 0) or (y0 > height and vb[1] > 0)
            if away_x or away_y:
                if wait < 0:
                    wait, n_wait = int(waits[n_wait]), n_wait + 1
                wait -= 1
                if wait == 0:  # turn back: the same identity re-enters
                    vb = vb * np.array([-1.0 if away_x else 1.0, -1.0 if away_y else 1.0])
                    e[:] = 0.0
                    wait = -1
    return _Simulation(tuple(shapes), depth, centres, occ)


@lru_cache(maxsize=4)
def _cached_simulation(
    seed: int, sequence: int, n_frames: int, width: int, height: int, n_objects: int
) -> _Simulation:
    return _simulate(seed, sequence, n_frames, width, height, n_objects)


def tracking_ground_truth(
    seed: int,
    sequence: int = 0,
    n_frames: int = 300,
    width: int = 640,
    height: int = 480,
    n_objects: int = 8,
) -> TrackingGroundTruth:
    """Ground truth of sequence ``sequence`` without rendering a pixel (fast tracker tests).

    Identical to the ``gt.txt`` that :func:`generate_tracking_sequences` writes for the same
    arguments (its sequence k is ``sequence=k``).
    """
    if n_frames < 1 or n_objects < 1:
        raise ValueError(f"n_frames and n_objects must be >= 1, got {n_frames}, {n_objects}")
    if width < 64 or height < 64:
        raise ValueError(f"frame must be at least 64x64, got {width}x{height}")
    sim = _cached_simulation(seed, sequence, n_frames, width, height, n_objects)
    exts = np.array([s.extent() for s in sim.shapes])  # [n_obj, 4]
    boxes_all = exts[:, None, :] + np.concatenate([sim.centres, sim.centres], axis=2)  # [n_obj, T, 4]
    rows: list[tuple[int, int, np.ndarray, int, float]] = []
    for t in range(n_frames):
        b = boxes_all[:, t]
        in_view = (b[:, 2] > 0) & (b[:, 0] < width) & (b[:, 3] > 0) & (b[:, 1] < height)
        for i in np.flatnonzero(in_view).tolist():
            box = b[i]
            area = (box[2] - box[0]) * (box[3] - box[1])
            front = b[in_view & (sim.depth > sim.depth[i])]
            inner = np.array([max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height)])
            clipped = (inner[2] - inner[0]) * (inner[3] - inner[1])
            hidden = _covered_area(inner, np.concatenate([sim.occluders, front]))
            vis = max(clipped - hidden, 0.0) / area
            xywh = np.array([box[0], box[1], box[2] - box[0], box[3] - box[1]])
            rows.append((t + 1, i + 1, xywh, sim.shapes[i].class_id, min(vis, 1.0)))
    rows.sort(key=lambda r: (r[1], r[0]))
    return TrackingGroundTruth(
        frames=np.array([r[0] for r in rows], np.int32),
        ids=np.array([r[1] for r in rows], np.int32),
        boxes=np.array([r[2] for r in rows], np.float64).reshape(-1, 4),
        class_ids=np.array([r[3] for r in rows], np.int32),
        visibility=np.array([r[4] for r in rows], np.float64),
        occluders=sim.occluders.copy(),
        depth=sim.depth.copy(),
        width=width,
        height=height,
        n_frames=n_frames,
    )


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Look:
    background: np.ndarray  # float32 [H, W, 3] with the pillars' region left as is
    textures: tuple[np.ndarray, ...]  # per object, square, centred on the object
    halves: tuple[int, ...]
    pillar_tex: tuple[np.ndarray, ...]
    quality: int


@lru_cache(maxsize=2)
def _look(seed: int, sequence: int, n_frames: int, width: int, height: int, n_objects: int) -> _Look:
    """Appearance from the stream ``[seed, 3, sequence, 1]``: background, textures, JPEG quality."""
    sim = _cached_simulation(seed, sequence, n_frames, width, height, n_objects)
    rng = np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 1])
    background = make_background(rng, width, height, photo_prob=0.5)
    textures, halves = [], []
    for spec in sim.shapes:
        half = math.ceil(0.75 * spec.size) + 4
        textures.append(make_texture(2 * half + 1, 2 * half + 1, class_colour(spec.class_id, rng), rng))
        halves.append(half)
    pillars = []
    for x0, _, x1, _ in sim.occluders.tolist():
        grey = np.float32(0.25 + 0.5 * float(rng.random())) * (0.85 + 0.3 * rng.random(3).astype(np.float32))
        pillars.append(make_texture(height + 4, math.ceil(x1 - x0) + 4, grey, rng))
    quality = 75 + int(rng.integers(21))
    return _Look(background, tuple(textures), tuple(halves), tuple(pillars), quality)


@dataclass(frozen=True)
class _FrameJob:
    seed: int
    sequence: int
    frame: int  # 0-based
    n_frames: int
    width: int
    height: int
    n_objects: int
    path: str


def render_tracking_frame(
    seed: int, sequence: int, frame: int, n_frames: int, width: int, height: int, n_objects: int
) -> tuple[np.ndarray, int]:
    """Render 0-based ``frame``; returns (uint8 BGR image, JPEG quality)."""
    key = (seed, sequence, n_frames, width, height, n_objects)
    sim, look = _cached_simulation(*key), _look(*key)
    canvas = look.background.copy()
    for i in np.argsort(sim.depth, kind="stable").tolist():  # far to near
        cx, cy = sim.centres[i, frame]
        raster = rasterise(sim.shapes[i].polygons(cx, cy))
        half = look.halves[i]
        composite(canvas, raster, look.textures[i], math.floor(cx + 0.5) - half, math.floor(cy + 0.5) - half)
    for (x0, y0, x1, y1), tex in zip(sim.occluders.tolist(), look.pillar_tex, strict=True):
        poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        raster = rasterise([poly])
        composite(canvas, raster, tex, raster.x0, raster.y0)
    rng = np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 2, frame])
    gain = np.float32(1.0 + 0.03 * math.sin(2.0 * math.pi * frame / 90.0) + 0.01 * rng.standard_normal())
    noise = rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(0.012)
    img = (np.clip(canvas * gain + noise, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return img, look.quality


def _frame_job(job: _FrameJob) -> None:
    img, quality = render_tracking_frame(
        job.seed, job.sequence, job.frame, job.n_frames, job.width, job.height, job.n_objects
    )
    Path(job.path).write_bytes(encode_jpeg(img, quality))


def sequence_name(sequence: int) -> str:
    """Folder name of 0-based sequence ``sequence`` (``SYNTH-01`` for 0)."""
    return f"SYNTH-{sequence + 1:02d}"


def generate_tracking_sequences(
    out_dir: str | os.PathLike[str],
    seed: int,
    n_sequences: int,
    n_frames: int,
    width: int = 640,
    height: int = 480,
    n_objects: int = 8,
    workers: int = 1,
) -> list[Path]:
    """Write MOT17-layout sequences ``SYNTH-NN/{img1/NNNNNN.jpg, gt/gt.txt, seqinfo.ini}``."""
    if n_sequences < 0:
        raise ValueError(f"n_sequences must be >= 0, got {n_sequences}")
    root = Path(out_dir)
    seqs, jobs = [], []
    for s in range(n_sequences):
        seq_dir = root / sequence_name(s)
        (seq_dir / "img1").mkdir(parents=True, exist_ok=True)
        (seq_dir / "gt").mkdir(exist_ok=True)
        gt = tracking_ground_truth(seed, s, n_frames, width, height, n_objects)
        (seq_dir / "gt" / "gt.txt").write_text(gt.mot_lines())
        (seq_dir / "seqinfo.ini").write_text(
            f"[Sequence]\nname={seq_dir.name}\nimDir=img1\nframeRate={FRAME_RATE}\nseqLength={n_frames}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n"
        )
        seqs.append(seq_dir)
        jobs += [
            _FrameJob(
                seed, s, t, n_frames, width, height, n_objects, str(seq_dir / "img1" / f"{t + 1:06d}.jpg")
            )
            for t in range(n_frames)
        ]
    parallel_map(_frame_job, jobs, workers, chunksize=16)
    return seqs
