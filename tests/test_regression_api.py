"""Sparse regression API: paths, CV, edge cases, bad input, warnings, callbacks."""

import logging
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sklm
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sparseopt.linear_model import (
    ElasticNet,
    GroupLasso,
    Lasso,
    LassoCV,
    MCPRegression,
    SparseLogisticRegression,
    enet_path,
    lasso_path,
)
from sparseopt.solvers.regression import l1_penalty, prepare_design, solve


def _data(n=50, p=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[:5] = [3.0, -2.0, 1.5, 1.0, -1.0]
    y = X @ w + 0.3 * rng.standard_normal(n) + 2.0
    return X, y


# --------------------------------------------------------------------------
# paths and cross-validation
# --------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_lasso_path_matches_sklearn(sparse):
    X, y = _data()
    Xin = sp.csc_matrix(X) if sparse else X
    tol = 1e-9
    ours = lasso_path(Xin, y, n_alphas=10, eps=1e-2, tol=tol)
    _, coefs, _ = sklm.lasso_path(X, y, alphas=ours.alphas, tol=1e-14,
                                  max_iter=100_000)
    np.testing.assert_allclose(ours.alphas[0], np.max(np.abs(X.T @ y)) / len(y))
    assert ours.converged
    for k, a in enumerate(ours.alphas):
        def obj(w, a=a):
            return 0.5 * np.mean((y - X @ w) ** 2) + a * np.abs(w).sum()
        p0 = 0.5 * np.mean(y ** 2)
        assert obj(ours.coefs[:, k]) - obj(coefs[:, k]) <= tol * p0
        assert ours.stop_crits[k] <= tol
    np.testing.assert_array_equal(ours.coefs[:, 0], 0.0)


def test_enet_path_with_intercept_equals_single_fits():
    X, y = _data(seed=1)
    tol = 1e-11
    path = enet_path(X, y, l1_ratio=0.7, n_alphas=6, eps=0.05, fit_intercept=True,
                     tol=tol)
    p0 = 0.5 * np.var(y)
    for k, a in enumerate(path.alphas):
        m = ElasticNet(alpha=a, l1_ratio=0.7, tol=tol).fit(X, y)
        # the objective is a (1 - l1_ratio)-strongly convex: a gap g bounds
        # ||w - w*||^2 <= 2 g / (alpha (1 - l1_ratio)), for both solutions
        bound = 2 * np.sqrt(2 * tol * p0 / (a * 0.3))
        assert np.linalg.norm(path.coefs[:, k] - m.coef_) <= bound
        np.testing.assert_allclose(path.intercepts[k], m.intercept_,
                                   atol=bound * np.abs(X.mean(0)).sum() + 1e-12)


def test_path_callback_stops_and_bad_grid():
    X, y = _data()
    seen = []
    res = lasso_path(X, y, n_alphas=10, callback=lambda r: seen.append(r.alpha) or
                     len(seen) == 3)
    assert len(seen) == 3 and res.coefs.shape == (80, 3)
    assert "callback" in res.message
    with pytest.raises(ValueError, match="alphas"):
        lasso_path(X, y, alphas=[0.1, -1.0])
    with pytest.raises(ValueError, match="l1_ratio"):
        enet_path(X, y, l1_ratio=1.5)
    with pytest.raises(ValueError, match="eps"):
        lasso_path(X, y, eps=0.0)


def test_lasso_cv_matches_sklearn():
    X, y = _data(n=60, p=40, seed=3)
    alphas = np.geomspace(1.0, 1e-3, 12)
    cv = KFold(4)
    ours = LassoCV(alphas=alphas, cv=cv, tol=1e-10).fit(X, y)
    ref = sklm.LassoCV(alphas=alphas, cv=cv, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(ours.alphas_, ref.alphas_)
    np.testing.assert_allclose(ours.mse_path_, ref.mse_path_, rtol=1e-5)
    assert ours.alpha_ == ref.alpha_
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)


# --------------------------------------------------------------------------
# scikit-learn composition
# --------------------------------------------------------------------------
def test_pipeline_and_grid_search():
    X, y = _data(n=80, p=30, seed=4)
    pipe = make_pipeline(StandardScaler(), Lasso(tol=1e-8))
    gs = GridSearchCV(pipe, {"lasso__alpha": [0.01, 0.1, 1.0]}, cv=3).fit(X, y)
    ref = GridSearchCV(make_pipeline(StandardScaler(), sklm.Lasso(tol=1e-10)),
                       {"lasso__alpha": [0.01, 0.1, 1.0]}, cv=3).fit(X, y)
    assert gs.best_params_ == ref.best_params_
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], rtol=1e-5)
    yb = (y > np.median(y)).astype(int)
    gs = GridSearchCV(make_pipeline(StandardScaler(), SparseLogisticRegression()),
                      {"sparselogisticregression__alpha": [0.001, 0.05]}, cv=3)
    gs.fit(X, yb)
    assert gs.score(X, yb) > 0.8


# --------------------------------------------------------------------------
# edge cases
# --------------------------------------------------------------------------
def test_float32_follows_input_and_matches_float64():
    X, y = _data()
    m64 = Lasso(alpha=0.1, tol=1e-10).fit(X, y)
    m32 = Lasso(alpha=0.1, tol=1e-10).fit(X.astype(np.float32), y.astype(np.float32))
    assert m32.coef_.dtype == np.float32
    assert m32.predict(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(m32.coef_, m64.coef_, atol=1e-5)
    ms = Lasso(alpha=0.1, tol=1e-10).fit(sp.csr_matrix(X.astype(np.float32)), y)
    assert ms.coef_.dtype == np.float32


def test_sparse_formats_and_int64_indices():
    X, y = _data()
    ref = Lasso(alpha=0.1, tol=1e-10).fit(X, y).coef_
    csc = sp.csc_matrix(X)
    csc64 = csc.copy()
    csc64.indices = csc64.indices.astype(np.int64)
    csc64.indptr = csc64.indptr.astype(np.int64)
    for Xs in (csc, csc64, sp.csr_matrix(X), sp.coo_matrix(X), sp.csr_array(X)):
        np.testing.assert_allclose(Lasso(alpha=0.1, tol=1e-10).fit(Xs, y).coef_, ref,
                                   atol=1e-9)


def test_sparseopt_csr_input():
    CSR = pytest.importorskip("sparseopt.formats").CSR
    X, y = _data()
    A = CSR.from_scipy(sp.csr_matrix(X))
    m = Lasso(alpha=0.1, tol=1e-10).fit(A, y)
    np.testing.assert_allclose(m.coef_, Lasso(alpha=0.1, tol=1e-10).fit(X, y).coef_,
                               atol=1e-9)
    np.testing.assert_allclose(m.predict(A), m.predict(X))


@pytest.mark.parametrize("sparse", [False, True])
def test_one_sample_one_feature_constant_target(sparse):
    conv = sp.csc_matrix if sparse else np.asarray
    # one feature: the Lasso has the closed form soft-threshold(x^T y_c / n) / var
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 1))
    y = 2 * x[:, 0] + 1
    m = Lasso(alpha=0.1, tol=1e-12).fit(conv(x), y)
    xc = x[:, 0] - x.mean()
    expect = max(abs(xc @ (y - y.mean())) / 30 - 0.1, 0) / (xc @ xc / 30)
    np.testing.assert_allclose(m.coef_, [expect], rtol=1e-9)
    # one sample: intercept absorbs everything
    m = Lasso(alpha=0.1).fit(conv(np.array([[1.0, 2.0, 3.0]])), [5.0])
    np.testing.assert_array_equal(m.coef_, 0.0)
    np.testing.assert_allclose(m.intercept_, 5.0)
    # all-zero and constant targets
    X, _ = _data()
    for Est in (Lasso, ElasticNet, MCPRegression, GroupLasso):
        m = Est(alpha=0.1).fit(conv(X), np.zeros(50))
        np.testing.assert_array_equal(m.coef_, 0.0)
        m = Est(alpha=0.1).fit(conv(X), np.full(50, 3.0))
        np.testing.assert_array_equal(m.coef_, 0.0)
        np.testing.assert_allclose(m.intercept_, 3.0)


def test_zero_and_duplicate_columns():
    X, y = _data(p=20)
    X[:, 3] = 0.0
    X[:, 4] = 7.0   # constant: zero after centring
    X[:, 5] = X[:, 0]
    m = Lasso(alpha=0.05, tol=1e-10).fit(X, y)
    assert m.coef_[3] == 0 and m.coef_[4] == 0
    ref = sklm.Lasso(alpha=0.05, tol=1e-14, max_iter=100_000).fit(X, y)

    def obj(w, b):
        return 0.5 * np.mean((y - X @ w - b) ** 2) + 0.05 * np.abs(w).sum()

    assert obj(m.coef_, m.intercept_) - obj(ref.coef_, ref.intercept_) <= 1e-9


# --------------------------------------------------------------------------
# bad input and input immutability
# --------------------------------------------------------------------------
def test_bad_input_errors_name_the_argument():
    X, y = _data()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Lasso().fit(Xn, y)
    Xi = X.copy()
    Xi[1, 1] = np.inf
    with pytest.raises(ValueError, match=r"[Ii]nf"):
        Lasso().fit(sp.csc_matrix(Xi), y)
    yn = y.copy()
    yn[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Lasso().fit(X, yn)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Lasso().fit(X, y[:-1])
    for bad in (-1.0, np.inf, np.nan, 0.0):
        with pytest.raises(ValueError, match="alpha"):
            Lasso(alpha=bad).fit(X, y)
    with pytest.raises(ValueError, match="l1_ratio"):
        ElasticNet(l1_ratio=1.5).fit(X, y)
    with pytest.raises(ValueError, match="l1_ratio"):
        ElasticNet(l1_ratio=-0.1).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        Lasso().fit(X, y, sample_weight=-np.ones(50))
    with pytest.raises(ValueError, match="groups"):
        GroupLasso(groups=[10, 10]).fit(X, y)
    with pytest.raises(ValueError, match="groups"):
        GroupLasso(groups=[[0, 1], [1, 2]] + [[i] for i in range(3, 80)]).fit(X, y)
    with pytest.raises(ValueError, match="groups"):
        GroupLasso(groups=3).fit(X, y)
    with pytest.raises(ValueError, match="weights"):
        GroupLasso(groups=4, weights=np.ones(3)).fit(X, y)
    with pytest.raises(ValueError, match="gamma"):
        MCPRegression(gamma=0.5).fit(X, y)
    with pytest.raises(ValueError, match="X"):
        prepare_design(np.ones((3, 2)), np.ones(4))


@pytest.mark.parametrize("sparse", [False, True])
def test_inputs_not_modified(sparse):
    X, y = _data()
    sw = np.random.default_rng(0).uniform(0.5, 2, 50)
    Xin = sp.csc_matrix(X) if sparse else np.asfortranarray(X)
    copies = (Xin.copy(), y.copy(), sw.copy())
    for est in (Lasso(alpha=0.05), ElasticNet(alpha=0.05), GroupLasso(groups=4),
                MCPRegression(alpha=0.1)):
        est.fit(Xin, y, sample_weight=sw)
    SparseLogisticRegression(alpha=0.01).fit(Xin, (y > 2).astype(int),
                                              sample_weight=sw)
    if sparse:
        np.testing.assert_array_equal(Xin.toarray(), copies[0].toarray())
    else:
        np.testing.assert_array_equal(Xin, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(sw, copies[2])


# --------------------------------------------------------------------------
# convergence reporting
# --------------------------------------------------------------------------
def test_convergence_warning_when_max_iter_hit():
    X, y = _data(n=40, p=200)
    with pytest.warns(ConvergenceWarning, match="relative duality gap"):
        m = Lasso(alpha=0.01, tol=1e-14, max_iter=1).fit(X, y)
    assert m.n_iter_ == 1
    assert m.stop_crit_ > 1e-14
    with pytest.warns(ConvergenceWarning, match="fixed-point"):
        MCPRegression(alpha=0.05, tol=1e-14, max_iter=1).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        Lasso(alpha=0.01, tol=1e-6).fit(X, y)


def test_callback_stops_and_history_is_monotone():
    X, y = _data(n=40, p=200)
    d = prepare_design(X, y)
    calls = []

    def cb(res):
        calls.append(res.stop_crit)
        return len(calls) == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)   # no warning if stopped
        r = solve(d, l1_penalty(0.01), tol=1e-14, callback=cb)
    assert len(calls) == 2 and r.message == "stopped by callback"
    assert not r.converged
    r = solve(d, l1_penalty(0.01), tol=1e-12)
    assert r.converged and r.message == "converged"
    # the objective never increases across outer iterations
    assert np.all(np.diff(r.history["objective"]) <= 1e-12 * r.history["objective"][0])
    assert r.history["stop_crit"][-1] <= 1e-12


def test_verbose_logs(caplog):
    X, y = _data()
    with caplog.at_level(logging.INFO, logger="sparseopt"):
        Lasso(alpha=0.1, verbose=2, tol=1e-10).fit(X, y)
    assert any("stop_crit" in rec.getMessage() for rec in caplog.records)
