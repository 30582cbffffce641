"""Tracking generator 2.0.0: sequence kinds (occlusion, re-entry, crossing, crowd) and per-identity looks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from yolov8_trt_ros.datasets.synthetic import rasterise
from yolov8_trt_ros.datasets.tracking import (
    GAP_FRAMES,
    REENTRY_MIN_DISTANCE,
    SEQUENCE_KINDS,
    _cached_simulation,
    crowd_size,
    generate_tracking_sequences,
    render_tracking_frame,
    tracking_ground_truth,
)

W, H = 640, 480


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


@pytest.mark.parametrize("kind", SEQUENCE_KINDS[1:])
def test_kinds_are_deterministic_and_distinct(kind: str) -> None:
    a = tracking_ground_truth(3, 1, 120, kind=kind)
    _cached_simulation.cache_clear()
    b = tracking_ground_truth(3, 1, 120, kind=kind)
    assert a.mot_lines() == b.mot_lines()
    assert a.mot_lines() != tracking_ground_truth(3, 2, 120, kind=kind).mot_lines()
    assert a.mot_lines() != tracking_ground_truth(3, 1, 120, kind="mixed").mot_lines()
    short = tracking_ground_truth(3, 1, 60, kind=kind)  # a shorter sequence is a prefix
    keep = a.frames <= 60
    np.testing.assert_array_equal(short.boxes, a.boxes[keep])


def test_unknown_kind_and_version_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sequence kind"):
        tracking_ground_truth(0, 0, 10, kind="parade")
    with pytest.raises(ValueError, match="needs tracking generator version"):
        generate_tracking_sequences(tmp_path, 0, 1, 2, kinds="occlusion", version="1.0.0")
    with pytest.raises(ValueError, match="unknown tracking generator version"):
        generate_tracking_sequences(tmp_path, 0, 1, 2, version="0.9")


def test_occlusions_last_one_to_three_seconds() -> None:
    """Full occlusions (visibility 0 while in view) behind the wide pillars: most 1-3 s long."""
    lengths = []
    for seed, seq in itertools.product((0, 1), (0, 1)):
        gt = tracking_ground_truth(seed, seq, 600, kind="occlusion")
        assert np.all(gt.occluders[:, 2] - gt.occluders[:, 0] >= 120.0)
        for i in np.unique(gt.ids):
            sel = gt.ids == i
            lengths += [n for _, n in _runs(gt.visibility[sel] == 0.0)]
    long = [n for n in lengths if n >= 15]  # short ones: grazing a pillar or another object
    in_range = [n for n in long if GAP_FRAMES[0] - 5 <= n <= GAP_FRAMES[1] + 5]
    assert len(in_range) >= 40, lengths
    assert len(in_range) >= 0.8 * len(long), long


def test_reentries_after_one_to_three_seconds_elsewhere() -> None:
    gaps, jumps = [], []
    for seed, seq in itertools.product((0, 1), (0, 1)):
        gt = tracking_ground_truth(seed, seq, 600, kind="reentry")
        assert len(gt.occluders) == 0
        for i in np.unique(gt.ids):
            sel = np.flatnonzero(gt.ids == i)
            f = gt.frames[sel]
            for k in np.flatnonzero(np.diff(f) > 1).tolist():
                gaps.append(int(f[k + 1] - f[k] - 1))
                before, after = gt.boxes[sel[k]], gt.boxes[sel[k + 1]]
                jumps.append(float(np.hypot(*(before[:2] + before[2:] / 2 - after[:2] - after[2:] / 2))))
    assert len(gaps) >= 30
    assert min(gaps) >= GAP_FRAMES[0] - 2 and max(gaps) <= GAP_FRAMES[1] + 2, gaps
    # The box centres: the entry point is REENTRY_MIN_DISTANCE from the exit point (centre of the
    # box one frame in view, so a few box sizes less at most).
    assert np.median(jumps) >= REENTRY_MIN_DISTANCE and min(jumps) >= REENTRY_MIN_DISTANCE - 120.0, jumps


def test_crossing_pairs_are_same_class_look_alikes_that_meet() -> None:
    for seq in range(3):
        gt = tracking_ground_truth(0, seq, 300, kind="crossing")
        sim = _cached_simulation(0, seq, 300, W, H, 8, "crossing")
        for a in range(0, 8, 2):
            sa, sb = sim.shapes[a], sim.shapes[a + 1]
            assert sa.class_id == sb.class_id and 0.85 <= sb.size / sa.size <= 1.15
            d = np.hypot(*(sim.centres[a] - sim.centres[a + 1]).T)
            assert d.min() < 0.5 * sa.size, f"pair {a} never meets"
        assert len(np.unique(gt.class_ids)) <= 3


def test_crowd_is_many_objects_of_few_classes() -> None:
    gt = tracking_ground_truth(0, 0, 100, n_objects=8, kind="crowd")
    assert len(np.unique(gt.ids)) == crowd_size(8) == 20
    counts = np.bincount(gt.class_ids[gt.frames == 1])
    assert 3 <= np.count_nonzero(counts) <= 4 and counts.max() >= 5


def _mean_colours(seed: int, seq: int, kind: str, version: str, n: int) -> list[tuple[int, np.ndarray]]:
    """(class, mean BGR over the object's fully visible pixels) of every unoccluded object, frame 0."""
    frame = 0
    sim = _cached_simulation(seed, seq, 60, W, H, n, kind)
    gt = tracking_ground_truth(seed, seq, 60, W, H, n, kind)
    img, _ = render_tracking_frame(seed, seq, frame, 60, W, H, n, kind, version)
    out = []
    for r in gt.at_frame(frame + 1).tolist():
        if gt.visibility[r] < 0.999:
            continue
        i = int(gt.ids[r]) - 1
        ras = rasterise(sim.shapes[i].polygons(*sim.centres[i, frame]))
        ys, xs = np.nonzero(ras.alpha >= 1.0)
        out.append((sim.shapes[i].class_id, img[ys + ras.y0, xs + ras.x0].reshape(-1, 3).mean(axis=0)))
    return out


def _same_class_distances(kind: str, version: str, n: int = 8) -> list[float]:
    dists = []
    for seed, seq in itertools.product((0, 1, 2), (0, 1)):
        objs = _mean_colours(seed, seq, kind, version, n)
        dists += [
            float(np.linalg.norm(ca - cb)) for (a, ca), (b, cb) in itertools.combinations(objs, 2) if a == b
        ]
    return dists


def test_same_class_objects_look_different_on_rendered_pixels() -> None:
    """Mean colour (0-255 BGR) of fully visible same-class objects, frame 0 of six sequences.

    1.0.0 drew saturation, value and pattern at random around the class hue, so two objects of a
    class could look alike (median distance 72 here); 2.0.0 gives each its own slot (129 on the
    same geometry), and in the same-class-heavy kinds almost every pair is clearly apart.
    """
    old, new = _same_class_distances("mixed", "1.0.0", 20), _same_class_distances("mixed", "2.0.0", 20)
    assert len(old) == len(new) >= 10
    assert np.median(new) > 1.4 * np.median(old), (sorted(old), sorted(new))
    for kind in ("crossing", "crowd"):
        d = np.array(_same_class_distances(kind, "2.0.0"))
        assert len(d) >= 50 and np.median(d) >= 60.0 and np.mean(d >= 20.0) >= 0.97, sorted(d)


def test_version_changes_only_the_objects_pixels() -> None:
    """1.0.0 and 2.0.0 of a mixed sequence share ground truth, background, pillars, noise and
    JPEG quality (2.0.0 keeps 1.0.0's draws in step); only the objects' own pixels differ."""
    sim = _cached_simulation(4, 0, 30, W, H, 8, "mixed")
    old, q_old = render_tracking_frame(4, 0, 5, 30, W, H, 8, "mixed", "1.0.0")
    new, q_new = render_tracking_frame(4, 0, 5, 30, W, H, 8, "mixed", "2.0.0")
    assert q_old == q_new
    objects = np.zeros((H, W), bool)
    for i, spec in enumerate(sim.shapes):
        ras = rasterise(spec.polygons(*sim.centres[i, 5]))
        ys, xs = np.nonzero(ras.alpha > 0)
        ys, xs = ys + ras.y0, xs + ras.x0
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        objects[ys[ok], xs[ok]] = True
    for x0, _, x1, _ in sim.occluders.tolist():  # pillars cover the objects (not their AA edges)
        objects[:, max(int(np.ceil(x0)) + 1, 0) : min(int(x1) - 1, W)] = False
    assert objects.sum() > 1000
    np.testing.assert_array_equal(old[~objects], new[~objects])
    assert np.abs(old[objects].astype(int) - new[objects].astype(int)).mean() > 5.0
