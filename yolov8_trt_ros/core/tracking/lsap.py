"""Compiled rectangular linear sum assignment, step for step SciPy's.

This is the shortest augmenting path algorithm of ``scipy.optimize.linear_sum_assignment``
(Crouse, "On implementing 2D rectangular assignment algorithms", IEEE TAES 2016; SciPy's
``rectangular_lsap.cpp`` by P. M. Larsen) transcribed to a numba kernel, with the same
iteration order, tie-breaking and float64 arithmetic. Why a transcription instead of calling
SciPy: the tracker solves up to three tiny problems per frame (usually 2x2 to 4x4 after the
reductions in :mod:`matching`) from inside its compiled frame step, where a call back into
Python would cost more than the solve. Why this algorithm and not e.g. an auction: when two
assignments have the same cost, which one is returned is decided by the solver's order of
work, and the tracker's ids must stay identical to the SciPy-based implementation's; the
tests compare both on random and on tied matrices.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking._jit import jit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@jit
def _augmenting_path(
    cost: F64,
    u: F64,
    v: F64,
    path: I64,
    row4col: I64,
    shortest: F64,
    i: int,
    in_rows: npt.NDArray[np.bool_],
    in_cols: npt.NDArray[np.bool_],
    remaining: I64,
) -> tuple[int, float]:
    """Sink column of the shortest augmenting path from row ``i`` and its length (-1 if none)."""
    nc = cost.shape[1]
    min_val = 0.0
    num_remaining = nc
    for it in range(nc):  # reverse order: a constant matrix gives the identity, as in SciPy
        remaining[it] = nc - it - 1
    in_rows[:] = False
    in_cols[:] = False
    shortest[:] = np.inf
    sink = -1
    while sink == -1:
        index = -1
        lowest = np.inf
        in_rows[i] = True
        u_i = u[i]
        for it in range(num_remaining):
            j = remaining[it]
            r = min_val + cost[i, j] - u_i - v[j]
            s_j = shortest[j]
            if r < s_j:
                path[j] = i
                shortest[j] = s_j = r
            # Among equally short paths prefer one that ends in a free column.
            if s_j < lowest or (s_j == lowest and row4col[j] == -1):
                lowest = s_j
                index = it
        min_val = lowest
        if min_val == np.inf:  # infeasible (only with inf costs)
            return -1, min_val
        j = remaining[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        in_cols[j] = True
        num_remaining -= 1
        remaining[index] = remaining[num_remaining]
    return sink, min_val


@jit
def _solve_wide(cost: F64) -> I64:
    """``col4row`` of a minimum assignment of every row of ``cost [nr, nc]``, ``nr <= nc``."""
    nr, nc = cost.shape
    u = np.zeros(nr)
    v = np.zeros(nc)
    shortest = np.empty(nc)
    path = np.full(nc, -1, dtype=np.int64)
    col4row = np.full(nr, -1, dtype=np.int64)
    row4col = np.full(nc, -1, dtype=np.int64)
    in_rows = np.zeros(nr, dtype=np.bool_)
    in_cols = np.zeros(nc, dtype=np.bool_)
    remaining = np.empty(nc, dtype=np.int64)
    for cur_row in range(nr):
        sink, min_val = _augmenting_path(
            cost, u, v, path, row4col, shortest, cur_row, in_rows, in_cols, remaining
        )
        if sink < 0:
            return np.full(nr, -1, dtype=np.int64)
        u[cur_row] += min_val
        for i in range(nr):
            if in_rows[i] and i != cur_row:
                u[i] += min_val - shortest[col4row[i]]
        for j in range(nc):
            if in_cols[j]:
                v[j] -= min_val - shortest[j]
        j = sink
        while True:  # augment along the path
            i = path[j]
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == cur_row:
                break
    return col4row


@jit
def linear_sum_assignment(cost: F64) -> tuple[I64, I64]:
    """``(rows, cols)`` of a minimum-cost full assignment, as SciPy's function of that name.

    Rows come out ascending. A tall matrix is solved transposed, as SciPy does; costs must
    be finite (the callers' are).
    """
    nr, nc = cost.shape
    if nr == 0 or nc == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if nc < nr:
        col4row = _solve_wide(np.ascontiguousarray(cost.T))
        order = np.argsort(col4row)
        return col4row[order], order.astype(np.int64)
    return np.arange(nr, dtype=np.int64), _solve_wide(cost)
