"""Entropic OT on device arrays: the backend-generic path of sinkhorn / SNS.

No GPU here: the device path runs on ``array_api_strict`` arrays through a
stand-in backend (``tests/xp_strict_backend.py``; the public functions
dispatch to it exactly as they do for CuPy arrays) and, forced, on NumPy
through the CPU backend.  Both are compared with the CPU solvers, which they
must follow iterate for iterate (same iteration, Newton-step and CG counts, so
the plans agree to rounding).  A ``cudasim`` test runs SNS through the real
``CupyBackend`` in numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/test_ot_gpu.py``).
``gpu``-marked tests run the same comparisons with CuPy arrays on a device::

    pip install -e ".[test,gpu]"
    python -m pytest -m gpu tests/test_ot_gpu.py
"""

import os
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sparseopt._numpy_backend import NumpyBackend
from sparseopt.kernels._sinkhorn import HIST_BINS, HIST_SHIFT, marginals_hist
from sparseopt.ot import (
    cost_matrix,
    grid_cost,
    sinkhorn,
    sinkhorn_newton_sparse,
    wasserstein_grid,
)
from sparseopt.solvers._ot_xp_driver import run_ot_xp
from sparseopt.solvers._sns_xp import hist_bins, histogram_xp, pcg_xp
from sparseopt.solvers.sns import pcg
from tests.xp_strict_backend import StrictBackend, registered

xs = pytest.importorskip("array_api_strict")
_STRICT_ARRAY = type(xs.asarray(0.0))

SOLVERS = {
    "stabilized": (sinkhorn, {}),
    "log": (sinkhorn, {"method": "log"}),
    "sns": (sinkhorn_newton_sparse, {}),
}


@pytest.fixture
def strict():
    with registered() as backend:
        yield backend


def _problem(n=40, m=30, seed=0, zeros=False, dtype=np.float64, scale=None):
    rng = np.random.default_rng(seed)
    M = cost_matrix(rng.random((n, 2)), rng.random((m, 2)) + 0.2, scale=scale)
    a = rng.random(n) + 0.1
    b = rng.random(m) + 0.1
    if zeros:
        a[[1, 5]] = 0.0
        b[0] = 0.0
    return a / a.sum(), b / b.sum(), M.astype(dtype)


def _host(x):
    if hasattr(x, "to_scipy"):
        return x.to_scipy().toarray()
    return np.asarray(x)


def _assert_same_run(res, ref, *, rtol=1e-9):
    """Same iterates as the CPU: same counts, and results equal to rounding."""
    assert (res.n_sinkhorn, res.n_newton, res.n_cg) == (ref.n_sinkhorn, ref.n_newton, ref.n_cg)
    assert res.converged == ref.converged
    P, Q = _host(res.plan), _host(ref.plan)
    assert P.dtype == Q.dtype
    np.testing.assert_allclose(P, Q, rtol=rtol, atol=rtol * Q.max())
    for mine, cpu in ((res.f, ref.f), (res.g, ref.g)):
        mine = np.asarray(mine)
        np.testing.assert_array_equal(np.isinf(mine), np.isinf(cpu))
        np.testing.assert_allclose(mine[np.isfinite(cpu)], cpu[np.isfinite(cpu)],
                                   rtol=rtol, atol=rtol)
    np.testing.assert_allclose(res.cost, ref.cost, rtol=rtol)
    np.testing.assert_allclose(res.objective, ref.objective, rtol=rtol)
    np.testing.assert_allclose(res.marginal_error, ref.marginal_error, rtol=1e-6,
                               atol=1e-15)


# ------------------------------------------------------------ generic path vs CPU


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("zeros", [False, True])
def test_strict_namespace_follows_cpu_iterates(strict, solver, zeros):
    fn, kw = SOLVERS[solver]
    a, b, M = _problem(zeros=zeros, seed=1)
    ref = fn(a, b, M, 0.05, tol=1e-11, **kw)
    res = fn(xs.asarray(a), xs.asarray(b), xs.asarray(M), 0.05, tol=1e-11, **kw)
    for field in (res.plan, res.f, res.g):
        assert isinstance(field, _STRICT_ARRAY)     # outputs stay on the "device"
    assert isinstance(res.cost, float) and isinstance(res.objective, float)
    assert res.converged
    _assert_same_run(res, ref)


def test_sns_small_reg_follows_cpu_steps(strict):
    """reg 1e-3 on costs scaled to max 1: many Newton steps, sparse Hessians."""
    _, _, M = _problem(n=120, m=120, seed=3, scale="max")
    ref = sinkhorn_newton_sparse(None, None, M, 1e-3, tol=1e-10)
    res = sinkhorn_newton_sparse(None, None, xs.asarray(M), 1e-3, tol=1e-10)
    assert ref.n_newton > 5
    _assert_same_run(res, ref)
    np.testing.assert_allclose(res.history["nnz_per_row"], ref.history["nnz_per_row"])
    np.testing.assert_allclose(res.history["step"], ref.history["step"])
    assert strict.calls["spmv"] > 0     # the CSR Hessian went through the backend kernel


@pytest.mark.parametrize("dense_fraction", [0.0, 1.0], ids=["dense-S", "csr-S"])
def test_both_hessian_representations(strict, dense_fraction):
    _, _, M = _problem(n=60, m=50, seed=4, scale="max")
    ref = sinkhorn_newton_sparse(None, None, M, 2e-3, tol=1e-10)
    res = run_ot_xp(strict, "sinkhorn_newton_sparse", None, None, xs.asarray(M), 2e-3,
                    tol=1e-10, max_iter=200, init=None, plan="dense", plan_drop=None,
                    normalize=False, verbose=0, callback=None, check_every=1,
                    n_threads=None, warn=True, options={"dense_fraction": dense_fraction})
    _assert_same_run(res, ref)
    assert (strict.calls.get("spmv", 0) > 0) == (dense_fraction == 1.0)


@pytest.mark.parametrize("solver", ["stabilized", "sns"])
def test_generic_path_forced_on_numpy(solver):
    """The generic path with the CPU backend (array_api_compat.numpy, bincount)."""
    fn, kw = SOLVERS[solver]
    _, _, M = _problem(n=80, m=70, seed=5, scale="max")
    ref = fn(None, None, M, 2e-3, tol=1e-10, plan="sparse", **kw)
    res = run_ot_xp(NumpyBackend(), fn.__name__, None, None, M, 2e-3, tol=1e-10,
                    max_iter=100_000 if solver == "stabilized" else 200, init=None,
                    plan="sparse", plan_drop=None, normalize=False, verbose=0,
                    callback=None, check_every=1, n_threads=None, warn=True,
                    options={} if solver == "sns" else {"method": "stabilized", "tau": None})
    _assert_same_run(res, ref)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_float32_stays_float32(strict, solver):
    fn, kw = SOLVERS[solver]
    _, _, M = _problem(n=50, m=40, seed=6, dtype=np.float32)
    ref = fn(None, None, M, 0.05, **kw)
    res = fn(None, None, xs.asarray(M), 0.05, **kw)
    assert res.plan.dtype == xs.float32 and res.f.dtype == xs.float32
    assert res.converged and res.tol == 1e-5
    assert (res.n_sinkhorn, res.n_newton) == (ref.n_sinkhorn, ref.n_newton)
    # float32 products (eps 1.2e-7) accumulated over the iterations
    P = _host(res.plan)
    np.testing.assert_allclose(P, ref.plan, rtol=0, atol=1e-4 * ref.plan.max())
    P64 = P.astype(np.float64)
    err = np.abs(P64.sum(1) - 1 / 50).sum() + np.abs(P64.sum(0) - 1 / 40).sum()
    assert err <= 1e-5 * 1.01


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_sparse_plan_and_batch(strict, solver):
    fn, kw = SOLVERS[solver]
    a, b, M = _problem(seed=7, zeros=True)
    ref = fn(a, b, M, 0.05, plan="sparse", plan_drop=1e-4, **kw)
    res = fn(xs.asarray(a), xs.asarray(b), xs.asarray(M), 0.05, plan="sparse",
             plan_drop=1e-4, **kw)
    assert res.plan.nnz == ref.plan.nnz < M.size
    _assert_same_run(res, ref)
    B = np.stack([b, np.roll(b, 5)], axis=1)
    ref = fn(a, B, M, 0.05, **kw)
    res = fn(xs.asarray(a), xs.asarray(B), xs.asarray(M), 0.05, **kw)
    assert tuple(res.plan.shape) == (2, *M.shape) and tuple(res.f.shape) == (M.shape[0], 2)
    np.testing.assert_allclose(_host(res.plan), ref.plan, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(res.cost, ref.cost, rtol=1e-9)


def test_one_row_and_plan_none(strict):
    M = np.array([[0.3, 0.1, 0.7]])
    b = np.array([0.2, 0.5, 0.3])
    for fn, kw in SOLVERS.values():
        res = fn(None, xs.asarray(b), xs.asarray(M), 0.1, plan=None, **kw)
        ref = fn(None, b, M, 0.1, plan=None, **kw)
        assert res.plan is None and res.converged
        np.testing.assert_allclose(res.cost, ref.cost, rtol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_warm_start_and_inputs_untouched(strict, solver):
    fn, kw = SOLVERS[solver]
    a, b, M = _problem(seed=8)
    cold = fn(a, b, M, 0.02, **kw)
    arrays = [xs.asarray(v) for v in (a, b, M, cold.f, cold.g)]
    copies = [np.asarray(v).copy() for v in arrays]
    res = fn(*arrays[:3], 0.02, init=(arrays[3], arrays[4]), **kw)
    ref = fn(a, b, M, 0.02, init=(cold.f, cold.g), **kw)
    _assert_same_run(res, ref)
    assert res.n_sinkhorn <= 2
    for arr, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(np.asarray(arr), copy)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_convergence_warning_and_callback(strict, solver):
    fn, kw = SOLVERS[solver]
    a, b, M = _problem(seed=9)
    args = (xs.asarray(a), xs.asarray(b), xs.asarray(M), 1e-3)
    with pytest.warns(ConvergenceWarning, match="marginal error"):
        res = fn(*args, max_iter=2, **kw)
    assert not res.converged
    seen = []

    def stop(partial):
        seen.append(partial)
        assert isinstance(partial.f, _STRICT_ARRAY)
        return len(seen) == 3

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fn(*args, callback=stop, **kw)
    assert len(seen) == 3 and res.message == "stopped by callback" and not res.converged


def test_bad_input(strict):
    a, b, M = _problem()
    A, B, D = xs.asarray(a), xs.asarray(b), xs.asarray(M)
    bad = np.array(M)
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="M contains NaN"):
        sinkhorn(A, B, xs.asarray(bad), 0.1)
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match="M contains infinity"):
        sinkhorn_newton_sparse(A, B, xs.asarray(bad), 0.1)
    with pytest.raises(ValueError, match="a must have non-negative"):
        sinkhorn(xs.asarray(-a), B, D, 0.1)
    with pytest.raises(ValueError, match="same total mass"):
        sinkhorn(A, xs.asarray(2 * b), D, 0.1)
    with pytest.raises(ValueError, match="b has 29 entries"):
        sinkhorn(A, xs.asarray(b[1:]), D, 0.1)
    with pytest.raises(ValueError, match="M must have 2"):
        sinkhorn(A, B, xs.asarray(M[0]), 0.1)
    with pytest.raises(ValueError, match="reg must be > 0"):
        sinkhorn(A, B, D, -1.0)
    with pytest.raises(TypeError, match="M must hold real numbers"):
        sinkhorn(A, B, xs.asarray(M) + 0j, 0.1)
    with pytest.raises(ValueError, match="init potentials must not contain NaN"):
        sinkhorn(A, B, D, 0.1, init=(xs.asarray(np.full(40, np.nan)), xs.zeros(30)))
    # host and device arrays in one call: a TypeError saying which is where
    with pytest.raises(TypeError, match=r"a: numpy \(host\).*M: array_api_strict \(device\)"):
        sinkhorn(a, B, D, 0.1)
    with pytest.raises(TypeError, match=r"init\[0\]: numpy \(host\)"):
        sinkhorn(A, B, D, 0.1, init=(np.zeros(40), xs.zeros(30)))


def test_cost_matrix_and_wasserstein_grid(strict):
    rng = np.random.default_rng(10)
    X, Y = rng.random((30, 3)), rng.random((20, 3))
    for metric, kw in [("sqeuclidean", {}), ("euclidean", {"power": 2.0}),
                       ("cityblock", {"scale": "max"}), ("minkowski", {"p": 3.0})]:
        mine = cost_matrix(xs.asarray(X), xs.asarray(Y), metric=metric, **kw)
        assert isinstance(mine, _STRICT_ARRAY)
        np.testing.assert_allclose(np.asarray(mine), cost_matrix(X, Y, metric=metric, **kw),
                                   rtol=1e-12, atol=1e-14)
    img_a = rng.random((6, 5))
    img_b = rng.random((6, 5))
    for p in (1, 2):
        d_ref, ref = wasserstein_grid(img_a, img_b, 0.5, p=p, return_result=True)
        d, res = wasserstein_grid(xs.asarray(img_a), xs.asarray(img_b), 0.5, p=p,
                                  return_result=True)
        assert isinstance(res.plan, _STRICT_ARRAY)
        assert (res.n_sinkhorn, res.n_newton) == (ref.n_sinkhorn, ref.n_newton)
        np.testing.assert_allclose(d, d_ref, rtol=1e-9)
    assert grid_cost((6, 5)).shape == (30, 30)


# ------------------------------------------------------------------ building blocks


@pytest.mark.parametrize("xp_name", ["numpy", "strict"])
def test_histogram_and_bins_match_cpu_kernel(xp_name):
    nx = NumpyBackend() if xp_name == "numpy" else StrictBackend()
    rng = np.random.default_rng(11)
    # bins: powers of two, bin edges, their neighbours, subnormals (lumped into bin 1)
    edges = 2.0 ** np.arange(-1070.0, 1000.0, 7.0)[:, None] * (1 + np.arange(8) / 8)[None, :]
    vals = np.concatenate([edges.ravel(), np.nextafter(edges.ravel(), 0), [1e-310, 5e-324],
                           np.exp(rng.standard_normal(200) * 50)])
    np.testing.assert_array_equal(
        np.clip(vals.view(np.int64) >> HIST_SHIFT, 1, None),
        np.asarray(hist_bins(nx.xp, nx.asarray(vals))))
    # histogram of a plan: the CPU kernel's, zeros and lumped entries aside
    K = np.exp(-rng.random((30, 40)) * 80.0)
    K[0, :5] = 0.0
    x, y = np.exp(rng.standard_normal(30)), np.exp(rng.standard_normal(40))
    P = x[:, None] * K * y[None, :]
    vals = P[P > 0]
    for floor in (0.0, float(np.quantile(vals, 0.3))):
        r, c = np.empty(30), np.empty(40)
        hm, hc = np.empty(HIST_BINS), np.empty(HIST_BINS, dtype=np.int64)
        marginals_hist(K, x, y, r, c, hm, hc, np.empty(40), floor)
        mass, count = histogram_xp(nx, nx.asarray(P), floor)
        hc[0] = 0                            # zeros are not counted on the device
        if floor > 0:
            count[1], hc[1] = 0, 0           # nor are the lumped entries (mass only)
        np.testing.assert_array_equal(count, hc)
        np.testing.assert_allclose(mass, hm, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("xp_name", ["numpy", "strict"])
def test_pcg_matches_cpu(xp_name):
    nx = NumpyBackend() if xp_name == "numpy" else StrictBackend()
    rng = np.random.default_rng(12)
    G = rng.standard_normal((25, 25))
    A = G @ G.T + 0.5 * np.eye(25)
    rhs = rng.standard_normal(25)
    x_ref, k_ref = pcg(lambda p, out: np.matmul(A, p, out=out), rhs, np.diag(A).copy(),
                       1e-8, 100)
    Ad = nx.asarray(A)
    x, k = pcg_xp(nx, lambda p: Ad @ p, nx.asarray(rhs), nx.asarray(np.diag(A).copy()),
                  1e-8, 100)
    assert k == k_ref
    np.testing.assert_allclose(np.asarray(x), x_ref, rtol=1e-10, atol=1e-12)
    x, k = pcg_xp(nx, lambda p: Ad @ p, nx.asarray(np.zeros(25)), nx.asarray(np.ones(25)),
                  1e-8, 100)
    assert k == 0 and not np.asarray(x).any()


# ------------------------------------------------------------------ on a GPU


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cupy_matches_numpy(cp, solver, dtype):
    fn, kw = SOLVERS[solver]
    _, _, M = _problem(n=300, m=250, seed=13, scale="max", dtype=dtype)
    reg = 5e-3
    ref = fn(None, None, M, reg, **kw)
    res = fn(None, None, cp.asarray(M), reg, **kw)
    assert isinstance(res.plan, cp.ndarray) and isinstance(res.f, cp.ndarray)
    assert res.plan.dtype == dtype and res.converged
    if dtype == np.float64:
        _assert_same_run(res, ref, rtol=1e-7)
    else:
        np.testing.assert_allclose(cp.asnumpy(res.plan), ref.plan, rtol=0,
                                   atol=1e-4 * ref.plan.max())


@pytest.mark.gpu
def test_cupy_sparse_plan_zero_weights_and_mixing(cp):
    from sparseopt import CSR

    a, b, M = _problem(n=200, m=150, seed=14, zeros=True)
    ref = sinkhorn_newton_sparse(a, b, M, 0.01, plan="sparse")
    res = sinkhorn_newton_sparse(cp.asarray(a), cp.asarray(b), cp.asarray(M), 0.01,
                                 plan="sparse")
    assert isinstance(res.plan, CSR) and isinstance(res.plan.data, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(res.plan.todense()), ref.plan.toarray(),
                               rtol=1e-7, atol=1e-12)
    with pytest.raises(TypeError, match=r"a: numpy \(host\).*M: cupy \(device\)"):
        sinkhorn(a, cp.asarray(b), cp.asarray(M), 0.01)
    d_ref = wasserstein_grid(np.ones((8, 8)), np.eye(8) + 0.1, 1.0)
    d = wasserstein_grid(cp.ones((8, 8)), cp.eye(8) + 0.1, 1.0)
    np.testing.assert_allclose(d, d_ref, rtol=1e-7)


# ------------------------------------------------ the real GPU backend, simulated


@pytest.mark.cudasim
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="needs NUMBA_ENABLE_CUDASIM=1 before numba is imported")
def test_sns_csr_hessian_on_simulated_cupy_backend():
    """SNS with the CSR Hessian through CupyBackend's numba.cuda SpMV (simulated).

    Checks the contract between the generic solver and the real device backend
    (index and value dtypes, output arrays).  Run with
    ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/test_ot_gpu.py``.
    """
    from sparseopt.gpu import CupyBackend

    _, _, M = _problem(n=14, m=12, seed=15, scale="max")
    ref = sinkhorn_newton_sparse(None, None, M, 5e-3, tol=1e-10, plan="sparse")
    res = run_ot_xp(CupyBackend(xp=np), "sinkhorn_newton_sparse", None, None, M, 5e-3,
                    tol=1e-10, max_iter=200, init=None, plan="sparse", plan_drop=None,
                    normalize=False, verbose=0, callback=None, check_every=1,
                    n_threads=None, warn=True, options={"dense_fraction": 1.0})
    assert ref.n_newton > 0
    _assert_same_run(res, ref)
