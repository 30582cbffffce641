"""Constant-velocity Kalman filter on boxes as (cx, cy, aspect, height), batched over tracks.

This is the filter of SORT/DeepSORT that ByteTrack keeps unchanged: state
``(cx, cy, a, h, vcx, vcy, va, vh)`` with ``a = w / h``, a unit time step, and process and
measurement noise proportional to the box height (``std_weight_position = 1/20``,
``std_weight_velocity = 1/160``), so a large, near object may move more pixels per frame than a
small, far one without being treated as an outlier. The aspect ratio gets small constant noise
because it barely changes for a rigid object.

Every method works on a batch, ``mean [N, 8]`` and ``covariance [N, 8, 8]`` (a single ``[8]`` /
``[8, 8]`` is accepted too): the tracker predicts all its tracks and updates all matched tracks
with one set of NumPy calls per frame instead of one Python call per track, which is what keeps
a frame with hundreds of objects well under a millisecond.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolov8_trt_ros.core.tracking._jit import jit

F64 = npt.NDArray[np.float64]

NDIM = 4  # measured quantities: cx, cy, a, h
_OFF_DIAGONAL = ~np.eye(NDIM, dtype=bool)


def _batched(mean: npt.ArrayLike, covariance: npt.ArrayLike) -> tuple[F64, F64, bool]:
    """Both as float64 batches, and whether the caller passed a single state."""
    m = np.asarray(mean, dtype=np.float64)
    c = np.asarray(covariance, dtype=np.float64)
    single = m.ndim == 1
    if single:
        m, c = m[None], c[None]
    if m.ndim != 2 or m.shape[1] != 2 * NDIM or c.shape != (m.shape[0], 2 * NDIM, 2 * NDIM):
        raise ValueError(f"expected mean [N, 8] and covariance [N, 8, 8], got {m.shape} and {c.shape}")
    return m, c, single


class KalmanFilterXYAH:
    """Kalman filter for boxes in (cx, cy, aspect, height) with their velocities.

    ``std_weight_position`` and ``std_weight_velocity`` scale the noise standard deviations by
    the box height; the defaults are the published ones.
    """

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        wp, wv = float(std_weight_position), float(std_weight_velocity)
        self._weights = (wp, wv)
        #: F: position += velocity (dt = 1 frame).
        self.motion_mat: F64 = np.eye(2 * NDIM)
        self.motion_mat[:NDIM, NDIM:] = np.eye(NDIM)
        #: H: the measurement is the position part of the state.
        self.update_mat: F64 = np.eye(NDIM, 2 * NDIM)
        # Noise standard deviations are ``h * scale + const`` per component (order cx, cy, a, h,
        # vcx, vcy, va, vh): proportional to the height except the aspect ratio's.
        self._init_scale = np.array([2 * wp, 2 * wp, 0.0, 2 * wp, 10 * wv, 10 * wv, 0.0, 10 * wv])
        self._init_const = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])
        self._process_scale = np.array([wp, wp, 0.0, wp, wv, wv, 0.0, wv])
        self._process_const = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])
        self._measure_scale = np.array([wp, wp, 0.0, wp])
        self._measure_const = np.array([0.0, 0.0, 1e-1, 0.0])

    @property
    def std_weight_position(self) -> float:
        return self._weights[0]

    @property
    def std_weight_velocity(self) -> float:
        return self._weights[1]

    @property
    def noise_table(self) -> F64:
        """The noise model as ``[6, 8]`` rows for the compiled kernels below.

        Rows: initial scale and constant, process scale and constant, measurement scale and
        constant (the last two padded to 8); one source of truth for both formulations.
        """
        table = np.zeros((6, 2 * NDIM))
        table[0], table[1] = self._init_scale, self._init_const
        table[2], table[3] = self._process_scale, self._process_const
        table[4, :NDIM], table[5, :NDIM] = self._measure_scale, self._measure_const
        return table

    # The diagonals below are written through ``reshape(n, k * k)[:, ::k + 1]``, a view because
    # every array written so is freshly allocated and contiguous (cheaper than fancy indexing).
    @staticmethod
    def _variance(h: F64, scale: F64, const: F64) -> F64:
        """``[N, k]`` noise variances for heights ``h [N]``."""
        std = h[:, None] * scale
        std += const
        return np.square(std, out=std)

    def initiate(self, measurements: npt.ArrayLike) -> tuple[F64, F64]:
        """New tracks from unmatched measurements ``[N, 4]`` (cx, cy, a, h): zero velocity.

        The initial position uncertainty is twice the per-frame process noise and the velocity
        uncertainty ten times its own, since nothing is known yet about the motion.
        """
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, NDIM)
        n = z.shape[0]
        mean = np.zeros((n, 2 * NDIM))
        mean[:, :NDIM] = z
        cov = np.zeros((n, 2 * NDIM, 2 * NDIM))
        variance = self._variance(z[:, 3], self._init_scale, self._init_const)
        cov.reshape(n, 4 * NDIM * NDIM)[:, :: 2 * NDIM + 1] = variance
        return mean, cov

    def multi_predict(self, mean: npt.ArrayLike, covariance: npt.ArrayLike) -> tuple[F64, F64]:
        """One step ahead for all tracks at once: ``x' = F x``, ``P' = F P Fᵀ + Q(h)``.

        ``Q`` uses the height *before* the step, as published.
        """
        m, c, single = _batched(mean, covariance)
        n = m.shape[0]
        new_mean = m @ self.motion_mat.T
        new_cov = self.motion_mat @ c @ self.motion_mat.T
        new_cov.reshape(n, 4 * NDIM * NDIM)[:, :: 2 * NDIM + 1] += self._variance(
            m[:, 3], self._process_scale, self._process_const
        )
        return (new_mean[0], new_cov[0]) if single else (new_mean, new_cov)

    def predict(self, mean: npt.ArrayLike, covariance: npt.ArrayLike) -> tuple[F64, F64]:
        """Alias of :meth:`multi_predict` (kept for the familiar single-track name)."""
        return self.multi_predict(mean, covariance)

    def project(self, mean: npt.ArrayLike, covariance: npt.ArrayLike) -> tuple[F64, F64]:
        """The state distribution in measurement space: ``H x`` and ``H P Hᵀ + R(h)``."""
        m, c, single = _batched(mean, covariance)
        n = m.shape[0]
        proj_mean = m[:, :NDIM].copy()
        proj_cov = c[:, :NDIM, :NDIM].copy()
        noise = self._variance(m[:, 3], self._measure_scale, self._measure_const)
        proj_cov.reshape(n, NDIM * NDIM)[:, :: NDIM + 1] += noise
        return (proj_mean[0], proj_cov[0]) if single else (proj_mean, proj_cov)

    def update(
        self, mean: npt.ArrayLike, covariance: npt.ArrayLike, measurements: npt.ArrayLike
    ) -> tuple[F64, F64]:
        """Correct each state with its measurement ``[N, 4]`` (cx, cy, a, h).

        ``K = P Hᵀ S⁻¹`` with the innovation covariance ``S = H P Hᵀ + R``, then
        ``x' = x + K (z - H x)`` and ``P' = P - K S Kᵀ``, written as ``P - K (H P)`` because
        ``K S = P Hᵀ``. ``Kᵀ = S⁻¹ H P`` comes from a batched solve; when every ``S`` is
        diagonal, which is always so inside the tracker (the initial covariance and the noise
        are diagonal and F only couples each quantity with its own velocity, so positions of
        different quantities never correlate), the solve is an exact element-wise division.
        """
        m, c, single = _batched(mean, covariance)
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, NDIM)
        if z.shape[0] != m.shape[0]:
            raise ValueError(f"{z.shape[0]} measurements for {m.shape[0]} states")
        proj_mean, proj_cov = self.project(m, c)
        hp = c[:, :NDIM, :]  # H P, [N, 4, 8]
        if np.any(proj_cov[:, _OFF_DIAGONAL]):
            gain_t = np.linalg.solve(proj_cov, hp)  # [N, 4, 8] = Kᵀ
        else:
            gain_t = hp / proj_cov.reshape(-1, NDIM * NDIM)[:, :: NDIM + 1, None]
        gain = gain_t.transpose(0, 2, 1)  # [N, 8, 4]
        innovation = z - proj_mean
        new_mean = m + (gain @ innovation[:, :, None])[:, :, 0]
        new_cov = c - gain @ hp
        return (new_mean[0], new_cov[0]) if single else (new_mean, new_cov)


def xyxy_to_xyah(boxes: npt.ArrayLike) -> F64:
    """``[N, 4]`` corner boxes to (cx, cy, w/h, h); callers drop boxes with ``h <= 0`` first."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([(b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0, w / h, h], axis=1)


def xyah_to_xyxy(xyah: npt.ArrayLike) -> F64:
    """``[N, >=4]`` (cx, cy, a, h, ...) to corner boxes ``[N, 4]``."""
    s = np.asarray(xyah, dtype=np.float64).reshape(-1, np.shape(xyah)[-1])
    h = s[:, 3]
    w = s[:, 2] * h
    return np.stack([s[:, 0] - w / 2.0, s[:, 1] - h / 2.0, s[:, 0] + w / 2.0, s[:, 1] + h / 2.0], axis=1)


# -- compiled per-track kernels ------------------------------------------------------------------
# The tracker's covariances only ever couple a quantity with its own velocity: the initial
# covariance and the noise are diagonal, F adds each velocity to its own position, and the
# correction keeps that pattern (see ``KalmanFilterXYAH.update``). So a track's covariance is
# stored as four 2x2 blocks, ``cov[p] = (P[p, p], P[p, p+4], P[p+4, p], P[p+4, p+4])`` for the
# quantities p = cx, cy, a, h: 16 numbers instead of 64. Every other entry is an exact zero in
# the 8x8 formulation, whose matrix products therefore add each non-zero product to exact zeros
# only; the kernels below perform the same non-zero operations in the same order, so they give
# bit-identical results (``test/test_tracking_kalman.py`` checks this against the class above).


def blocks_to_full(cov_blocks: npt.ArrayLike) -> F64:
    """``[N, 4, 4]`` block covariances (layout above) as ``[N, 8, 8]`` matrices."""
    b = np.asarray(cov_blocks, dtype=np.float64).reshape(-1, NDIM, 4)
    full = np.zeros((b.shape[0], 2 * NDIM, 2 * NDIM))
    p = np.arange(NDIM)
    full[:, p, p], full[:, p, p + NDIM] = b[:, :, 0], b[:, :, 1]
    full[:, p + NDIM, p], full[:, p + NDIM, p + NDIM] = b[:, :, 2], b[:, :, 3]
    return full


# The kernels take the state arrays and a row index rather than row views: a view costs
# reference counting, as much as the arithmetic of a whole step.


@jit
def initiate_track(mean: F64, cov: F64, r: int, z: F64, noise: F64) -> None:
    """Write row ``r``: a new track at measurement ``z`` (cx, cy, a, h) with zero velocity."""
    h = z[3]
    for p in range(NDIM):
        q = p + NDIM
        mean[r, p] = z[p]
        mean[r, q] = 0.0
        sp = h * noise[0, p] + noise[1, p]
        sq = h * noise[0, q] + noise[1, q]
        cov[r, p, 0] = sp * sp
        cov[r, p, 1] = 0.0
        cov[r, p, 2] = 0.0
        cov[r, p, 3] = sq * sq


@jit
def predict_track(mean: F64, cov: F64, r: int, noise: F64) -> None:
    """Row ``r`` one step ahead: ``x' = F x``, ``P' = F P Fᵀ + Q(h)`` (h before the step)."""
    h = mean[r, 3]
    for p in range(NDIM):
        q = p + NDIM
        sp = h * noise[2, p] + noise[3, p]
        sq = h * noise[2, q] + noise[3, q]
        a, b, c, d = cov[r, p, 0], cov[r, p, 1], cov[r, p, 2], cov[r, p, 3]
        cov[r, p, 0] = ((a + c) + (b + d)) + sp * sp
        cov[r, p, 1] = b + d
        cov[r, p, 2] = c + d
        cov[r, p, 3] = d + sq * sq
        mean[r, p] = mean[r, p] + mean[r, q]


@jit
def update_track(mean: F64, cov: F64, r: int, z: F64, noise: F64) -> None:
    """Correct row ``r`` with measurement ``z``: ``K = P Hᵀ S⁻¹`` with diagonal S."""
    h = mean[r, 3]
    for p in range(NDIM):
        q = p + NDIM
        sm = h * noise[4, p] + noise[5, p]
        a, b, c, d = cov[r, p, 0], cov[r, p, 1], cov[r, p, 2], cov[r, p, 3]
        s = a + sm * sm
        gp = a / s
        gq = b / s
        innovation = z[p] - mean[r, p]
        mean[r, p] = mean[r, p] + gp * innovation
        mean[r, q] = mean[r, q] + gq * innovation
        cov[r, p, 0] = a - gp * a
        cov[r, p, 1] = b - gp * b
        cov[r, p, 2] = c - gq * a
        cov[r, p, 3] = d - gq * b
