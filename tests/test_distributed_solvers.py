"""Distributed solvers against their references, on dask's local scheduler.

The same code runs on a cluster (tests/test_distributed.py runs it on a
LocalCluster, with a worker killed mid-solve); here dask's threaded scheduler
and the in-process executor keep the many comparisons fast.

Tolerances follow from the stopping rules: both our run and scikit-learn's stop
when the duality gap is at most ``tol * ||y - mean(y)||^2 / n`` (n-scaled as
the objective), so their objectives differ by at most the sum of the two gaps;
for the coefficients we solve to ``tol=1e-10`` where the Lasso solution is
unique and compare at 1e-6.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("dask")
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseopt.distributed import (
    ElasticNet,
    Lasso,
    SparseLogisticRegression,
    enet,
    from_scipy,
    l1_logistic,
    lasso,
)

pytestmark = pytest.mark.dist


def _problem(n=120, p=25, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, p), density=0.3, format="csr", random_state=seed, dtype=dtype)
    w = np.zeros(p)
    w[:4] = rng.standard_normal(4) * 3
    y = (X @ w + 0.1 * rng.standard_normal(n) + 1.5).astype(dtype)
    return X, y


def _ls_objective(X, y, w, b, alpha, l1_ratio=1.0):
    r = y - X @ w - b
    return (0.5 * np.mean(r * r) + alpha * l1_ratio * np.abs(w).sum()
            + 0.5 * alpha * (1 - l1_ratio) * (w @ w))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.4])
def test_lasso_enet_match_sklearn(fit_intercept, l1_ratio):
    from sklearn.linear_model import ElasticNet as SkEnet

    X, y = _problem()
    alpha = 0.02
    X0, y0 = X.copy(), y.copy()
    tol = 1e-10
    sk = SkEnet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, tol=tol,
                max_iter=100_000).fit(X, y)
    for Xin in (from_scipy(X, 40), X):  # dask (threads) and in-process
        res = enet(Xin, y, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                   tol=tol, max_iter=20_000)
        assert res.converged and res.stop_crit <= tol
        yc2 = np.sum((y - (y.mean() if fit_intercept else 0.0)) ** 2) / len(y)
        ours = _ls_objective(X, y, res.coef, res.intercept, alpha, l1_ratio)
        theirs = _ls_objective(X, y, sk.coef_, sk.intercept_, alpha, l1_ratio)
        np.testing.assert_allclose(ours, res.objective, rtol=1e-12)
        assert abs(ours - theirs) <= 2 * tol * yc2 + 1e-15
        np.testing.assert_allclose(res.coef, sk.coef_, atol=1e-6)
        np.testing.assert_allclose(res.intercept, sk.intercept_, atol=1e-6)
    np.testing.assert_array_equal(X.toarray(), X0.toarray())
    np.testing.assert_array_equal(y, y0)


def test_lasso_default_tol_objective_bound_and_dense_dask_input():
    import dask.array as da
    from sklearn.linear_model import Lasso as SkLasso

    X, y = _problem(seed=1)
    alpha, tol = 0.05, 1e-4
    res = lasso(da.from_array(X.toarray(), chunks=(50, -1)), da.from_array(y, chunks=30),
                alpha=alpha, tol=tol)
    sk = SkLasso(alpha=alpha, tol=tol).fit(X, y)
    yc2 = np.var(y)
    assert res.converged
    assert abs(_ls_objective(X, y, res.coef, res.intercept, alpha)
               - _ls_objective(X, y, sk.coef_, sk.intercept_, alpha)) <= 2 * tol * yc2


def test_l1_logistic_matches_sklearn_and_kkt():
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    X, y = _problem(seed=2)
    yl = np.where(y > np.median(y), 1.0, -1.0)
    alpha, n = 0.01, X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # penalty= deprecation
        ref = LogisticRegression(penalty="l1", C=1 / (n * alpha), solver="liblinear",
                                 fit_intercept=False, tol=1e-12, max_iter=100_000).fit(X, yl)
    res = l1_logistic(from_scipy(X, 30), yl, alpha=alpha, tol=1e-9, max_iter=20_000,
                      fit_intercept=False)
    assert res.converged

    def obj(w, b):
        return np.mean(np.logaddexp(0, -yl * (X @ w + b))) + alpha * np.abs(w).sum()

    np.testing.assert_allclose(obj(res.coef, 0.0), res.objective, rtol=1e-12)
    # liblinear stops on its own (looser) criterion: compare at its accuracy
    np.testing.assert_allclose(res.coef, ref.coef_.ravel(), atol=1e-6)
    assert obj(res.coef, 0.0) <= obj(ref.coef_.ravel(), 0.0) + 1e-12
    # with an intercept: recompute the KKT violation independently
    tol = 1e-8
    res = l1_logistic(X, yl, alpha=alpha, tol=tol, max_iter=20_000)
    g = -yl * expit(-yl * (X @ res.coef + res.intercept)) / n
    gw, gb = X.T @ g, g.sum()
    w = res.coef
    viol = np.where(w != 0, np.abs(gw + alpha * np.sign(w)), np.maximum(np.abs(gw) - alpha, 0))
    assert max(viol.max(), abs(gb)) <= tol * (1 + 1e-6)


def test_float32_int64_indices_one_feature_one_sample_zero_target():
    X, y = _problem(dtype=np.float32)
    X64 = sp.csr_array((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                       shape=X.shape)
    res = lasso(from_scipy(X64, 50), y, alpha=0.02, tol=1e-5)
    assert res.coef.dtype == np.float32 and res.converged
    ref = lasso(X.astype(np.float64), y.astype(np.float64), alpha=0.02, tol=1e-10)
    np.testing.assert_allclose(res.coef, ref.coef, atol=2e-3)
    # one feature
    r1 = lasso(X[:, [0]], y, alpha=0.01, tol=1e-10)
    assert r1.coef.shape == (1,) and r1.converged
    # one sample: the intercept absorbs it, w = 0
    r2 = lasso(X[:1], y[:1], alpha=0.1, tol=1e-10)
    np.testing.assert_array_equal(r2.coef, 0.0)
    np.testing.assert_allclose(r2.intercept, y[0], rtol=1e-6)
    # all-zero target: w = 0 is optimal and certified at the first check
    r3 = lasso(from_scipy(X, 40), np.zeros(X.shape[0], np.float32), alpha=0.1)
    assert r3.converged and r3.n_iter == 0
    np.testing.assert_array_equal(r3.coef, 0.0)


def test_bad_input_errors():
    import dask.array as da

    X, y = _problem()
    with pytest.raises(ValueError, match="alpha must be > 0"):
        lasso(X, y, alpha=-1.0)
    with pytest.raises(ValueError, match="l1_ratio"):
        enet(X, y, alpha=1.0, l1_ratio=1.5)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        lasso(X, y[:-1], alpha=0.1)
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        lasso(X, y_nan, alpha=0.1)
    Xd = X.toarray()
    Xd[0, 0] = np.inf
    with pytest.raises(ValueError, match="X contains"):  # found by the first pass over the blocks
        lasso(da.from_array(Xd, chunks=40), y, alpha=0.1)
    with pytest.raises(ValueError, match="labels -1 and \\+1"):
        l1_logistic(X, y, alpha=0.1)
    with pytest.raises(RuntimeError, match="no Dask scheduler reachable"):
        import dask

        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            lasso(X, y, alpha=0.1, client="tcp://127.0.0.1:9")


def test_convergence_warning_and_callback_stop():
    X, y = _problem()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = lasso(from_scipy(X, 40), y, alpha=0.001, tol=1e-14, max_iter=5)
    assert not res.converged and res.n_iter == 5
    seen = []

    def cb(r):
        seen.append(r.n_iter)
        return len(seen) == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = lasso(X, y, alpha=0.001, tol=1e-14, max_iter=1000, check_every=3, callback=cb)
    assert seen == [0, 3] and res.message == "stopped by callback" and not res.converged


def test_estimators_accept_dask_arrays():
    import dask.array as da

    X, y = _problem()
    dX = from_scipy(X, 40)
    dy = da.from_array(y, chunks=40)
    model = Lasso(alpha=0.02, tol=1e-10, max_iter=20_000).fit(dX, dy)
    ref = Lasso(alpha=0.02, tol=1e-10, max_iter=20_000).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-8)
    pred = model.predict(dX)
    assert isinstance(pred, da.Array)
    np.testing.assert_allclose(pred.compute(), ref.predict(X), rtol=1e-7, atol=1e-7)
    en = ElasticNet(alpha=0.02, l1_ratio=0.5).fit(dX, dy)
    assert en.coef_.shape == (X.shape[1],)
    labels = np.where(y > np.median(y), "b", "a")
    clf = SparseLogisticRegression(alpha=0.01, tol=1e-8).fit(dX, da.from_array(labels, 40))
    ref_clf = SparseLogisticRegression(alpha=0.01, tol=1e-8).fit(X, labels)
    np.testing.assert_allclose(clf.coef_, ref_clf.coef_, atol=1e-6)
    assert list(clf.classes_) == ["a", "b"]
    np.testing.assert_array_equal(clf.predict(dX).compute(), ref_clf.predict(X))
    np.testing.assert_allclose(clf.predict_proba(dX).compute(), ref_clf.predict_proba(X),
                               atol=1e-6)
    with pytest.raises(ValueError, match="expecting 25 features"):
        model.predict(from_scipy(X[:, :5], 40))


@parametrize_with_checks([Lasso(alpha=0.1), ElasticNet(alpha=0.1),
                          SparseLogisticRegression(alpha=0.01)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---------------------------------------------------------------------------
# Sinkhorn and robust PCA


def _ot_problem(seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((40, 2)), rng.random((30, 2))
    M = ((x[:, None] - y[None]) ** 2).sum(-1)
    a = rng.random(40) + 0.1
    b = rng.random(30) + 0.1
    return a / a.sum(), b / b.sum(), M


def test_sinkhorn_matches_pot():
    import dask.array as da
    import ot

    from sparseopt.distributed import sinkhorn

    a, b, M = _ot_problem()
    M0 = M.copy()
    reg = 0.05
    P_ref, log = ot.sinkhorn(a, b, M, reg, stopThr=1e-9, numItermax=1000, log=True)
    for Min in (M, da.from_array(M, chunks=(12, 10))):
        res = sinkhorn(a, b, Min, reg, tol=1e-9, row_chunks=12)
        assert res.converged and res.n_iter == log["niter"]  # the same iterates as POT
        P = res.plan.compute()
        np.testing.assert_allclose(P, P_ref, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(res.cost, np.sum(P_ref * M), rtol=1e-10)
        np.testing.assert_allclose(P.sum(0), b, atol=1e-9)  # the stopping rule
    np.testing.assert_array_equal(M, M0)
    # float32 cost: float32 plan
    res32 = sinkhorn(a, b, M.astype(np.float32), reg, tol=1e-6)
    assert res32.plan.dtype == np.float32
    np.testing.assert_allclose(res32.plan.compute(), P_ref, atol=1e-6)


def test_sinkhorn_errors_and_warning():
    from sparseopt.distributed import sinkhorn

    a, b, M = _ot_problem()
    with pytest.raises(ValueError, match="reg must be > 0"):
        sinkhorn(a, b, M, -1.0)
    with pytest.raises(ValueError, match="same mass"):
        sinkhorn(a, 2 * b, M, 0.1)
    with pytest.raises(ValueError, match="shapes"):
        sinkhorn(a[:-1], b, M, 0.1)
    with pytest.raises(ValueError, match="M contains NaN"):
        sinkhorn(a, b, np.where(M > 0.5, np.nan, M), 0.1)
    with pytest.warns(ConvergenceWarning):
        res = sinkhorn(a, b, M, 0.01, max_iter=3)
    assert not res.converged


def test_robust_pca_tall_matches_single_machine():
    import dask.array as da

    from sparseopt.decomposition import robust_pca as robust_pca_single
    from sparseopt.distributed import robust_pca

    rng = np.random.default_rng(0)
    L0 = rng.standard_normal((300, 3)) @ rng.standard_normal((3, 20))
    S0 = np.where(rng.random((300, 20)) < 0.05, 10.0, 0.0)
    M = L0 + S0
    tol = 1e-7
    L, S, info = robust_pca(da.from_array(M, chunks=(75, 20)), tol=tol)
    assert info["converged"] and info["residual"][-1] <= tol
    ref = robust_pca_single(M, tol=tol, svd_method="full")
    Ln, Sn = L.compute(), S.compute()
    # the same IALM iterates (exact SVDs on both sides): equal to rounding
    np.testing.assert_allclose(Ln, ref.low_rank, atol=1e-8 * np.abs(M).max())
    np.testing.assert_allclose(Sn, np.asarray(ref.sparse.todense() if hasattr(
        ref.sparse, "todense") else ref.sparse), atol=1e-8 * np.abs(M).max())
    assert info["rank"] == ref.rank
    np.testing.assert_allclose(np.linalg.norm(M - Ln - Sn) / np.linalg.norm(M), 0, atol=tol)
    with pytest.raises(ValueError, match="must be tall"):
        robust_pca(M.T)
