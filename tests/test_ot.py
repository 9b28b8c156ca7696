"""Entropic OT: sparseopt.sinkhorn / sinkhorn_newton_sparse against POT."""

import logging
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

ot = pytest.importorskip("ot")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import sparseopt  # noqa: E402
from sparseopt.ot import (  # noqa: E402
    OTResult,
    cost_matrix,
    grid_coordinates,
    grid_cost,
    sinkhorn,
    sinkhorn_newton_sparse,
    wasserstein_grid,
)

SOLVERS = {
    "stabilized": lambda *a, **k: sinkhorn(*a, **k),
    "log": lambda *a, **k: sinkhorn(*a, method="log", **k),
    "sns": lambda *a, **k: sinkhorn_newton_sparse(*a, **k),
}


def _problem(n=60, m=45, seed=0, uniform=False, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 2))
    Y = rng.random((m, 2)) + 0.2
    M = cost_matrix(X, Y) * scale
    if uniform:
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a = rng.random(n) + 0.1
        b = rng.random(m) + 0.1
        a /= a.sum()
        b /= b.sum()
    return a, b, M


def _pot_plan(a, b, M, reg):
    """POT's scaling Sinkhorn to a tight tolerance (its stop: L2 column error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ot.sinkhorn(a, b, M, reg, stopThr=1e-13, numItermax=200_000)


def _l1_marginal_error(P, a, b):
    P = P.toarray() if hasattr(P, "toarray") else np.asarray(P)
    return np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()


# ----------------------------------------------------------------- vs POT


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("uniform", [True, False])
def test_plan_matches_pot(solver, uniform):
    a, b, M = _problem(uniform=uniform)
    reg = 0.05
    P_ref = _pot_plan(a, b, M, reg)
    res = SOLVERS[solver](a, b, M, reg, tol=1e-11)
    assert isinstance(res, OTResult)
    assert res.converged
    # both plans meet the marginals to ~1e-11, so they agree far below 1e-8
    np.testing.assert_allclose(res.plan, P_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.cost, np.sum(P_ref * M), rtol=1e-8)
    assert res.marginal_error[-1] <= 1e-11
    np.testing.assert_allclose(res.marginal_error[-1], _l1_marginal_error(res.plan, a, b),
                               rtol=1e-6, atol=1e-15)


def test_plan_matches_pot_small_reg_point_clouds():
    """reg 1e-3 on costs scaled to max 1 (the benchmark's regime), SNS vs POT."""
    rng = np.random.default_rng(3)
    n = 150
    M = cost_matrix(rng.random((n, 2)), rng.random((n, 2)), scale="max")
    reg = 1e-3
    P_ref = _pot_plan(np.full(n, 1 / n), np.full(n, 1 / n), M, reg)
    res = sinkhorn_newton_sparse(None, None, M, reg, tol=1e-10)
    assert res.converged and res.n_newton > 0
    np.testing.assert_allclose(res.plan, P_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.cost, np.sum(P_ref * M), rtol=1e-7)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_objective_and_potentials(solver):
    a, b, M = _problem(seed=1)
    reg = 0.05
    res = SOLVERS[solver](a, b, M, reg, tol=1e-12)
    P = res.plan
    direct = np.sum(P * M) + reg * np.sum(P * np.log(P))
    np.testing.assert_allclose(res.objective, direct, rtol=1e-10)
    # the plan is exp((f + g - M) / reg)
    np.testing.assert_allclose(np.exp((res.f[:, None] + res.g[None, :] - M) / reg), P,
                               rtol=1e-9, atol=1e-300)
    # strong duality: the dual value D(f, g) = <a,f> + <b,g> - reg ΣP equals the
    # objective of POT's convention (Σ P log P, no "- P") minus reg ΣP
    dual = a @ res.f + b @ res.g - reg * P.sum()
    np.testing.assert_allclose(dual + reg * P.sum(), res.objective, rtol=1e-9)
    # POT's log-domain potentials agree up to the (f + k, g - k) gauge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, log = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", stopThr=1e-13,
                             numItermax=100_000, log=True)
    df = res.f - reg * log["log_u"]
    dg = res.g - reg * log["log_v"]
    np.testing.assert_allclose(df - df.mean(), 0, atol=1e-9)
    np.testing.assert_allclose(dg + df.mean(), 0, atol=1e-9)


def test_same_iterates_as_pot():
    """A fixed number of iterations gives POT's iterate (not only its limit)."""
    a, b, M = _problem(seed=2)
    reg = 0.01
    for k in (1, 7, 30):
        res = sinkhorn(a, b, M, reg, max_iter=k, warn=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P_ref = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", numItermax=k,
                                stopThr=0.0)
        assert res.n_sinkhorn == k
        np.testing.assert_allclose(res.plan, P_ref, rtol=1e-9, atol=1e-14)


def test_emd_limit_trend():
    """As reg -> 0 the entropic cost decreases to ot.emd's exact cost."""
    a, b, M = _problem(n=40, m=40, seed=4)
    exact = np.sum(ot.emd(a, b, M) * M)
    gaps = []
    for reg in (1e-1, 3e-2, 1e-2, 3e-3):
        res = sinkhorn_newton_sparse(a, b, M, reg, tol=1e-9, max_iter=500)
        assert res.converged
        gaps.append(res.cost - exact)
    gaps = np.array(gaps)
    assert np.all(gaps > -1e-9)
    assert np.all(np.diff(gaps) < 0)
    assert gaps[-1] < 0.1 * gaps[0]


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_marginals_met_to_tol(solver, tol):
    a, b, M = _problem(n=50, m=70, seed=5)
    res = SOLVERS[solver](a, b, M, 0.02, tol=tol)
    assert res.converged
    assert _l1_marginal_error(res.plan, a, b) <= tol


# ----------------------------------------------------------- batches, shapes


@pytest.mark.parametrize("solver", ["stabilized", "sns"])
def test_batch_matches_single_runs(solver):
    a, b, M = _problem(n=30, m=25, seed=6)
    rng = np.random.default_rng(0)
    B = np.stack([b, rng.dirichlet(np.ones(25)), rng.dirichlet(np.ones(25))], axis=1)
    res = SOLVERS[solver](a, B, M, 0.05, tol=1e-10)
    assert res.plan.shape == (3, 30, 25)
    assert res.f.shape == (30, 3) and res.g.shape == (25, 3)
    assert res.cost.shape == (3,) and res.converged
    for k in range(3):
        single = SOLVERS[solver](a, B[:, k], M, 0.05, tol=1e-10)
        np.testing.assert_allclose(res.plan[k], single.plan, rtol=0, atol=1e-15)
        np.testing.assert_allclose(res.cost[k], single.cost, rtol=1e-14)
        np.testing.assert_allclose(res.f[:, k], single.f, rtol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_one_row_and_one_column(solver):
    M = np.array([[1.0, 2.0, 3.0]])
    res = SOLVERS[solver]([1.0], [0.2, 0.3, 0.5], M, 0.1, tol=1e-12)
    np.testing.assert_allclose(res.plan, [[0.2, 0.3, 0.5]], atol=1e-12)
    res = SOLVERS[solver](None, None, M.T, 0.1, tol=1e-12)
    np.testing.assert_allclose(res.plan, np.full((3, 1), 1 / 3), atol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_zero_weights(solver):
    a, b, M = _problem(n=30, m=20, seed=7)
    a[[0, 5, 29]] = 0
    b[[3, 19]] = 0
    a /= a.sum()
    b /= b.sum()
    reg = 0.05
    res = SOLVERS[solver](a, b, M, reg, tol=1e-11)
    assert res.converged
    assert np.all(res.plan[[0, 5, 29]] == 0) and np.all(res.plan[:, [3, 19]] == 0)
    assert np.all(np.isneginf(res.f[[0, 5, 29]])) and np.all(np.isneginf(res.g[[3, 19]]))
    assert np.isfinite(res.cost) and np.isfinite(res.objective)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P_ref = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", stopThr=1e-13,
                            numItermax=100_000)
    np.testing.assert_allclose(res.plan, P_ref, rtol=0, atol=1e-9)


# ----------------------------------------------------------------- stability


def test_absorption_many_times_matches_pot():
    """n far above the absorption bound: the plan must not collapse (POT #748)."""
    a, b, M = _problem(n=300, m=250, seed=8, uniform=True)
    reg = 0.01
    res = sinkhorn(a, b, M, reg, tol=1e-11, tau=2.0)
    assert res.history["n_absorb"] > 5
    assert res.converged
    np.testing.assert_allclose(res.plan.sum(), 1.0, rtol=1e-10)
    np.testing.assert_allclose(res.plan, _pot_plan(a, b, M, reg), rtol=0, atol=1e-9)


def test_tiny_reg_large_costs_iterates_match_pot_log():
    """reg 1e-4 with costs up to 1e3: no overflow, and POT's log-domain iterates."""
    a, b, M = _problem(n=40, m=30, seed=9, scale=1e3)
    assert M.max() > 500
    reg = 1e-4
    for method in ("stabilized", "log"):
        with pytest.warns(ConvergenceWarning):
            res = sinkhorn(a, b, M, reg, method=method, max_iter=25)
        assert np.all(np.isfinite(res.plan)) and np.all(np.isfinite(res.f))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, log = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", numItermax=25,
                                 stopThr=0.0, log=True)
        # potentials of magnitude ~1e3 agree to ~1e-12 relative (gauge removed)
        df = res.f - reg * log["log_u"]
        dg = res.g - reg * log["log_v"]
        np.testing.assert_allclose(df - df[0], 0, atol=1e-9)
        np.testing.assert_allclose(dg + df[0], 0, atol=1e-9)
    with pytest.warns(ConvergenceWarning):
        res = sinkhorn_newton_sparse(a, b, M, reg, max_iter=20)
    assert np.all(np.isfinite(res.plan)) and np.isfinite(res.cost)


def test_sns_converges_where_sinkhorn_crawls():
    """Costs up to 1e3 and reg 0.1 (1e-4 relative): Sinkhorn needs ~5e4 iterations."""
    a, b, M = _problem(n=40, m=30, seed=1, scale=1e3)
    reg = 0.1
    res = sinkhorn_newton_sparse(a, b, M, reg, tol=1e-10, max_iter=300)
    assert res.converged
    ref = sinkhorn(a, b, M, reg, tol=1e-12, max_iter=200_000)
    assert ref.n_sinkhorn > 20 * (res.n_sinkhorn + res.n_newton)
    np.testing.assert_allclose(res.plan, ref.plan, rtol=0, atol=1e-9)


def test_non_square_and_unnormalised_costs():
    a, b, M = _problem(n=20, m=90, seed=10, scale=50.0)
    res = sinkhorn_newton_sparse(a, b, M, 0.5, tol=1e-10)
    np.testing.assert_allclose(res.plan, _pot_plan(a, b, M, 0.5), rtol=0, atol=1e-9)


# ------------------------------------------------------------- options, dtype


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_float32(solver):
    a, b, M = _problem(seed=11)
    ref = SOLVERS[solver](a, b, M, 0.05, tol=1e-12)
    res = SOLVERS[solver](a.astype(np.float32), b.astype(np.float32),
                          M.astype(np.float32), 0.05, tol=1e-5)
    assert res.converged
    assert res.plan.dtype == np.float32 and res.f.dtype == np.float32
    assert _l1_marginal_error(res.plan.astype(np.float64), a, b) < 1e-4
    # entrywise deviations are bounded by the L1 marginal tolerance
    np.testing.assert_allclose(res.plan, ref.plan, rtol=0, atol=1e-5)
    # the default tolerance follows the dtype (float32 cannot reach 1e-9)
    default = SOLVERS[solver](a.astype(np.float32), b.astype(np.float32),
                              M.astype(np.float32), 0.05)
    assert default.converged and default.tol == 1e-5


def test_sparse_plan_output():
    a, b, M = _problem(n=80, m=70, seed=12)
    dense = sinkhorn_newton_sparse(a, b, M, 0.005, tol=1e-9)
    res = sinkhorn_newton_sparse(a, b, M, 0.005, tol=1e-9, plan="sparse", plan_drop=1e-6)
    P = res.plan.to_scipy() if hasattr(res.plan, "to_scipy") else res.plan
    assert sp.issparse(P) and P.nnz < 0.5 * 80 * 70
    Pd = P.toarray()
    assert np.abs(Pd - dense.plan).sum() <= 1e-6 * (1 + 1e-9)
    np.testing.assert_allclose(res.marginal_error[-1], _l1_marginal_error(Pd, a, b),
                               rtol=1e-6)
    assert res.marginal_error[-1] <= 1e-9 + 2e-6
    none = sinkhorn(a, b, M, 0.05, plan=None)
    assert none.plan is None and np.isfinite(none.cost)


def test_sparse_plan_with_zero_weights():
    a, b, M = _problem(n=30, m=20, seed=13)
    a[4] = 0
    b[0] = 0
    res = sinkhorn(a / a.sum(), b / b.sum(), M, 0.05, tol=1e-10, plan="sparse",
                   plan_drop=0.0)
    dense = sinkhorn(a / a.sum(), b / b.sum(), M, 0.05, tol=1e-10)
    P = res.plan.to_scipy() if hasattr(res.plan, "to_scipy") else res.plan
    np.testing.assert_allclose(P.toarray(), dense.plan, rtol=1e-12, atol=0)


def test_topk_sparsification_on_random_costs():
    """The paper's fixed-density rule works on near-assignment problems."""
    rng = np.random.default_rng(14)
    n = 80
    M = rng.random((n, n))
    reg = 1 / 200
    res = sinkhorn_newton_sparse(None, None, M, reg, tol=1e-9, sparsify="topk",
                                 density=2.0, max_iter=200)
    assert res.converged
    assert np.all(res.history["nnz_per_row"] <= 4)
    ref = sinkhorn_newton_sparse(None, None, M, reg, tol=1e-11)
    np.testing.assert_allclose(res.plan, ref.plan, rtol=0, atol=1e-8)


def test_dense_newton_delta_zero_and_switch_tol():
    a, b, M = _problem(seed=15)
    res = sinkhorn_newton_sparse(a, b, M, 0.01, tol=1e-10, delta=0.0, switch_tol=1e-2,
                                 sinkhorn_iter=10_000)
    assert res.converged and res.marginal_error[res.n_sinkhorn - 1] <= 1e-2
    np.testing.assert_allclose(res.history["nnz_per_row"], M.shape[1])
    np.testing.assert_allclose(res.plan, _pot_plan(a, b, M, 0.01), rtol=0, atol=1e-9)


@pytest.mark.parametrize("solver", ["stabilized", "sns"])
def test_warm_start(solver):
    a, b, M = _problem(seed=16)
    cold = SOLVERS[solver](a, b, M, 0.01, tol=1e-10)
    warm = SOLVERS[solver](a, b, M, 0.01, tol=1e-10, init=(cold.f, cold.g))
    assert warm.n_sinkhorn + warm.n_newton <= 2
    np.testing.assert_allclose(warm.plan, cold.plan, rtol=0, atol=1e-10)


def test_normalize_option():
    a, b, M = _problem(seed=17)
    res = sinkhorn(3 * a, 0.5 * b, M, 0.05, normalize=True, tol=1e-10)
    ref = sinkhorn(a, b, M, 0.05, tol=1e-10)
    np.testing.assert_allclose(res.plan, ref.plan, atol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_inputs_not_modified(solver):
    a, b, M = _problem(seed=18)
    a[2] = 0
    a /= a.sum()
    copies = a.copy(), b.copy(), M.copy()
    init = (np.zeros(len(a)), np.zeros(len(b)))
    init_copies = init[0].copy(), init[1].copy()
    SOLVERS[solver](a, b, M, 0.05, init=init)
    for x, y in zip((a, b, M, *init), copies + init_copies, strict=True):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------- warnings, callback, logging


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_convergence_warning(solver):
    a, b, M = _problem(seed=19)
    with pytest.warns(ConvergenceWarning, match="L1 marginal error"):
        res = SOLVERS[solver](a, b, M, 1e-3, max_iter=3, sinkhorn_iter=2) if (
            solver == "sns") else SOLVERS[solver](a, b, M, 1e-3, max_iter=3)
    assert not res.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SOLVERS[solver](a, b, M, 1e-3, max_iter=3, warn=False)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_callback_stops(solver):
    a, b, M = _problem(seed=20)
    seen = []

    def cb(res):
        seen.append(res.marginal_error[-1])
        assert res.f.shape == (len(a),) and np.all(np.isfinite(res.f))
        return len(seen) >= 3

    res = SOLVERS[solver](a, b, M, 1e-3, callback=cb, check_every=1, tol=1e-12)
    assert len(seen) == 3 and not res.converged
    assert res.message == "stopped by callback"
    assert res.n_sinkhorn + res.n_newton == 3


def test_verbose_logs(caplog):
    a, b, M = _problem(seed=21)
    with caplog.at_level(logging.INFO, logger="sparseopt"):
        sinkhorn_newton_sparse(a, b, M, 0.01, verbose=2)
    assert any("marginal_error" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_bad_input(solver):
    a, b, M = _problem(n=10, m=8, seed=22)
    fn = SOLVERS[solver]
    bad_a = a.copy()
    bad_a[0] = -0.1
    with pytest.raises(ValueError, match="a must have non-negative"):
        fn(bad_a, b, M, 0.1)
    bad_b = b.copy()
    bad_b[1] = np.nan
    with pytest.raises(ValueError, match="b contains NaN"):
        fn(a, bad_b, M, 0.1)
    bad_M = M.copy()
    bad_M[0, 0] = np.inf
    with pytest.raises(ValueError, match="M contains infinity"):
        fn(a, b, bad_M, 0.1)
    with pytest.raises(ValueError, match="a has 10 entries but M has 8 rows"):
        fn(a, b, M.T, 0.1)
    with pytest.raises(ValueError, match="b has 8 entries but M has 10 columns"):
        fn(a, b, np.ones((10, 10)), 0.1)
    with pytest.raises(ValueError, match="M must have 2"):
        fn(a, b, M.ravel(), 0.1)
    for reg in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="reg"):
            fn(a, b, M, reg)
    with pytest.raises(ValueError, match="same total mass"):
        fn(a, 2 * b, M, 0.1)
    with pytest.raises(ValueError, match="tol"):
        fn(a, b, M, 0.1, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        fn(a, b, M, 0.1, max_iter=0)
    with pytest.raises(ValueError, match="plan"):
        fn(a, b, M, 0.1, plan="coo")
    with pytest.raises(TypeError, match="M must be a dense"):
        fn(a, b, sp.csr_matrix(M), 0.1)
    with pytest.raises(ValueError, match="init potentials"):
        fn(a, b, M, 0.1, init=(np.zeros(3), np.zeros(8)))


def test_bad_options():
    a, b, M = _problem(n=10, m=8)
    with pytest.raises(ValueError, match="method"):
        sinkhorn(a, b, M, 0.1, method="greenkhorn")
    with pytest.raises(ValueError, match="sparsify"):
        sinkhorn_newton_sparse(a, b, M, 0.1, sparsify="random")
    with pytest.raises(ValueError, match="delta"):
        sinkhorn_newton_sparse(a, b, M, 0.1, delta=1.5)
    with pytest.raises(ValueError, match="density"):
        sinkhorn_newton_sparse(a, b, M, 0.1, density=0)


def test_public_api_lazy_names():
    assert sparseopt.sinkhorn is sinkhorn
    assert sparseopt.sinkhorn_newton_sparse is sinkhorn_newton_sparse


# ----------------------------------------------------------------- costs


@pytest.mark.parametrize(("metric", "kw", "pot_metric", "pot_kw"), [
    ("sqeuclidean", {}, "sqeuclidean", {}),
    ("euclidean", {}, "euclidean", {}),
    ("cityblock", {}, "cityblock", {}),
    ("minkowski", {"p": 3.0}, "minkowski", {"p": 3.0}),
])
def test_cost_matrix_matches_pot(metric, kw, pot_metric, pot_kw):
    rng = np.random.default_rng(0)
    X, Y = rng.random((20, 3)), rng.random((15, 3))
    M = cost_matrix(X, Y, metric=metric, **kw)
    np.testing.assert_allclose(M, ot.dist(X, Y, metric=pot_metric, **pot_kw),
                               rtol=1e-10, atol=1e-12)


def test_cost_matrix_options():
    rng = np.random.default_rng(1)
    X = rng.random((10, 2)).astype(np.float32)
    M = cost_matrix(X, metric="euclidean", power=3.0, scale="max")
    assert M.dtype == np.float32 and M.shape == (10, 10)
    np.testing.assert_allclose(M.max(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.diag(M), 0, atol=1e-7)
    with pytest.raises(ValueError, match="same number of features"):
        cost_matrix(X, rng.random((4, 3)))
    with pytest.raises(ValueError, match="metric"):
        cost_matrix(X, metric="cosine")
    with pytest.raises(ValueError, match="p must be >= 1"):
        cost_matrix(X, metric="minkowski", p=0.5)


def test_grid_cost():
    C = grid_coordinates((3, 4))
    assert C.shape == (12, 2)
    np.testing.assert_array_equal(C[5], [1, 1])
    np.testing.assert_allclose(grid_cost((3, 4), p=2), ot.dist(C, C), atol=1e-12)
    np.testing.assert_allclose(grid_cost((3, 4), p=1), ot.dist(C, C, "euclidean"),
                               atol=1e-12)
    np.testing.assert_allclose(grid_cost((3, 4), p=1, metric="cityblock"),
                               ot.dist(C, C, "cityblock"), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        grid_cost((0, 3))


def test_wasserstein_grid_digits():
    """W1/W2 between two 8x8 digit images: entropic values approach ot.emd's."""
    from sklearn.datasets import load_digits

    images = load_digits().images
    a, b = images[0], images[10]
    # W1 (non-unique optimal plans, the paper's hard case) and W2
    for p, reg in ((1, 0.05), (2, 0.02)):
        M = grid_cost(a.shape, p=p)
        exact = np.sum(ot.emd(a.ravel() / a.sum(), b.ravel() / b.sum(), M) * M) ** (1 / p)
        d, res = wasserstein_grid(a, b, reg=reg, p=p, return_result=True, tol=1e-9)
        assert res.converged
        assert exact - 1e-9 <= d <= exact * 1.05
        d_sk, res_sk = wasserstein_grid(a, b, reg=reg, p=p, solver="sinkhorn", tol=1e-9,
                                        return_result=True)
        assert res_sk.converged
        assert res_sk.n_sinkhorn > 20 * (res.n_sinkhorn + res.n_newton)
        np.testing.assert_allclose(d, d_sk, rtol=1e-8)
    with pytest.raises(ValueError, match="same shape"):
        wasserstein_grid(a, b[:4], reg=0.1)


def test_topk_stalls_on_geometric_costs():
    """The paper's ~2 entries per row miss most of the mass of a point-cloud plan."""
    rng = np.random.default_rng(23)
    M = cost_matrix(rng.random((150, 2)), rng.random((150, 2)), scale="max")
    topk = sinkhorn_newton_sparse(None, None, M, 1e-3, tol=1e-9, sparsify="topk",
                                  max_iter=20, warn=False)
    mass = sinkhorn_newton_sparse(None, None, M, 1e-3, tol=1e-9, max_iter=20)
    assert mass.converged and not topk.converged
    assert topk.marginal_error[-1] > 1e3 * mass.marginal_error[-1]


def test_sns_small_reg_normalised_costs_float32_and_float64():
    """reg 1e-4 on costs of max 1 (the research note's robustness case), both dtypes.

    Sinkhorn needs more than 2e5 iterations here; the certificate of optimality
    is the plan's Gibbs form exp((f + g - M)/reg) together with its marginals.
    """
    rng = np.random.default_rng(24)
    M = cost_matrix(rng.random((120, 2)), rng.random((120, 2)), scale="max")
    reg = 1e-4
    a = np.full(120, 1 / 120)
    res = sinkhorn_newton_sparse(None, None, M, reg, tol=1e-10)
    assert res.converged
    assert _l1_marginal_error(res.plan, a, a) <= 1e-10
    gibbs = np.exp((res.f[:, None] + res.g[None, :] - M) / reg)
    np.testing.assert_allclose(res.plan, gibbs, rtol=1e-9, atol=1e-300)
    # a few Sinkhorn iterations from the potentials stay put
    sk = sinkhorn(None, None, M, reg, tol=1e-10, init=(res.f, res.g))
    assert sk.n_sinkhorn == 1
    np.testing.assert_allclose(sk.plan, res.plan, rtol=0, atol=1e-11)
    res32 = sinkhorn_newton_sparse(None, None, M.astype(np.float32), reg, tol=1e-6)
    assert res32.converged and res32.plan.dtype == np.float32
    np.testing.assert_allclose(res32.plan, res.plan, rtol=0, atol=1e-6)


def test_fallback_sweeps_keep_the_run_finite():
    """Plain Newton (no shift) on a hard problem fails line searches: the Sinkhorn
    fallback takes over and the error still decreases, with no overflow."""
    a, b, M = _problem(n=40, m=30, seed=1, scale=1e3)
    res = sinkhorn_newton_sparse(a, b, M, 0.1, tol=1e-10, shift=0.0, max_iter=40,
                                 warn=False)
    assert res.history["n_fallback"] > 0
    assert np.all(res.history["step"][res.history["step"] > 0] <= 1)
    assert np.all(np.isfinite(res.plan)) and np.all(np.isfinite(res.f))
    assert res.marginal_error[-1] < res.marginal_error[0]
    np.testing.assert_allclose(res.marginal_error[-1], _l1_marginal_error(res.plan, a, b),
                               rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 7),
    m=st.integers(1, 7),
    seed=st.integers(0, 2**31 - 1),
    reg=st.floats(0.05, 2.0),
    zeros=st.booleans(),
)
def test_random_small_problems_match_pot_log(n, m, seed, reg, zeros):
    rng = np.random.default_rng(seed)
    M = rng.random((n, m)) * 3
    a = rng.random(n) + 0.01
    b = rng.random(m) + 0.01
    if zeros and n > 1:
        a[rng.integers(n)] = 0
    if zeros and m > 1:
        b[rng.integers(m)] = 0
    a /= a.sum()
    b /= b.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P_ref = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", stopThr=1e-14,
                            numItermax=100_000)
    for fn in (sinkhorn, sinkhorn_newton_sparse):
        res = fn(a, b, M, reg, tol=1e-12)
        assert res.converged
        np.testing.assert_allclose(res.plan, P_ref, rtol=0, atol=1e-10)
