"""The NumPy ByteTrack that the compiled tracker replaced, kept as the tests' reference.

``NumpyByteTracker`` here is the package's ``core/tracking/bytetrack.py`` as of commit 43b44ef (a
struct of arrays advanced by vectorised NumPy calls, SciPy's ``linear_sum_assignment``), only
renamed and with its ``linear_assignment`` moved in; ``test/test_tracking_compiled.py`` checks
that the compiled tracker publishes exactly the same tracks, frame by frame. Not a test module
(leading underscore): pytest does not collect it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from yolov8_trt_ros.core.config import ConfigError, TrackerConfig
from yolov8_trt_ros.core.tracking.kalman import KalmanFilterXYAH, xyah_to_xyxy, xyxy_to_xyah
from yolov8_trt_ros.core.tracking.matching import FORBIDDEN_COST, fuse_score, iou_distance
from yolov8_trt_ros.core.types import Detections, Track

IntP = npt.NDArray[np.intp]
PublishedState = Literal["tracked", "lost"]

_TRACKED = np.int8(1)
_LOST = np.int8(2)
#: Tracked/lost pairs closer than this IoU distance are duplicates (IoU > 0.85), as published.
DUPLICATE_IOU_DISTANCE = 0.15


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


class NumpyByteTracker:
    """The NumPy ByteTracker of commit 43b44ef (see the module docstring).

    ``update`` is called once per frame, in order, with that frame's detections in source
    pixels (an empty :class:`Detections` for a frame without any), and returns the confirmed
    tracks matched in that frame. ``TrackerConfig.enabled`` is for the caller, which skips the
    tracker altogether when it is off.
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self._cfg = self._checked(cfg if cfg is not None else TrackerConfig())
        self._kf = KalmanFilterXYAH()
        self.reset()

    # -- configuration and lifecycle -----------------------------------------------------------
    @staticmethod
    def _checked(cfg: TrackerConfig) -> TrackerConfig:
        if not isinstance(cfg, TrackerConfig):
            raise TypeError(f"expected a TrackerConfig, got {type(cfg).__name__}")
        errors = cfg.validate()
        if errors:
            raise ConfigError("TrackerConfig: " + "; ".join(errors))
        return cfg

    @property
    def config(self) -> TrackerConfig:
        return self._cfg

    def update_config(self, cfg: TrackerConfig) -> None:
        """Use ``cfg`` from the next frame on, keeping all tracks and ids.

        Raises :class:`ConfigError` (and keeps the old configuration) if ``cfg`` is invalid.
        A shorter ``track_buffer`` applies to the tracks that are already lost.
        """
        self._cfg = self._checked(cfg)

    def reset(self) -> None:
        """Forget all tracks and restart ids at 1 (a new stream, or the node's cleanup)."""
        self._frame_id = 0
        self._next_id = 1
        self._mean = np.zeros((0, 8), dtype=np.float64)
        self._cov = np.zeros((0, 8, 8), dtype=np.float64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._cls = np.zeros(0, dtype=np.int32)
        self._score = np.zeros(0, dtype=np.float32)
        self._state = np.zeros(0, dtype=np.int8)
        self._activated = np.zeros(0, dtype=bool)
        self._start = np.zeros(0, dtype=np.int64)  # frame the track was born
        self._last = np.zeros(0, dtype=np.int64)  # last frame it was matched
        self._removed_ids: list[int] = []

    # -- read-only views -----------------------------------------------------------------------
    @property
    def frame_id(self) -> int:
        """Number of frames seen since construction or the last :meth:`reset`."""
        return self._frame_id

    @property
    def lost_tracks(self) -> list[Track]:
        """Tracks currently lost (kept for re-identification), with their predicted boxes."""
        return self._publish((self._state == _LOST).nonzero()[0], "lost")

    @property
    def removed_ids(self) -> list[int]:
        """Ids of the tracks that ended in the last :meth:`update` (lost too long, or duplicates)."""
        return list(self._removed_ids)

    def __len__(self) -> int:
        """Tracks held: tracked (confirmed or not) and lost."""
        return int(self._ids.shape[0])

    # -- the frame step ----------------------------------------------------------------------
    def update(self, dets: Detections) -> list[Track]:
        """Advance one frame with its detections; returns the confirmed tracks matched now.

        Raises :class:`TypeError` for anything but :class:`Detections`; boxes that are not
        finite or have no area are ignored rather than fed to the Kalman filter.
        """
        if not isinstance(dets, Detections):
            raise TypeError(f"ByteTracker.update expects Detections, got {type(dets).__name__}")
        cfg = self._cfg
        self._frame_id += 1
        frame = self._frame_id
        self._removed_ids = []

        boxes, scores, classes = dets.boxes, dets.scores, dets.class_ids
        valid = (  # NaN compares False, so NaN boxes and scores fall out here too
            np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        )
        high = (valid & (scores >= cfg.track_thresh)).nonzero()[0]
        low = (valid & (scores >= cfg.low_thresh) & (scores < cfg.track_thresh)).nonzero()[0]

        state = self._state
        tracked = state == _TRACKED
        was_lost = state == _LOST
        unconfirmed = (tracked & ~self._activated).nonzero()[0]
        pool = np.concatenate([(tracked & self._activated).nonzero()[0], was_lost.nonzero()[0]])

        if pool.size:
            mean = self._mean[pool]
            mean[was_lost[pool], 7] = 0.0
            self._mean[pool], self._cov[pool] = self._kf.multi_predict(mean, self._cov[pool])
        track_boxes = xyah_to_xyxy(self._mean)

        # 1st association: high detections with tracked + lost tracks.
        cost = self._cost(track_boxes, pool, boxes, scores, classes, high, cfg.fuse_score)
        m1, u_pool, u_high = linear_assignment(cost, cfg.match_thresh)
        # 2nd association: low detections with the remaining tracked (not lost) tracks, IoU only.
        rest = pool[u_pool]
        rest = rest[state[rest] == _TRACKED]
        cost = self._cost(track_boxes, rest, boxes, scores, classes, low, False)
        m2, u_rest, _ = linear_assignment(cost, cfg.second_match_thresh)
        # Unconfirmed tracks with the high detections nobody took.
        high_left = high[u_high]
        cost = self._cost(track_boxes, unconfirmed, boxes, scores, classes, high_left, cfg.fuse_score)
        m3, u_unconf, u_left = linear_assignment(cost, cfg.unconfirmed_match_thresh)

        trk = np.concatenate([pool[m1[:, 0]], rest[m2[:, 0]], unconfirmed[m3[:, 0]]])
        det = np.concatenate([high[m1[:, 1]], low[m2[:, 1]], high_left[m3[:, 1]]])
        if trk.size:
            self._mean[trk], self._cov[trk] = self._kf.update(
                self._mean[trk], self._cov[trk], xyxy_to_xyah(boxes[det])
            )
            self._score[trk] = scores[det]
            if not cfg.class_aware:
                self._cls[trk] = classes[det]
            state[trk] = _TRACKED
            self._activated[trk] = True
            self._last[trk] = frame
        state[rest[u_rest]] = _LOST

        remove = np.zeros(len(self), dtype=bool)
        remove[unconfirmed[u_unconf]] = True
        remove |= was_lost & (state == _LOST) & (frame - self._last > cfg.max_time_lost)
        self._removed_ids = self._ids[remove & self._activated].tolist()  # unconfirmed never published
        self._keep(~remove)

        born = high_left[u_left]
        self._start_tracks(born[scores[born] >= cfg.new_track_thresh], boxes, scores, classes)
        track_boxes = xyah_to_xyxy(self._mean)
        keep = self._remove_duplicates(track_boxes)
        if keep is not None:
            track_boxes = track_boxes[keep]
        published = ((self._state == _TRACKED) & self._activated).nonzero()[0]
        return self._publish(published, "tracked", track_boxes)

    # -- helpers ---------------------------------------------------------------------------------
    def _cost(
        self,
        track_boxes: npt.NDArray[np.float64],
        trk: IntP,
        boxes: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        classes: npt.NDArray[np.int32],
        det: IntP,
        fuse: bool,
    ) -> npt.NDArray[np.float32]:
        """Association cost of tracks ``trk`` with detections ``det`` (IoU, fusion, class gate)."""
        if trk.size == 0 or det.size == 0:
            return np.ones((trk.size, det.size), dtype=np.float32)
        cost = iou_distance(track_boxes[trk], boxes[det])
        if fuse:
            cost = fuse_score(cost, scores[det])
        if self._cfg.class_aware:
            cost[self._cls[trk][:, None] != classes[det][None, :]] = np.float32(FORBIDDEN_COST)
        return cost

    def _keep(self, keep: npt.NDArray[np.bool_]) -> None:
        if keep.all():
            return
        self._mean, self._cov = self._mean[keep], self._cov[keep]
        self._ids, self._cls, self._score = self._ids[keep], self._cls[keep], self._score[keep]
        self._state, self._activated = self._state[keep], self._activated[keep]
        self._start, self._last = self._start[keep], self._last[keep]

    def _start_tracks(
        self,
        det: IntP,
        boxes: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        classes: npt.NDArray[np.int32],
    ) -> None:
        """Append one track per detection in ``det``, with fresh ids in detection order."""
        n = det.size
        if n == 0:
            return
        mean, cov = self._kf.initiate(xyxy_to_xyah(boxes[det]))
        frame = self._frame_id
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + n, dtype=np.int64)])
        self._next_id += n
        self._cls = np.concatenate([self._cls, classes[det]])
        self._score = np.concatenate([self._score, scores[det]])
        self._state = np.concatenate([self._state, np.full(n, _TRACKED, dtype=np.int8)])
        self._activated = np.concatenate([self._activated, np.full(n, frame == 1)])
        self._start = np.concatenate([self._start, np.full(n, frame, dtype=np.int64)])
        self._last = np.concatenate([self._last, np.full(n, frame, dtype=np.int64)])

    def _remove_duplicates(self, track_boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_] | None:
        """Drop the younger of each tracked/lost pair with IoU > 0.85 (same class if class-aware).

        "Younger" is measured as in the paper's code: frames between birth and the last match,
        ties dropping the tracked one. Returns the rows kept, or None if none was dropped.
        """
        trk = (self._state == _TRACKED).nonzero()[0]
        lost = (self._state == _LOST).nonzero()[0]
        if trk.size == 0 or lost.size == 0:
            return None
        dist = iou_distance(track_boxes[trk], track_boxes[lost])
        dup = dist < DUPLICATE_IOU_DISTANCE
        if self._cfg.class_aware:
            dup &= self._cls[trk][:, None] == self._cls[lost][None, :]
        p, q = np.nonzero(dup)
        if p.size == 0:
            return None
        span = self._last - self._start
        drop_lost = span[trk[p]] > span[lost[q]]
        remove = np.zeros(len(self), dtype=bool)
        remove[lost[q[drop_lost]]] = True
        remove[trk[p[~drop_lost]]] = True
        self._removed_ids += self._ids[remove & self._activated].tolist()
        self._keep(~remove)
        return ~remove

    def _publish(
        self, idx: IntP, state: PublishedState, track_boxes: npt.NDArray[np.float64] | None = None
    ) -> list[Track]:
        """:class:`Track` objects for rows ``idx`` whose box area exceeds ``min_box_area``.

        ``track_boxes`` are the xyxy boxes of all rows when the caller has them already.
        """
        if idx.size == 0:
            return []
        boxes = xyah_to_xyxy(self._mean[idx]) if track_boxes is None else track_boxes[idx]
        big = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > self._cfg.min_box_area
        idx, boxes = idx[big], boxes[big]
        frame = self._frame_id
        return [
            Track(tid, cls, score, box, vel, frame - start, state)
            for tid, cls, score, box, vel, start in zip(
                self._ids[idx].tolist(),
                self._cls[idx].tolist(),
                self._score[idx].tolist(),
                map(tuple, boxes.tolist()),
                map(tuple, self._mean[idx, 4:6].tolist()),
                self._start[idx].tolist(),
                strict=True,
            )
        ]
