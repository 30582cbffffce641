"""The compiled tracker against the NumPy tracker it replaced, and its kernels against theirs.

``test/_bytetrack_numpy.py`` is the previous, vectorised NumPy ByteTracker (SciPy assignment):
on random detection sequences both must publish identical tracks (ids, classes, scores, boxes
and velocities compared with ``==``, not approximately), end the same ids and keep the same lost
tracks, through crossings, misses, class flips, exact duplicates (ties in the assignment), bad
boxes, configuration changes in mid-sequence and resets.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _bytetrack_numpy import NumpyByteTracker
from scipy.optimize import linear_sum_assignment as scipy_lsa

from yolov8_trt_ros.core.config import TrackerConfig
from yolov8_trt_ros.core.tracking import frame_step, lsap
from yolov8_trt_ros.core.tracking.bytetrack import ByteTracker
from yolov8_trt_ros.core.tracking.kalman import (
    KalmanFilterXYAH,
    blocks_to_full,
    initiate_track,
    predict_track,
    update_track,
)
from yolov8_trt_ros.core.tracking.matching import admissible_below, admissible_pairs, fuse_score, iou_distance
from yolov8_trt_ros.core.types import Detections


def random_sequence(
    rng: np.random.Generator, n_frames: int, n_objects: int, n_classes: int
) -> list[Detections]:
    """Objects bouncing in a 640x480 frame (they cross), with misses, low scores, class flips,
    false positives, exact duplicates, bad boxes and empty frames."""
    size = rng.uniform(15.0, 90.0, (n_objects, 2))
    pos = rng.uniform(0.0, 1.0, (n_objects, 2)) * (np.array([640.0, 480.0]) - size)
    vel = rng.normal(0.0, 6.0, (n_objects, 2))
    cls = rng.integers(0, n_classes, n_objects)
    out = []
    for _ in range(n_frames):
        pos += vel + rng.normal(0.0, 1.0, vel.shape)
        for axis, limit in ((0, 640.0), (1, 480.0)):
            hit = (pos[:, axis] < 0) | (pos[:, axis] + size[:, axis] > limit)
            vel[hit, axis] *= -1.0
            pos[:, axis] = np.clip(pos[:, axis], 0.0, limit - size[:, axis])
        if rng.random() < 0.05:
            out.append(Detections.empty())
            continue
        keep = rng.random(n_objects) >= rng.uniform(0.0, 0.3)
        boxes = np.concatenate([pos, pos + size], axis=1)[keep]
        boxes += rng.normal(0.0, 0.05, boxes.shape) * np.concatenate([size, size], axis=1)[keep]
        n = boxes.shape[0]
        scores = np.where(rng.random(n) < 0.25, rng.uniform(0.05, 0.5, n), rng.uniform(0.5, 1.0, n))
        classes = np.where(rng.random(n) < 0.1, rng.integers(0, n_classes, n), cls[keep])
        n_fp = rng.poisson(1.5)
        fp = rng.uniform(0.0, 400.0, (n_fp, 2))
        boxes = np.concatenate(
            [boxes, np.concatenate([fp, fp + rng.uniform(10.0, 120.0, (n_fp, 2))], axis=1)]
        )
        scores = np.concatenate([scores, rng.uniform(0.05, 1.0, n_fp)])
        classes = np.concatenate([classes, rng.integers(0, n_classes, n_fp)])
        if n and rng.random() < 0.2:  # an exact duplicate: tied costs in the assignment
            i = rng.integers(n)
            boxes, scores, classes = (np.concatenate([a, a[i : i + 1]]) for a in (boxes, scores, classes))
        if n and rng.random() < 0.1:  # a box without area or not finite
            i = rng.integers(n)
            boxes[i] = rng.choice([np.array([5.0, 5.0, 5.0, 9.0]), np.array([np.nan, 1.0, 2.0, 3.0])])
        order = np.argsort(-scores, kind="stable")
        out.append(Detections(boxes[order], scores[order], classes[order]))
    return out


def random_config(rng: np.random.Generator) -> TrackerConfig:
    track = float(rng.uniform(0.3, 0.7))
    return TrackerConfig(
        track_thresh=track,
        low_thresh=float(rng.uniform(0.05, track)),
        new_track_thresh=float(rng.uniform(track, 0.9)),
        match_thresh=float(rng.choice([0.8, 0.9, 1.0, rng.uniform(0.3, 1.0)])),
        second_match_thresh=float(rng.uniform(0.3, 1.0)),
        unconfirmed_match_thresh=float(rng.uniform(0.3, 1.0)),
        track_buffer=int(rng.integers(0, 40)),
        frame_rate=float(rng.choice([15.0, 30.0])),
        min_box_area=float(rng.choice([0.0, 10.0, 900.0])),
        fuse_score=bool(rng.random() < 0.7),
        class_aware=bool(rng.random() < 0.5),
    )


def assert_same_state(ours: ByteTracker, ref: NumpyByteTracker, where: str) -> None:
    assert ours.removed_ids == ref.removed_ids, where
    assert ours.lost_tracks == ref.lost_tracks, where
    assert len(ours) == len(ref) and ours.frame_id == ref.frame_id, where


@pytest.mark.parametrize("seed", range(12))
def test_same_tracks_as_numpy_tracker_on_random_sequences(seed: int):
    rng = np.random.default_rng(seed)
    cfg = TrackerConfig() if seed % 3 == 0 else random_config(rng)
    ours, ref = ByteTracker(cfg), NumpyByteTracker(cfg)
    n_objects = int(rng.choice([3, 12, 40]))
    sequence = random_sequence(rng, 160, n_objects, n_classes=int(rng.choice([1, 3])))
    published = 0
    for i, dets in enumerate(sequence):
        if i in (50, 110) and seed % 2:  # a configuration change in mid-sequence
            cfg = random_config(rng)
            ours.update_config(cfg)
            ref.update_config(cfg)
        if i == 80 and seed % 4 == 1:
            ours.reset()
            ref.reset()
        a, b = ours.update(dets), ref.update(dets)
        assert a == b, f"seed {seed} frame {i}"
        assert_same_state(ours, ref, f"seed {seed} frame {i}")
        published += len(a)
    assert published > 0  # the sequences exercise the tracker


def test_same_tracks_with_dense_crossing_crowd():
    """Many objects in a small frame: large non-isolated blocks for the solver, many duplicates."""
    rng = np.random.default_rng(100)
    ours, ref = ByteTracker(), NumpyByteTracker(TrackerConfig())
    for i, dets in enumerate(random_sequence(rng, 80, 120, n_classes=1)):
        assert ours.update(dets) == ref.update(dets), f"frame {i}"
        assert_same_state(ours, ref, f"frame {i}")


def test_detections_of_any_layout_give_the_same_tracks():
    """Strided, read-only or float64 inputs are converted for the kernel, not recompiled on."""
    rng = np.random.default_rng(5)
    plain, odd = ByteTracker(), ByteTracker()
    for dets in random_sequence(rng, 30, 8, n_classes=2):
        wide = np.zeros((len(dets), 8), dtype=np.float32)
        wide[:, ::2] = dets.boxes
        scores = dets.scores.copy()
        scores.flags.writeable = False
        strided = dataclasses.replace(dets)
        strided.boxes, strided.scores, strided.class_ids = (
            wide[:, ::2],
            scores,
            dets.class_ids.astype(np.int64),
        )
        assert plain.update(dets) == odd.update(strided)


def test_one_compiled_version_whatever_the_input_types():
    """Odd array layouts and int flags (e.g. from YAML) are converted, never compiled for: a second
    compilation would stall a stream for a minute."""
    ByteTracker()  # the version for well-typed input, whatever ran before in this process
    cfg = TrackerConfig(fuse_score=1, class_aware=0, track_buffer=30)
    tracker = ByteTracker(cfg)
    tracker.update_config(dataclasses.replace(cfg, fuse_score=0))
    boxes = np.array([[10, 10, 50, 90], [100, 10, 140, 90]], dtype=np.float64)
    dets = Detections(boxes, np.array([0.9, 0.8]), np.array([0, 1]))
    dets.boxes = np.asfortranarray(dets.boxes)
    assert len(tracker.update(dets)) == 2
    assert len(frame_step.frame_step.signatures) == 1


def test_inconsistent_detection_arrays_are_rejected():
    """The kernel does not check bounds; arrays changed after validation are checked before it."""
    tracker = ByteTracker()
    dets = Detections(np.zeros((2, 4)), np.ones(2), np.zeros(2))
    dets.scores = np.ones(3, dtype=np.float32)
    with pytest.raises(ValueError, match="inconsistent detection arrays"):
        tracker.update(dets)
    assert tracker.update(Detections.empty()) == [] and tracker.frame_id == 1


@pytest.mark.parametrize("fuse_score", [False, True])
def test_detection_with_infinite_score_is_ignored(fuse_score: bool):
    """The one deliberate difference from the NumPy tracker: it raised (SciPy rejects the -inf
    fused cost) or tracked a score of inf; the compiled step drops it like a NaN score."""
    tracker = ByteTracker(TrackerConfig(fuse_score=fuse_score))
    box = np.array([[100.0, 100.0, 140.0, 180.0], [300.0, 100.0, 340.0, 180.0]], np.float32)
    for _ in range(3):
        out = tracker.update(Detections(box, np.array([np.inf, 0.9], np.float32), np.zeros(2, np.int32)))
        assert [t.box_xyxy for t in out] == [tuple(map(float, box[1]))]
    shifted = box + np.float32(2.0)
    out = tracker.update(Detections(shifted, np.array([0.9, np.inf], np.float32), np.zeros(2, np.int32)))
    assert len(out) == 0 and len(tracker.lost_tracks) == 1  # the first box starts a track, unpublished


def test_kalman_kernels_equal_the_batched_filter_bit_for_bit():
    kf = KalmanFilterXYAH()
    noise = kf.noise_table
    rng = np.random.default_rng(1)
    n = 50
    z = np.column_stack([rng.uniform(0, 1000, (n, 2)), rng.uniform(0.2, 3.0, n), rng.uniform(5, 400, n)])
    mean_ref, cov_ref = kf.initiate(z)
    mean, cov = np.zeros((n, 8)), np.zeros((n, 4, 4))
    for r in range(n):
        initiate_track(mean, cov, r, z[r], noise)
    for step in range(30):
        assert np.array_equal(mean, mean_ref) and np.array_equal(blocks_to_full(cov), cov_ref), step
        mean_ref, cov_ref = kf.multi_predict(mean_ref, cov_ref)
        for r in range(n):
            predict_track(mean, cov, r, noise)
        assert np.array_equal(mean, mean_ref) and np.array_equal(blocks_to_full(cov), cov_ref), step
        z = mean_ref[:, :4] + rng.normal(0, 1, (n, 4)) * [5, 5, 0.05, 5]
        mean_ref, cov_ref = kf.update(mean_ref, cov_ref, z)
        for r in range(n):
            update_track(mean, cov, r, z[r], noise)


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("class_aware", [False, True])
def test_admissible_pairs_are_the_dense_costs_below_the_threshold(fuse: bool, class_aware: bool):
    rng = np.random.default_rng(int(fuse) + 2 * int(class_aware))
    for _ in range(50):
        n, m = rng.integers(0, 30, 2)
        a0, b0 = rng.uniform(0, 300, (n, 2)), rng.uniform(0, 300, (m, 2))
        a = np.concatenate([a0, a0 + rng.uniform(1, 80, (n, 2))], axis=1).astype(np.float32)
        b = np.concatenate([b0, b0 + rng.uniform(1, 80, (m, 2))], axis=1).astype(np.float32)
        scores = rng.uniform(0.1, 1.0, m).astype(np.float32)
        ca, cb = rng.integers(0, 2, n).astype(np.int32), rng.integers(0, 2, m).astype(np.int32)
        thresh = float(rng.choice([1.0, 0.8, rng.uniform(0.2, 1.0)]))
        dense = iou_distance(a, b)
        if fuse:
            dense = fuse_score(dense, scores)
        ok = dense < thresh
        if class_aware:
            ok &= ca[:, None] == cb[None, :]
        rows, cols, costs, k = admissible_pairs(
            a, b, scores, fuse, ca, cb, class_aware, admissible_below(thresh)
        )
        got = sorted(zip(rows[:k].tolist(), cols[:k].tolist(), costs[:k].tolist(), strict=True))
        want = sorted((int(i), int(j), float(dense[i, j])) for i, j in zip(*ok.nonzero(), strict=True))
        assert got == want  # same pairs, bit-identical float32 costs


def test_admissible_pairs_buffer_grows_for_a_pile_of_boxes():
    """All 40x40 pairs overlap (more than the initial room for pairs)."""
    rng = np.random.default_rng(3)
    a = (np.array([100, 100, 160, 220]) + rng.uniform(-3, 3, (40, 4))).astype(np.float32)
    b = (np.array([100, 100, 160, 220]) + rng.uniform(-3, 3, (40, 4))).astype(np.float32)
    cls = np.zeros(40, dtype=np.int32)
    rows, cols, costs, k = admissible_pairs(
        a, b, np.ones(40, np.float32), False, cls, cls, False, admissible_below(1.0)
    )
    dense = iou_distance(a, b)
    assert k == 1600 and np.array_equal(dense[rows[:k], cols[:k]], costs[:k].astype(np.float32))


def test_compiled_solver_equals_scipy_including_ties():
    rng = np.random.default_rng(2)
    for i in range(3000):
        n, m = rng.integers(1, 9, 2)
        kind = i % 3
        if kind == 0:
            cost = rng.random((n, m))
        elif kind == 1:  # integer costs: many tied optima, decided by the solver's order of work
            cost = rng.integers(0, 3, (n, m)).astype(np.float64)
        else:  # the tracker's form: min(cost - thresh, 0), mostly zeros
            cost = np.where(rng.random((n, m)) < 0.4, rng.random((n, m)) - 0.8, 0.0)
        rows, cols = lsap.linear_sum_assignment(cost)
        want_rows, want_cols = scipy_lsa(cost)
        assert rows.tolist() == want_rows.tolist() and cols.tolist() == want_cols.tolist(), cost
