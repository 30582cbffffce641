"""Association costs and thresholded linear assignment for ByteTrack.

Costs are ``1 - IoU`` (optionally fused with the detection score), computed for all
track/detection pairs with broadcast NumPy; the assignment is SciPy's
``linear_sum_assignment``.

Why SciPy and not ``lap`` (which ByteTrack and ultralytics use): SciPy is well kept, already a
dependency of the core, and ships wheels for every platform we target (aarch64 Jetson
included), while ``lap`` is a small, sporadically maintained C extension. ``lap.lapjv`` with
``extend_cost=True, cost_limit=t`` solves a slightly different problem from a plain
assignment, and :func:`linear_assignment` solves exactly that problem (see its docstring), so
the matches are the same; ``test/test_tracking_bytetrack.py`` checks this against ``lap`` on
random, IoU-like matrices.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

F32 = npt.NDArray[np.float32]
IntP = npt.NDArray[np.intp]

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


def linear_assignment(cost: npt.ArrayLike, thresh: float) -> tuple[IntP, IntP, IntP]:
    """Minimum-cost matching in which only pairs with ``cost < thresh`` may be matched.

    Returns ``(matches [K, 2] (row, col), unmatched_rows, unmatched_cols)``, index arrays
    sorted ascending.

    The problem solved is the one of ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)``:
    lapjv pads the matrix so that leaving a row or a column unmatched costs ``thresh / 2``,
    i.e. it minimises ``sum over matches of (cost - thresh)`` over *all* partial matchings; a
    pair at or above the threshold never lowers that sum. Here the same objective is handed to
    SciPy as the square-or-rectangular matrix ``min(cost - thresh, 0)``: every full assignment
    of it has the objective of the partial matching made of its negative entries, and any
    partial matching extends to a full assignment at no cost, so both optima coincide. The
    naive alternative, "set costs above ``thresh`` to a large value, solve, drop those
    matches", is *not* equivalent: it maximises the number of matches first, so it prefers two
    mediocre matches to one excellent one (a test shows such a case).

    Two exact reductions keep the solver's matrix small in tracking, where most objects
    overlap just one candidate: rows and columns without any admissible pair are unmatched
    outright, and a row whose only admissible column has no other admissible row is matched
    directly (an isolated pair is its own component of the matching problem). Pairs exactly at
    ``thresh`` are not matched (lapjv is indifferent to them; with IoU costs and
    ``thresh = 1`` they are zero-overlap pairs).
    """
    c = np.asarray(cost)
    if c.dtype not in (np.float32, np.float64):
        c = c.astype(np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    n_rows, n_cols = c.shape
    if n_rows == 0 or n_cols == 0:
        return np.zeros((0, 2), dtype=np.intp), np.arange(n_rows), np.arange(n_cols)
    # Admissible pairs, cost < thresh decided exactly as in float64 (lap's precision) but without
    # converting a float32 matrix: compare with the largest value of c's dtype below thresh.
    below = c.dtype.type(thresh)
    if float(below) >= thresh:
        below = np.nextafter(below, c.dtype.type(-np.inf))
    flat = (c <= below).ravel().nonzero()[0]  # NaN compares False: never matched
    if flat.size == 0:
        return np.zeros((0, 2), dtype=np.intp), np.arange(n_rows), np.arange(n_cols)
    pr, pc = np.divmod(flat, n_cols)
    row_n = np.bincount(pr, minlength=n_rows)
    col_n = np.bincount(pc, minlength=n_cols)
    # An isolated pair (the row's only admissible column admits only this row) is a component
    # of its own: matching it is optimal whatever the rest does.
    iso = (row_n[pr] == 1) & (col_n[pc] == 1)
    iso_rows, iso_cols = pr[iso], pc[iso]
    row_free = row_n > 0
    row_free[iso_rows] = False
    col_free = col_n > 0
    col_free[iso_cols] = False
    rest_rows, rest_cols = row_free.nonzero()[0], col_free.nonzero()[0]
    if rest_rows.size and rest_cols.size:
        block = c[rest_rows][:, rest_cols].astype(np.float64)  # 4x faster than np.ix_ here
        sub = np.where(block <= below, block - thresh, 0.0)  # also clears NaN/inf
        sr, sc = linear_sum_assignment(sub)
        keep = sub[sr, sc] < 0.0
        rows = np.concatenate([iso_rows, rest_rows[sr[keep]]])
        cols = np.concatenate([iso_cols, rest_cols[sc[keep]]])
    else:
        rows, cols = iso_rows, iso_cols
    order = np.argsort(rows, kind="stable")
    matches = np.stack([rows[order], cols[order]], axis=1).astype(np.intp, copy=False)
    row_matched = np.zeros(n_rows, dtype=bool)
    row_matched[rows] = True
    col_matched = np.zeros(n_cols, dtype=bool)
    col_matched[cols] = True
    return matches, (~row_matched).nonzero()[0], (~col_matched).nonzero()[0]
