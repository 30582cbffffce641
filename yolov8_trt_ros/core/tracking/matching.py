"""Association costs and thresholded linear assignment for ByteTrack.

Costs are ``1 - IoU`` (optionally fused with the detection score). :func:`iou_distance` and
:func:`fuse_score` compute them for all pairs with broadcast NumPy (the readable formulation,
used by the tests); the tracker's compiled frame step uses :func:`admissible_pairs`, which
yields the same float32 costs but only for the pairs that can match at all.

The assignment is SciPy's algorithm (:mod:`lsap`, compiled) on the problem that ByteTrack and
ultralytics solve with ``lap.lapjv(extend_cost=True, cost_limit=t)``; see
:func:`linear_assignment`. Why not ``lap``: a small, sporadically maintained C extension that
cannot be called from compiled code; ``test/test_tracking_matching.py`` checks our matches
against it on random, IoU-like matrices.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking import lsap
from yolov8_trt_ros.core.tracking._jit import jit

F32 = npt.NDArray[np.float32]
IntP = npt.NDArray[np.intp]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Cost given to pairs that must never match (e.g. different classes in class-aware mode);
#: anything above every threshold works, a finite value keeps the arithmetic warning-free.
FORBIDDEN_COST = 1.0e6


def iou_matrix(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F32:
    """IoU of every box in ``a [N, 4]`` with every box in ``b [M, 4]`` (xyxy), as ``[N, M]``.

    float32 with a 1e-7 guard in the union, like ultralytics' ``bbox_ioa``; outer
    products of the coordinate columns keep the temporaries 2-D (about 4x faster at 200x200
    than broadcasting ``[N, M, 2]`` corner arrays).
    """
    a = np.asarray(a_xyxy, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float32).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float32)
    ax1, ay1, ax2, ay2 = a.T
    bx1, by1, bx2, by2 = b.T
    inter = np.minimum.outer(ax2, bx2)
    inter -= np.maximum.outer(ax1, bx1)
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum.outer(ay2, by2)
    ih -= np.maximum.outer(ay1, by1)
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    union = np.add.outer((ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1))
    union -= inter
    union += np.float32(1e-7)
    return np.divide(inter, union, out=inter)


def iou_distance(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F32:
    """``1 - IoU`` for all pairs: the ByteTrack association cost, ``[N, M]`` in [0, 1]."""
    cost = iou_matrix(a_xyxy, b_xyxy)
    np.subtract(np.float32(1.0), cost, out=cost)
    return cost


def fuse_score(cost: npt.ArrayLike, det_scores: npt.ArrayLike) -> F32:
    """ByteTrack's score fusion: ``1 - (1 - cost) * score`` per detection column.

    A confident detection then wins a contested track over a weak one with similar overlap.
    """
    c = np.asarray(cost, dtype=np.float32)
    s = np.asarray(det_scores, dtype=np.float32).reshape(1, -1)
    if c.size == 0:
        return c.copy()
    return np.float32(1.0) - (np.float32(1.0) - c) * s


def admissible_below(thresh: float) -> np.float32:
    """The largest float32 strictly below ``thresh``: ``cost < thresh`` decided exactly.

    ``lap`` compares in float64; comparing a float32 cost with this bound gives the same answer
    without converting the matrix.
    """
    below = np.float32(thresh)
    if float(below) >= thresh:
        below = np.nextafter(below, np.float32(-np.inf))
    return below


def linear_assignment(cost: npt.ArrayLike, thresh: float) -> tuple[IntP, IntP, IntP]:
    """Minimum-cost matching in which only pairs with ``cost < thresh`` may be matched.

    Returns ``(matches [K, 2] (row, col), unmatched_rows, unmatched_cols)``, index arrays
    sorted ascending.

    The problem solved is the one of ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)``:
    lapjv pads the matrix so that leaving a row or a column unmatched costs ``thresh / 2``,
    i.e. it minimises ``sum over matches of (cost - thresh)`` over *all* partial matchings; a
    pair at or above the threshold never lowers that sum (see :func:`assign_pairs` for how).
    The naive alternative, "set costs above ``thresh`` to a large value, solve, drop those
    matches", is *not* equivalent: it maximises the number of matches first, so it prefers two
    mediocre matches to one excellent one (a test shows such a case). Pairs exactly at
    ``thresh`` are not matched (lapjv is indifferent to them; with IoU costs and
    ``thresh = 1`` they are zero-overlap pairs); NaN costs never match.
    """
    c = np.asarray(cost)
    if c.dtype not in (np.float32, np.float64):
        c = c.astype(np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    n_rows, n_cols = c.shape
    below = c.dtype.type(thresh)
    if float(below) >= thresh:
        below = np.nextafter(below, c.dtype.type(-np.inf))
    pr, pc = np.nonzero(c <= below)  # NaN compares False: never matched
    row_match, col_match = assign_pairs(
        n_rows,
        n_cols,
        pr.astype(np.int64),
        pc.astype(np.int64),
        c[pr, pc].astype(np.float64),
        pr.size,
        thresh,
    )
    rows = (row_match >= 0).nonzero()[0]
    matches = np.stack([rows, row_match[rows]], axis=1).astype(np.intp)
    return matches, (row_match < 0).nonzero()[0], (col_match < 0).nonzero()[0]


# -- compiled association ---------------------------------------------------------------------


@jit
def assign_pairs(
    n_rows: int, n_cols: int, pr: I64, pc: I64, pcost: F64, n_pairs: int, thresh: float
) -> tuple[I64, I64]:
    """:func:`linear_assignment` on its admissible pairs ``(pr[k], pc[k], pcost[k])``, ``k < n_pairs``.

    Returns ``row_match [n_rows]`` (matched column or -1) and ``col_match [n_cols]``.

    Two exact reductions keep the solver's matrix small in tracking, where most objects
    overlap just one candidate: rows and columns without any admissible pair are unmatched
    outright, and a pair whose row and column have no other admissible pair is matched
    directly (an isolated pair is its own component of the matching problem). The rest, in
    ascending row and column order, goes to the solver as ``min(cost - thresh, 0)``: every
    full assignment of it has the objective of the partial matching made of its negative
    entries, and any partial matching extends to a full assignment at no cost, so the optima
    coincide; its matches at a negative entry are kept.
    """
    row_n = np.zeros(n_rows, dtype=np.int64)
    col_n = np.zeros(n_cols, dtype=np.int64)
    for k in range(n_pairs):
        row_n[pr[k]] += 1
        col_n[pc[k]] += 1
    row_match = np.full(n_rows, -1, dtype=np.int64)
    col_match = np.full(n_cols, -1, dtype=np.int64)
    for k in range(n_pairs):
        r, c = pr[k], pc[k]
        if row_n[r] == 1 and col_n[c] == 1:  # isolated pair
            row_match[r] = c
            col_match[c] = r
    row_local = np.full(n_rows, -1, dtype=np.int64)
    rest_rows = np.empty(n_rows, dtype=np.int64)
    n_rest_rows = 0
    for r in range(n_rows):
        if row_n[r] > 0 and row_match[r] < 0:
            row_local[r] = n_rest_rows
            rest_rows[n_rest_rows] = r
            n_rest_rows += 1
    col_local = np.full(n_cols, -1, dtype=np.int64)
    rest_cols = np.empty(n_cols, dtype=np.int64)
    n_rest_cols = 0
    for c in range(n_cols):
        if col_n[c] > 0 and col_match[c] < 0:
            col_local[c] = n_rest_cols
            rest_cols[n_rest_cols] = c
            n_rest_cols += 1
    if n_rest_rows == 0 or n_rest_cols == 0:
        return row_match, col_match
    sub = np.zeros((n_rest_rows, n_rest_cols))
    for k in range(n_pairs):
        lr, lc = row_local[pr[k]], col_local[pc[k]]
        if lr >= 0 and lc >= 0:
            sub[lr, lc] = pcost[k] - thresh
    sr, sc = lsap.linear_sum_assignment(sub)
    for i in range(sr.size):
        if sub[sr[i], sc[i]] < 0.0:
            r, c = rest_rows[sr[i]], rest_cols[sc[i]]
            row_match[r] = c
            col_match[c] = r
    return row_match, col_match


@jit
def iou_cost(
    ax1: np.float32,
    ay1: np.float32,
    ax2: np.float32,
    ay2: np.float32,
    bx1: np.float32,
    by1: np.float32,
    bx2: np.float32,
    by2: np.float32,
) -> np.float32:
    """``1 - IoU`` of two float32 xyxy boxes, operation for operation :func:`iou_distance`."""
    iw = min(ax2, bx2) - max(ax1, bx1)
    if iw < 0:
        iw = np.float32(0.0)
    ih = min(ay2, by2) - max(ay1, by1)
    if ih < 0:
        ih = np.float32(0.0)
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union = union - inter
    union = union + np.float32(1e-7)
    return np.float32(1.0) - inter / union


@jit
def admissible_pairs(
    trk_boxes: F32,
    det_boxes: F32,
    det_scores: F32,
    fuse: bool,
    trk_cls: npt.NDArray[np.int32],
    det_cls: npt.NDArray[np.int32],
    class_aware: bool,
    below: np.float32,
) -> tuple[I64, I64, F64, int]:
    """The pairs whose cost (``1 - IoU``, score-fused if ``fuse``) is ``<= below``.

    Returns ``(rows, cols, costs, n)``; the first ``n`` entries are valid. Every threshold is
    at most 1 and a pair that does not overlap has cost exactly 1 (fused: ``1 - 0 * score``),
    so only overlapping pairs need a cost: detections sorted by x1 are scanned from the first
    that could reach each track to the first that starts right of it, which makes 200x200
    objects about as cheap as the matches themselves instead of 40 000 IoUs. Costs are
    float32, bit-identical to
    ``fuse_score(iou_distance(...))``; in class-aware mode pairs of different classes are
    inadmissible (the NumPy formulation's :data:`FORBIDDEN_COST`).
    """
    n_trk, n_det = trk_boxes.shape[0], det_boxes.shape[0]
    cap = 4 * (n_trk + n_det) + 8
    rows = np.empty(cap, dtype=np.int64)
    cols = np.empty(cap, dtype=np.int64)
    costs = np.empty(cap, dtype=np.float64)
    n = 0
    if n_trk == 0 or n_det == 0:
        return rows, cols, costs, n
    # Detections sorted by x1, copied in that order (the scan below reads them sequentially), with
    # ``reach[k]``: the largest x2 among the first k + 1. Those before the first reach > ax1 all end
    # left of the track, those from the first x1 >= ax2 on all start right of it.
    order = np.argsort(det_boxes[:, 0])
    sorted_boxes = np.empty((n_det, 4), dtype=np.float32)
    reach = np.empty(n_det, dtype=np.float32)
    right = np.float32(-np.inf)
    for k in range(n_det):
        d = order[k]
        for j in range(4):
            sorted_boxes[k, j] = det_boxes[d, j]
        right = max(right, det_boxes[d, 2])
        reach[k] = right
    for t in range(n_trk):
        # Scalars, not row views: a view costs reference counting, more than the IoU itself.
        ax1, ay1, ax2, ay2 = trk_boxes[t, 0], trk_boxes[t, 1], trk_boxes[t, 2], trk_boxes[t, 3]
        for k in range(np.searchsorted(reach, ax1, side="right"), n_det):
            bx1, by1 = sorted_boxes[k, 0], sorted_boxes[k, 1]
            bx2, by2 = sorted_boxes[k, 2], sorted_boxes[k, 3]
            if bx1 >= ax2:
                break  # this and every later detection start right of the track
            if bx2 <= ax1 or by1 >= ay2 or by2 <= ay1:
                continue
            d = order[k]
            if class_aware and trk_cls[t] != det_cls[d]:
                continue
            cost = iou_cost(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2)
            if fuse:
                cost = np.float32(1.0) - (np.float32(1.0) - cost) * det_scores[d]
            if cost <= below:
                if n == cap:
                    cap *= 2
                    rows, cols, costs = _grown(rows, cap), _grown(cols, cap), _grown(costs, cap)
                rows[n], cols[n], costs[n] = t, d, cost
                n += 1
    return rows, cols, costs, n


@jit
def _grown(a: npt.NDArray[np.generic], cap: int) -> npt.NDArray[np.generic]:
    out = np.empty(cap, dtype=a.dtype)
    out[: a.size] = a
    return out
