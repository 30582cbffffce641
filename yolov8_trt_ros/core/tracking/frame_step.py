"""ByteTrack's frame step as one compiled kernel over the tracks' struct of arrays.

:class:`~yolov8_trt_ros.core.tracking.bytetrack.ByteTracker` holds the state and the
configuration and publishes :class:`Track` objects; everything between a frame's detections and
the rows to publish happens here, in one call: detection split, Kalman prediction, the three
association stages, Kalman correction, lifecycle (lost, removed, born) and duplicate removal.
Why one kernel: at 10 objects the NumPy formulation spent 0.2 ms in about a hundred
array calls of well under a microsecond of work each; a single call makes the step cost its
arithmetic (see docs/tracking.md). The steps and their order are those of the module docstring
of :mod:`bytetrack`, and every comparison and float operation is the NumPy formulation's
(float32 thresholds on float32 scores and costs, as NumPy 2 compares them), so the published
ids and boxes are identical; ``test/test_tracking_compiled.py`` checks this frame by frame.

Extension point for appearance (ReID) association: a stage's candidates and costs come from
:func:`~yolov8_trt_ros.core.tracking.matching.admissible_pairs`; an embedding distance would be
one more per-pair term there (with the embeddings as one more ``[N, D]`` state array here).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking._jit import jit
from yolov8_trt_ros.core.tracking.kalman import initiate_track, predict_track, update_track
from yolov8_trt_ros.core.tracking.matching import admissible_pairs, assign_pairs

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]

TRACKED = 1
LOST = 2

#: Indices into the ``params`` array of :func:`frame_step` (built by the tracker per config).
P_TRACK, P_LOW, P_NEW = 0, 1, 2  # score thresholds, compared in float32
P_MATCH, P_SECOND, P_UNCONF = 3, 4, 5  # match thresholds (float64, the solver's offset)
P_BELOW_MATCH, P_BELOW_SECOND, P_BELOW_UNCONF, P_BELOW_DUP = 6, 7, 8, 9  # float32 admission bounds
P_MIN_AREA = 10
N_PARAMS = 11


@jit
def _xyxy32(mean: F64) -> F32:
    """Corner boxes of all states (float64 formula of ``xyah_to_xyxy``, then float32)."""
    n = mean.shape[0]
    out = np.empty((n, 4), dtype=np.float32)
    for r in range(n):
        h = mean[r, 3]
        w = mean[r, 2] * h
        out[r, 0] = mean[r, 0] - w / 2.0
        out[r, 1] = mean[r, 1] - h / 2.0
        out[r, 2] = mean[r, 0] + w / 2.0
        out[r, 3] = mean[r, 1] + h / 2.0
    return out


@jit
def _xyah(boxes: F32, d: int) -> F64:
    """Float32 corner box ``d`` as float64 (cx, cy, w/h, h), as ``xyxy_to_xyah``."""
    x1, y1, x2, y2 = (
        np.float64(boxes[d, 0]),
        np.float64(boxes[d, 1]),
        np.float64(boxes[d, 2]),
        np.float64(boxes[d, 3]),
    )
    w = x2 - x1
    h = y2 - y1
    z = np.empty(4)
    z[0] = (x1 + x2) / 2.0
    z[1] = (y1 + y2) / 2.0
    z[2] = w / h
    z[3] = h
    return z


@jit
def _associate(
    rows: I64,
    dets: I64,
    trk_boxes: F32,
    trk_cls: I32,
    boxes: F32,
    scores: F32,
    classes: I32,
    fuse: bool,
    class_aware: bool,
    below: np.float32,
    thresh: float,
) -> tuple[I64, I64]:
    """One association stage of tracks ``rows`` with detections ``dets``: (row_match, col_match)."""
    pr, pc, pcost, n = admissible_pairs(
        trk_boxes[rows], boxes[dets], scores[dets], fuse, trk_cls[rows], classes[dets], class_aware, below
    )
    return assign_pairs(rows.size, dets.size, pr, pc, pcost, n, thresh)


@jit
def _apply_matches(
    rows: I64,
    match: I64,
    dets: I64,
    mean: F64,
    cov: F64,
    cls: I32,
    score: F32,
    state: I8,
    activated: B,
    last: I64,
    boxes: F32,
    scores: F32,
    classes: I32,
    frame: int,
    class_aware: bool,
    noise: F64,
) -> None:
    """Correct every matched track with its detection; it is (again) tracked and confirmed."""
    for i in range(rows.size):
        if match[i] >= 0:
            r, d = rows[i], dets[match[i]]
            update_track(mean, cov, r, _xyah(boxes, d), noise)
            score[r] = scores[d]
            if not class_aware:
                cls[r] = classes[d]
            state[r] = TRACKED
            activated[r] = True
            last[r] = frame


@jit
def _compact(
    keep: B,
    mean: F64,
    cov: F64,
    ids: I64,
    cls: I32,
    score: F32,
    state: I8,
    activated: B,
    start: I64,
    last: I64,
    extra: int,
) -> tuple[F64, F64, I64, I32, F32, I8, B, I64, I64]:
    """The rows in ``keep``, in order, with room for ``extra`` more at the end."""
    n = int(keep.sum()) + extra
    if n == keep.size and extra == 0:
        return mean, cov, ids, cls, score, state, activated, start, last
    out = (
        np.empty((n, 8)),
        np.empty((n, 4, 4)),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.float32),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.bool_),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
    )
    new_mean, new_cov = out[0], out[1]
    k = 0
    for r in range(keep.size):
        if keep[r]:
            for j in range(8):
                new_mean[k, j] = mean[r, j]
            for p in range(4):
                for j in range(4):
                    new_cov[k, p, j] = cov[r, p, j]
            out[2][k] = ids[r]
            out[3][k] = cls[r]
            out[4][k] = score[r]
            out[5][k] = state[r]
            out[6][k] = activated[r]
            out[7][k] = start[r]
            out[8][k] = last[r]
            k += 1
    return out


@jit
def frame_step(
    mean: F64,
    cov: F64,
    ids: I64,
    cls: I32,
    score: F32,
    state: I8,
    activated: B,
    start: I64,
    last: I64,
    next_id: int,
    frame: int,
    boxes: F32,
    scores: F32,
    classes: I32,
    params: F64,
    max_time_lost: int,
    fuse: bool,
    class_aware: bool,
    noise: F64,
) -> tuple[F64, F64, I64, I32, F32, I8, B, I64, I64, int, I64, I64, F64]:
    """Advance the tracks (rows of the state arrays) by one frame with its detections.

    The state arrays are updated in place where their length does not change and returned
    (new arrays where tracks were removed or born). Also returns the next free id, the ids of
    the published tracks that ended, and the rows to publish with their corner boxes ``[P, 4]``.
    """
    n_trk, n_det = ids.size, scores.size
    t_track, t_low, t_new = np.float32(params[P_TRACK]), np.float32(params[P_LOW]), np.float32(params[P_NEW])

    # Detections: high and low score bands; boxes that are not finite or have no area are dropped,
    # and so are scores that are not finite (NaN never passed a threshold; +inf made the fused
    # cost -inf, which SciPy rejected with an exception and no solver can rank).
    high = np.empty(n_det, dtype=np.int64)
    low = np.empty(n_det, dtype=np.int64)
    n_high = n_low = 0
    for d in range(n_det):
        x1, y1, x2, y2 = boxes[d, 0], boxes[d, 1], boxes[d, 2], boxes[d, 3]
        valid = np.isfinite(x1) and np.isfinite(y1) and np.isfinite(x2) and np.isfinite(y2)
        s = scores[d]
        valid = valid and x2 > x1 and y2 > y1 and np.isfinite(s)
        if valid and s >= t_track:
            high[n_high] = d
            n_high += 1
        elif valid and s >= t_low and s < t_track:
            low[n_low] = d
            n_low += 1
    high, low = high[:n_high], low[:n_low]

    # Prediction of confirmed tracks, tracked then lost (the first association's row order).
    was_lost = state == LOST
    pool = np.empty(n_trk, dtype=np.int64)
    unconfirmed = np.empty(n_trk, dtype=np.int64)
    n_pool = n_unconf = 0
    for r in range(n_trk):
        if state[r] == TRACKED and activated[r]:
            pool[n_pool] = r
            n_pool += 1
        elif state[r] == TRACKED:
            unconfirmed[n_unconf] = r
            n_unconf += 1
    for r in range(n_trk):
        if was_lost[r]:
            pool[n_pool] = r
            n_pool += 1
    pool, unconfirmed = pool[:n_pool], unconfirmed[:n_unconf]
    for i in range(n_pool):
        r = pool[i]
        if was_lost[r]:
            mean[r, 7] = 0.0  # a lost box does not keep shrinking or growing
        predict_track(mean, cov, r, noise)
    trk_boxes = _xyxy32(mean)

    # 1st association: high detections with tracked + lost tracks.
    m1, c1 = _associate(
        pool, high, trk_boxes, cls, boxes, scores, classes, fuse, class_aware,
        np.float32(params[P_BELOW_MATCH]), params[P_MATCH],
    )  # fmt: skip
    # 2nd association: low detections with the still unmatched tracked (not lost) tracks.
    rest = pool[(m1 < 0) & (state[pool] == TRACKED)]
    m2, _ = _associate(
        rest, low, trk_boxes, cls, boxes, scores, classes, False, class_aware,
        np.float32(params[P_BELOW_SECOND]), params[P_SECOND],
    )  # fmt: skip
    # Unconfirmed tracks with the high detections nobody took.
    high_left = high[c1 < 0]
    m3, c3 = _associate(
        unconfirmed, high_left, trk_boxes, cls, boxes, scores, classes, fuse, class_aware,
        np.float32(params[P_BELOW_UNCONF]), params[P_UNCONF],
    )  # fmt: skip

    args = (mean, cov, cls, score, state, activated, last, boxes, scores, classes, frame, class_aware, noise)
    _apply_matches(pool, m1, high, *args)
    _apply_matches(rest, m2, low, *args)
    _apply_matches(unconfirmed, m3, high_left, *args)
    for i in range(rest.size):
        if m2[i] < 0:
            state[rest[i]] = LOST

    # Lifecycle: unconfirmed without a match and lost tracks past the buffer end.
    remove = np.zeros(n_trk, dtype=np.bool_)
    for i in range(unconfirmed.size):
        if m3[i] < 0:
            remove[unconfirmed[i]] = True
    for r in range(n_trk):
        if was_lost[r] and state[r] == LOST and frame - last[r] > max_time_lost:
            remove[r] = True
    removed = ids[remove & activated]  # unconfirmed tracks were never published
    born = high_left[(c3 < 0) & (scores[high_left] >= t_new)]
    n_born = born.size
    mean, cov, ids, cls, score, state, activated, start, last = _compact(
        ~remove, mean, cov, ids, cls, score, state, activated, start, last, n_born
    )
    n_kept = ids.size - n_born
    for i in range(n_born):
        r, d = n_kept + i, born[i]
        initiate_track(mean, cov, r, _xyah(boxes, d), noise)
        ids[r] = next_id + i
        cls[r] = classes[d]
        score[r] = scores[d]
        state[r] = TRACKED
        activated[r] = frame == 1
        start[r] = frame
        last[r] = frame
    next_id += n_born

    # Of a tracked and a lost track with IoU > 0.85 drop the one followed for fewer frames.
    trk_boxes = _xyxy32(mean)
    tracked = (state == TRACKED).nonzero()[0]
    lost = (state == LOST).nonzero()[0]
    pr, pc, _, n = admissible_pairs(
        trk_boxes[tracked], trk_boxes[lost], score[lost], False, cls[tracked], cls[lost], class_aware,
        np.float32(params[P_BELOW_DUP]),
    )  # fmt: skip
    if n:
        span = last - start
        remove = np.zeros(ids.size, dtype=np.bool_)
        for k in range(n):
            p, q = tracked[pr[k]], lost[pc[k]]
            if span[p] > span[q]:
                remove[q] = True
            else:
                remove[p] = True
        removed = np.concatenate((removed, ids[remove & activated]))
        mean, cov, ids, cls, score, state, activated, start, last = _compact(
            ~remove, mean, cov, ids, cls, score, state, activated, start, last, 0
        )

    # Published: confirmed tracked tracks whose box is larger than min_box_area.
    pub = np.empty(ids.size, dtype=np.int64)
    pub_boxes = np.empty((ids.size, 4))
    n_pub = 0
    min_area = params[P_MIN_AREA]
    for r in range(ids.size):
        if state[r] == TRACKED and activated[r]:
            h = mean[r, 3]
            w = mean[r, 2] * h
            x1, y1 = mean[r, 0] - w / 2.0, mean[r, 1] - h / 2.0
            x2, y2 = mean[r, 0] + w / 2.0, mean[r, 1] + h / 2.0
            if (x2 - x1) * (y2 - y1) > min_area:
                pub[n_pub] = r
                pub_boxes[n_pub, 0], pub_boxes[n_pub, 1] = x1, y1
                pub_boxes[n_pub, 2], pub_boxes[n_pub, 3] = x2, y2
                n_pub += 1
    return (
        mean, cov, ids, cls, score, state, activated, start, last, next_id, removed,
        pub[:n_pub], pub_boxes[:n_pub],
    )  # fmt: skip
