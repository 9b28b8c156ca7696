"""Sparse regression: agreement with scikit-learn and skglm on the same objective.

Tolerances follow from the stopping rules: with ``tol`` the relative duality
gap, ``P(w) - P* <= tol * P(0)``; the references are run far tighter, so the
objectives must agree to ``tol * P(0)`` (plus the reference's own slack).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sklm

from sparseopt.linear_model import (
    ElasticNet,
    GroupLasso,
    L0Regression,
    Lasso,
    MCPRegression,
    SCADRegression,
    SparseLogisticRegression,
)


def _data(n=60, p=90, k=6, seed=0, offset=1.5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X[:, :10] += 0.5 * X[:, [10]]          # some correlation
    w = np.zeros(p)
    w[:k] = rng.choice([-2.0, 2.0], k) * (1 + rng.random(k))
    y = X @ w + 0.5 * rng.standard_normal(n) + offset
    return X, y


def _sparse_data(n=60, p=150, density=0.1, seed=1):
    rng = np.random.default_rng(seed)
    X = sp.random(n, p, density=density, format="csc", random_state=seed,
                  data_rvs=rng.standard_normal)
    w = np.zeros(p)
    w[:8] = rng.standard_normal(8) * 3
    y = X @ w + 0.1 * rng.standard_normal(n) + 0.7
    return X, y


def _normalized(X):
    """Columns scaled to ||x_j||^2 / n = 1 (the regime where skglm's MCP and
    SCAD proximal steps are exact coordinate minimisations)."""
    n = X.shape[0]
    sq = np.asarray(X.multiply(X).sum(0)).ravel() if sp.issparse(X) else (X * X).sum(0)
    scale = 1 / np.sqrt(sq / n)
    return sp.csc_matrix(X @ sp.diags(scale)) if sp.issparse(X) else X * scale


def _quad_obj(X, y, w, b, sw=None):
    r = y - (X @ w) - b
    s = np.full(len(y), 1 / len(y)) if sw is None else sw / sw.sum()
    return 0.5 * float(s @ (r * r))


def _p0(y, sw=None, fit_intercept=True):
    s = np.full(len(y), 1 / len(y)) if sw is None else sw / sw.sum()
    yc = y - (s @ y if fit_intercept else 0.0)
    return 0.5 * float(s @ (yc * yc))


# --------------------------------------------------------------------------
# Lasso / ElasticNet vs scikit-learn
# --------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.4])
def test_enet_matches_sklearn(sparse, fit_intercept, weighted, l1_ratio):
    X, y = _sparse_data() if sparse else _data()
    sw = np.random.default_rng(3).uniform(0.2, 2.0, len(y)) if weighted else None
    Xd = X.toarray() if sparse else X
    amax = np.max(np.abs(Xd.T @ (y - y.mean() * fit_intercept))) / len(y)
    alpha = amax / 15
    tol = 1e-8
    ours = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=tol,
                      fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
    ref = sklm.ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=100_000,
                          fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)

    def obj(w, b):
        return (_quad_obj(Xd, y, w, b, sw) + alpha * l1_ratio * np.abs(w).sum()
                + 0.5 * alpha * (1 - l1_ratio) * w @ w)

    p_ours, p_ref = obj(ours.coef_, ours.intercept_), obj(ref.coef_, ref.intercept_)
    p0 = _p0(y, sw, fit_intercept)
    assert ours.stop_crit_ <= tol
    # certified: P(w) - P* <= gap <= tol * P(0); the reference is ~exact
    assert p_ours - p_ref <= tol * p0 + 1e-13
    assert p_ref - p_ours <= 1e-12 * p0           # ref cannot be better than P*
    assert abs(p_ours - p_ref) / p_ref <= 1e-6      # the criterion
    np.testing.assert_array_equal(ours.coef_ != 0, ref.coef_ != 0)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-3 * np.abs(ref.coef_).max())
    # the reported gap is the gap of our objective at the returned point
    assert ours.dual_gap_ >= 0
    assert ours.dual_gap_ <= tol * p0 * (1 + 1e-9)


@pytest.mark.parametrize("sparse", [False, True])
def test_lasso_positive_matches_sklearn(sparse):
    X, y = _sparse_data() if sparse else _data()
    alpha = 0.05
    ours = Lasso(alpha=alpha, positive=True, tol=1e-10).fit(X, y)
    ref = sklm.Lasso(alpha=alpha, positive=True, tol=1e-14, max_iter=100_000).fit(X, y)
    assert np.all(ours.coef_ >= 0)
    Xd = X.toarray() if sparse else X
    p1 = _quad_obj(Xd, y, ours.coef_, ours.intercept_) + alpha * ours.coef_.sum()
    p2 = _quad_obj(Xd, y, ref.coef_, ref.intercept_) + alpha * ref.coef_.sum()
    assert abs(p1 - p2) <= 1e-10 * _p0(y)
    np.testing.assert_array_equal(ours.coef_ != 0, ref.coef_ != 0)


def test_lasso_gap_certificate_is_valid():
    """The reported gap bounds the true suboptimality (P* from a tight sklearn run)."""
    X, y = _data(seed=5)
    alpha = 0.02
    for tol in (1e-2, 1e-4, 1e-6):
        m = Lasso(alpha=alpha, tol=tol).fit(X, y)
        ref = sklm.Lasso(alpha=alpha, tol=1e-15, max_iter=100_000).fit(X, y)
        p = _quad_obj(X, y, m.coef_, m.intercept_) + alpha * np.abs(m.coef_).sum()
        ps = _quad_obj(X, y, ref.coef_, ref.intercept_) + alpha * np.abs(ref.coef_).sum()
        assert p - ps <= m.dual_gap_ + 1e-13
        assert m.dual_gap_ <= tol * _p0(y)


# --------------------------------------------------------------------------
# logistic regression vs scikit-learn
# --------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_logistic_matches_sklearn(sparse, fit_intercept):
    if sparse:
        X, yr = _sparse_data(n=80, p=60, density=0.3, seed=4)
    else:
        X, yr = _data(n=80, p=60, seed=4)
    y = (yr > np.median(yr)).astype(int)
    n = len(y)
    alpha = 0.01
    tol = 1e-8
    ours = SparseLogisticRegression(alpha=alpha, tol=tol,
                                    fit_intercept=fit_intercept).fit(X, y)
    # liblinear penalises the intercept, saga does not: saga with intercept
    solver = "saga" if fit_intercept else "liblinear"
    ref = sklm.LogisticRegression(l1_ratio=1.0, C=1 / (alpha * n), solver=solver,
                                  tol=1e-12, max_iter=200_000,
                                  fit_intercept=fit_intercept).fit(X, y)
    Xd = X.toarray() if sparse else X

    def obj(w, b):
        z = Xd @ w + b
        return np.mean(np.logaddexp(0, -(2 * y - 1) * z)) + alpha * np.abs(w).sum()

    p1 = obj(ours.coef_[0], ours.intercept_[0])
    p2 = obj(ref.coef_[0], np.ravel(ref.intercept_)[0])
    p0 = ours.result_.primal + 0  # noqa: F841  (kept for debugging)
    assert ours.stop_crit_ <= tol
    assert abs(p1 - p2) / p2 <= 1e-6
    np.testing.assert_array_equal(ours.coef_ != 0, ref.coef_ != 0)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def test_logistic_labels_and_proba():
    X, yr = _data(n=50, p=20, seed=7)
    y = np.where(yr > 0, "pos", "neg")
    m = SparseLogisticRegression(alpha=0.01).fit(X, y)
    np.testing.assert_array_equal(m.classes_, ["neg", "pos"])
    proba = m.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(m.predict(X), m.classes_[proba.argmax(axis=1)])
    with pytest.raises(ValueError, match="binary"):
        SparseLogisticRegression().fit(X, np.arange(50) % 3)


# --------------------------------------------------------------------------
# group Lasso, MCP, SCAD vs skglm; L0 optimality
# --------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("positive", [False, True])
def test_group_lasso_matches_skglm(sparse, positive):
    skglm = pytest.importorskip("skglm")
    X, y = _sparse_data(p=120) if sparse else _data(p=120)
    Xd = X.toarray() if sparse else X
    alpha = 0.05
    weights = np.sqrt(np.arange(1, 31) % 3 + 1.0)
    ours = GroupLasso(groups=4, alpha=alpha, weights=weights, positive=positive,
                      tol=1e-10).fit(X, y)
    ref = skglm.GroupLasso(groups=4, alpha=alpha, weights=weights, positive=positive,
                           tol=1e-12, max_iter=1000, max_epochs=100_000).fit(Xd, y)

    def obj(w, b):
        return _quad_obj(Xd, y, w, b) + alpha * weights @ np.linalg.norm(
            w.reshape(-1, 4), axis=1)

    p1, p2 = obj(ours.coef_, ours.intercept_), obj(ref.coef_, ref.intercept_)
    assert p1 - p2 <= 1e-10 * _p0(y) + 1e-14
    assert abs(p1 - p2) / p2 <= 1e-6
    np.testing.assert_array_equal(ours.coef_.reshape(-1, 4).any(1),
                                  ref.coef_.reshape(-1, 4).any(1))
    if positive:
        assert np.all(ours.coef_ >= 0)


def test_group_lasso_explicit_groups_equal_sizes_vector():
    X, y = _data(p=30)
    perm = np.random.default_rng(0).permutation(30)
    groups = [perm[i:i + 5].tolist() for i in range(0, 30, 5)]
    a = GroupLasso(groups=groups, alpha=0.1, tol=1e-10).fit(X, y)
    # same problem with columns reordered into contiguous groups
    b = GroupLasso(groups=[5] * 6, alpha=0.1, tol=1e-10).fit(X[:, perm], y)
    np.testing.assert_allclose(a.coef_[perm], b.coef_, atol=1e-7)


def _strongly_convex_data(sparse, gamma, concavity):
    """n >> p, unit-norm columns: ``gamma * lambda_min(X_c^T X_c / n) > concavity``
    makes the whole MCP/SCAD objective strictly convex, so the minimiser is
    unique and two solvers must agree on it."""
    if sparse:
        X, y = _sparse_data(n=300, p=30, density=0.3, seed=6)
    else:
        rng = np.random.default_rng(6)
        X = rng.standard_normal((300, 30))
        y = X[:, :5] @ np.array([2.0, -1.5, 1.0, 0.3, -0.2]) + 1.0 \
            + 0.5 * rng.standard_normal(300)
    X = _normalized(X)
    Xd = X.toarray() if sparse else X
    Xc = Xd - Xd.mean(0)
    assert gamma * np.linalg.eigvalsh(Xc.T @ Xc / len(y))[0] > concavity
    return X, Xd, y


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("positive", [False, True])
def test_mcp_matches_skglm(sparse, positive):
    skglm = pytest.importorskip("skglm")
    alpha, gamma = 0.1, 3.0
    X, Xd, y = _strongly_convex_data(sparse, gamma, 1.0)
    ours = MCPRegression(alpha=alpha, gamma=gamma, positive=positive,
                         tol=1e-10).fit(X, y)
    ref = skglm.MCPRegression(alpha=alpha, gamma=gamma, positive=positive, tol=1e-12,
                              max_iter=1000).fit(X, y)
    from skglm.penalties import MCPenalty
    pen = MCPenalty(alpha, gamma)
    p1 = _quad_obj(Xd, y, ours.coef_, ours.intercept_) + pen.value(ours.coef_)
    p2 = _quad_obj(Xd, y, ref.coef_, ref.intercept_) + pen.value(ref.coef_)
    assert abs(p1 - p2) / p2 <= 1e-6
    np.testing.assert_array_equal(ours.coef_ != 0, ref.coef_ != 0)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_scad_matches_skglm(sparse):
    pytest.importorskip("skglm")
    from skglm import GeneralizedLinearEstimator
    from skglm.datafits import Quadratic
    from skglm.penalties import SCAD
    from skglm.solvers import AndersonCD
    alpha, gamma = 0.1, 3.7
    X, Xd, y = _strongly_convex_data(sparse, gamma - 1, 1.0)
    ours = SCADRegression(alpha=alpha, gamma=gamma, tol=1e-10).fit(X, y)
    ref = GeneralizedLinearEstimator(
        Quadratic(), SCAD(alpha, gamma),
        AndersonCD(tol=1e-12, max_iter=1000, fit_intercept=True)).fit(X, y)
    pen = SCAD(alpha, gamma)
    p1 = _quad_obj(Xd, y, ours.coef_, ours.intercept_) + pen.value(ours.coef_)
    p2 = _quad_obj(Xd, y, ref.coef_, ref.intercept_) + pen.value(ref.coef_)
    assert abs(p1 - p2) / p2 <= 1e-6
    np.testing.assert_array_equal(ours.coef_ != 0, ref.coef_ != 0)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)


@pytest.mark.parametrize("Est, kw", [
    (GroupLasso, {"groups": 3, "positive": True}), (MCPRegression, {}),
    (SCADRegression, {}), (L0Regression, {}), (Lasso, {"positive": True}),
])
def test_sparse_equals_dense(Est, kw):
    """The CSC kernel path solves the same problem as the dense one, with
    sample weights and for every penalty kind."""
    X, y = _sparse_data(n=80, p=60, density=0.3)
    X = _normalized(X)
    sw = np.random.default_rng(2).uniform(0.5, 2, len(y))
    a = Est(alpha=0.05, tol=1e-12, **kw).fit(X, y, sample_weight=sw)
    b = Est(alpha=0.05, tol=1e-12, **kw).fit(X.toarray(), y, sample_weight=sw)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-9)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=1e-9)


def test_mcp_small_column_norms_exact_coordinate_minimisation():
    """With gamma * L_j < 1 the scalar MCP problems are nonconvex; our prox is
    the exact minimiser, so the result is a coordinate-wise minimum (skglm's
    closed form assumes gamma * L_j > 1 and stops at a worse point here)."""
    skglm = pytest.importorskip("skglm")
    from skglm.penalties import MCPenalty
    X, y = _sparse_data()
    Xd = X.toarray()
    assert np.all(3.0 * (Xd ** 2).sum(0) / len(y) < 1)
    ours = MCPRegression(alpha=0.1, gamma=3.0, tol=1e-12).fit(X, y)
    ref = skglm.MCPRegression(alpha=0.1, gamma=3.0, tol=1e-12, max_iter=1000).fit(X, y)
    pen = MCPenalty(0.1, 3.0)

    def obj(w, b):
        return _quad_obj(Xd, y, w, b) + pen.value(w)

    base = obj(ours.coef_, ours.intercept_)
    assert base <= obj(ref.coef_, ref.intercept_)
    grid = np.linspace(-4, 4, 161)
    for j in range(Xd.shape[1]):
        v = ours.coef_.copy()
        for t in grid:
            v[j] = t
            assert obj(v, np.mean(y - Xd @ v)) >= base - 1e-10


@pytest.mark.parametrize("l2_reg", [0.0, 0.05])
def test_l0_is_coordinatewise_optimal(l2_reg):
    X, y = _data(n=80, p=40, k=5, seed=2)
    alpha = 0.05
    m = L0Regression(alpha=alpha, l2_reg=l2_reg, tol=1e-12).fit(X, y)
    w, b = m.coef_, m.intercept_
    supp = np.flatnonzero(w)
    assert 0 < supp.size < 40

    def obj(w, b):
        return (_quad_obj(X, y, w, b) + alpha * np.count_nonzero(w)
                + 0.5 * l2_reg * w @ w)

    # on the support: the (ridge) least-squares fit with intercept
    Xs = np.column_stack([X[:, supp], np.ones(len(y))])
    reg = np.diag(np.r_[np.full(supp.size, l2_reg * len(y)), 0.0])
    sol = np.linalg.solve(Xs.T @ Xs + reg, Xs.T @ y)
    np.testing.assert_allclose(w[supp], sol[:-1], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b, sol[-1], rtol=1e-6, atol=1e-8)
    # no single coordinate change (to 0 or to its best value) helps
    base = obj(w, b)
    for j in range(40):
        v = w.copy()
        v[j] = 0.0
        r = y - X @ v - b
        xj = X[:, j] - X[:, j].mean()
        best = (xj @ (r - r.mean())) / (xj @ xj + l2_reg * len(y))
        for cand in (0.0, best):
            v[j] = cand
            bb = np.mean(y - X @ v)
            assert obj(v, bb) >= base - 1e-10


# --------------------------------------------------------------------------
# properties of the objective
# --------------------------------------------------------------------------
@pytest.mark.parametrize("Est, kw", [
    (Lasso, {}), (ElasticNet, {"l1_ratio": 0.3}), (GroupLasso, {"groups": 3}),
    (MCPRegression, {}), (SCADRegression, {}), (SparseLogisticRegression, {}),
])
@pytest.mark.parametrize("sparse", [False, True])
def test_integer_weights_equal_repeated_rows(Est, kw, sparse):
    X, y = _data(n=40, p=30, seed=8)
    if Est is SparseLogisticRegression:
        y = (y > np.median(y)).astype(int)
    sw = np.random.default_rng(0).integers(0, 4, len(y))
    rep = np.repeat(np.arange(len(y)), sw)
    Xa = sp.csc_matrix(X) if sparse else X
    Xr = sp.csc_matrix(X[rep]) if sparse else X[rep]
    a = Est(alpha=0.05, tol=1e-12, **kw).fit(Xa, y, sample_weight=sw)
    b = Est(alpha=0.05, tol=1e-12, **kw).fit(Xr, y[rep])
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_alpha_max_gives_zero(sparse):
    # unit-norm columns: for MCP/SCAD, 0 is a fixed point below alpha_max only
    # when gamma * L_j > 1 (otherwise a jump into the flat part can pay off)
    X, y = _sparse_data() if sparse else _data()
    X = _normalized(X)
    sw = np.random.default_rng(1).uniform(0.5, 1.5, len(y))
    s = sw / sw.sum()
    Xd = X.toarray() if sparse else X
    xm = s @ Xd
    amax = np.max(np.abs((Xd - xm).T @ (s * (y - s @ y))))
    for Est, kw, scale in [(Lasso, {}, 1.0), (ElasticNet, {"l1_ratio": 0.5}, 2.0),
                           (MCPRegression, {}, 1.0), (SCADRegression, {}, 1.0)]:
        m = Est(alpha=amax * scale * (1 + 1e-9), **kw).fit(X, y, sample_weight=sw)
        np.testing.assert_array_equal(m.coef_, 0.0)
        np.testing.assert_allclose(m.intercept_, s @ y)
        # just below alpha_max the solution is tiny: a tight tol resolves it
        m = Est(alpha=amax * scale * 0.99, tol=1e-12, **kw).fit(X, y, sample_weight=sw)
        assert np.count_nonzero(m.coef_) >= 1
    g = np.linalg.norm(((Xd - xm).T @ (s * (y - s @ y))).reshape(-1, 3), axis=1)
    m = GroupLasso(groups=3, alpha=g.max() * (1 + 1e-9)).fit(X, y, sample_weight=sw)
    np.testing.assert_array_equal(m.coef_, 0.0)
    m = GroupLasso(groups=3, alpha=g.max() * 0.99, tol=1e-12).fit(X, y,
                                                                  sample_weight=sw)
    assert np.count_nonzero(m.coef_) >= 1


def test_logistic_alpha_max_gives_zero():
    X, yr = _data(n=60, p=30, seed=9)
    y = (yr > 0).astype(int)
    pi = y.mean()
    amax = np.max(np.abs(X.T @ (y - pi))) / len(y)
    m = SparseLogisticRegression(alpha=amax * (1 + 1e-9)).fit(X, y)
    np.testing.assert_array_equal(m.coef_, 0.0)
    np.testing.assert_allclose(m.intercept_[0], np.log(pi / (1 - pi)), rtol=1e-6)
    m = SparseLogisticRegression(alpha=amax * 0.99, tol=1e-12).fit(X, y)
    assert np.count_nonzero(m.coef_) >= 1


def test_screening_and_anderson_do_not_change_the_solution():
    from sparseopt.solvers.regression import l1_penalty, prepare_design, solve_path
    X, y = _data(n=50, p=300, seed=11)
    d = prepare_design(X, y)
    pen = l1_penalty(1.0)
    alphas = pen.alpha_max(d.grad0, d.lips) * np.geomspace(1.0, 0.05, 10)
    # a small first working set, so that several outer iterations (and thus
    # screening steps) run
    r1 = solve_path(d, pen, alphas, tol=1e-12, p0=10)
    r2 = solve_path(d, pen, alphas, tol=1e-12, p0=10, screening=False,
                    anderson_k=0)
    assert sum(r.n_screened for r in r1.results) > 0
    assert all(r.n_screened == 0 for r in r2.results)
    np.testing.assert_allclose(r1.coefs, r2.coefs, atol=1e-8)
    np.testing.assert_allclose(r1.intercepts, r2.intercepts, atol=1e-8)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(("fit_intercept", "weighted", "l1_ratio", "positive"),
                         [(True, True, 1.0, False), (False, False, 0.5, False),
                          (True, False, 1.0, True)])
def test_lazy_outer_check_reports_the_full_pass_gap(sparse, fit_intercept, weighted,
                                                    l1_ratio, positive):
    """The Lasso / elastic-net outer check skips the dot products of features
    whose drift bound keeps them below alpha; the gap it reports must be the
    one of a full pass over the design at the returned point."""
    from sparseopt.solvers.regression import l1_penalty, prepare_design, solve_path
    from sparseopt.solvers.regression._solver import _duality_gap, _gradient_and_dual
    X, y = _sparse_data() if sparse else _data()
    sw = np.random.default_rng(4).uniform(0.2, 2.0, len(y)) if weighted else None
    d = prepare_design(X, y, sample_weight=sw, fit_intercept=fit_intercept)
    pen = l1_penalty(1.0, l1_ratio, positive)
    alphas = pen.alpha_max(d.grad0, d.lips) * np.geomspace(0.9, 0.02, 8)
    tol = 1e-9
    path = solve_path(d, pen, alphas, tol=tol, screening=False, p0=5)
    assert path.converged
    no_skip = np.zeros(d.p, dtype=bool)
    for r, a in zip(path.results, alphas, strict=True):
        pa = pen.with_alpha(a)
        st, b = d.state(r.x, r.intercept)
        _, z, dual_fit = _gradient_and_dual(d, pa, st, b, no_skip)
        gap, primal, _ = _duality_gap(d, pa, r.x, st, b, z, dual_fit)
        np.testing.assert_allclose(r.primal, primal, rtol=1e-12)
        np.testing.assert_allclose(r.dual_gap, gap, rtol=1e-6, atol=1e-12 * d.P0)
        assert r.dual_gap <= tol * d.P0


def test_warm_start():
    X, y = _data()
    m = Lasso(alpha=0.05, tol=1e-10, warm_start=True).fit(X, y)
    n_first = m.n_iter_
    coef = m.coef_.copy()
    m.fit(X, y)
    np.testing.assert_allclose(m.coef_, coef, atol=1e-8)
    assert m.n_iter_ <= 1 <= n_first


def test_working_set_selection_matches_a_full_sort():
    """Numba working-set selection: the top scores, never a -inf one, ties allowed."""
    from sparseopt.solvers.regression._solver import _working_set
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = int(rng.integers(1, 400))
        score = np.round(rng.standard_normal(p), 1)          # many ties
        score[rng.random(p) < 0.3] = -np.inf
        score[rng.random(p) < 0.1] = np.inf
        size = int(rng.integers(1, p + 5))
        ws, n_left, n_viol = _working_set(score, size)
        movable = np.flatnonzero(score > -np.inf)
        assert ws.size == min(size, movable.size)
        assert np.all(np.diff(ws) > 0)
        assert np.all(score[ws] > -np.inf)
        if ws.size < movable.size:
            # every left-out movable score is <= every selected one
            left = np.setdiff1d(movable, ws)
            assert score[left].max() <= score[ws].min()
        viol = (score > 0) & (score < np.inf)
        assert n_viol == int(viol.sum())
        assert n_left == int(viol.sum() - viol[ws].sum())
