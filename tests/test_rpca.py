"""Robust PCA solvers: exact recovery, optimality, masks, options and bad input."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from sparseopt._monitor import ConvergenceWarning
from sparseopt.decomposition import robust_pca
from sparseopt.solvers import rpca as rpca_mod
from sparseopt.solvers.rpca import _prepare


def pcp_problem(m, n, r, frac, seed=0, amp=500.0, dtype=np.float64):
    """Lin-Chen-Ma protocol: L0 = A B^T with N(0, 1) factors, S0 ~ U[-amp, amp]."""
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.zeros((m, n))
    idx = rng.random((m, n)) < frac
    S0[idx] = rng.uniform(-amp, amp, idx.sum())
    return L0.astype(dtype), S0.astype(dtype)


def authors_problem(m, n, r, frac, seed=0, dtype=np.float64):
    """Cai, Cai & Wei's regime: outliers U[-a, a] with a = mean |L0|."""
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    a = np.abs(L0).mean()
    S0 = np.where(rng.random(L0.shape) < frac, rng.uniform(-a, a, L0.shape), 0.0)
    return L0.astype(dtype), S0.astype(dtype)


def rel(a, b):
    return np.linalg.norm(np.asarray(a, dtype=np.float64) - b) / np.linalg.norm(b)


def dense(S):
    if hasattr(S, "to_scipy"):
        S = S.to_scipy()
    return S.toarray() if hasattr(S, "toarray") else np.asarray(S)


def nuclear(L):
    return np.linalg.svd(L, compute_uv=False).sum()


# ---------------------------------------------------------------------------
# exact recovery


def test_ialm_exact_recovery_issue_size():
    # the issue's acceptance problem: 500 x 500, rank 25, 5 % gross corruptions
    L0, S0 = pcp_problem(500, 500, 25, 0.05)
    res = robust_pca(L0 + S0, random_state=0, sparse_output=False)
    assert res.converged and res.rank == 25
    assert rel(res.low_rank, L0) < 1e-6
    assert rel(res.sparse, S0) < 1e-6
    # the stopping rule holds on the returned pair
    M = L0 + S0
    assert rel(res.low_rank + res.sparse, M) <= res.tol
    np.testing.assert_allclose(res.residual[-1], res.stop_crit)
    assert res.residual[-1] <= 1e-7 and res.n_iter == len(res.residual)


@pytest.mark.parametrize("svd_method", ["randomized", "lanczos", "full"])
def test_ialm_svd_methods_agree(svd_method):
    # partial SVDs must give the full-SVD iterates: same iterations, same answer
    L0, S0 = pcp_problem(200, 160, 8, 0.05, seed=1)
    ref = robust_pca(L0 + S0, svd_method="full", sparse_output=False)
    res = robust_pca(L0 + S0, svd_method=svd_method, random_state=3,
                     sparse_output=False)
    assert res.n_iter == ref.n_iter
    np.testing.assert_array_equal(res.history["rank"], ref.history["rank"])
    # both satisfy ||M - L - S|| <= tol ||M||; the iterates agree to that level
    scale = np.linalg.norm(L0 + S0)
    np.testing.assert_allclose(res.low_rank, ref.low_rank, rtol=0,
                               atol=10 * res.tol * scale / np.sqrt(L0.size))
    assert rel(res.low_rank, L0) < 10 * res.tol * scale / np.linalg.norm(L0)


def test_ialm_dual_certificate():
    # KKT conditions of PCP with IALM's multiplier Y:
    #   P_T(Y) = U V^T, ||P_T^perp(Y)||_2 <= 1     (Y in d||L||_*)
    #   Y = lam sign(S) on supp S, |Y| <= lam        (Y in lam d||S||_1)
    # The first holds exactly after the L-step; the second up to the dual
    # residual mu ||L_k - L_{k-1}|| that the primal stopping rule leaves.
    L0, S0 = pcp_problem(200, 150, 8, 0.1, seed=1, amp=50.0)
    res = robust_pca(L0 + S0, random_state=0, sparse_output=False)
    lam, Y, U, Vt = res.lam, res.dual, res.U, res.Vt
    PU, PV = U @ U.T, Vt.T @ Vt
    PT = PU @ Y + Y @ PV - PU @ Y @ PV
    # exact up to the SVT's accuracy (residual <= 0.1 tol ||M|| at the end)
    np.testing.assert_allclose(PT, U @ Vt, atol=1e-6)
    assert np.linalg.norm(Y - PT, 2) < 1.0
    supp = res.sparse != 0
    np.testing.assert_allclose(Y[supp], lam * np.sign(res.sparse[supp]), rtol=1e-2)
    assert np.abs(Y).max() <= lam * (1 + 1e-2)


def test_ialm_objective_matches_tight_reference():
    # a noisy problem (no exact recovery, rank ~ 0.6 min(m, n)): the PCP
    # objective at tol=1e-7 matches a tol=1e-11 full-SVD run
    L0, S0 = pcp_problem(120, 90, 5, 0.1, seed=2, amp=50.0)
    M = L0 + S0 + 0.5 * np.random.default_rng(5).standard_normal(L0.shape)
    ref = robust_pca(M, svd_method="full", tol=1e-10, max_iter=200,
                     sparse_output=False, random_state=0)
    res = robust_pca(M, random_state=0, sparse_output=False)
    assert ref.converged and res.converged and res.rank > 30

    def obj(r):
        return nuclear(r.low_rank) + r.lam * np.abs(r.sparse).sum()

    np.testing.assert_allclose(obj(res), obj(ref), rtol=1e-6)
    # and it beats the planted pair on the PCP objective
    assert obj(res) <= nuclear(L0) + res.lam * np.abs(M - L0).sum()


def test_accaltproj_exact_recovery_lcm_regime():
    # outliers ~100x L's entries: AltProj needs a lower beta than the default
    # at this size (documented); with it, exact recovery
    L0, S0 = pcp_problem(500, 500, 25, 0.05)
    res = robust_pca(L0 + S0, method="accaltproj", rank=25, random_state=0,
                     beta=0.125 / (500 * 500) ** 0.25, sparse_output=False)
    assert res.converged and res.rank == 25 and res.lam is None
    assert rel(res.low_rank, L0) < 1e-6
    assert rel(res.sparse, S0) < 1e-6
    assert res.n_iter < 30


@pytest.mark.parametrize("beta", [None, 0.5 / np.sqrt(np.sqrt(300 * 250))])
def test_accaltproj_exact_recovery_authors_regime(beta):
    # Cai, Cai & Wei's demo: 10 % outliers of the size of L's entries; our
    # default beta and the authors' both recover L
    L0, S0 = authors_problem(300, 250, 5, 0.1, seed=4)
    res = robust_pca(L0 + S0, method="accaltproj", rank=5, random_state=0,
                     beta=beta, sparse_output=False)
    assert res.converged
    assert rel(res.low_rank, L0) < 1e-6
    # the low-rank factors are consistent
    np.testing.assert_allclose(res.U * res.s @ res.Vt, res.low_rank, atol=1e-8)


def test_accaltproj_matches_ialm_solution():
    L0, S0 = authors_problem(150, 120, 4, 0.1, seed=7)
    a = robust_pca(L0 + S0, sparse_output=False, random_state=0)
    b = robust_pca(L0 + S0, method="accaltproj", rank=4, sparse_output=False,
                   random_state=0)
    # both recover L0; each to ~10 tol ||M|| / ||L0||
    scale = 10 * a.tol * np.linalg.norm(L0 + S0) / np.linalg.norm(L0)
    assert rel(a.low_rank, L0) < scale and rel(b.low_rank, L0) < scale


# ---------------------------------------------------------------------------
# missing entries


@pytest.mark.parametrize("method", ["ialm", "accaltproj"])
def test_mask_recovers_missing_entries(method):
    problem = pcp_problem if method == "ialm" else authors_problem
    L0, S0 = problem(200, 180, 5, 0.05, seed=3)
    rng = np.random.default_rng(8)
    mask = rng.random(L0.shape) > 0.2
    M = L0 + S0
    M[~mask] = np.nan            # unobserved entries may hold anything
    res = robust_pca(M, mask=mask, method=method, rank=5 if method != "ialm" else None,
                     random_state=0, sparse_output=False)
    assert res.converged
    S = res.sparse
    assert np.all(S[~mask] == 0)
    # L completes the unobserved entries too
    assert rel(res.low_rank, L0) < 1e-5
    assert rel(S[mask], S0[mask]) < 1e-5
    assert np.isfinite(res.low_rank).all()


def test_mask_all_true_is_no_mask():
    L0, S0 = pcp_problem(60, 50, 3, 0.05)
    a = robust_pca(L0 + S0, random_state=0, sparse_output=False)
    b = robust_pca(L0 + S0, mask=np.ones(L0.shape, bool), random_state=0,
                   sparse_output=False)
    np.testing.assert_array_equal(a.low_rank, b.low_rank)


def test_mask_int_accepted_and_nonfinite_observed_rejected():
    M = np.ones((10, 8))
    mask = np.ones((10, 8), dtype=np.int8)
    mask[0, 0] = 0
    M[0, 0] = np.inf
    robust_pca(M, mask=mask)  # inf only at a masked entry: fine
    M[1, 1] = np.nan
    with pytest.raises(ValueError, match="M contains NaN at observed"):
        robust_pca(M, mask=mask)


# ---------------------------------------------------------------------------
# outputs, dtypes, edge cases


def test_sparse_output_modes():
    L0, S0 = pcp_problem(80, 60, 3, 0.05)
    M = L0 + S0
    auto = robust_pca(M, random_state=0)
    assert not isinstance(auto.sparse, np.ndarray)       # 5 % dense -> CSR
    assert hasattr(auto.sparse, "indptr") and auto.sparse.shape == M.shape
    dense_ = robust_pca(M, random_state=0, sparse_output=False)
    assert isinstance(dense_.sparse, np.ndarray)
    np.testing.assert_array_equal(dense(auto.sparse), dense_.sparse)
    always = robust_pca(M, random_state=0, sparse_output=True)
    np.testing.assert_array_equal(dense(always.sparse), dense_.sparse)
    # a dense S stays dense under "auto"
    noisy = robust_pca(np.random.default_rng(0).standard_normal((30, 20)))
    if np.count_nonzero(dense(noisy.sparse)) > 0.1 * 600:
        assert isinstance(noisy.sparse, np.ndarray)


def test_sparse_output_is_project_csr():
    from sparseopt import CSR

    L0, S0 = pcp_problem(50, 40, 2, 0.05)
    res = robust_pca(L0 + S0, random_state=0, sparse_output=True)
    assert isinstance(res.sparse, CSR)
    dense_ = robust_pca(L0 + S0, random_state=0, sparse_output=False).sparse
    np.testing.assert_array_equal(res.sparse.to_scipy().toarray(), dense_)
    assert res.sparse.nnz == np.count_nonzero(dense_)


def test_float32_preserved():
    for method, rank in (("ialm", None), ("accaltproj", 4)):
        problem = pcp_problem if method == "ialm" else authors_problem
        L0, S0 = problem(120, 100, 4, 0.05, dtype=np.float32)
        M = L0 + S0
        res = robust_pca(M, method=method, rank=rank, random_state=0,
                         sparse_output=False)
        assert res.low_rank.dtype == np.float32 and res.sparse.dtype == np.float32
        assert res.converged
        # tol is floored at 10 eps(float32); L's error follows from it, scaled
        # by ||M|| / ||L0||
        assert res.tol == pytest.approx(10 * np.finfo(np.float32).eps)
        bound = 10 * res.tol * np.linalg.norm(M) / np.linalg.norm(L0)
        assert rel(res.low_rank, L0) < bound


def test_integer_input_and_input_not_modified():
    rng = np.random.default_rng(0)
    M = rng.integers(-3, 4, size=(30, 20))
    M0 = M.copy()
    mask = rng.random(M.shape) > 0.1
    mask0 = mask.copy()
    res = robust_pca(M, mask=mask, random_state=0)
    assert res.low_rank.dtype == np.float64
    np.testing.assert_array_equal(M, M0)
    np.testing.assert_array_equal(mask, mask0)
    Mf = rng.standard_normal((30, 20))
    Mf_F = np.asfortranarray(Mf)
    Mf0 = Mf.copy()
    with pytest.warns(ConvergenceWarning):
        robust_pca(Mf_F, method="accaltproj", rank=2, max_iter=5)
    np.testing.assert_array_equal(Mf_F, Mf0)


def test_zero_matrix():
    res = robust_pca(np.zeros((5, 4)))
    assert res.converged and res.n_iter == 0 and res.rank == 0
    np.testing.assert_array_equal(res.low_rank, 0)
    np.testing.assert_array_equal(dense(res.sparse), 0)


@pytest.mark.parametrize("shape", [(1, 7), (7, 1), (1, 1), (3, 200)])
def test_degenerate_shapes(shape):
    M = np.random.default_rng(1).standard_normal(shape)
    res = robust_pca(M, sparse_output=False)
    assert res.converged
    assert rel(res.low_rank + res.sparse, M) <= res.tol


def test_lam_extremes():
    L0, S0 = pcp_problem(40, 30, 2, 0.05)
    M = L0 + S0
    # a huge lam makes S = 0 and L = M
    res = robust_pca(M, lam=1e6, sparse_output=False)
    assert np.count_nonzero(res.sparse) == 0
    np.testing.assert_allclose(res.low_rank, M, atol=1e-6 * np.abs(M).max())
    # a tiny lam makes L = 0 and S = M
    res = robust_pca(M, lam=1e-6, sparse_output=False)
    assert res.rank == 0
    np.testing.assert_allclose(res.sparse, M, atol=1e-6 * np.abs(M).max())


def test_accaltproj_full_rank_is_identity():
    M = np.random.default_rng(3).standard_normal((6, 4))
    res = robust_pca(M, method="accaltproj", rank=4, sparse_output=False)
    assert res.converged and res.n_iter == 0
    np.testing.assert_array_equal(res.low_rank, M)
    np.testing.assert_array_equal(res.sparse, 0)
    np.testing.assert_allclose(res.U * res.s @ res.Vt, M, atol=1e-12)


def test_random_state_reproducible():
    L0, S0 = pcp_problem(150, 150, 6, 0.05)
    a = robust_pca(L0 + S0, random_state=42, sparse_output=False)
    b = robust_pca(L0 + S0, random_state=np.random.default_rng(42),
                   sparse_output=False)
    np.testing.assert_array_equal(a.low_rank, b.low_rank)


# ---------------------------------------------------------------------------
# fused kernels vs their array-namespace twins (the CuPy code path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_and_namespace_paths_agree(dtype, masked):
    L0, S0 = pcp_problem(90, 70, 3, 0.05, dtype=dtype)
    mask = np.random.default_rng(2).random(L0.shape) > 0.1 if masked else None
    _, D, mask = _prepare(L0 + S0, mask)
    out = {}
    for fused in (True, False):
        # the solver functions are called directly: apply robust_pca's
        # small-problem thread limits ourselves
        with rpca_mod._thread_limits(D.size, np):
            out[fused] = rpca_mod.ialm(
                D, mask, lam=1 / np.sqrt(90), tol=1e-7, max_iter=200,
                svd_method="full", rng=np.random.default_rng(0), fused=fused)
    assert out[True][5]["n_iter"] == out[False][5]["n_iter"]
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(out[True][0], out[False][0], atol=tol * np.abs(D).max())
    for fused in (True, False):
        with rpca_mod._thread_limits(D.size, np):
            out[fused] = rpca_mod.accaltproj(
                D, mask, rank=3, tol=1e-7, max_iter=100, rng=np.random.default_rng(0),
                fused=fused)
    assert out[True][5]["n_iter"] == out[False][5]["n_iter"]
    np.testing.assert_allclose(out[True][0], out[False][0], atol=tol * np.abs(D).max())


# ---------------------------------------------------------------------------
# monitoring


def test_convergence_warning_when_max_iter_hit():
    L0, S0 = pcp_problem(60, 50, 3, 0.05)
    with pytest.warns(ConvergenceWarning, match="relative residual"):
        res = robust_pca(L0 + S0, max_iter=3)
    assert not res.converged and res.n_iter == 3 and res.message == "max_iter reached"
    with pytest.warns(ConvergenceWarning):
        robust_pca(L0 + S0, method="accaltproj", rank=3, max_iter=2)


@pytest.mark.parametrize("method", ["ialm", "accaltproj"])
def test_callback_stops_run(method):
    L0, S0 = pcp_problem(60, 50, 3, 0.05)
    seen = []

    def cb(r):
        seen.append((r.n_iter, r.stop_crit, r.low_rank.shape))
        return r.n_iter >= 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = robust_pca(L0 + S0, method=method, rank=3 if method != "ialm" else None,
                         callback=cb)
    assert res.n_iter == 2 and not res.converged
    assert res.message == "stopped by callback"
    assert [s[0] for s in seen] == [1, 2] and seen[0][2] == L0.shape


def test_verbose_logs(caplog):
    L0, S0 = pcp_problem(40, 30, 2, 0.05)
    with caplog.at_level("INFO", logger="sparseopt.robust_pca"):
        robust_pca(L0 + S0, verbose=2)
    assert any("residual" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"lam": 0.0}, ValueError, "lam must be > 0"),
        ({"lam": -1.0}, ValueError, "lam must be > 0"),
        ({"lam": np.nan}, ValueError, "lam must be finite"),
        ({"tol": -1e-3}, ValueError, "tol must be >= 0"),
        ({"max_iter": 0}, ValueError, "max_iter must be > 0"),
        ({"max_iter": 2.5}, TypeError, "max_iter must be an int"),
        ({"method": "apg"}, ValueError, "method must be one of"),
        ({"svd_method": "qr"}, ValueError, "svd_method must be one of"),
        ({"sparse_output": "csr"}, ValueError, "sparse_output"),
        ({"method": "accaltproj"}, ValueError, "needs the rank"),
        ({"method": "accaltproj", "rank": 10}, ValueError, "rank must be <= min"),
        ({"method": "accaltproj", "rank": 8, "mask": np.eye(10, 8) == 0}, ValueError,
         "rank must be < min"),
        ({"method": "accaltproj", "rank": 0}, ValueError, "rank must be > 0"),
        ({"method": "accaltproj", "rank": 2, "gamma": 1.0}, ValueError, "gamma"),
        ({"method": "accaltproj", "rank": 2, "beta": -1.0}, ValueError, "beta"),
        ({"method": "accaltproj", "rank": 2, "lam": 0.1}, ValueError, "lam is a PCP"),
        ({"mask": np.ones((3, 3), bool)}, ValueError, "mask must have the shape"),
        ({"mask": np.zeros((10, 8), bool)}, ValueError, "mask observes no entry"),
        ({"mask": np.full((10, 8), 2)}, TypeError, "mask must be a boolean"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    M = np.random.default_rng(0).standard_normal((10, 8))
    with pytest.raises(exc, match=match):
        robust_pca(M, **kwargs)


@pytest.mark.parametrize(
    ("M", "exc", "match"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "M contains NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "M contains infinity"),
        (np.zeros((0, 3)), ValueError, "non-empty"),
        (np.zeros((3, 0)), ValueError, "non-empty"),
        (np.ones(4), ValueError, "2-D"),
        (np.ones((2, 2, 2)), ValueError, "2-D"),
        (np.ones((2, 2), dtype=complex), TypeError, "real numbers"),
        (sp.random(5, 5, density=0.5, format="csr"), TypeError, "dense array"),
    ],
)
def test_bad_matrix(M, exc, match):
    with pytest.raises(exc, match=match):
        robust_pca(M)


# ---------------------------------------------------------------------------
# partial SVD


def test_randomized_svd_matches_lapack():
    from sparseopt.solvers._partial_svd import randomized_svd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 200))
    X += 1e-3 * rng.standard_normal(X.shape)
    U, s, Vt = randomized_svd(X, 12, n_power_iter=2, rng=rng)
    s_ref = np.linalg.svd(X, compute_uv=False)[:12]
    np.testing.assert_allclose(s, s_ref, rtol=1e-8)
    np.testing.assert_allclose(U.T @ U, np.eye(12), atol=1e-12)
    np.testing.assert_allclose(X @ Vt.T, U * s, atol=1e-2)   # tail sigma ~ 3e-2


@pytest.mark.parametrize("method", ["randomized", "lanczos"])
@pytest.mark.parametrize("initial_rank", [1, 10, 60])
def test_thresholded_svd_is_exact_svt(method, initial_rank):
    # the SVT must find every singular value above tau, whatever the rank
    # prediction started from (too small: it grows the request)
    from sparseopt.solvers._partial_svd import ThresholdedSVD

    rng = np.random.default_rng(1)
    s_true = np.concatenate([np.linspace(100, 20, 25), np.linspace(5, 0.1, 175)])
    Uq = np.linalg.qr(rng.standard_normal((300, 200)))[0]
    Vq = np.linalg.qr(rng.standard_normal((200, 200)))[0]
    X = (Uq * s_true) @ Vq.T
    svt = ThresholdedSVD(X.shape, method=method, rng=rng, initial_rank=initial_rank)
    U, s, Vt = svt(X, 10.0, atol=1e-8 * np.linalg.norm(X))
    assert s.shape[0] == 25
    np.testing.assert_allclose(s, s_true[:25], rtol=1e-10)
    np.testing.assert_allclose((U * (s - 10.0)) @ Vt,
                               (Uq[:, :25] * (s_true[:25] - 10.0)) @ Vq[:, :25].T,
                               atol=1e-8)
    assert svt.sv == 26          # prediction for the next call: svp + 1
