"""Re-identification off, or without embeddings, is ByteTrack exactly; on, it survives bad input.

The reference is ``test/_bytetrack_numpy.py``, the NumPy ByteTracker that today's compiled one
equals (``test_tracking_compiled.py``): on long random sequences (crossings, misses, class flips,
duplicates, bad boxes, configuration changes) the tracker with ``reid_enabled=False`` fed
detections *with* embeddings, and with ``reid_enabled=True`` fed detections *without* them, must
publish the same tracks (``==``: ids, classes, scores, boxes, velocities), end the same ids and
keep the same lost tracks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _bytetrack_numpy import NumpyByteTracker
from test_tracking_compiled import random_config, random_sequence

from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.tracking import ByteTracker, frame_step
from yolov8_trt_ros.core.types import Detections


def with_embeddings(dets: Detections, rng: np.random.Generator, dim: int = 16) -> Detections:
    """``dets`` with random unit embeddings (some rows zero or NaN: bad input)."""
    emb = rng.normal(size=(len(dets.scores), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    bad = rng.random(len(emb))
    emb[bad < 0.03] = 0.0
    emb[(bad >= 0.03) & (bad < 0.06), 0] = np.nan
    return Detections(dets.boxes, dets.scores, dets.class_ids, emb)


def reid_config(rng: np.random.Generator, enabled: bool) -> TrackerConfig:
    """A random ByteTrack configuration with random re-identification settings."""
    return dataclasses.replace(
        random_config(rng),
        reid_enabled=enabled,
        reid_buffer=int(rng.integers(0, 200)),
        proximity_thresh=float(rng.uniform(0.0, 1.0)),
        appearance_thresh=float(rng.uniform(0.0, 2.0)),
        gallery_thresh=float(rng.uniform(0.0, 2.0)),
        ema_alpha=float(rng.uniform(0.0, 1.0)),
    )


@pytest.mark.parametrize("seed", range(6))
def test_reid_off_or_without_embeddings_is_bytetrack(seed: int):
    rng = np.random.default_rng(1000 + seed)
    cfg = reid_config(rng, enabled=False)
    off = ByteTracker(cfg)  # fed embeddings, re-identification off
    blind = ByteTracker(dataclasses.replace(cfg, reid_enabled=True))  # on, no embeddings
    ref = NumpyByteTracker(cfg)
    n_objects = int(rng.choice([5, 20, 40]))
    sequence = random_sequence(rng, 400, n_objects, n_classes=int(rng.choice([1, 3])))
    published = 0
    for i, dets in enumerate(sequence):
        if i in (120, 260):  # configuration changes; the blind tracker toggles re-identification
            cfg = reid_config(rng, enabled=False)
            off.update_config(cfg)
            blind.update_config(dataclasses.replace(cfg, reid_enabled=bool(i == 120)))
            ref.update_config(cfg)
        expected = ref.update(dets)
        assert off.update(with_embeddings(dets, rng)) == expected, f"seed {seed} frame {i}"
        assert blind.update(dets) == expected, f"seed {seed} frame {i}"
        assert np.array_equal(off.detection_track_ids, blind.detection_track_ids)
        for ours in (off, blind):
            assert ours.removed_ids == ref.removed_ids, f"seed {seed} frame {i}"
            assert ours.lost_tracks == ref.lost_tracks, f"seed {seed} frame {i}"
            assert len(ours) == len(ref)
        published += len(expected)
    assert published > 0


@pytest.mark.parametrize("seed", range(4))
def test_reid_on_random_sequences_publishes_consistent_tracks(seed: int):
    """Crossings, duplicates, bad boxes and bad embeddings with re-identification on: every
    published track is unique, is the one its detection reports, and ended ids never return."""
    rng = np.random.default_rng(2000 + seed)
    cfg = reid_config(rng, enabled=True)
    tracker = ByteTracker(cfg)
    ended: set[int] = set()
    published = 0
    for i, dets in enumerate(random_sequence(rng, 300, int(rng.choice([5, 30])), n_classes=2)):
        if i == 150:
            tracker.update_config(reid_config(rng, enabled=True))
        tracks = tracker.update(with_embeddings(dets, rng) if rng.random() < 0.9 else dets)
        ids = [t.track_id for t in tracks]
        assert len(set(ids)) == len(ids), f"seed {seed} frame {i}"
        assert not ended & set(ids), f"seed {seed} frame {i}: an ended id came back"
        matched = tracker.detection_track_ids[tracker.detection_track_ids >= 0]
        assert set(matched.tolist()) <= set(ids) and len(set(matched.tolist())) == len(matched)
        ended |= set(tracker.removed_ids)
        published += len(tracks)
    assert published > 0


def test_embedding_length_change_starts_appearance_afresh():
    """An engine swap to a model with another embedding length: no error, old looks dropped."""
    tracker = ByteTracker(TrackerConfig(reid_enabled=True))
    box = np.array([[10.0, 10.0, 50.0, 90.0]], dtype=np.float32)
    score, cls = np.array([0.9], np.float32), np.zeros(1, np.int32)
    e8 = np.eye(8, dtype=np.float32)[:1]
    e4 = np.eye(4, dtype=np.float32)[1:2]
    tracker.update(Detections(box, score, cls, e8))
    (track,) = tracker.update(Detections(box, score, cls, e8))
    assert np.array_equal(tracker.embedding(track.track_id), e8[0])
    (same,) = tracker.update(Detections(box, score, cls, e4))
    assert same.track_id == track.track_id
    assert np.array_equal(tracker.embedding(track.track_id), e4[0])


def test_inconsistent_embeddings_are_rejected():
    tracker = ByteTracker(TrackerConfig(reid_enabled=True))
    dets = Detections(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([0.9]), np.array([0]), np.ones((1, 4)))
    dets.embeddings = np.ones((2, 4), dtype=np.float32)  # changed after validation
    with pytest.raises(ValueError, match="embeddings"):
        tracker.update(dets)


def test_one_compiled_version_with_embeddings_of_any_layout():
    """Half-precision, strided embeddings and int flags (YAML) are converted, never compiled for."""
    ByteTracker()  # the version for well-typed input, whatever ran before in this process
    tracker = ByteTracker(TrackerConfig(reid_enabled=1, ema_alpha=1, reid_buffer=30))
    boxes = np.array([[10, 10, 50, 90], [100, 10, 140, 90]], dtype=np.float64)
    emb = np.eye(8, dtype=np.float16)[:, :2].T  # [2, 8], a transposed (Fortran-order) view
    for _ in range(3):
        dets = Detections(boxes, np.array([0.9, 0.8]), np.array([0, 1]))
        dets.embeddings = emb
        assert len(tracker.update(dets)) == 2
    assert tracker.embedding(1) is not None
    assert len(frame_step.frame_step.signatures) == 1
