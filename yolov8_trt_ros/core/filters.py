"""Keep or drop detections after NMS: class allow-list, per-class thresholds, region of interest.

All rules are compiled into one immutable object; :meth:`DetectionFilter.update` builds a new
one and swaps the reference, so a ROS parameter callback can change the rules while the worker
thread filters and a frame never sees half of an update.

ROI tests, vectorised in NumPy over all detections:

* ``center`` mode: a rectangle ROI is inclusive on all sides; a polygon uses the even–odd
  crossing-number test with half-open edges (the usual rule that puts a point on a shared
  edge into exactly one of two adjacent polygons). ``cv2.pointPolygonTest`` gives the same
  answer off the boundary but takes one point per call.
* ``overlap`` mode: the exact area of *box ∩ polygon* by polygon clipping in closed form,
  not a rasterised mask. For an axis-aligned box ``[x1, x2] × [y1, y2]`` the signed sum over
  polygon edges of ``∫ (clip(y(x), y1, y2) − y1) dx`` taken over ``x ∈ [x1, x2]`` equals the
  winding number integrated over the box, i.e. ``±area(box ∩ polygon)`` for any simple
  (convex or concave) polygon. Each edge's integrand is piecewise linear with at most two
  kinks (where the edge crosses ``y1`` and ``y2``), so the integral is a sum of three
  trapezoids: an ``[N boxes, M edges]`` array computation with no per-box Python loop. A mask
  would need the image size, cost memory at large resolutions and quantise small boxes.
  ``cv2.intersectConvexConvex`` would be exact too, but only for convex ROIs and one box per
  call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolov8_trt_ros.core.config import ConfigError, FilterConfig
from yolov8_trt_ros.core.types import Detections


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even–odd crossing test of ``[N, 2]`` points against an ``[M, 2]`` polygon; ``[N]`` bool."""
    px, py = points[:, 0:1], points[:, 1:2]  # [N, 1]
    xa, ya = polygon[:, 0], polygon[:, 1]  # [M]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    straddles = (ya > py) != (yb > py)  # half-open in y: a vertex is counted once
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = xa + (py - ya) * (xb - xa) / (yb - ya)
    crossings = straddles & (px < x_cross)
    return (np.count_nonzero(crossings, axis=1) % 2).astype(bool)


def _clip_integral(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, box: np.ndarray
) -> np.ndarray:
    """Signed ``∫ (clip(y, y1, y2) − y1) dx`` of each edge over each box's x range: ``[N, M]``."""
    bx1, by1, bx2, by2 = (box[:, k : k + 1] for k in range(4))  # [N, 1]
    dx, dy = xb - xa, yb - ya
    direction = np.sign(dx)  # vertical edges add nothing
    lo = np.maximum(np.minimum(xa, xb), bx1)
    hi = np.maximum(np.minimum(np.maximum(xa, xb), bx2), lo)  # hi >= lo: empty ranges give 0
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dx != 0, dy / dx, 0.0)
        inv = np.where(dy != 0, dx / dy, 0.0)
        # x where the edge's line crosses y1 and y2 (any x for a horizontal edge: use lo).
        c1 = np.where(dy != 0, xa + (by1 - ya) * inv, lo)
        c2 = np.where(dy != 0, xa + (by2 - ya) * inv, lo)
    knots = np.sort(np.stack([lo, np.clip(c1, lo, hi), np.clip(c2, lo, hi), hi]), axis=0)  # [4, N, M]
    g = np.clip(ya + (knots - xa) * slope, by1, by2) - by1
    area = 0.5 * (g[1:] + g[:-1]) * np.diff(knots, axis=0)
    return direction * area.sum(axis=0)


def box_polygon_overlap(boxes: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Area of each ``[N, 4]`` xyxy box inside the polygon, over the box's area (``[N]``, 0..1).

    A box of zero area counts as inside when its centre is.
    """
    b = boxes.astype(np.float64)
    poly = polygon.astype(np.float64)
    xa, ya = poly[:, 0], poly[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    orientation = np.sign(np.sum((xb - xa) * (yb + ya)))  # sign of ∮ y dx, as the clipped sum
    inside = _clip_integral(xa, ya, xb, yb, b).sum(axis=1) * orientation
    box_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    centres = np.stack(((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip(inside / box_area, 0.0, 1.0)
    return np.where(box_area > 0, frac, points_in_polygon(centres, poly).astype(np.float64))


@dataclass(frozen=True)
class _Rules:
    """One consistent set of filter rules, precomputed for vectorised use."""

    cfg: FilterConfig
    conf_threshold: float
    allowed: np.ndarray | None  # sorted class ids, or None for all
    thresholds: np.ndarray  # threshold by class id for ids < len; others use conf_threshold
    polygon: np.ndarray | None  # [M, 2] float64
    rect: tuple[float, float, float, float] | None

    @classmethod
    def build(cls, cfg: FilterConfig, conf_threshold: float) -> _Rules:
        errors = cfg.validate()
        if not 0.0 <= conf_threshold <= 1.0:
            errors.append(f"conf_threshold={conf_threshold!r} must be in [0, 1]")
        if errors:
            raise ConfigError("; ".join(errors))
        allowed = np.unique(np.asarray(cfg.classes, dtype=np.int64)) if cfg.classes else None
        per_class = {int(k): float(v) for k, v in cfg.class_thresholds.items()}
        size = max(per_class, default=-1) + 1
        thresholds = np.full(size, conf_threshold, dtype=np.float32)
        for k, v in per_class.items():
            thresholds[k] = v
        polygon = rect = None
        if len(cfg.roi) == 4:
            x1, y1, x2, y2 = (float(v) for v in cfg.roi)
            rect = (x1, y1, x2, y2)
            polygon = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
        elif cfg.roi:
            polygon = np.asarray(cfg.roi, dtype=np.float64).reshape(-1, 2)
        return cls(cfg, float(conf_threshold), allowed, thresholds, polygon, rect)

    def keep_mask(self, dets: Detections) -> np.ndarray:
        cls_ids = dets.class_ids.astype(np.int64)
        keep = np.ones(len(dets), dtype=bool)
        if self.allowed is not None:
            keep &= np.isin(cls_ids, self.allowed)
        in_table = (cls_ids >= 0) & (cls_ids < len(self.thresholds))
        thr = np.full(len(dets), self.conf_threshold, dtype=np.float32)
        thr[in_table] = self.thresholds[cls_ids[in_table]]
        keep &= dets.scores >= thr
        if self.polygon is not None and keep.any():
            idx = np.flatnonzero(keep)
            boxes = dets.boxes[idx].astype(np.float64)
            if self.cfg.roi_mode == "overlap":
                keep[idx] = box_polygon_overlap(boxes, self.polygon) >= self.cfg.roi_min_overlap
            else:
                cx = (boxes[:, 0] + boxes[:, 2]) / 2
                cy = (boxes[:, 1] + boxes[:, 3]) / 2
                if self.rect is not None:
                    x1, y1, x2, y2 = self.rect
                    keep[idx] = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
                else:
                    keep[idx] = points_in_polygon(np.stack((cx, cy), axis=1), self.polygon)
        return keep


class DetectionFilter:
    """Applies a :class:`FilterConfig` to one image's detections; rules can change at run time.

    A detection of class ``c`` is kept when ``c`` is in ``classes`` (or ``classes`` is empty),
    its score is ``>= class_thresholds.get(c, conf_threshold)`` and it passes the ROI test.
    A per-class threshold replaces the global one for that class; since NMS already dropped
    everything under the global ``conf_threshold``, a per-class value below it only takes
    effect if the postprocess threshold is lowered to match.
    """

    def __init__(self, cfg: FilterConfig, conf_threshold: float) -> None:
        self._rules = _Rules.build(cfg, conf_threshold)

    @property
    def cfg(self) -> FilterConfig:
        return self._rules.cfg

    @property
    def conf_threshold(self) -> float:
        return self._rules.conf_threshold

    def update(self, cfg: FilterConfig, conf_threshold: float) -> None:
        """Swap in new rules at once; raises ConfigError and keeps the old rules if invalid."""
        self._rules = _Rules.build(cfg, conf_threshold)  # one reference assignment: atomic

    def __call__(self, dets: Detections) -> Detections:
        rules = self._rules  # one snapshot for the whole frame
        if len(dets) == 0:
            return dets
        return dets.select(rules.keep_mask(dets))
