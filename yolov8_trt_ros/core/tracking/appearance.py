"""Appearance for the first association: BoT-SORT's fusion of IoU and embedding distances.

Each track keeps an exponential moving average (EMA) of its detections' embeddings,
re-normalised after every update (BoT-SORT, Aharon et al. 2022, and ultralytics' ``BOTrack``):
one occluded or blurred frame then moves the track's appearance only by ``1 - ema_alpha``.

The cost of a track/detection pair in the first (high-score) association is, as in
ultralytics' ``BOTSORT.get_dists``::

    iou   = 1 - IoU, score-fused when fuse_score
    app   = cosine distance / 2        (in [0, 1], the IoU cost's range, as BoT-SORT halves it)
    app   = 1 where cosine distance > appearance_thresh or 1 - IoU > proximity_thresh
    cost  = min(iou, app)

so appearance can only make a nearby pair cheaper: a good look-alike match wins a contested
track that IoU alone would give to the wrong detection (two objects crossing), but it never
pulls a track across the frame (that is the gallery's job, :mod:`gallery`). Thresholds are on the
cosine distance ``1 - cos`` (``[0, 2]``) as the configuration says; BoT-SORT's published 0.25 is
on the halved distance, i.e. 0.5 here. One deliberate narrowing: appearance counts only for
pairs whose boxes overlap, even with ``proximity_thresh = 1``; this keeps the first association's
candidate search to overlapping pairs (:func:`matching.admissible_pairs`' sorted scan).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking._jit import jit
from yolov8_trt_ros.core.tracking.matching import admissible_pairs

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: Admission bound for the raw IoU cost that keeps every overlapping pair (cost < 1).
OVERLAPPING = np.nextafter(np.float32(1.0), np.float32(0.0))


@jit
def normalised_embeddings(det_emb: F32) -> tuple[F32, B]:
    """Rows of ``det_emb [M, D]`` scaled to unit length, and which rows are usable.

    The contract promises unit rows; re-normalising costs ``M * D`` operations and makes a
    half-precision engine's rounding harmless. A row that is zero or not finite has no usable
    appearance (``ok`` False): its pairs fall back to IoU, as ultralytics does for a missing
    feature.
    """
    m, dim = det_emb.shape
    out = np.zeros((m, dim), dtype=np.float32)
    ok = np.zeros(m, dtype=np.bool_)
    for d in range(m):
        s = 0.0
        for j in range(dim):
            x = np.float64(det_emb[d, j])
            s += x * x
        if s > 0.0 and np.isfinite(s):
            inv = 1.0 / np.sqrt(s)
            for j in range(dim):
                out[d, j] = np.float32(det_emb[d, j] * inv)
            ok[d] = True
    return out, ok


@jit
def cosine_distance(emb: F32, r: int, det_emb: F32, d: int) -> float:
    """``1 - cos`` between track ``r``'s embedding and detection ``d``'s (unit rows), in [0, 2]."""
    s = 0.0
    for j in range(emb.shape[1]):
        s += np.float64(emb[r, j]) * np.float64(det_emb[d, j])
    return 1.0 - s


@jit
def smooth_embedding(emb: F32, emb_ok: B, r: int, det_emb: F32, d: int, alpha: float) -> None:
    """EMA of track ``r``'s embedding with detection ``d``'s, re-normalised (the first one is copied).

    ``f = alpha * f + (1 - alpha) * e`` then ``f / |f|``; should the two be exactly opposite
    with ``alpha = 0.5`` (a zero sum), the detection's embedding is taken.
    """
    dim = emb.shape[1]
    if emb_ok[r]:
        s = 0.0
        for j in range(dim):
            v = alpha * np.float64(emb[r, j]) + (1.0 - alpha) * np.float64(det_emb[d, j])
            emb[r, j] = np.float32(v)
            s += v * v
        if s > 0.0:
            inv = 1.0 / np.sqrt(s)
            for j in range(dim):
                emb[r, j] = np.float32(emb[r, j] * inv)
            return
    for j in range(dim):
        emb[r, j] = det_emb[d, j]
    emb_ok[r] = True


@jit
def appearance_pairs(
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
    emb: F32,
    emb_ok: B,
    det_emb: F32,
    det_ok: B,
    proximity: np.float32,
    appearance: float,
) -> tuple[I64, I64, F64, int]:
    """The pairs of tracks ``rows`` and detections ``dets`` whose fused cost is ``<= below``.

    Same output as :func:`matching.admissible_pairs` (indices into ``rows`` and ``dets``), with
    the cost of the module docstring. Candidates are the overlapping pairs (class-gated when
    ``class_aware``), found by that function's sorted scan with the raw IoU cost; score fusion
    is then the same float32 arithmetic as there.
    """
    pr, pc, raw, n = admissible_pairs(
        trk_boxes[rows], boxes[dets], scores[dets], False, trk_cls[rows], classes[dets], class_aware,
        OVERLAPPING,
    )  # fmt: skip
    k = 0
    for i in range(n):
        t, c = pr[i], pc[i]
        r, d = rows[t], dets[c]
        iou = np.float32(raw[i])
        cost = iou
        if fuse:
            cost = np.float32(1.0) - (np.float32(1.0) - iou) * scores[d]
        if iou <= proximity and emb_ok[r] and det_ok[d]:
            dist = cosine_distance(emb, r, det_emb, d)
            if dist <= appearance and np.float32(dist / 2.0) < cost:
                cost = np.float32(dist / 2.0)
        if cost <= below:
            pr[k], pc[k], raw[k] = t, c, cost
            k += 1
    return pr, pc, raw, k
