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

Sequence kinds and versions (tracking generator ``TRACKING_GENERATOR_VERSION``)
------------------------------------------------------------------------------
``mixed`` is the motion above, unchanged since 1.0.0. 2.0.0 added the kinds below (each from its
own seed stream ``[seed, 3, sequence, 10 + k]``, so adding a kind never changes another) and gave
every object its own look: in 1.0.0 the texture colour came from the class (``class_colour``), so
two objects of one class looked nearly alike (random saturation, value and pattern could
coincide). From 2.0.0 the j-th object of a class in a sequence gets the j-th (saturation, value)
slot and a pattern of its own, so same-class identities differ by construction. The hue stays the
class's: the test model was trained on class hues and free hues cut its recall from ~1.0 to ~0.8
on these frames (measured, ORT CPU). ``version="1.0.0"`` still renders the old look.
The image dataset (``synthetic.py``) is untouched by either change.

* ``occlusion``: one wide pillar (160-240 px); objects move mostly horizontally at a speed chosen
  so that a full occlusion behind it lasts 1-3 s (30-90 frames), and bounce off the frame border
  (they never leave it).
* ``reentry``: objects leave the frame, stay out for 30-90 frames (1-3 s) and come back through a
  random point of the border at least 150 px from where they left, moving inwards.
* ``crossing``: pairs of objects of the same class and nearly the same size meet head-on or at
  an angle (their boxes overlap for several frames), then bounce around the frame.
* ``crowd``: many small objects (``2 n + 4`` for ``n_objects = n``) of three or four classes
  wandering in the frame, one pillar.

Every new kind draws its classes from a few (two or three) per sequence, so same-class
neighbours are the rule: the case where only appearance can keep identities apart.

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

import colorsys
import json
import math
import os
from collections.abc import Sequence
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
#: Version of the tracking sequences (motion kinds and looks); the image dataset has its own
#: ``GENERATOR_VERSION``, pinned by models/test/MANIFEST.json and unchanged by this one.
TRACKING_GENERATOR_VERSION = "2.0.0"
TRACKING_VERSIONS = ("1.0.0", "2.0.0")
SEQUENCE_KINDS = ("mixed", "occlusion", "reentry", "crossing", "crowd")
#: Full-occlusion and out-of-frame gap lengths of the ``occlusion`` and ``reentry`` kinds (frames).
GAP_FRAMES = (30, 90)
#: A re-entry point is at least this far (px) from the point where the object left.
REENTRY_MIN_DISTANCE = 150.0


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


def crowd_size(n_objects: int) -> int:
    """Objects in a ``crowd`` sequence asked for ``n_objects`` (so one ``--objects`` serves every kind)."""
    return 2 * n_objects + 4


def _bounce(pos: np.ndarray, vel: np.ndarray, ext: np.ndarray, width: int, height: int) -> None:
    """Reflect ``vel`` (in place) where the box at ``pos`` touches the frame border moving outwards."""
    x0, y0, x1, y1 = ext + np.array([pos[0], pos[1], pos[0], pos[1]])
    if (x0 < 0 and vel[0] < 0) or (x1 > width and vel[0] > 0):
        vel[0] = -vel[0]
    if (y0 < 0 and vel[1] < 0) or (y1 > height and vel[1] > 0):
        vel[1] = -vel[1]


def _border_entry(
    rng: np.random.Generator, ext: np.ndarray, width: int, height: int, away_from: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A centre just inside a random border point (>= REENTRY_MIN_DISTANCE from ``away_from``)
    and an inward velocity; always eight candidates drawn, so the stream stays aligned."""
    cand = rng.random((8, 4))
    best: tuple[np.ndarray, np.ndarray] | None = None
    for edge_u, along, speed_u, angle_u in cand.tolist():
        edge = int(edge_u * 4)
        speed = 2.0 + 2.0 * speed_u
        slant = (angle_u - 0.5) * 1.2  # up to about +-35 degrees off the inward normal
        if edge < 2:  # left / right: the box's inner edge 1 px inside the frame
            y = height * (0.1 + 0.8 * along)
            x = 3.0 - ext[2] if edge == 0 else width - 3.0 - ext[0]
            d = 1.0 if edge == 0 else -1.0
            vel = speed * np.array([d * math.cos(slant), math.sin(slant)])
        else:  # top / bottom
            x = width * (0.1 + 0.8 * along)
            y = 3.0 - ext[3] if edge == 2 else height - 3.0 - ext[1]
            d = 1.0 if edge == 2 else -1.0
            vel = speed * np.array([math.sin(slant), d * math.cos(slant)])
        pos = np.array([x, y])
        if best is None and float(np.hypot(*(pos - away_from))) >= REENTRY_MIN_DISTANCE:
            best = (pos, vel)
    if best is None:  # eight unlucky draws: the opposite side of the frame
        pos = np.array([width - away_from[0], height - away_from[1]])
        pos = pos.clip([1.0, 1.0], [width - 1.0, height - 1.0])
        inward = np.array([width / 2.0, height / 2.0]) - pos
        best = (pos, 3.0 * inward / max(float(np.hypot(*inward)), 1e-6))
    return best


def _simulate_kind(
    seed: int, sequence: int, n_frames: int, width: int, height: int, n_objects: int, kind: str
) -> _Simulation:
    """Trajectories of the 2.0.0 kinds (module docstring) from ``[seed, 3, sequence, 10 + k]``."""
    k = SEQUENCE_KINDS.index(kind)
    rng = np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 10 + k])
    n_classes = (3 if kind == "crowd" else 2) + int(rng.integers(2))
    classes = rng.choice(NUM_CLASSES, n_classes, replace=False)
    if kind == "occlusion":
        # One wide pillar: two (tried first) hid 40 % of all ground-truth boxes, misses for every
        # tracker alike that drowned the identity differences the kind is there to show.
        pw = 160.0 + 80.0 * rng.random(1)
        slots = [(0.35, 0.65)]
    elif kind == "crowd":
        pw = 40.0 + 30.0 * rng.random(1)
        slots = [(0.3, 0.7)]
    else:
        pw = np.zeros(0)
        slots = []
    centres_x = [width * (lo + (hi - lo) * float(rng.random())) for lo, hi in slots]
    occ = np.array([[c - w / 2, 0.0, c + w / 2, float(height)] for c, w in zip(centres_x, pw, strict=True)])
    occ = occ.reshape(-1, 4)
    shapes: list[ShapeSpec] = []
    starts = np.zeros((n_objects, 2))
    vels = np.zeros((n_objects, 2))
    lo_size, hi_size = (24.0, 50.0) if kind == "crowd" else (30.0, 75.0)
    for i in range(n_objects):
        u = rng.random(8)
        if kind == "crossing" and i % 2 == 1:  # the partner: same class, size within 10 %
            shapes.append(sample_shape(rng, shapes[i - 1].class_id, shapes[i - 1].size * (0.9 + 0.2 * u[0])))
        else:
            class_id = int(classes[int(u[0] * len(classes))])
            shapes.append(sample_shape(rng, class_id, lo_size + (hi_size - lo_size) * float(u[1])))
        ext = shapes[i].extent()
        if kind == "occlusion":
            hide = GAP_FRAMES[0] + (GAP_FRAMES[1] - GAP_FRAMES[0]) * u[2]  # frames fully behind it
            speed = max((float(pw[0]) - float(ext[2] - ext[0])) / hide, 0.4)
            starts[i] = (width * (0.05 + 0.9 * u[3]), height * (0.12 + 0.76 * u[4]))
            vels[i] = (speed if u[5] < 0.5 else -speed, 0.3 * (2.0 * u[6] - 1.0))
        elif kind == "reentry":
            starts[i] = (width * (0.1 + 0.8 * u[3]), height * (0.1 + 0.8 * u[4]))
            angle = 2.0 * math.pi * u[5]
            vels[i] = (2.0 + 2.0 * u[6]) * np.array([math.cos(angle), math.sin(angle)])
        elif kind == "crossing":
            if i % 2 == 0:
                meet = np.array([width * (0.3 + 0.4 * u[3]), height * (0.3 + 0.4 * u[4])])
                t_meet = 20.0 + 60.0 * u[5]
                angle = 2.0 * math.pi * u[6]
                vels[i] = (1.5 + 1.5 * u[7]) * np.array([math.cos(angle), math.sin(angle)])
                starts[i] = meet - vels[i] * t_meet
            else:  # head-on, up to 60 degrees off, reaching the meeting point at the same frame
                turn = math.pi + (u[2] - 0.5) * (2.0 * math.pi / 3.0)
                c, s = math.cos(turn), math.sin(turn)
                vels[i] = np.array([[c, -s], [s, c]]) @ vels[i - 1] * (0.8 + 0.4 * u[3])
                starts[i] = meet - vels[i] * t_meet
        else:  # crowd
            starts[i] = (width * (0.08 + 0.84 * u[3]), height * (0.08 + 0.84 * u[4]))
            angle = 2.0 * math.pi * u[5]
            vels[i] = (0.8 + 2.2 * u[6]) * np.array([math.cos(angle), math.sin(angle)])
    depth = rng.permutation(n_objects)
    centres = np.zeros((n_objects, n_frames, 2))
    for i, spec in enumerate(shapes):
        streams = [np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 10 + k, i, j]) for j in range(3)]
        vel_noise = streams[0].normal(0.0, 0.03, (n_frames, 2))
        jitter = streams[1].normal(0.0, 0.3, (n_frames, 2))
        gaps = streams[2].integers(GAP_FRAMES[0], GAP_FRAMES[1] + 1, n_frames // 8 + 2)
        ext = spec.extent()
        pos, vb, e = starts[i].copy(), vels[i].copy(), np.zeros(2)
        out, n_gap, left_at = -1, 0, pos.copy()
        for t in range(n_frames):
            centres[i, t] = pos + jitter[t]
            e = 0.9 * e + vel_noise[t]
            if kind == "reentry":
                pos = pos + vb + e
                x0, y0, x1, y1 = ext + np.array([pos[0], pos[1], pos[0], pos[1]])
                outside = x1 <= 0 or x0 >= width or y1 <= 0 or y0 >= height
                if outside and out < 0:  # the next frame is the first out of view
                    out, n_gap = int(gaps[n_gap]) + 1, n_gap + 1  # out of view for gaps[n] frames
                    left_at = centres[i, t].copy()
                if out > 0:
                    out -= 1
                    if out == 0:  # back through another border point, in view next frame
                        pos, vb = _border_entry(streams[2], ext, width, height, left_at)
                        e[:] = 0.0
                        out = -1
            else:
                # Crossing partners start wherever the meeting point puts them: they fly in
                # straight until both are inside, then bounce like everyone else.
                pos = pos + vb + e
                inside = ext + np.array([pos[0], pos[1], pos[0], pos[1]])
                fully_in = inside[0] >= 0 and inside[1] >= 0 and inside[2] <= width and inside[3] <= height
                if kind != "crossing" or fully_in or t > 90:
                    _bounce(pos, vb, ext, width, height)
    return _Simulation(tuple(shapes), depth, centres, occ)


@lru_cache(maxsize=4)
def _cached_simulation(
    seed: int, sequence: int, n_frames: int, width: int, height: int, n_objects: int, kind: str = "mixed"
) -> _Simulation:
    if kind not in SEQUENCE_KINDS:
        raise ValueError(f"unknown sequence kind {kind!r}; one of {SEQUENCE_KINDS}")
    if kind == "mixed":
        return _simulate(seed, sequence, n_frames, width, height, n_objects)
    if kind == "crowd":
        n_objects = crowd_size(n_objects)
    return _simulate_kind(seed, sequence, n_frames, width, height, n_objects, kind)


def tracking_ground_truth(
    seed: int,
    sequence: int = 0,
    n_frames: int = 300,
    width: int = 640,
    height: int = 480,
    n_objects: int = 8,
    kind: str = "mixed",
) -> TrackingGroundTruth:
    """Ground truth of sequence ``sequence`` without rendering a pixel (fast tracker tests).

    Identical to the ``gt.txt`` that :func:`generate_tracking_sequences` writes for the same
    arguments (its sequence k is ``sequence=k``). The look (``version``) never changes it.
    """
    if n_frames < 1 or n_objects < 1:
        raise ValueError(f"n_frames and n_objects must be >= 1, got {n_frames}, {n_objects}")
    if width < 64 or height < 64:
        raise ValueError(f"frame must be at least 64x64, got {width}x{height}")
    sim = _cached_simulation(seed, sequence, n_frames, width, height, n_objects, kind)
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


#: (saturation, value) of the j-th object of a class in a sequence: the corners and middle of the
#: training set's range [0.55, 1]^2 first, so that few same-class objects are far apart.
_SV_SLOTS = (
    (1.0, 1.0), (0.6, 0.6), (1.0, 0.6), (0.6, 1.0), (0.8, 0.8),
    (0.8, 1.0), (1.0, 0.8), (0.6, 0.8), (0.8, 0.6),
)  # fmt: skip


def identity_colour(class_id: int, slot: int, rng: np.random.Generator) -> np.ndarray:
    """BGR float colour of the ``slot``-th object of ``class_id`` in a sequence.

    The hue stays the class's (as ``class_colour``, +-0.02: the test model leans on colour to
    tell classes apart; free hues cost it about a fifth of its recall), so identities of one
    class differ by saturation and value (:data:`_SV_SLOTS`) and by texture pattern.
    """
    u = rng.random(3)
    hue = (class_id / NUM_CLASSES + (u[0] - 0.5) * 0.04) % 1.0
    sat, val = _SV_SLOTS[slot % len(_SV_SLOTS)]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return np.array([b, g, r], dtype=np.float32)


@lru_cache(maxsize=2)
def _look(
    seed: int,
    sequence: int,
    n_frames: int,
    width: int,
    height: int,
    n_objects: int,
    kind: str = "mixed",
    version: str = TRACKING_GENERATOR_VERSION,
) -> _Look:
    """Appearance from the stream ``[seed, 3, sequence, 1]``: background, textures, JPEG quality.

    1.0.0 coloured a texture by class (``class_colour``); 2.0.0 by identity
    (:func:`identity_colour`, hues in a per-sequence random order from ``[seed, 3, sequence, 4]``).
    """
    if version not in TRACKING_VERSIONS:
        raise ValueError(f"unknown tracking generator version {version!r}; one of {TRACKING_VERSIONS}")
    if version == "1.0.0" and kind != "mixed":
        raise ValueError(f"sequence kind {kind!r} needs tracking generator version 2.0.0 or later")
    sim = _cached_simulation(seed, sequence, n_frames, width, height, n_objects, kind)
    rng = np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 1])
    id_rng = np.random.default_rng([seed, TRACKING_SPLIT_ID, sequence, 4])
    first_pattern = id_rng.integers(5, size=NUM_CLASSES)
    background = make_background(rng, width, height, photo_prob=0.5)
    textures, halves = [], []
    slots = [0] * NUM_CLASSES
    for spec in sim.shapes:
        half = math.ceil(0.75 * spec.size) + 4
        if version == "1.0.0":
            colour, pattern = class_colour(spec.class_id, rng), None
        else:
            slot = slots[spec.class_id]
            slots[spec.class_id] += 1
            colour = identity_colour(spec.class_id, slot, id_rng)
            pattern = int(first_pattern[spec.class_id] + slot) % 5
            rng.random(3)  # class_colour's three draws: the rest of the stream stays as in 1.0.0
        textures.append(make_texture(2 * half + 1, 2 * half + 1, colour, rng, pattern))
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
    kind: str = "mixed"
    version: str = TRACKING_GENERATOR_VERSION


def render_tracking_frame(
    seed: int,
    sequence: int,
    frame: int,
    n_frames: int,
    width: int,
    height: int,
    n_objects: int,
    kind: str = "mixed",
    version: str = TRACKING_GENERATOR_VERSION,
) -> tuple[np.ndarray, int]:
    """Render 0-based ``frame``; returns (uint8 BGR image, JPEG quality)."""
    key = (seed, sequence, n_frames, width, height, n_objects, kind)
    sim, look = _cached_simulation(*key), _look(*key, version)
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
        job.seed,
        job.sequence,
        job.frame,
        job.n_frames,
        job.width,
        job.height,
        job.n_objects,
        job.kind,
        job.version,
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
    kinds: str | Sequence[str] = "mixed",
    version: str = TRACKING_GENERATOR_VERSION,
) -> list[Path]:
    """Write MOT17-layout sequences ``SYNTH-NN/{img1/NNNNNN.jpg, gt/gt.txt, seqinfo.ini}``.

    ``kinds``: one kind for all sequences, or a list cycled over them (sequence s gets
    ``kinds[s % len(kinds)]``). ``seqinfo.ini`` records the kind and the version, and
    ``generator.json`` in ``out_dir`` the whole call, so the folder can be remade.
    """
    if n_sequences < 0:
        raise ValueError(f"n_sequences must be >= 0, got {n_sequences}")
    kind_list = [kinds] if isinstance(kinds, str) else list(kinds)
    if version not in TRACKING_VERSIONS:
        raise ValueError(f"unknown tracking generator version {version!r}; one of {TRACKING_VERSIONS}")
    for kind in kind_list:
        if kind not in SEQUENCE_KINDS:
            raise ValueError(f"unknown sequence kind {kind!r}; one of {SEQUENCE_KINDS}")
        if version == "1.0.0" and kind != "mixed":
            raise ValueError(f"sequence kind {kind!r} needs tracking generator version 2.0.0 or later")
    root = Path(out_dir)
    seqs, jobs = [], []
    for s in range(n_sequences):
        kind = kind_list[s % len(kind_list)]
        seq_dir = root / sequence_name(s)
        (seq_dir / "img1").mkdir(parents=True, exist_ok=True)
        (seq_dir / "gt").mkdir(exist_ok=True)
        gt = tracking_ground_truth(seed, s, n_frames, width, height, n_objects, kind)
        (seq_dir / "gt" / "gt.txt").write_text(gt.mot_lines())
        (seq_dir / "seqinfo.ini").write_text(
            f"[Sequence]\nname={seq_dir.name}\nimDir=img1\nframeRate={FRAME_RATE}\nseqLength={n_frames}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.jpg\nkind={kind}\ngenerator={version}\n"
        )
        seqs.append(seq_dir)
        jobs += [
            _FrameJob(
                seed,
                s,
                t,
                n_frames,
                width,
                height,
                n_objects,
                str(seq_dir / "img1" / f"{t + 1:06d}.jpg"),
                kind,
                version,
            )
            for t in range(n_frames)
        ]
    if n_sequences:
        record = {
            "tracking_generator_version": version,
            "seed": seed,
            "n_sequences": n_sequences,
            "n_frames": n_frames,
            "width": width,
            "height": height,
            "n_objects": n_objects,
            "kinds": [kind_list[s % len(kind_list)] for s in range(n_sequences)],
        }
        (root / "generator.json").write_text(json.dumps(record, indent=2) + "\n")
    parallel_map(_frame_job, jobs, workers, chunksize=16)
    return seqs
