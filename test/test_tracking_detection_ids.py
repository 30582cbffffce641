"""Which track each detection updated: what fills ``Detection2D.id`` so consumers can join
detections and tracks."""

from __future__ import annotations

import numpy as np
import pytest
from test_tracking_compiled import random_sequence

from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.tracking.bytetrack import ByteTracker


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("class_aware", [True, False])
def test_every_published_track_names_exactly_the_detection_it_took(seed: int, class_aware: bool):
    rng = np.random.default_rng(seed)
    tracker = ByteTracker(TrackerConfig(class_aware=class_aware))
    joined = 0
    for dets in random_sequence(rng, 120, 12, 3):
        tracks = tracker.update(dets)
        ids = tracker.detection_track_ids
        assert ids.shape == (len(dets),)
        published = {t.track_id: t for t in tracks}
        named = ids[ids >= 0]
        # Each published track is named by one detection, and only published tracks are named.
        assert sorted(named.tolist()) == sorted(published)
        for d in np.flatnonzero(ids >= 0):
            track = published[int(ids[d])]
            assert track.score == pytest.approx(float(dets.scores[d]), abs=0.0)  # its last match
            if not class_aware:
                assert track.class_id == int(dets.class_ids[d])
        joined += len(named)
    assert joined > 500  # the sequence really exercised the join


def test_detection_ids_are_empty_before_the_first_frame_and_after_reset():
    tracker = ByteTracker(TrackerConfig())
    assert tracker.detection_track_ids.shape == (0,)
    tracker.reset()
    assert tracker.detection_track_ids.shape == (0,)
