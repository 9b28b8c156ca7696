"""Sparse Bayesian regression: fast marginal likelihood, EM-SBL, block SBL."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ARDRegression
from threadpoolctl import threadpool_limits

from sparseopt.bayes import (
    SparseBayesianRegression,
    block_sbl,
    log_marginal_likelihood,
    sbl_regression,
)
from sparseopt.solvers.sbl_em import sbl_em
from sparseopt.solvers.sbl_fast import sbl_fast


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Reference solvers (ARDRegression, ...) run single-threaded like ours:
    on a shared 2-core machine BLAS threads make these small problems slower."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def recovery_problem(seed, n=200, p=1000, k=20, snr_db=20.0):
    """The issue's synthetic problem: unit-norm Gaussian atoms, ±U[0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X /= np.linalg.norm(X, axis=0)
    w = np.zeros(p)
    support = np.sort(rng.choice(p, k, replace=False))
    w[support] = rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 1.5, k)
    signal = X @ w
    sigma = np.linalg.norm(signal) / np.sqrt(n) * 10 ** (-snr_db / 20)
    y = signal + sigma * rng.standard_normal(n)
    return X, y, w, support, sigma


def nmse_db(w_hat, w):
    return 10 * np.log10(np.sum((w_hat - w) ** 2) / np.sum(w**2))


def small_problem(seed=0, n=40, p=60, k=4, noise=0.05):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.uniform(1, 2, k)
    y = X @ w + noise * rng.standard_normal(n)
    return X, y, w


def dense_evidence(X, y, alpha, s2):
    act = np.isfinite(alpha)
    C = s2 * np.eye(X.shape[0]) + (X[:, act] / alpha[act]) @ X[:, act].T
    return multivariate_normal(mean=np.zeros(X.shape[0]), cov=C).logpdf(y)


# ---------------------------------------------------------------------------
# the evidence
# ---------------------------------------------------------------------------
def test_log_marginal_likelihood_matches_dense_gaussian():
    X, y, _ = small_problem(n=15, p=8)
    alpha = np.array([0.5, np.inf, 2.0, 10.0, np.inf, 0.1, 1.0, 3.0])
    np.testing.assert_allclose(log_marginal_likelihood(X, y, alpha, 0.3),
                               dense_evidence(X, y, alpha, 0.3), rtol=1e-12)
    np.testing.assert_allclose(log_marginal_likelihood(sp.csr_matrix(X), y, alpha, 0.3),
                               dense_evidence(X, y, alpha, 0.3), rtol=1e-12)


@pytest.mark.parametrize("solver", ["fast", "em"])
@pytest.mark.parametrize("noise", [None, 0.05**2])
def test_reported_evidence_is_the_evidence(solver, noise):
    X, y, _ = small_problem()
    res = sbl_regression(X, y, solver=solver, noise_variance=noise)
    assert res.converged
    direct = log_marginal_likelihood(X, y, res.alpha, res.noise_variance)
    np.testing.assert_allclose(res.log_marginal_likelihood, direct, rtol=1e-10)
    if solver == "fast":  # running sum of the exact per-action increments
        np.testing.assert_allclose(res.history["log_marginal_likelihood"][-1], direct,
                                   rtol=1e-8)
    if noise is not None:
        assert res.noise_variance == noise


def test_fast_solver_is_a_local_maximum_of_the_evidence():
    """No single add / re-estimate / delete can raise the evidence by more than tol."""
    X, y, _ = small_problem(seed=3)
    s2 = 0.05**2
    res = sbl_fast(X, y, noise_variance=s2, tol=1e-6)
    assert res.converged
    act = res.active
    C = s2 * np.eye(X.shape[0]) + (X[:, act] / res.alpha[act]) @ X[:, act].T
    Ci = np.linalg.inv(C)
    S = np.einsum("ij,ij->j", X, Ci @ X)
    Q = X.T @ Ci @ y
    inside = np.isfinite(res.alpha)
    a = res.alpha[inside]
    s, q = S.copy(), Q.copy()
    s[inside] = a * S[inside] / (a - S[inside])
    q[inside] = a * Q[inside] / (a - S[inside])
    theta = q**2 - s
    # inactive columns: adding one would not increase the evidence
    out = ~inside
    quot = Q[out] ** 2 / S[out]
    gain_add = np.where(theta[out] > 0, 0.5 * (quot - 1 - np.log(quot)), 0.0)
    # active columns: re-estimating alpha at its 1-D optimum s²/θ gains ~nothing
    assert np.all(theta[inside] > 0)
    delta = theta[inside] / s[inside] ** 2 - 1 / a
    gain_re = 0.5 * (delta * Q[inside] ** 2 / (delta * S[inside] + 1)
                     - np.log1p(S[inside] * delta))
    assert gain_add.max(initial=0.0) < 1e-8
    assert gain_re.max() < 1e-8
    # the evidence is flat at the solution: ±1 % changes of any alpha lose evidence
    ll = log_marginal_likelihood(X, y, res.alpha, s2)
    for i in np.flatnonzero(inside)[:5]:
        for f in (0.99, 1.01):
            alpha = res.alpha.copy()
            alpha[i] *= f
            assert log_marginal_likelihood(X, y, alpha, s2) <= ll + 1e-9


@pytest.mark.parametrize("noise", [None, 0.05**2])
def test_em_evidence_is_monotone_without_pruning(noise):
    X, y, _ = small_problem(seed=1, n=30, p=20)
    with pytest.warns(ConvergenceWarning):
        res = sbl_em(X, y, noise_variance=noise, prune=0.0, max_iter=200, tol=0.0)
    h = res.history["log_marginal_likelihood"]
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h).max())


def test_fast_and_em_reach_the_same_optimum():
    X, y, _ = small_problem(seed=2, n=60, p=10)
    fast = sbl_fast(X, y, noise_variance=0.05**2, tol=1e-8)
    gaps = []
    for n_iter in (100, 1000):
        with pytest.warns(ConvergenceWarning):
            em = sbl_em(X, y, noise_variance=0.05**2, prune=0.0, tol=0.0,
                        max_iter=n_iter)
        gaps.append(fast.log_marginal_likelihood - em.log_marginal_likelihood)
        np.testing.assert_allclose(em.x, fast.x, atol=1e-4 * np.abs(fast.x).max())
    # EM approaches the same maximum from below; the γ_i of pruned columns
    # decay like 1/iteration, and so does the evidence gap
    assert 0 < gaps[1] < gaps[0] / 5
    assert gaps[1] < 5e-3


# ---------------------------------------------------------------------------
# agreement with scikit-learn's ARDRegression
# ---------------------------------------------------------------------------
def test_diabetes_matches_ard_regression():
    X, y = load_diabetes(return_X_y=True)
    ard = ARDRegression(tol=1e-8, max_iter=10000).fit(X, y)
    ours = SparseBayesianRegression(tol=1e-8).fit(X, y)
    Xc, yc = X - X.mean(0), y - y.mean()
    lam = np.where(ard.lambda_ < ard.threshold_lambda, ard.lambda_, np.inf)
    ll_ard = log_marginal_likelihood(Xc, yc, lam, 1 / ard.alpha_)
    assert ours.log_marginal_likelihood_ >= ll_ard - 1e-8 * abs(ll_ard)
    # same optimum: same relevant features and predictions (ARD's hyperpriors
    # are 1e-6, so the optima differ by far less than the tolerance used here)
    # ARD never prunes here (its λ threshold is 1e4 in the units of X), but its
    # coefficients on the features we prune are negligible
    inactive = np.setdiff1d(np.arange(X.shape[1]), ours.active_)
    assert inactive.size
    assert np.abs(ard.coef_[inactive]).max() < 1e-5 * np.abs(ard.coef_).max()
    np.testing.assert_allclose(ours.predict(X), ard.predict(X), rtol=1e-5)
    np.testing.assert_allclose(ours.alpha_, ard.alpha_, rtol=1e-5)
    # EM reaches the same optimum when it is not stopped early
    em = SparseBayesianRegression(solver="em", prune=0.0, tol=1e-7,
                                  max_iter=5000).fit(X, y)
    np.testing.assert_allclose(em.log_marginal_likelihood_,
                               ours.log_marginal_likelihood_, rtol=1e-6)
    np.testing.assert_allclose(em.predict(X), ours.predict(X), rtol=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_synthetic_recovery_beats_ard(seed):
    """n=200, p=1000, k=20, 20 dB: exact support ranking and NMSE ≤ ARD's."""
    X, y, w, support, _ = recovery_problem(seed)
    ours = SparseBayesianRegression(fit_intercept=False).fit(X, y)
    top = np.sort(np.argsort(-np.abs(ours.coef_))[: support.size])
    np.testing.assert_array_equal(top, support)
    ard = ARDRegression(fit_intercept=False).fit(X, y)
    assert nmse_db(ours.coef_, w) <= nmse_db(ard.coef_, w)
    ll_ard = log_marginal_likelihood(
        X, y, np.where(ard.lambda_ < 1e4, ard.lambda_, np.inf), 1 / ard.alpha_)
    assert ours.log_marginal_likelihood_ >= ll_ard


def test_known_noise_gives_sparser_models():
    X, y, w, support, sigma = recovery_problem(0)
    learned = sbl_fast(X, y)
    known = sbl_fast(X, y, noise_variance=sigma**2)
    assert known.active.size < learned.active.size
    assert set(support) <= set(known.active)
    assert nmse_db(known.x, w) < nmse_db(learned.x, w)


# ---------------------------------------------------------------------------
# block SBL
# ---------------------------------------------------------------------------
def test_block_sbl_recovers_blocks_and_reduces_to_em():
    rng = np.random.default_rng(0)
    n, n_blocks, d = 40, 20, 4
    X = rng.standard_normal((n, n_blocks * d))
    w = np.zeros(n_blocks * d)
    for b in (3, 11, 17):
        w[b * d:(b + 1) * d] = rng.standard_normal(d) + 2 * np.sign(rng.standard_normal(d))
    y = X @ w + 0.05 * rng.standard_normal(n)
    res = block_sbl(X, y, d, noise_variance=0.05**2)
    gamma_blocks = 1 / res.alpha[::d]
    np.testing.assert_array_equal(np.sort(np.argsort(-gamma_blocks)[:3]), [3, 11, 17])
    assert np.sort(gamma_blocks)[-4] < 1e-3 * np.sort(gamma_blocks)[-3]
    assert nmse_db(res.x, w) < -30
    pruned = block_sbl(X, y, d, noise_variance=0.05**2, prune=1e-3)
    np.testing.assert_array_equal(np.unique(pruned.active // d), [3, 11, 17])
    # the block variant with singleton blocks is EM-SBL
    single = block_sbl(X, y, np.arange(X.shape[1]), noise_variance=0.05**2)
    plain = sbl_em(X, y, noise_variance=0.05**2)
    np.testing.assert_allclose(single.x, plain.x, rtol=1e-12, atol=1e-14)
    # block γ: every coefficient of a block has the same prior precision
    a = res.alpha.reshape(n_blocks, d)
    np.testing.assert_allclose(a[3], a[3, 0])
    h = block_sbl(X, y, d, noise_variance=0.05**2, prune=0.0, tol=1e-6).history
    assert np.all(np.diff(h["log_marginal_likelihood"]) >= -1e-9)


def test_block_sbl_bad_groups():
    X, y, _ = small_problem()
    with pytest.raises(ValueError, match="groups"):
        block_sbl(X, y, np.zeros(3, dtype=int))
    with pytest.raises(TypeError, match="groups"):
        block_sbl(X, y, np.zeros(X.shape[1]))
    with pytest.raises(ValueError, match="groups"):
        block_sbl(X, y, 0)


# ---------------------------------------------------------------------------
# input types, dtypes, weights
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["fast", "em"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_sparse_input_matches_dense(solver, fit_intercept):
    rng = np.random.default_rng(4)
    X = sp.random(50, 30, density=0.3, random_state=4, format="csr")
    X = X + sp.eye(50, 30)   # no empty columns
    w = np.zeros(30)
    w[[2, 9, 21]] = [1.5, -2.0, 1.0]
    y = X @ w + 3.0 + 0.01 * rng.standard_normal(50)
    sw = rng.uniform(0.5, 2.0, 50)
    kw = dict(solver=solver, fit_intercept=fit_intercept, sample_weight=sw)
    dense = sbl_regression(X.toarray(), y, **kw)
    for Xs in (X.tocsr(), X.tocsc(), sp.csr_array(X)):
        res = sbl_regression(Xs, y, **kw)
        np.testing.assert_array_equal(res.active, dense.active)
        np.testing.assert_allclose(res.x, dense.x, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(res.intercept, dense.intercept, rtol=1e-8, atol=1e-10)
    X64 = X.tocsr()
    X64.indices = X64.indices.astype(np.int64)
    X64.indptr = X64.indptr.astype(np.int64)
    res = sbl_regression(X64, y, **kw)
    np.testing.assert_allclose(res.x, dense.x, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("solver", ["fast", "em"])
def test_float32(solver):
    X, y, _ = small_problem()
    r64 = SparseBayesianRegression(solver=solver).fit(X, y)
    r32 = SparseBayesianRegression(solver=solver).fit(X.astype(np.float32),
                                                      y.astype(np.float32))
    assert r32.coef_.dtype == np.float32
    assert r32.predict(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(r32.active_, r64.active_)
    np.testing.assert_allclose(r32.coef_, r64.coef_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("solver", ["fast", "em"])
def test_integer_weights_equal_repeated_samples(solver):
    X, y, _ = small_problem(n=30, p=12)
    rng = np.random.default_rng(0)
    sw = rng.integers(0, 3, X.shape[0])
    a = sbl_regression(X, y, solver=solver, sample_weight=sw, fit_intercept=True)
    b = sbl_regression(np.repeat(X, sw, axis=0), np.repeat(y, sw), solver=solver,
                       fit_intercept=True)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(a.noise_variance, b.noise_variance, rtol=1e-7)
    np.testing.assert_allclose(a.log_marginal_likelihood, b.log_marginal_likelihood,
                               rtol=1e-9)


def test_intercept_absorbs_a_shift():
    X, y, _ = small_problem()
    a = SparseBayesianRegression().fit(X, y)
    b = SparseBayesianRegression().fit(X, y + 7.5)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.intercept_, a.intercept_ + 7.5, rtol=1e-12)


def test_predict_std_matches_posterior():
    X, y, _ = small_problem()
    reg = SparseBayesianRegression().fit(X, y)
    Xt = np.random.default_rng(9).standard_normal((5, X.shape[1]))
    mean, std = reg.predict(Xt, return_std=True)
    act = reg.active_
    B = Xt[:, act] - X[:, act].mean(0)
    var = np.einsum("ij,jk,ik->i", B, reg.sigma_, B) + 1 / reg.alpha_
    np.testing.assert_allclose(std, np.sqrt(var), rtol=1e-10)
    # sigma_ is the posterior covariance of the active weights
    Xc = X[:, act] - X[:, act].mean(0)
    Sigma = np.linalg.inv(reg.alpha_ * Xc.T @ Xc + np.diag(reg.lambda_[act]))
    np.testing.assert_allclose(reg.sigma_, Sigma, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(mean, Xt @ reg.coef_ + reg.intercept_, rtol=1e-12)


def test_kernel_rvr_on_sinc():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-10, 10, 100))[:, None]
    y = np.sinc(x[:, 0] / np.pi) + 0.05 * rng.standard_normal(100)
    reg = SparseBayesianRegression(kernel="rbf", gamma=0.1).fit(x, y)
    xt = np.linspace(-10, 10, 200)[:, None]
    err = reg.predict(xt) - np.sinc(xt[:, 0] / np.pi)
    assert np.sqrt(np.mean(err**2)) < 0.05
    assert reg.relevance_vectors_.shape[0] == reg.active_.size < 20
    pre = SparseBayesianRegression(kernel="precomputed").fit(
        np.exp(-0.1 * (x - x.T) ** 2), y)
    np.testing.assert_array_equal(pre.active_, reg.active_)
    np.testing.assert_allclose(pre.coef_, reg.coef_, rtol=1e-8)


# ---------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["fast", "em"])
def test_edge_cases(solver):
    # one sample: a (nearly) noiseless fit with a known noise level
    res = sbl_regression(np.array([[1.0, 2.0]]), np.array([3.0]), solver=solver,
                         noise_variance=1e-8)
    np.testing.assert_allclose(np.array([[1.0, 2.0]]) @ res.x, 3.0, rtol=1e-6)
    res = sbl_regression(np.array([[1.0, 2.0]]), np.array([3.0]), solver=solver)
    assert res.converged and np.isfinite(res.x).all() and res.noise_variance > 0
    # one feature
    x = np.linspace(0, 1, 20)[:, None]
    res = sbl_regression(x, 2 * x[:, 0], solver=solver, fit_intercept=True)
    np.testing.assert_allclose(res.x, [2.0], rtol=1e-5)
    # all-zero target: the empty model
    res = sbl_regression(np.eye(5, 3), np.zeros(5), solver=solver)
    np.testing.assert_array_equal(res.x, 0.0)
    assert res.active.size == 0 and res.converged
    # zero and duplicated columns
    X, y, w = small_problem(n=30, p=10)
    X = np.hstack([X, np.zeros((30, 1)), X[:, :3]])
    res = sbl_regression(X, y, solver=solver, noise_variance=0.05**2)
    assert 10 not in res.active
    np.testing.assert_allclose(X @ res.x, X[:, :10] @ w, atol=0.1)


def test_estimator_with_zero_intercept_target():
    reg = SparseBayesianRegression().fit(np.ones((4, 2)), np.full(4, 3.0))
    np.testing.assert_allclose(reg.predict(np.zeros((2, 2))), 3.0)


# ---------------------------------------------------------------------------
# bad input, no mutation, warnings, callbacks
# ---------------------------------------------------------------------------
def test_bad_input():
    X, y, _ = small_problem()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        sbl_fast(Xn, y)
    yi = y.copy()
    yi[1] = np.inf
    with pytest.raises(ValueError, match="y contains infinity"):
        sbl_em(X, yi)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        sbl_fast(X, y[:-1])
    with pytest.raises(ValueError, match="noise_variance must be > 0"):
        sbl_fast(X, y, noise_variance=0.0)
    with pytest.raises(ValueError, match="noise_variance"):
        SparseBayesianRegression(noise_variance=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        sbl_fast(X, y, sample_weight=-np.ones(X.shape[0]))
    with pytest.raises(ValueError, match="solver"):
        sbl_regression(X, y, solver="newton")
    with pytest.raises(ValueError, match="tol"):
        sbl_fast(X, y, tol=-1.0)
    with pytest.raises(ValueError, match="y must have 1"):
        sbl_fast(X, np.c_[y, y])
    Xs = sp.csr_matrix(X)
    Xs.data[0] = np.inf
    with pytest.raises(ValueError, match="X contains infinity"):
        sbl_fast(Xs, y)


@pytest.mark.parametrize("solver", ["fast", "em"])
def test_inputs_not_modified(solver):
    X, y, _ = small_problem()
    sw = np.linspace(0.5, 1.5, X.shape[0])
    Xs = sp.csr_matrix(X)
    copies = [a.copy() for a in (X, y, sw, Xs.data)]
    sbl_regression(X, y, solver=solver, sample_weight=sw, fit_intercept=True)
    sbl_regression(Xs, y, solver=solver, sample_weight=sw, fit_intercept=True)
    for a, b in zip((X, y, sw, Xs.data), copies, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver", ["fast", "em"])
def test_convergence_warning_and_callback(solver):
    X, y, _, _, _ = recovery_problem(0, n=60, p=120, k=5)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = sbl_regression(X, y, solver=solver, max_iter=3)
    assert not res.converged and res.n_iter == 3
    seen = []

    def stop_after_four(result):
        seen.append(result.log_marginal_likelihood)
        return len(seen) == 4

    res = sbl_regression(X, y, solver=solver, callback=stop_after_four)
    assert len(seen) == 4 and res.n_iter == 4
    assert not res.converged and res.message == "stopped by callback"
    assert res.x.shape == (120,)


def test_verbose_logs_progress(caplog):
    X, y, _ = small_problem()
    with caplog.at_level("INFO", logger="sparseopt"):
        sbl_fast(X, y, verbose=2)
    assert any(r.name == "sparseopt.sbl_fast" and "log_marginal_likelihood" in
               r.getMessage() for r in caplog.records)
