"""ByteTrack (Zhang et al., ECCV 2022) multi-object tracking on :class:`Detections`, with optional
re-identification from the detector's own embeddings (BoT-SORT-style).

Association as published, per frame:

1. Split detections: *high* ``score >= track_thresh``, *low* ``low_thresh <= score <
   track_thresh``; the rest (and boxes that are not finite or have no area) are dropped.
2. Predict every confirmed track, tracked or lost, with the Kalman filter (a lost track's
   height velocity is zeroed first, so a box that vanished while shrinking does not keep
   shrinking).
3. First association: high detections with tracked + lost tracks, cost ``1 - IoU`` (fused
   with the detection score when ``fuse_score``), matches only below ``match_thresh``. A
   matched lost track is re-found with its old id.
4. Second association: low detections with the still unmatched *tracked* tracks, plain IoU
   cost below ``second_match_thresh``. This is ByteTrack's point: an occluded object's weak
   detection keeps its track alive instead of being thrown away. Tracked tracks still
   unmatched become lost.
5. Unconfirmed tracks (born last frame) with the remaining high detections, below
   ``unconfirmed_match_thresh``; an unconfirmed track that finds no detection is removed, so a
   one-frame false positive never gets published.
6. Remaining high detections with ``score >= new_track_thresh`` start tracks. A new track is
   confirmed when it is matched again the next frame (immediately on the first frame).
7. Lost tracks unseen for more than ``max_time_lost`` frames (``track_buffer`` scaled from
   30 FPS to ``frame_rate``) are removed; of a tracked and a lost track with IoU > 0.85 the
   one followed for fewer frames is dropped (a re-born duplicate of a lost object).

Re-identification (``TrackerConfig.reid_enabled`` and detections with ``embeddings``): each track
keeps an EMA of its embeddings; step 3 fuses IoU with appearance as BoT-SORT does
(:mod:`~yolov8_trt_ros.core.tracking.appearance`); after step 5 the high detections left are
matched by appearance alone, anywhere in the frame, with lost tracks, which stay in a gallery for
``max_reid_lost`` frames instead of ending after ``max_time_lost``
(:mod:`~yolov8_trt_ros.core.tracking.gallery`), before step 6 may start new tracks. Off, or for
a model without embeddings, the output is exactly ByteTrack's (same ids and boxes). Its ids are
reported in ``removed_ids`` when they leave the gallery, and ``lost_tracks`` lists only the
tracks still in ByteTrack's buffer.

Class handling: in class-aware mode a pair of different classes can never match (its cost is
:data:`~yolov8_trt_ros.core.tracking.matching.FORBIDDEN_COST`) and a track keeps the class it
was born with; in class-agnostic mode any pair may match and a track takes the class of its
latest detection (ultralytics' behaviour, useful when the detector flickers between similar
classes).

Design: the tracks live in parallel NumPy arrays (struct of arrays) rather than one Python
object per track, and the whole frame step is one compiled call
(:func:`~yolov8_trt_ros.core.tracking.frame_step.frame_step`, numba), so a frame costs its
arithmetic rather than the overhead of many small NumPy calls; this class keeps the state and
the configuration and builds the published :class:`Track` objects. Track ids come from a
per-instance counter, start at 1, only increase, and restart only on :meth:`ByteTracker.reset`
(the reference code and older ultralytics releases used a class-wide counter shared by every
tracker in the process).

Deliberate differences from the reference code (ByteTrack's and ultralytics' ``BYTETracker``),
both at boundaries: a detection scoring exactly ``low_thresh`` counts as low (they need
``> low_thresh``), and removal of a stale lost track is final. The reference code marks such a
track removed but only drops it from its lost pool one frame later, so it can still be re-found
(with its old id, already reported as ended) in the next frame: in effect its buffer is one
frame longer. ``scripts/evaluate_tracker.py`` compares both on the same detections. Bad input
is dropped, not tracked: boxes that are not finite or have no area, and scores that are not
finite.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.config import ConfigError, TrackerConfig
from yolov8_trt_ros.core.tracking import frame_step as fs
from yolov8_trt_ros.core.tracking.kalman import KalmanFilterXYAH, xyah_to_xyxy
from yolov8_trt_ros.core.tracking.matching import admissible_below
from yolov8_trt_ros.core.types import Detections, Track

IntP = npt.NDArray[np.intp]
PublishedState = Literal["tracked", "lost"]

_TRACKED = np.int8(fs.TRACKED)
_LOST = np.int8(fs.LOST)
_NO_EMBEDDINGS = np.zeros((0, 0), dtype=np.float32)
#: Tracked/lost pairs closer than this IoU distance are duplicates (IoU > 0.85), as published.
DUPLICATE_IOU_DISTANCE = 0.15


def _kernel_array(a: npt.NDArray[Any], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """``a`` as a C-contiguous, writable array of ``dtype``, copied only when it is not one.

    The compiled step is specialised on layout and writability too: a read-only or strided
    input (e.g. a view of a ROS message buffer) would otherwise trigger a second compilation,
    seconds long, in the middle of a stream.
    """
    if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
        return np.array(a, dtype=dtype, order="C")
    return a


class ByteTracker:
    """ByteTrack over :class:`Detections`; see the module docstring for the algorithm.

    ``update`` is called once per frame, in order, with that frame's detections in source
    pixels (an empty :class:`Detections` for a frame without any), and returns the confirmed
    tracks matched in that frame. ``TrackerConfig.enabled`` is for the caller, which skips the
    tracker altogether when it is off. ``TrackerConfig.reid_enabled`` turns re-identification on
    or off, also at run time through :meth:`update_config`.

    The constructor runs the compiled step once on an empty frame, so that loading (or, right
    after an install, compiling: seconds) happens there and not on the first real frame.
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self._kf = KalmanFilterXYAH()
        self._noise = self._kf.noise_table
        self.update_config(cfg if cfg is not None else TrackerConfig())
        self.reset()
        self.update(Detections.empty())  # warm-up, see the class docstring
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
        cfg = self._checked(cfg)
        params = np.zeros(fs.N_PARAMS)
        params[fs.P_TRACK], params[fs.P_LOW], params[fs.P_NEW] = (
            cfg.track_thresh,
            cfg.low_thresh,
            cfg.new_track_thresh,
        )
        params[fs.P_MATCH], params[fs.P_SECOND] = cfg.match_thresh, cfg.second_match_thresh
        params[fs.P_UNCONF] = cfg.unconfirmed_match_thresh
        params[fs.P_BELOW_MATCH] = admissible_below(cfg.match_thresh)
        params[fs.P_BELOW_SECOND] = admissible_below(cfg.second_match_thresh)
        params[fs.P_BELOW_UNCONF] = admissible_below(cfg.unconfirmed_match_thresh)
        # ``distance < 0.15`` on float32 distances, as NumPy compares them.
        params[fs.P_BELOW_DUP] = np.nextafter(np.float32(DUPLICATE_IOU_DISTANCE), np.float32(-np.inf))
        params[fs.P_MIN_AREA] = cfg.min_box_area
        params[fs.P_PROXIMITY], params[fs.P_APPEARANCE] = cfg.proximity_thresh, cfg.appearance_thresh
        params[fs.P_GALLERY], params[fs.P_EMA_ALPHA] = cfg.gallery_thresh, cfg.ema_alpha
        self._params = params
        # Exact Python types: an int where the kernel was compiled for a bool (a YAML ``1``)
        # would make numba compile a second version, for a minute, mid-stream.
        self._flags = (
            int(cfg.max_time_lost), bool(cfg.fuse_score), bool(cfg.class_aware),
            int(cfg.max_reid_lost), bool(cfg.reid_enabled),
        )  # fmt: skip
        if not cfg.reid_enabled and hasattr(self, "_emb_ok"):
            # Embeddings stop being updated while off: stale ones must not be trusted when it is
            # switched on again (tracks then take the look of their next detection).
            self._emb_ok[:] = False
        self._cfg = cfg

    def reset(self) -> None:
        """Forget all tracks and restart ids at 1 (a new stream, or the node's cleanup)."""
        self._frame_id = 0
        self._next_id = 1
        self._n = 0  # tracks held: rows [0, n) of the buffers below
        self._dim = 0  # embedding length, set by the first detections with embeddings
        self._allocate(16)
        self._removed_ids: list[int] = []
        self.detection_track_ids = np.zeros(0, dtype=np.int64)

    def _allocate(self, capacity: int) -> None:
        """State and output buffers of ``capacity`` rows, keeping rows ``[0, n)``.

        The compiled step works in place and needs room for every detection of a frame to start
        a track (see :mod:`frame_step`); buffers grow by doubling, so this is rare.
        """
        n = self._n
        old = getattr(self, "_mean", None)
        new: tuple[npt.NDArray[Any], ...] = (
            np.zeros((capacity, 8), dtype=np.float64),
            np.zeros((capacity, 4, 4), dtype=np.float64),  # 2x2 covariance blocks, see kalman.py
            np.zeros(capacity, dtype=np.int64),  # id
            np.zeros(capacity, dtype=np.int32),  # class
            np.zeros(capacity, dtype=np.float32),  # score of the last match
            np.zeros(capacity, dtype=np.int8),  # tracked / lost
            np.zeros(capacity, dtype=bool),  # confirmed
            np.zeros(capacity, dtype=np.int64),  # frame the track was born
            np.zeros(capacity, dtype=np.int64),  # last frame it was matched
            np.full(capacity, -1, dtype=np.int64),  # detection matched this frame, or -1
            np.zeros((capacity, self._dim), dtype=np.float32),  # EMA embedding (unit length)
            np.zeros(capacity, dtype=bool),  # has an embedding
        )
        if old is not None and n:
            for dst, src in zip(new, self._state_arrays(), strict=True):
                dst[:n] = src[:n]
        (
            self._mean, self._cov, self._ids, self._cls, self._score, self._state, self._activated,
            self._start, self._last, self._det_of, self._emb, self._emb_ok,
        ) = new  # fmt: skip
        self._removed_buf = np.zeros(capacity, dtype=np.int64)
        self._published_buf = np.zeros(capacity, dtype=np.int64)
        self._published_boxes_buf = np.zeros((capacity, 4), dtype=np.float64)
        self._published_dets_buf = np.zeros(capacity, dtype=np.int64)

    def _state_arrays(self) -> tuple[npt.NDArray[Any], ...]:
        return (
            self._mean, self._cov, self._ids, self._cls, self._score, self._state, self._activated,
            self._start, self._last, self._det_of, self._emb, self._emb_ok,
        )  # fmt: skip

    # -- read-only views -----------------------------------------------------------------------
    @property
    def frame_id(self) -> int:
        """Number of frames seen since construction or the last :meth:`reset`."""
        return self._frame_id

    @property
    def lost_tracks(self) -> list[Track]:
        """Tracks currently lost (kept for re-identification), with their predicted boxes."""
        idx = (self._state[: self._n] == _LOST).nonzero()[0]
        boxes = xyah_to_xyxy(self._mean[idx])
        big = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > self._cfg.min_box_area
        return self._publish(idx[big], boxes[big], "lost")

    @property
    def removed_ids(self) -> list[int]:
        """Ids of the tracks that ended in the last :meth:`update` (lost too long, or duplicates)."""
        return list(self._removed_ids)

    def embedding(self, track_id: int) -> npt.NDArray[np.float32] | None:
        """A copy of the appearance (unit EMA embedding) of the held track ``track_id``, or None.

        None where the track is not held or has no embedding yet (re-identification off, or a
        model without embeddings).
        """
        rows = (self._ids[: self._n] == track_id).nonzero()[0]
        if rows.size == 0 or not self._emb_ok[rows[0]]:
            return None
        return self._emb[rows[0]].copy()

    def __len__(self) -> int:
        """Tracks held: tracked (confirmed or not) and lost."""
        return self._n

    # -- the frame step ----------------------------------------------------------------------
    def update(self, dets: Detections) -> list[Track]:
        """Advance one frame with its detections; returns the confirmed tracks matched now.

        Raises :class:`TypeError` for anything but :class:`Detections`; boxes that are not
        finite or have no area, and scores that are not finite, are ignored rather than fed to
        the Kalman filter and the assignment.
        """
        if not isinstance(dets, Detections):
            raise TypeError(f"ByteTracker.update expects Detections, got {type(dets).__name__}")
        boxes = _kernel_array(dets.boxes, np.float32)
        scores = _kernel_array(dets.scores, np.float32)
        classes = _kernel_array(dets.class_ids, np.int32)
        m = boxes.shape[0]
        # The kernel does not check bounds: arrays changed after Detections validated them are
        # checked here.
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (m,) or classes.shape != (m,):
            raise ValueError(
                f"inconsistent detection arrays: boxes {boxes.shape}, scores {scores.shape}, "
                f"class ids {classes.shape}"
            )
        embeddings = dets.embeddings if self._cfg.reid_enabled else None
        appearance = embeddings is not None
        det_emb = _NO_EMBEDDINGS
        if embeddings is not None:
            det_emb = _kernel_array(embeddings, np.float32)
            if det_emb.ndim != 2 or det_emb.shape[0] != m:
                raise ValueError(f"embeddings of shape {det_emb.shape} for {m} detections")
            if det_emb.shape[1] != self._dim:
                # A model with another embedding length (first frame, or an engine swap): old
                # embeddings are not comparable with the new ones, tracks start afresh.
                self._dim = det_emb.shape[1]
                self._emb = np.zeros((self._ids.shape[0], self._dim), dtype=np.float32)
                self._emb_ok[:] = False
        if self._n + m > self._ids.shape[0]:
            self._allocate(max(2 * self._ids.shape[0], self._n + boxes.shape[0]))
        self._frame_id += 1
        self._n, self._next_id, n_removed, n_published = fs.frame_step(
            self._mean, self._cov, self._ids, self._cls, self._score, self._state, self._activated,
            self._start, self._last, self._det_of, self._emb, self._emb_ok, self._n, self._next_id,
            self._frame_id, boxes, scores, classes, det_emb, self._params, *self._flags, appearance,
            self._noise,
            self._removed_buf, self._published_buf, self._published_boxes_buf, self._published_dets_buf,
        )  # fmt: skip
        #: For each detection of this frame, the id of the published track it updated, or -1.
        self.detection_track_ids = np.full(m, -1, dtype=np.int64)
        pub, dets_of = self._published_buf[:n_published], self._published_dets_buf[:n_published]
        self.detection_track_ids[dets_of[dets_of >= 0]] = self._ids[pub[dets_of >= 0]]
        self._removed_ids = self._removed_buf[:n_removed].tolist()
        return self._publish(
            self._published_buf[:n_published], self._published_boxes_buf[:n_published], "tracked"
        )

    def _publish(self, idx: IntP, boxes: npt.NDArray[np.float64], state: PublishedState) -> list[Track]:
        """:class:`Track` objects for rows ``idx`` with their corner boxes ``[len(idx), 4]``.

        Built column-wise (``zip`` of per-column lists): at 200 tracks this is about half the
        cost of a frame, a third less than converting row by row.
        """
        n = idx.size
        if n == 0:
            return []
        return list(
            map(
                Track,
                self._ids[idx].tolist(),
                self._cls[idx].tolist(),
                self._score[idx].tolist(),
                zip(*boxes.T.tolist(), strict=True),
                zip(*self._mean[idx, 4:6].T.tolist(), strict=True),
                (self._frame_id - self._start[idx]).tolist(),
                repeat(state, n),
            )
        )
