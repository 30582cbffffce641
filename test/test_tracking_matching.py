"""IoU costs, score fusion and the thresholded assignment, against brute force and ``lap``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from yolov8_trt_ros.core.tracking.matching import fuse_score, iou_distance, iou_matrix, linear_assignment


def _iou_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union
    return out


def _random_boxes(rng: np.random.Generator, n: int, extent: float = 300.0) -> np.ndarray:
    xy = rng.uniform(0, extent, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(5, 80, (n, 2))], axis=1)


def test_iou_matches_pairwise_loop():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 13), _random_boxes(rng, 9)
    b[0] = a[0]  # identical pair: IoU 1
    np.testing.assert_allclose(iou_matrix(a, b), _iou_loop(a, b), rtol=1e-5, atol=1e-6)
    assert iou_matrix(a, b)[0, 0] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(iou_distance(a, b), 1.0 - _iou_loop(a, b), rtol=1e-5, atol=1e-6)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (13, 0)
    assert iou_distance(np.zeros((0, 4)), b).shape == (0, 9)


def test_fuse_score_formula():
    cost = np.array([[0.2, 0.9], [0.5, 1.0]], dtype=np.float32)
    scores = np.array([0.5, 0.8], dtype=np.float32)
    expected = [[1 - 0.8 * 0.5, 1 - 0.1 * 0.8], [1 - 0.5 * 0.5, 1 - 0.0 * 0.8]]
    np.testing.assert_allclose(fuse_score(cost, scores), expected, rtol=1e-6)


def _best_objective(cost: np.ndarray, thresh: float) -> float:
    """Brute force: min over all partial matchings of sum(cost - thresh) on pairs below thresh."""
    n, m = cost.shape
    best = 0.0
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                c = cost[list(rows), list(cols)]
                if np.all(c < thresh):
                    best = min(best, float(np.sum(c - thresh)))
    return best


def test_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(150):
        n, m = rng.integers(1, 5, 2)
        cost = rng.uniform(0, 1, (n, m))
        cost[rng.random((n, m)) < 0.3] = 1.0
        thresh = float(rng.uniform(0.2, 0.9))
        matches, u_rows, u_cols = linear_assignment(cost, thresh)
        got = float(np.sum(cost[matches[:, 0], matches[:, 1]] - thresh)) if len(matches) else 0.0
        assert got == pytest.approx(_best_objective(cost, thresh), abs=1e-12)
        assert np.all(cost[matches[:, 0], matches[:, 1]] < thresh)
        assert sorted([*matches[:, 0], *u_rows]) == list(range(n))
        assert sorted([*matches[:, 1], *u_cols]) == list(range(m))


def test_same_matches_as_lapjv_with_cost_limit():
    """The matches ByteTrack gets from ``lap.lapjv(extend_cost=True, cost_limit=t)``."""
    lap = pytest.importorskip("lap")
    rng = np.random.default_rng(2)
    for trial in range(400):
        n, m = rng.integers(1, 40, 2)
        if trial % 2:  # IoU-like: boxes near each other, most pairs not overlapping at all
            a = _random_boxes(rng, n)
            b = (
                a[rng.integers(0, n, m)] + rng.normal(0, 8, (m, 4))
                if trial % 4 == 1
                else _random_boxes(rng, m)
            )
            cost = fuse_score(iou_distance(a, b), rng.uniform(0.5, 1.0, m)).astype(np.float64)
        else:  # dense random costs
            cost = rng.uniform(0, 1, (n, m))
        thresh = float(rng.choice([0.5, 0.7, 0.8, rng.uniform(0.1, 0.99)]))
        matches, u_rows, u_cols = linear_assignment(cost, thresh)
        _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
        expected = sorted((i, int(j)) for i, j in enumerate(x) if j >= 0)
        assert sorted(map(tuple, matches.tolist())) == expected, f"trial {trial}"
        np.testing.assert_array_equal(u_rows, np.flatnonzero(x < 0))
        np.testing.assert_array_equal(u_cols, np.flatnonzero(y < 0))


def test_naive_thresholding_would_differ_from_lapjv():
    """Why costs above the threshold are not just replaced by a large value: that maximises the
    number of matches first and takes two mediocre matches over one excellent one."""
    cost = np.array([[0.0, 0.75], [0.75, 1.0]])
    matches, u_rows, u_cols = linear_assignment(cost, 0.8)
    assert matches.tolist() == [[0, 0]]
    assert u_rows.tolist() == [1] and u_cols.tolist() == [1]
    naive_rows, naive_cols = linear_sum_assignment(np.where(cost > 0.8, 1e6, cost))
    assert sorted(zip(naive_rows.tolist(), naive_cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    lap = pytest.importorskip("lap")
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=0.8)
    assert x.tolist() == [0, -1]


def test_threshold_is_strict_and_exact_in_float32():
    # A float32 cost equal to float32(0.8) is above 0.8 as a double; lap compares in double.
    c32 = np.array([[np.float32(0.8)]], dtype=np.float32)
    assert float(c32[0, 0]) > 0.8
    assert linear_assignment(c32, 0.8)[0].shape == (0, 2)
    # float32(0.7) is below 0.7 as a double, so it matches, as in lap (a naive float32 compare would not).
    c32 = np.array([[np.float32(0.7)]], dtype=np.float32)
    assert float(c32[0, 0]) < 0.7
    assert linear_assignment(c32, 0.7)[0].tolist() == [[0, 0]]
    assert not c32[0, 0] < 0.7  # NumPy 2 compares a float32 array with float32(0.7)
    # Exactly at the threshold: no match (zero-overlap pairs when thresh = 1).
    assert linear_assignment(np.ones((2, 2)), 1.0)[0].shape == (0, 2)


def test_empty_and_non_finite_costs():
    m, ur, uc = linear_assignment(np.zeros((0, 3)), 0.5)
    assert m.shape == (0, 2) and ur.size == 0 and uc.tolist() == [0, 1, 2]
    cost = np.array([[np.nan, 0.1], [0.2, np.inf]])
    m, ur, uc = linear_assignment(cost, 0.5)
    assert m.tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="2-D"):
        linear_assignment(np.zeros(3), 0.5)
