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

The state arrays are buffers with room to spare: rows ``[0, n)`` are the tracks, the kernel
updates, compacts and appends in place and writes its outputs (ended ids, rows to publish and
their boxes) into buffers as well, returning only counts. Why: numba converts every array it
returns into a new NumPy object, and with a dozen arrays that cost more than a 10-object frame's
arithmetic; the caller guarantees the room (``n`` + number of detections rows).

Appearance (re-identification), when the tracker's ``reid`` flag is on and the frame has
embeddings: the tracks carry an EMA embedding (``emb [N, D]``, ``emb_ok``), the first association
fuses IoU and appearance (:mod:`appearance`), and after the unconfirmed stage the gallery of lost
tracks is searched by appearance alone (:mod:`gallery`) before new tracks are born; a lost track
past ``max_time_lost`` moves to the ``GALLERY`` state (out of the motion associations) instead of
being removed, until ``max_reid_lost``. With the flag off, or a frame without embeddings, every
branch taken is ByteTrack's, so its output is unchanged (``test/test_tracking_reid.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking._jit import jit
from yolov8_trt_ros.core.tracking.appearance import appearance_pairs, normalised_embeddings, smooth_embedding
from yolov8_trt_ros.core.tracking.gallery import refind
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
GALLERY = 3  # lost past max_time_lost, kept for re-identification by appearance only

#: Indices into the ``params`` array of :func:`frame_step` (built by the tracker per config).
P_TRACK, P_LOW, P_NEW = 0, 1, 2  # score thresholds, compared in float32
P_MATCH, P_SECOND, P_UNCONF = 3, 4, 5  # match thresholds (float64, the solver's offset)
P_BELOW_MATCH, P_BELOW_SECOND, P_BELOW_UNCONF, P_BELOW_DUP = 6, 7, 8, 9  # float32 admission bounds
P_MIN_AREA = 10
P_PROXIMITY, P_APPEARANCE, P_GALLERY, P_EMA_ALPHA = 11, 12, 13, 14  # re-identification
N_PARAMS = 15


@jit
def _xyxy32(mean: F64, n: int) -> F32:
    """Corner boxes of states ``[0, n)`` (float64 formula of ``xyah_to_xyxy``, then float32)."""
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
    x1, y1 = np.float64(boxes[d, 0]), np.float64(boxes[d, 1])
    x2, y2 = np.float64(boxes[d, 2]), np.float64(boxes[d, 3])
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
def _mark_tracked(
    r: int,
    d: int,
    cls: I32,
    score: F32,
    state: I8,
    activated: B,
    last: I64,
    det_of: I64,
    scores: F32,
    classes: I32,
    frame: int,
    class_aware: bool,
) -> None:
    """Track ``r`` took detection ``d`` this frame: (again) tracked and confirmed, its score,
    class (unless class-aware) and detection recorded (its Kalman state is the caller's)."""
    score[r] = scores[d]
    if not class_aware:
        cls[r] = classes[d]
    state[r] = TRACKED
    activated[r] = True
    last[r] = frame
    det_of[r] = d


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
    det_of: I64,
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
            _mark_tracked(
                r, d, cls, score, state, activated, last, det_of, scores, classes, frame, class_aware
            )


@jit
def _remove(
    remove: B,
    n: int,
    mean: F64,
    cov: F64,
    ids: I64,
    cls: I32,
    score: F32,
    state: I8,
    activated: B,
    start: I64,
    last: I64,
    det_of: I64,
    emb: F32,
    emb_ok: B,
    removed: I64,
    n_removed: int,
) -> tuple[int, int]:
    """Drop rows ``remove`` of ``[0, n)`` in place, keeping the order; the ids of the published
    ones (activated) are appended to ``removed``. Returns the new ``n`` and ``n_removed``."""
    k = 0
    for r in range(n):
        if remove[r]:
            if activated[r]:  # unconfirmed tracks were never published
                removed[n_removed] = ids[r]
                n_removed += 1
            continue
        if k != r:
            for j in range(8):
                mean[k, j] = mean[r, j]
            for p in range(4):
                for j in range(4):
                    cov[k, p, j] = cov[r, p, j]
            ids[k] = ids[r]
            cls[k] = cls[r]
            score[k] = score[r]
            state[k] = state[r]
            activated[k] = activated[r]
            start[k] = start[r]
            last[k] = last[r]
            det_of[k] = det_of[r]
            for j in range(emb.shape[1]):
                emb[k, j] = emb[r, j]
            emb_ok[k] = emb_ok[r]
        k += 1
    return k, n_removed


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
    det_of: I64,
    emb: F32,
    emb_ok: B,
    n: int,
    next_id: int,
    frame: int,
    boxes: F32,
    scores: F32,
    classes: I32,
    det_emb: F32,
    params: F64,
    max_time_lost: int,
    fuse: bool,
    class_aware: bool,
    max_reid_lost: int,
    reid: bool,
    appearance: bool,
    noise: F64,
    removed: I64,
    published: I64,
    published_boxes: F64,
    published_dets: I64,
) -> tuple[int, int, int, int]:
    """Advance tracks ``[0, n)`` of the state buffers by one frame with its detections.

    Updates the buffers in place (they need ``n + len(scores)`` rows) and writes the ids of the
    published tracks that ended to ``removed``, the rows to publish to ``published`` and their
    corner boxes to ``published_boxes`` and the detection each was matched with (or born from)
    in this frame to ``published_dets``. Returns the new ``n``, the next free id and the numbers
    of ended ids and of published rows.

    ``reid``: re-identification is on (the gallery is kept); ``appearance``: it is on and
    ``det_emb [len(scores), D]`` holds this frame's embeddings (else it is not read).
    """
    n_det = scores.size
    appearance = appearance and det_emb.shape[0] == n_det and n_det > 0
    det_ok = np.zeros(0, dtype=np.bool_)
    if appearance:
        det_emb, det_ok = normalised_embeddings(det_emb)
    for r in range(n):
        det_of[r] = -1
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
    was_lost = state[:n] == LOST
    pool = np.empty(n, dtype=np.int64)
    unconfirmed = np.empty(n, dtype=np.int64)
    n_pool = n_unconf = 0
    for r in range(n):
        if state[r] == TRACKED and activated[r]:
            pool[n_pool] = r
            n_pool += 1
        elif state[r] == TRACKED:
            unconfirmed[n_unconf] = r
            n_unconf += 1
    for r in range(n):
        if was_lost[r]:
            pool[n_pool] = r
            n_pool += 1
    pool, unconfirmed = pool[:n_pool], unconfirmed[:n_unconf]
    for i in range(n_pool):
        r = pool[i]
        if was_lost[r]:
            mean[r, 7] = 0.0  # a lost box does not keep shrinking or growing
        predict_track(mean, cov, r, noise)
    trk_boxes = _xyxy32(mean, n)

    # 1st association: high detections with tracked + lost tracks (and their looks, with ReID).
    if appearance:
        pr, pc, pcost, n_pairs = appearance_pairs(
            pool, high, trk_boxes, cls, boxes, scores, classes, fuse, class_aware,
            np.float32(params[P_BELOW_MATCH]), emb, emb_ok, det_emb, det_ok,
            np.float32(params[P_PROXIMITY]), params[P_APPEARANCE],
        )  # fmt: skip
        m1, c1 = assign_pairs(pool.size, high.size, pr, pc, pcost, n_pairs, params[P_MATCH])
    else:
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

    args = (
        mean,
        cov,
        cls,
        score,
        state,
        activated,
        last,
        det_of,
        boxes,
        scores,
        classes,
        frame,
        class_aware,
        noise,
    )
    _apply_matches(pool, m1, high, *args)
    _apply_matches(rest, m2, low, *args)
    _apply_matches(unconfirmed, m3, high_left, *args)
    for i in range(rest.size):
        if m2[i] < 0:
            state[rest[i]] = LOST
    # Appearance of the tracks matched with high detections (low ones are often occluded).
    taken = np.zeros(n_det, dtype=np.bool_)  # high detections re-finding a gallery track
    if appearance:
        alpha = params[P_EMA_ALPHA]
        for i in range(pool.size):
            if m1[i] >= 0 and det_ok[high[m1[i]]]:
                smooth_embedding(emb, emb_ok, pool[i], det_emb, high[m1[i]], alpha)
        for i in range(unconfirmed.size):
            if m3[i] >= 0 and det_ok[high_left[m3[i]]]:
                smooth_embedding(emb, emb_ok, unconfirmed[i], det_emb, high_left[m3[i]], alpha)
        # The gallery: lost tracks (before this frame) re-found by appearance alone.
        horizon = max(max_time_lost, max_reid_lost)
        gallery = np.empty(n, dtype=np.int64)
        n_gallery = 0
        for r in range(n):
            candidate = (was_lost[r] and state[r] == LOST) or state[r] == GALLERY
            if candidate and emb_ok[r] and frame - last[r] <= horizon:
                gallery[n_gallery] = r
                n_gallery += 1
        gallery = gallery[:n_gallery]
        free = high_left[(c3 < 0) & (scores[high_left] >= t_new)]  # the bar a new track must pass
        g = refind(
            gallery, free, n, emb, emb_ok, det_emb, det_ok, cls, classes, class_aware, params[P_GALLERY]
        )
        for i in range(gallery.size):
            if g[i] >= 0:
                r, d = gallery[i], free[g[i]]
                initiate_track(mean, cov, r, _xyah(boxes, d), noise)
                _mark_tracked(
                    r, d, cls, score, state, activated, last, det_of, scores, classes, frame, class_aware
                )
                smooth_embedding(emb, emb_ok, r, det_emb, d, alpha)
                taken[d] = True

    # Lifecycle: unconfirmed without a match and lost tracks past the buffer end (into the
    # gallery, with ReID, until its end); then births.
    remove = np.zeros(n, dtype=np.bool_)
    for i in range(unconfirmed.size):
        if m3[i] < 0:
            remove[unconfirmed[i]] = True
    for r in range(n):
        if was_lost[r] and state[r] == LOST and frame - last[r] > max_time_lost:
            if reid and emb_ok[r] and frame - last[r] <= max_reid_lost:
                state[r] = GALLERY
            else:
                remove[r] = True
        elif state[r] == GALLERY and (not reid or frame - last[r] > max_reid_lost):
            remove[r] = True
    state_arrays = (mean, cov, ids, cls, score, state, activated, start, last, det_of, emb, emb_ok)
    n, n_removed = _remove(remove, n, *state_arrays, removed, 0)
    born = high_left[(c3 < 0) & (scores[high_left] >= t_new) & ~taken[high_left]]
    for i in range(born.size):
        r, d = n + i, born[i]
        initiate_track(mean, cov, r, _xyah(boxes, d), noise)
        emb_ok[r] = False
        if appearance and det_ok[d]:
            smooth_embedding(emb, emb_ok, r, det_emb, d, 0.0)
        ids[r] = next_id + i
        cls[r] = classes[d]
        score[r] = scores[d]
        state[r] = TRACKED
        activated[r] = frame == 1
        start[r] = frame
        last[r] = frame
        det_of[r] = d
    n += born.size
    next_id += born.size

    # Of a tracked and a lost track with IoU > 0.85 drop the one followed for fewer frames.
    trk_boxes = _xyxy32(mean, n)
    tracked = (state[:n] == TRACKED).nonzero()[0]
    lost = (state[:n] == LOST).nonzero()[0]
    pr, pc, _, n_pairs = admissible_pairs(
        trk_boxes[tracked], trk_boxes[lost], score[lost], False, cls[tracked], cls[lost], class_aware,
        np.float32(params[P_BELOW_DUP]),
    )  # fmt: skip
    if n_pairs:
        remove = np.zeros(n, dtype=np.bool_)
        for k in range(n_pairs):
            p, q = tracked[pr[k]], lost[pc[k]]
            if last[p] - start[p] > last[q] - start[q]:
                remove[q] = True
            else:
                remove[p] = True
        n, n_removed = _remove(remove, n, *state_arrays, removed, n_removed)

    # Published: confirmed tracked tracks whose box is larger than min_box_area.
    n_pub = 0
    min_area = params[P_MIN_AREA]
    for r in range(n):
        if state[r] == TRACKED and activated[r]:
            h = mean[r, 3]
            w = mean[r, 2] * h
            x1, y1 = mean[r, 0] - w / 2.0, mean[r, 1] - h / 2.0
            x2, y2 = mean[r, 0] + w / 2.0, mean[r, 1] + h / 2.0
            if (x2 - x1) * (y2 - y1) > min_area:
                published[n_pub] = r
                published_boxes[n_pub, 0], published_boxes[n_pub, 1] = x1, y1
                published_boxes[n_pub, 2], published_boxes[n_pub, 3] = x2, y2
                published_dets[n_pub] = det_of[r]
                n_pub += 1
    return n, next_id, n_removed, n_pub
