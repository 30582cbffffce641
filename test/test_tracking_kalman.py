"""Kalman filter: hand-computed predict/update, the textbook formulas, and ultralytics' filter."""

from __future__ import annotations

import numpy as np
import pytest

from yolov8_trt_ros.core.tracking.kalman import KalmanFilterXYAH, xyah_to_xyxy, xyxy_to_xyah

WP, WV = 1.0 / 20, 1.0 / 160  # the published noise weights


def test_initiate_by_hand():
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(np.array([[100.0, 200.0, 0.5, 80.0]]))
    np.testing.assert_array_equal(mean, [[100.0, 200.0, 0.5, 80.0, 0.0, 0.0, 0.0, 0.0]])
    # std: 2 * h / 20 = 8 for x, y, h; 0.01 for a; 10 * h / 160 = 5 for vx, vy, vh; 1e-5 for va.
    expected = np.diag([64.0, 64.0, 1e-4, 64.0, 25.0, 25.0, 1e-10, 25.0])
    np.testing.assert_allclose(cov[0], expected, rtol=1e-12, atol=0)


def _pair(cov: np.ndarray, i: int) -> tuple[float, float, float]:
    """(var position i, cov position/velocity i, var velocity i) of one 8x8 covariance."""
    return cov[i, i], cov[i, i + 4], cov[i + 4, i + 4]


def test_predict_and_update_by_hand():
    """Every quantity is decoupled from the others, so each (position, velocity) pair is a
    2-state filter whose predict/update can be written out with scalars."""
    kf = KalmanFilterXYAH()
    h0 = 80.0
    mean = np.array([100.0, 200.0, 0.5, h0, 2.0, -1.0, 0.0, 0.5])
    cov = np.diag([64.0, 64.0, 1e-4, 64.0, 25.0, 25.0, 1e-10, 25.0])

    pm, pc = kf.predict(mean, cov)
    np.testing.assert_allclose(pm, [102.0, 199.0, 0.5, 80.5, 2.0, -1.0, 0.0, 0.5], rtol=0, atol=1e-12)
    # P' = F P Fᵀ + Q with Q from the height before the step (std h/20 = 4 and h/160 = 0.5):
    # var_pos = p + 2c + v + q_pos, cov = c + v, var_vel = v + q_vel.
    q = {0: (16.0, 0.25), 1: (16.0, 0.25), 2: (1e-4, 1e-10), 3: (16.0, 0.25)}
    expected_pairs = {}
    for i, (q_pos, q_vel) in q.items():
        p, c, v = _pair(cov, i)
        expected_pairs[i] = (p + 2 * c + v + q_pos, c + v, v + q_vel)
        np.testing.assert_allclose(_pair(pc, i), expected_pairs[i], rtol=1e-12)
    assert pc[0, 1] == 0 and pc[0, 5] == 0 and pc[2, 3] == 0  # no cross-quantity terms appear
    assert expected_pairs[0] == (105.0, 25.0, 25.25)

    z = np.array([104.0, 197.0, 0.52, 82.0])
    um, uc = kf.update(pm, pc, z)
    # Measurement noise from the predicted height: std 80.5 / 20 for x, y, h and 0.1 for a.
    r = {0: (80.5 / 20) ** 2, 1: (80.5 / 20) ** 2, 2: 0.01, 3: (80.5 / 20) ** 2}
    for i in range(4):
        p, c, v = expected_pairs[i]
        s = p + r[i]
        k_pos, k_vel = p / s, c / s
        innovation = z[i] - pm[i]
        assert um[i] == pytest.approx(pm[i] + k_pos * innovation, rel=1e-12)
        assert um[i + 4] == pytest.approx(pm[i + 4] + k_vel * innovation, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(
            _pair(uc, i), (p - k_pos * p, c - k_pos * c, v - k_vel * c), rtol=1e-10, atol=1e-18
        )
    # For x: S = 105 + 16.200625, gain 105 / S: the estimate moves most of the way to z.
    assert um[0] == pytest.approx(102.0 + 2.0 * 105.0 / 121.200625, rel=1e-12)


def test_project_by_hand():
    kf = KalmanFilterXYAH()
    mean = np.array([10.0, 20.0, 2.0, 40.0, 0, 0, 0, 0])
    cov = np.eye(8)
    pm, pc = kf.project(mean, cov)
    np.testing.assert_array_equal(pm, [10.0, 20.0, 2.0, 40.0])
    np.testing.assert_allclose(pc, np.diag([1 + 4.0, 1 + 4.0, 1 + 0.01, 1 + 4.0]), rtol=1e-12)


def test_update_with_correlated_covariance_matches_textbook_formula():
    """A full (non-diagonal) covariance takes the solve path; compare with the inverse form."""
    rng = np.random.default_rng(3)
    kf = KalmanFilterXYAH()
    n = 5
    a = rng.normal(size=(n, 8, 8))
    cov = a @ a.transpose(0, 2, 1) + 8 * np.eye(8)
    position = [rng.uniform(50, 500, (n, 2)), rng.uniform(0.3, 2, (n, 1)), rng.uniform(20, 200, (n, 1))]
    mean = np.concatenate([*position, rng.normal(size=(n, 4))], axis=1)
    z = mean[:, :4] + rng.normal(0, 3, (n, 4))
    new_mean, new_cov = kf.update(mean, cov, z)
    h = np.eye(4, 8)
    for i in range(n):
        r = np.diag([(mean[i, 3] * WP) ** 2, (mean[i, 3] * WP) ** 2, 0.01, (mean[i, 3] * WP) ** 2])
        k = cov[i] @ h.T @ np.linalg.inv(h @ cov[i] @ h.T + r)
        np.testing.assert_allclose(new_mean[i], mean[i] + k @ (z[i] - h @ mean[i]), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(new_cov[i], (np.eye(8) - k @ h) @ cov[i], rtol=1e-9, atol=1e-9)


def test_batched_matches_ultralytics_filter_over_many_steps():
    """Same noise model and results as ultralytics' KalmanFilterXYAH, which loops per track."""
    from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYAH as Reference

    rng = np.random.default_rng(0)
    ours, ref = KalmanFilterXYAH(), Reference()
    n = 7
    z = np.c_[rng.uniform(0, 600, (n, 2)), rng.uniform(0.3, 2.0, n), rng.uniform(20, 200, n)]
    mean, cov = ours.initiate(z)
    for i in range(n):
        rm, rc = ref.initiate(z[i])
        np.testing.assert_allclose(mean[i], rm, rtol=1e-12)
        np.testing.assert_allclose(cov[i], rc, rtol=1e-12)
    for _ in range(20):
        pm, pc = ours.multi_predict(mean, cov)
        rpm, rpc = ref.multi_predict(mean, cov)
        np.testing.assert_allclose(pm, rpm, rtol=1e-12)
        np.testing.assert_allclose(pc, rpc, rtol=1e-12)
        z = z + np.c_[rng.normal(3, 1, (n, 2)), rng.normal(0, 0.01, n), rng.normal(0, 1, n)]
        mean, cov = ours.update(pm, pc, z)
        for i in range(n):
            rm, rc = ref.update(pm[i], pc[i], z[i])
            np.testing.assert_allclose(mean[i], rm, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(cov[i], rc, rtol=1e-9, atol=1e-10)


def test_velocity_converges_for_constant_motion():
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate([[0.0, 0.0, 0.5, 50.0]])
    for t in range(1, 60):
        mean, cov = kf.multi_predict(mean, cov)
        mean, cov = kf.update(mean, cov, [[3.0 * t, -1.0 * t, 0.5, 50.0]])
    np.testing.assert_allclose(mean[0, 4:6], [3.0, -1.0], atol=0.05)


def test_shapes_are_checked():
    kf = KalmanFilterXYAH()
    with pytest.raises(ValueError, match=r"mean \[N, 8\]"):
        kf.multi_predict(np.zeros((2, 7)), np.zeros((2, 7, 7)))
    mean, cov = kf.initiate(np.ones((2, 4)))
    with pytest.raises(ValueError, match="measurements"):
        kf.update(mean, cov, np.ones((3, 4)))
    empty_mean, empty_cov = kf.multi_predict(np.zeros((0, 8)), np.zeros((0, 8, 8)))
    assert empty_mean.shape == (0, 8) and empty_cov.shape == (0, 8, 8)


def test_box_conversions_round_trip():
    boxes = np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 5.0, 1.0]])
    xyah = xyxy_to_xyah(boxes)
    np.testing.assert_allclose(xyah, [[20.0, 40.0, 0.5, 40.0], [2.5, 0.5, 5.0, 1.0]])
    np.testing.assert_allclose(xyah_to_xyxy(xyah), boxes)
