"""The gallery: re-finding lost tracks by appearance alone, anywhere in the frame.

ByteTrack re-finds a lost track only where its Kalman prediction overlaps a detection, and only
for ``track_buffer`` frames. An object that left the frame, or was hidden long enough for the
prediction to drift, comes back under a new id. With re-identification on, a lost track with an
embedding stays in a *gallery* for up to ``max_reid_lost`` frames, and after the motion
associations the detections nobody took that score at least ``new_track_thresh`` (the bar a
new track must pass; weaker boxes are often false detections) are matched against the gallery
by cosine distance alone, before any of them may start a new track. The re-found track keeps
its id; the caller re-initiates its Kalman state at the new box (its old velocity says nothing
about where it reappears).

Wrong merges (two objects under one id) cost more than a missed re-find (a new id, ByteTrack's
behaviour), so a match must pass three tests:

* cosine distance ``<= gallery_thresh`` (and the same class in class-aware mode);
* the optimal assignment (:func:`matching.assign_pairs`, SciPy's algorithm) of gallery tracks to
  detections on those distances picks it;
* the two are each other's nearest: no other candidate detection is as close to the track, and
  no *other* track with an embedding, whatever its state (tracked this frame, lost, in the
  gallery, unconfirmed), is as close to the detection. A detection that looks at least as much
  like an object being followed right now (a twin, or a duplicate box of it) revives nobody.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking._jit import jit
from yolov8_trt_ros.core.tracking.appearance import cosine_distance
from yolov8_trt_ros.core.tracking.matching import assign_pairs

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@jit
def refind(
    rows: I64,
    dets: I64,
    n: int,
    emb: F32,
    emb_ok: B,
    det_emb: F32,
    det_ok: B,
    cls: I32,
    classes: I32,
    class_aware: bool,
    thresh: float,
) -> I64:
    """For each gallery track ``rows[i]`` (with an embedding), the index into ``dets`` it re-finds, or -1.

    ``n``: the tracks held (rows ``[0, n)``), every one of which with an embedding competes for
    the detections in the nearest-neighbour test of the module docstring.
    """
    nr, nc = rows.size, dets.size
    match = np.full(nr, -1, dtype=np.int64)
    if nr == 0 or nc == 0:
        return match
    dist = np.full((nr, nc), np.inf)
    cap = nr * nc
    pr = np.empty(cap, dtype=np.int64)
    pc = np.empty(cap, dtype=np.int64)
    pcost = np.empty(cap, dtype=np.float64)
    k = 0
    for i in range(nr):
        r = rows[i]
        for j in range(nc):
            d = dets[j]
            if not det_ok[d] or (class_aware and cls[r] != classes[d]):
                continue
            dist[i, j] = cosine_distance(emb, r, det_emb, d)
            if dist[i, j] <= thresh:
                pr[k], pc[k], pcost[k] = i, j, dist[i, j]
                k += 1
    if k == 0:
        return match
    # assign_pairs matches pairs strictly below its threshold; ``<= thresh`` is wanted.
    row_match, _ = assign_pairs(nr, nc, pr, pc, pcost, k, np.nextafter(thresh, np.inf))
    for i in range(nr):
        j = row_match[i]
        if j < 0:
            continue
        r, d, best = rows[i], dets[j], dist[i, j]
        mutual = True
        for jj in range(nc):  # the track's nearest detection
            if jj != j and dist[i, jj] <= best:
                mutual = False
        for q in range(n):  # the detection's nearest track
            if not mutual:
                break
            rival = q != r and emb_ok[q] and not (class_aware and cls[q] != classes[d])
            if rival and cosine_distance(emb, q, det_emb, d) <= best:
                mutual = False
        if mutual:
            match[i] = j
    return match
