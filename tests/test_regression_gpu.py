"""Sparse regression on device arrays: the generic (FISTA) path against the CPU solver.

No GPU here: the generic path runs on ``array_api_strict`` arrays through a
stand-in backend (``tests/xp_strict_backend.py``: the estimators dispatch to
it exactly as they do for CuPy arrays) and, with ``solver="fista"``, on NumPy
through the CPU backend.  Both must agree with the working-set coordinate
descent (the CPU solver) to the tolerance that follows from the common
stopping rule: each result's objective is within ``tol * P(0)`` of the optimum
(relative duality gap), so the objectives differ by at most ``2 tol P(0)`` and,
where the objective is ``mu``-strongly convex, the coefficients by at most
``2 sqrt(2 tol P(0) / mu)``.  ``gpu``-marked tests compare CuPy with NumPy on a
device::

    pip install -e ".[test,gpu]"
    python -m pytest -m gpu tests/test_regression_gpu.py
"""

import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from sparseopt.linear_model import (
    ElasticNet,
    GroupLasso,
    L0Regression,
    Lasso,
    LassoCV,
    MCPRegression,
    SCADRegression,
    SparseLogisticRegression,
    enet_path,
    lasso_path,
)
from sparseopt.solvers.regression import l1_penalty, prepare_design, solve
from sparseopt.solvers.regression._fista import solve_fista
from sparseopt.solvers.regression._xp import CSRParts, prepare_design_xp
from tests.xp_strict_backend import registered

xs = pytest.importorskip("array_api_strict")
_STRICT = type(xs.asarray(0.0))

TOL = 1e-10


@pytest.fixture
def strict():
    with registered() as backend:
        yield backend


def _data(n=80, p=20, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X[:, :4] += 0.5 * X[:, [4]]
    w = np.zeros(p)
    w[:5] = [2.0, -3.0, 1.5, 0.0, 2.5]
    y = X @ w + 0.5 * rng.standard_normal(n) + 1.0
    return X.astype(dtype), y.astype(dtype)


def _strict_csr(S):
    S = sp.csr_array(S)
    return CSRParts(xs.asarray(S.indptr), xs.asarray(S.indices), xs.asarray(S.data), S.shape)


def _to_dev(X, y, sw=None):
    Xd = _strict_csr(X) if sp.issparse(X) else xs.asarray(X)
    return Xd, xs.asarray(y), None if sw is None else xs.asarray(sw)


def _host(a):
    return np.asarray(a)


def _quad_obj(X, y, w, b, sw, pen):
    s = np.full(len(y), 1 / len(y)) if sw is None else sw / sw.sum()
    r = y - X @ w - b
    return 0.5 * float(s @ (r * r)) + pen(w)


def _mu_quad(X, sw=None, fit_intercept=True):
    """Strong convexity of the (centred, weighted) least-squares datafit in ``w``."""
    X = X.toarray() if sp.issparse(X) else X
    s = np.full(X.shape[0], 1 / X.shape[0]) if sw is None else sw / sw.sum()
    Xc = X - s @ X if fit_intercept else X
    return float(np.linalg.eigvalsh((Xc * s[:, None]).T @ Xc)[0])


def _p0(y, sw=None):
    s = np.full(len(y), 1 / len(y)) if sw is None else sw / sw.sum()
    yc = y - s @ y
    return 0.5 * float(s @ (yc * yc))


MODELS = {
    "lasso": (lambda **k: Lasso(alpha=0.05, **k),
              lambda w, a=0.05: a * np.abs(w).sum(), 0.0),
    "enet": (lambda **k: ElasticNet(alpha=0.1, l1_ratio=0.6, **k),
             lambda w: 0.06 * np.abs(w).sum() + 0.02 * (w @ w), 0.04),
    "group": (lambda **k: GroupLasso(groups=4, alpha=0.1, **k),
              lambda w: 0.1 * np.linalg.norm(w.reshape(-1, 4), axis=1).sum(), 0.0),
}


# ---------------------------------------------------------------- convex models
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("where", ["strict", "numpy"])
@pytest.mark.parametrize("sparse", [False, True])
def test_convex_models_match_cpu(strict, model, where, sparse):
    make, pen, ridge = MODELS[model]
    X, y = _data(seed=1)
    if sparse:
        X = sp.csc_array(np.where(np.abs(X) > 0.6, X, 0.0))
    sw = np.random.default_rng(2).random(len(y)) + 0.5
    ref = make(tol=TOL, max_iter=1000).fit(X, y, sample_weight=sw)
    if where == "strict":
        est = make(tol=TOL, max_iter=1000).fit(*_to_dev(X, y, sw))
        assert isinstance(est.coef_, _STRICT) and est.coef_.dtype == xs.float64
        pred = est.predict(_to_dev(X, y)[0])
        assert isinstance(pred, _STRICT)
    else:
        est = make(tol=TOL, max_iter=1000, solver="fista").fit(X, y, sample_weight=sw)
        assert isinstance(est.coef_, np.ndarray)
        pred = est.predict(X)
    w, b = _host(est.coef_), est.intercept_
    assert est.result_.converged and est.stop_crit_ <= TOL
    Xh = X.toarray() if sparse else X
    p0 = _p0(y, sw)
    obj, obj_ref = (_quad_obj(Xh, y, w, b, sw, pen),
                    _quad_obj(Xh, y, ref.coef_, ref.intercept_, sw, pen))
    assert abs(obj - obj_ref) <= 2 * TOL * p0 + 1e-13 * p0
    bound = 2 * np.sqrt(2 * TOL * p0 / (_mu_quad(Xh, sw) + ridge))
    assert np.linalg.norm(w - ref.coef_) <= bound
    np.testing.assert_allclose(_host(pred), Xh @ w + b, rtol=1e-12, atol=1e-12)


def test_nonconvex_models_match_cpu(strict):
    """MCP/SCAD: same stationary point (the objective is strongly convex here).

    With standardised columns (``L_j = 1``) the datafit's strong convexity
    ``mu`` exceeds the concavity ``1/gamma``: the stationary point is unique and
    a point whose prox-gradient residual is ``r`` per coordinate lies within
    about ``(1 + 1/mu) ||r|| / (mu - 1/gamma)`` of it (the gradient-mapping
    bound); each run stops at ``|r_j| <= tol ||grad f(0)||_inf``.
    """
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 8))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = X @ np.array([2.0, -1.0, 0.3, 0, 0, 0.05, 0, 1.0]) + 0.3 * rng.standard_normal(200)
    mu = _mu_quad(X)
    g0 = np.abs(X.T @ (y - y.mean()) / len(y)).max()
    for make, gamma in ((lambda **k: MCPRegression(alpha=0.1, gamma=3.0, **k), 3.0),
                        (lambda **k: SCADRegression(alpha=0.1, gamma=3.7, **k), 2.7)):
        assert mu > 1 / gamma
        ref = make(tol=TOL, max_iter=1000).fit(X, y)
        est = make(tol=TOL, max_iter=1000).fit(*_to_dev(X, y))
        assert est.result_.converged and est.stop_crit_ <= TOL
        bound = 2 * (1 + 1 / mu) * np.sqrt(X.shape[1]) * TOL * g0 / (mu - 1 / gamma)
        assert np.linalg.norm(_host(est.coef_) - ref.coef_) <= bound + 1e-13


def test_logistic_matches_cpu(strict):
    X, y = _data(n=100, p=12, seed=4)
    labels = (y > 1.0).astype(np.int64)
    ys = 2.0 * labels - 1

    def obj(w, b):
        return float(np.mean(np.logaddexp(0, -ys * (X @ w + b)))) + 0.01 * np.abs(w).sum()

    for fit_intercept in (True, False):
        ref = SparseLogisticRegression(alpha=0.01, tol=TOL, fit_intercept=fit_intercept,
                                       max_iter=1000).fit(X, labels)
        est = SparseLogisticRegression(alpha=0.01, tol=TOL, fit_intercept=fit_intercept,
                                       max_iter=2000).fit(xs.asarray(X), xs.asarray(labels))
        assert isinstance(est.coef_, _STRICT) and est.result_.converged
        assert est.coef_.shape == (1, 12) and est.intercept_.shape == (1,)
        # objective: within 2 tol P(0); coefficients through the Hessian's smallest
        # eigenvalue at the solution (strong convexity near the optimum)
        w, b = _host(est.coef_)[0], float(_host(est.intercept_)[0])
        wr, br = ref.coef_[0], float(ref.intercept_[0])
        p0 = ref.result_.history["objective"][0]
        assert abs(obj(w, b) - obj(wr, br)) <= 2 * TOL * p0 + 1e-14
        z = X @ wr + br
        q = 1 / (1 + np.exp(-z))
        A = np.column_stack([X, np.ones(len(y))]) if fit_intercept else X
        mu = np.linalg.eigvalsh((A * (q * (1 - q) / len(y))[:, None]).T @ A)[0]
        bound = 2 * np.sqrt(2 * TOL * p0 / mu)
        diff = np.r_[w - wr, b - br] if fit_intercept else w - wr
        assert np.linalg.norm(diff) <= bound
        np.testing.assert_array_equal(_host(est.predict(xs.asarray(X))), ref.predict(X))
        np.testing.assert_allclose(_host(est.predict_proba(xs.asarray(X))),
                                   ref.predict_proba(X), atol=10 * bound * np.abs(X).max())


def test_paths_and_cv_match_cpu(strict):
    X, y = _data(n=60, p=15, seed=5)
    Xs, ys, _ = _to_dev(X, y)
    for fn, kw in ((lasso_path, {}), (enet_path, {"l1_ratio": 0.5})):
        ref = fn(X, y, n_alphas=6, tol=TOL, fit_intercept=True, **kw)
        res = fn(Xs, ys, n_alphas=6, tol=TOL, fit_intercept=True, **kw)
        assert isinstance(res.coefs, _STRICT) and res.converged
        np.testing.assert_allclose(res.alphas, ref.alphas, rtol=1e-12)
        bound = 2 * np.sqrt(2 * TOL * _p0(y) / _mu_quad(X))
        np.testing.assert_allclose(_host(res.coefs), ref.coefs, rtol=0, atol=bound)
    ref = LassoCV(n_alphas=5, cv=3, tol=TOL).fit(X, y)
    est = LassoCV(n_alphas=5, cv=3, tol=TOL).fit(Xs, ys)
    np.testing.assert_allclose(est.alpha_, ref.alpha_, rtol=1e-12)   # same grid point
    np.testing.assert_allclose(est.mse_path_, ref.mse_path_, rtol=1e-6)
    est_sp = LassoCV(n_alphas=5, cv=3, tol=TOL).fit(_strict_csr(sp.csr_array(X)), ys)
    np.testing.assert_allclose(est_sp.alpha_, ref.alpha_, rtol=1e-12)


# ---------------------------------------------------------------- edge cases
def test_float32_one_feature_zero_target_no_intercept(strict):
    X, y = _data(n=50, p=8, seed=6, dtype=np.float32)
    ref = Lasso(alpha=0.05, tol=1e-6).fit(X, y)
    est = Lasso(alpha=0.05, tol=1e-6).fit(xs.asarray(X), xs.asarray(y))
    assert est.coef_.dtype == xs.float32
    # float32 products: the objective is computed to ~1e-6 relative
    pen = MODELS["lasso"][1]
    p0 = _p0(y.astype(np.float64))
    assert abs(_quad_obj(X, y, _host(est.coef_), est.intercept_, None, pen)
               - _quad_obj(X, y, ref.coef_, ref.intercept_, None, pen)) <= 1e-5 * p0
    # one feature, one sample, all-zero target, no intercept
    one = Lasso(alpha=0.01, tol=TOL).fit(xs.asarray(X[:, :1]), xs.asarray(y))
    ref1 = Lasso(alpha=0.01, tol=TOL).fit(X[:, :1], y)
    np.testing.assert_allclose(_host(one.coef_), ref1.coef_, rtol=1e-5)
    z = Lasso(alpha=0.01).fit(xs.asarray(X), xs.zeros(50, dtype=xs.float32))
    assert z.result_.converged and not np.any(_host(z.coef_))
    single = Lasso(alpha=0.01).fit(xs.asarray(X[:1]), xs.asarray(y[:1]))
    assert not np.any(_host(single.coef_))
    noint = Lasso(alpha=0.05, tol=TOL, fit_intercept=False).fit(xs.asarray(X.astype(float)),
                                                                  xs.asarray(y.astype(float)))
    refn = Lasso(alpha=0.05, tol=TOL, fit_intercept=False).fit(X.astype(float),
                                                               y.astype(float))
    assert noint.intercept_ == 0.0
    np.testing.assert_allclose(_host(noint.coef_), refn.coef_, atol=1e-4)


def test_int64_sparse_indices_and_inputs_unchanged(strict):
    X, y = _data(n=40, p=10, seed=7)
    S = sp.csr_array(np.where(np.abs(X) > 0.5, X, 0.0))
    dev = CSRParts(xs.asarray(S.indptr.astype(np.int64)), xs.asarray(S.indices.astype(np.int64)),
                   xs.asarray(S.data), S.shape)
    before = (_host(dev.data).copy(), _host(dev.indices).copy())
    ys = xs.asarray(y)
    est = Lasso(alpha=0.05, tol=TOL).fit(dev, ys)
    ref = Lasso(alpha=0.05, tol=TOL).fit(S, y)
    bound = 2 * np.sqrt(2 * TOL * _p0(y) / _mu_quad(S.toarray()))
    assert np.linalg.norm(_host(est.coef_) - ref.coef_) <= bound
    np.testing.assert_array_equal(_host(dev.data), before[0])
    np.testing.assert_array_equal(_host(dev.indices), before[1])
    np.testing.assert_array_equal(_host(ys), y)
    assert strict.calls["spmm"] > 0 and strict.calls["spmm_t"] > 0


def test_one_transfer_per_check(strict, monkeypatch):
    """The steps run without host round trips: transfers ~ checks + setup."""
    X, y = _data(n=60, p=30, seed=8)
    count = {"n": 0}
    orig = strict.to_numpy

    def counting(a):
        count["n"] += 1
        return orig(a)

    def refuse(self, *a):
        raise AssertionError("implicit device-to-host conversion in the solver")

    nx = strict
    design = prepare_design_xp(nx, xs.asarray(X), xs.asarray(y))
    design.lipschitz()
    monkeypatch.setattr(strict, "to_numpy", counting)
    for name in ("__float__", "__bool__", "__int__", "__index__"):
        monkeypatch.setattr(_STRICT, name, refuse)
    res = solve_fista(design, l1_penalty(0.02), tol=TOL, max_iter=500)
    monkeypatch.undo()
    assert res.converged and res.n_epochs >= 10 * res.n_iter
    assert count["n"] == res.n_iter + 1       # one fetch per check, nothing else


def test_warnings_callback_warm_start(strict):
    X, y = _data(n=50, p=20, seed=9)
    Xs, ys, _ = _to_dev(X, y)
    with pytest.warns(ConvergenceWarning, match="relative duality gap"):
        Lasso(alpha=0.001, tol=1e-14, max_iter=2).fit(Xs, ys)
    design = prepare_design_xp(strict, Xs, ys)
    seen = []
    res = solve_fista(design, l1_penalty(0.01), tol=1e-14, max_iter=50,
                      callback=lambda r: seen.append(r.n_iter) or len(seen) == 3)
    assert seen == [0, 1, 2] and res.message == "stopped by callback" and not res.converged
    est = Lasso(alpha=0.05, tol=1e-8, warm_start=True).fit(Xs, ys)
    n_cold = est.n_iter_
    est.fit(Xs, ys)
    assert est.n_iter_ == 0 < n_cold     # already optimal: stops at the first check
    # the CPU solver in the same regime stops at once too
    d = prepare_design(X, y)
    assert solve(d, l1_penalty(0.05), w0=_host(est.coef_), tol=1e-8).n_iter == 0


def test_bad_input_and_unsupported(strict):
    X, y = _data(n=30, p=6, seed=10)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        Lasso().fit(xs.asarray(bad), xs.asarray(y))
    with pytest.raises(ValueError, match="y contains infinity"):
        Lasso().fit(xs.asarray(X), xs.asarray(np.r_[np.inf, y[1:]]))
    with pytest.raises(TypeError, match=r"X is a numpy \(host\).*y is a array_api_strict"):
        Lasso().fit(X, xs.asarray(y))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        Lasso().fit(xs.asarray(X), xs.asarray(y), sample_weight=xs.asarray(-np.ones(30)))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[30, 29\]"):
        Lasso().fit(xs.asarray(X), xs.asarray(y[1:]))
    with pytest.raises(ValueError, match="solver='cd'"):
        Lasso(solver="cd").fit(xs.asarray(X), xs.asarray(y))
    with pytest.raises(ValueError, match="L0 penalty has no generic"):
        L0Regression(alpha=0.01).fit(xs.asarray(X), xs.asarray(y))
    with pytest.raises(ValueError, match="exactly 2 classes"):
        SparseLogisticRegression().fit(xs.asarray(X), xs.asarray(np.arange(30) % 3))
    with pytest.raises(ValueError, match="expecting 6 features"):
        Lasso(alpha=0.1).fit(xs.asarray(X), xs.asarray(y)).predict(xs.asarray(X[:, :5]))
    with pytest.raises(ValueError, match="alpha"):
        Lasso(alpha=-1.0).fit(xs.asarray(X), xs.asarray(y))


# ------------------------------------------------------- the real GPU backend
@pytest.mark.cudasim
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="needs NUMBA_ENABLE_CUDASIM=1 before numba is imported")
def test_sparse_lasso_on_simulated_cupy_backend():
    """Sparse Lasso through CupyBackend's numba.cuda SpMM / SpMM^T (simulated)."""
    from sparseopt.gpu import CupyBackend

    X, y = _data(n=12, p=6, seed=11)
    S = sp.csr_array(np.where(np.abs(X) > 0.4, X, 0.0))
    ref = Lasso(alpha=0.05, tol=TOL).fit(S, y)
    design = prepare_design_xp(CupyBackend(xp=np), S, y)
    res = solve_fista(design, l1_penalty(0.05), tol=TOL, max_iter=1000)
    bound = 2 * np.sqrt(2 * TOL * _p0(y) / _mu_quad(S.toarray()))
    assert res.converged and np.linalg.norm(res.x - ref.coef_) <= bound


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cupy_matches_numpy(cp, dtype):
    import cupyx.scipy.sparse as csp

    X, y = _data(n=400, p=150, seed=12, dtype=dtype)
    tol = TOL if dtype == np.float64 else 1e-6
    for Xh, Xd in ((X, cp.asarray(X)),
                   (sp.csr_array(np.where(np.abs(X) > 1, X, 0)),
                    csp.csr_matrix(cp.asarray(np.where(np.abs(X) > 1, X, 0))))):
        ref = Lasso(alpha=0.02, tol=tol).fit(Xh, y)
        est = Lasso(alpha=0.02, tol=tol).fit(Xd, cp.asarray(y))
        assert isinstance(est.coef_, cp.ndarray) and est.coef_.dtype == dtype
        Xa = Xh.toarray() if sp.issparse(Xh) else Xh
        pen = MODELS["lasso"][1]
        p0 = _p0(y.astype(np.float64))
        obj = _quad_obj(Xa, y, cp.asnumpy(est.coef_), est.intercept_, None,
                        lambda w: 0.02 * np.abs(w).sum())
        obj_ref = _quad_obj(Xa, y, ref.coef_, ref.intercept_, None,
                            lambda w: 0.02 * np.abs(w).sum())
        assert abs(obj - obj_ref) <= 2 * tol * p0 + (1e-5 if dtype == np.float32 else 1e-12)
        del pen
    labels = (y > 1).astype(np.int64)
    ref = SparseLogisticRegression(alpha=0.01, tol=1e-8).fit(X, labels)
    est = SparseLogisticRegression(alpha=0.01, tol=1e-8, max_iter=1000).fit(
        cp.asarray(X), cp.asarray(labels))
    agree = float((cp.asnumpy(est.predict(cp.asarray(X))) == ref.predict(X)).mean())
    assert agree >= 0.99
    with pytest.raises(TypeError, match="host"):
        Lasso().fit(X, cp.asarray(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        lasso_path(cp.asarray(X), cp.asarray(y), n_alphas=4, tol=1e-6)
