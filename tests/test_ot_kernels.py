"""The Numba kernels behind the OT solvers, against numpy/scipy formulas."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp

from sparseopt.kernels._sinkhorn import (
    HIST_BINS,
    lse_cols,
    lse_rows,
    marginals,
    marginals_hist,
    scaling_sweep,
    schur_diag,
    schur_matvec,
    threshold_bin,
)
from sparseopt.solvers._ot_core import sparse_plan


def _kernel(n, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    K = np.exp(-30 * rng.random((n, m))).astype(dtype)
    return K, rng.random(n) + 0.5, rng.random(m) + 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaling_sweep(dtype):
    K, a, v = _kernel(17, 11, dtype)
    u, w = np.empty(17), np.empty(11)
    umin, umax = scaling_sweep(K, a, v, u, w)
    Kd = K.astype(np.float64)
    u_ref = a / (Kd @ v)
    np.testing.assert_allclose(u, u_ref, rtol=1e-12)
    np.testing.assert_allclose(w, Kd.T @ u_ref, rtol=1e-12)
    assert umin == u_ref.min() and umax == u_ref.max()
    K[3] = 0  # an empty row gives u = inf and no contribution
    scaling_sweep(K, a, v, u, w)
    assert np.isinf(u[3]) and np.all(np.isfinite(w))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_marginals_and_histogram(dtype):
    K, x, y = _kernel(23, 19, dtype, seed=1)
    K[0, :5] = 0
    P = x[:, None] * K.astype(np.float64) * y[None, :]
    r, c = np.empty(23), np.empty(19)
    total = marginals(K, x, y, r, c)
    np.testing.assert_allclose(r, P.sum(1), rtol=1e-12)
    np.testing.assert_allclose(c, P.sum(0), rtol=1e-12)
    np.testing.assert_allclose(total, P.sum(), rtol=1e-12)
    hm, hc, buf = np.empty(HIST_BINS), np.empty(HIST_BINS, dtype=np.int64), np.empty(19)
    for floor in (0.0, np.median(P)):
        total = marginals_hist(K, x, y, r, c, hm, hc, buf, floor)
        np.testing.assert_allclose(total, P.sum(), rtol=1e-12)
        np.testing.assert_allclose(hm.sum(), P.sum(), rtol=1e-12)
        if floor == 0.0:
            assert hc.sum() == P.size and hc[0] == 5
        else:  # entries below the floor are lumped into bin 1
            assert hc.sum() == np.count_nonzero(P)
            np.testing.assert_allclose(hm[1], P[(P > 0) & (P < floor)].sum(), rtol=1e-12)


@pytest.mark.parametrize("drop", [0.0, 1e-3, 0.05, 0.5])
def test_sparse_plan_drops_the_smallest_mass(drop):
    K, x, y = _kernel(40, 30, np.float64, seed=2)
    P = x[:, None] * K * y[None, :]
    indptr, indices, data = sparse_plan(K, x, y, drop * P.sum())
    S = sp.csr_matrix((data, indices, indptr), shape=P.shape).toarray()
    kept = S > 0
    np.testing.assert_array_equal(S[kept], P[kept])
    dropped = P[~kept]
    assert dropped.sum() <= drop * P.sum() * (1 + 1e-12)
    if dropped.size and kept.any():
        assert P[kept].min() >= dropped.max()
    # bins are 2^(1/8) wide: the kept set is not much larger than necessary
    if drop > 0:
        order = np.sort(P.ravel())
        n_needed = P.size - np.searchsorted(np.cumsum(order), drop * P.sum(), side="right")
        assert kept.sum() <= n_needed + np.sum((order >= order[-n_needed] / 2 ** 0.125)
                                               & (order < order[-n_needed]))


def test_threshold_bin_count_rule():
    hm = np.zeros(HIST_BINS)
    hc = np.zeros(HIST_BINS, dtype=np.int64)
    hc[[0, 100, 200, 300]] = [7, 10, 5, 3]
    hm[[100, 200, 300]] = [1.0, 2.0, 3.0]
    assert threshold_bin(hm, hc, np.inf, 8) == (200, 8)
    assert threshold_bin(hm, hc, np.inf, 1) == (300, 3)
    assert threshold_bin(hm, hc, 1.5, 0) == (200, 8)
    assert threshold_bin(hm, hc, 0.0, 0) == (100, 18)


def test_schur_matvec_and_diag():
    rng = np.random.default_rng(3)
    S = sp.random(25, 18, density=0.3, format="csr", random_state=4)
    r = np.asarray(S.sum(1)).ravel() + rng.random(25) + 0.1
    c = np.asarray(S.sum(0)).ravel() + 0.2
    y = rng.standard_normal(18)
    dense = np.diag(c) - S.toarray().T @ np.diag(1 / r) @ S.toarray()
    out = np.empty(18)
    ip, ix = S.indptr.astype(np.int64), S.indices.astype(np.int64)
    schur_matvec(ip, ix, S.data, 1 / r, c, y, out)
    np.testing.assert_allclose(out, dense @ y, rtol=1e-12, atol=1e-14)
    schur_diag(ip, ix, S.data, 1 / r, c, out)
    np.testing.assert_allclose(out, np.diag(dense), rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(dense) > -1e-12)  # PSD (Cauchy-Schwarz)


def test_log_sum_exp_kernels():
    rng = np.random.default_rng(5)
    M = rng.random((9, 7)) * 100
    f = rng.standard_normal(9)
    g = rng.standard_normal(7)
    f[2] = -np.inf
    reg = 1e-3
    out_r, out_c = np.empty(9), np.empty(7)
    lse_rows(M, g, 1 / reg, out_r)
    lse_cols(M, f, 1 / reg, out_c, np.empty(7))
    np.testing.assert_allclose(out_r, logsumexp((g[None, :] - M) / reg, axis=1), rtol=1e-13)
    np.testing.assert_allclose(out_c, logsumexp((f[:, None] - M) / reg, axis=0), rtol=1e-13)


def test_masked_kernels_match_csr():
    """The masked dense products equal the CSR ones on the same thresholded plan."""
    from sparseopt.kernels._sinkhorn import (
        csr_matvec,
        csr_rmatvec,
        masked_matvec,
        masked_rmatvec_diag,
        masked_schur_matvec,
    )
    from sparseopt.solvers.sns import _bin_value, _Sparsifier

    K, x, y = _kernel(30, 26, np.float64, seed=6)
    n, m = K.shape
    r, c = np.empty(n), np.empty(m)
    hm, hc, buf = np.empty(HIST_BINS), np.empty(HIST_BINS, dtype=np.int64), np.empty(m)
    mass = marginals_hist(K, x, y, r, c, hm, hc, buf, 0.0)
    sparsifier = _Sparsifier(n, m, "mass", 0.05, 2.0)
    first, nnz = sparsifier.threshold(mass, 1.0, hm, hc)
    ip, ix, d = sparsifier.build(K, x, y, first, nnz)
    theta = _bin_value(first)
    assert 0 < nnz < n * m
    rng = np.random.default_rng(0)
    z, w = rng.standard_normal(m), rng.standard_normal(n)
    inv_r = 1 / r
    out1, out2, diag1, diag2 = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    schur_matvec(ip, ix, d, inv_r, c, z, out1)
    masked_schur_matvec(K, x, y, theta, inv_r, c, z, out2, buf)
    np.testing.assert_allclose(out2, out1, rtol=1e-12, atol=1e-16)
    csr_rmatvec(ip, ix, d, w, out1)
    schur_diag(ip, ix, d, inv_r, c, diag1)
    masked_rmatvec_diag(K, x, y, theta, w, inv_r, c, out2, diag2)
    np.testing.assert_allclose(out2, out1, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(diag2, diag1, rtol=1e-12)
    v1, v2 = np.empty(n), np.empty(n)
    csr_matvec(ip, ix, d, z, v1)
    masked_matvec(K, x, y, theta, z, v2)
    np.testing.assert_allclose(v2, v1, rtol=1e-12, atol=1e-16)
