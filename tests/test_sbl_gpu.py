"""SBL on device arrays: the backend-generic path, tested without a GPU.

The device path of every SBL solver (fast marginal likelihood, EM, block SBL,
Kronecker SBL, RVC) is written against ``nx.xp`` plus the backend's sparse
kernels.  Here it runs on ``array_api_strict`` (a NumPy-backed namespace with
nothing but the array API standard, registered as a stand-in device backend
whose kernels are the CPU ones) and on the NumPy namespace, and is compared
with the CPU solvers.  Both paths run the same float64 arithmetic and take the
same discrete decisions (actions, pruning), so the results agree to rounding:
the tolerances below are a few hundred ulps of the compared quantities, not
the solvers' stopping tolerances.  While a solver runs, implicit host
conversions of strict arrays (``float(a)``, ``bool(a)``, ``np.asarray(a)``)
raise, so every synchronisation goes through the backend's ``to_numpy``, which
counts them.

``@pytest.mark.gpu`` tests compare CuPy with NumPy results on a device
(``python -m pytest -m gpu tests/test_sbl_gpu.py``).
"""


import numpy as np
import pytest
import scipy.sparse as sp

from sparseopt._numpy_backend import NumpyBackend
from sparseopt.solvers.sbl_em import block_sbl, sbl_em
from sparseopt.solvers.sbl_fast import sbl_fast
from sparseopt.solvers.sbl_kron import kronecker_sbl
from sparseopt.solvers.sbl_rvc import rvm_classification
from tests.strict_device import DeviceCSR, dev, host, strict_device, xps

RTOL = 1e-9     # same float64 arithmetic, different summation order
ATOL = 1e-11


def _regression(n=40, p=60, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    if sparse:
        X = sp.random_array((n, p), density=0.25, random_state=seed, format="csr")
    else:
        X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[[3 % p, 10 % p, 40 % p]] = [1.5, -2.0, 1.0]
    y = X @ w + 0.05 * rng.standard_normal(n)
    return X, y, rng


def _compare_sbl(res, ref, rtol=RTOL, atol=ATOL):
    np.testing.assert_array_equal(host(res.active), ref.active)
    np.testing.assert_allclose(host(res.x), ref.x, rtol=rtol, atol=atol)
    fin = np.isfinite(ref.alpha)
    np.testing.assert_array_equal(np.isfinite(host(res.alpha)), fin)
    # α = s²/θ with θ = q² − s: for weakly relevant columns θ is a difference of
    # nearly equal numbers, which amplifies the rounding of the rank-one updates
    np.testing.assert_allclose(host(res.alpha)[fin], ref.alpha[fin], rtol=1e-6)
    np.testing.assert_allclose(host(res.sigma), ref.sigma, rtol=rtol * 10, atol=atol)
    np.testing.assert_allclose(res.log_marginal_likelihood, ref.log_marginal_likelihood,
                               rtol=rtol)
    np.testing.assert_allclose(res.noise_variance, ref.noise_variance, rtol=rtol)
    np.testing.assert_allclose(res.intercept, ref.intercept, rtol=rtol, atol=atol)
    assert res.n_iter == ref.n_iter and res.converged == ref.converged
    np.testing.assert_allclose(res.history["log_marginal_likelihood"],
                               ref.history["log_marginal_likelihood"], rtol=rtol)


# ---------------------------------------------------------------------------
# fast marginal likelihood
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("opts", [{}, {"fit_intercept": True, "weights": True},
                                  {"noise_variance": 0.01}])
def test_fast_matches_cpu(sparse, opts):
    X, y, rng = _regression(sparse=sparse)
    kw = dict(opts)
    if kw.pop("weights", False):
        kw["sample_weight"] = rng.uniform(0.5, 2.0, y.shape[0])
    ref = sbl_fast(X, y, **kw)
    with strict_device() as be:
        res = sbl_fast(dev(X), dev(y), **{k: dev(v) for k, v in kw.items()})
    assert isinstance(res.x, type(xps.asarray(0.0)))
    _compare_sbl(res, ref)
    # one transfer per action, plus the noise re-estimation steps and set-up
    assert be.n_fetch <= 3 * res.n_iter + 10


def test_fast_generic_path_on_numpy_namespace():
    """The same device code on NumPy arrays (scipy triangular solves, NumPy indexing)."""
    from sparseopt.solvers.sbl_xp_fast import sbl_fast_xp

    X, y, _ = _regression(sparse=True, seed=3)
    ref = sbl_fast(X, y, fit_intercept=True)
    res = sbl_fast_xp(NumpyBackend(), DeviceCSR(X, np.asarray), y, None, True, None,
                      1e-3, 10000, 10, 5, 1e-12, 1.0 - 1e-3, True, 0, None)
    np.testing.assert_array_equal(res.active, ref.active)
    np.testing.assert_allclose(res.x, ref.x, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.log_marginal_likelihood, ref.log_marginal_likelihood,
                               rtol=RTOL)


def test_fast_float32_edge_cases_and_inputs_unchanged():
    X, y, _ = _regression(n=30, p=20, seed=4)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    ref = sbl_fast(X32, y32)
    with strict_device():
        Xd, yd = dev(X32), dev(y32)
        res = sbl_fast(Xd, yd)
        one = sbl_fast(dev(X[:, :1]), yd)
        zero = sbl_fast(Xd, dev(np.zeros(30, np.float32)))
    assert res.x.dtype == xps.float32 and res.sigma.dtype == xps.float32
    # float32 data, float64 arithmetic on both paths (the CPU keeps X in float32
    # for its products): agreement to float32 rounding
    np.testing.assert_allclose(host(res.x), ref.x, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(host(Xd), X32)
    np.testing.assert_array_equal(host(yd), y32)
    ref_one = sbl_fast(X[:, :1], y32)
    np.testing.assert_allclose(host(one.x), ref_one.x, rtol=1e-6)
    assert zero.converged and host(zero.active).size == 0
    np.testing.assert_array_equal(host(zero.x), np.zeros(20, np.float32))


# ---------------------------------------------------------------------------
# EM and block SBL
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_em_matches_cpu(sparse):
    X, y, rng = _regression(sparse=sparse, seed=1)
    w = rng.uniform(0.5, 2.0, y.shape[0])
    for kw in ({}, {"fit_intercept": True, "sample_weight": w}):
        ref = sbl_em(X, y, **kw)
        with strict_device() as be:
            res = sbl_em(dev(X), dev(y), **{k: dev(v) for k, v in kw.items()})
        _compare_sbl(res, ref)
        # one transfer per iteration, one more when pruning shrinks the working set
        assert be.n_fetch <= 2 * res.n_iter + 10


def test_block_sbl_matches_cpu():
    X, y, _ = _regression(seed=2)
    labels = np.arange(60) // 3
    ref = block_sbl(X, y, 3)
    with strict_device():
        res = block_sbl(dev(X), dev(y), 3)
        res_lab = sbl_em(dev(X), dev(y), groups=dev(labels))
    _compare_sbl(res, ref)
    _compare_sbl(res_lab, ref)


# ---------------------------------------------------------------------------
# Kronecker SBL
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method,kw", [("svd", {}), ("am", {}),
                                       ("am_block", {"block_sizes": 2}),
                                       ("classic", {}), ("svd", {"noise_variance": 1e-4})])
def test_kronecker_matches_cpu(method, kw):
    rng = np.random.default_rng(0)
    A1, A2 = rng.standard_normal((6, 10)), rng.standard_normal((7, 12))
    x1, x2 = np.zeros(10), np.zeros(12)
    x1[[1, 4]], x2[[0, 7, 8]] = [1.0, -1.0], [2.0, 1.0, 1.0]
    y = np.kron(A1, A2) @ np.kron(x1, x2) + 0.01 * rng.standard_normal(42)
    ref = kronecker_sbl(y, [A1, A2], method=method, **kw)
    with strict_device() as be:
        res = kronecker_sbl(dev(y), [dev(A1), dev(A2)], method=method, **kw)
    np.testing.assert_array_equal(host(res.active), ref.active)
    np.testing.assert_allclose(host(res.x), ref.x, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(host(res.sigma_diag), ref.sigma_diag, rtol=1e-8,
                               atol=1e-13)
    np.testing.assert_allclose(res.log_marginal_likelihood, ref.log_marginal_likelihood,
                               rtol=1e-10)
    assert res.n_iter == ref.n_iter
    if method != "classic":
        for g, gr in zip(res.gammas, ref.gammas, strict=True):
            np.testing.assert_allclose(host(g), gr, rtol=1e-8, atol=1e-12)
        # one transfer per EM iteration (+ one per AM inner sweep)
        inner = 1 + 100 * (method != "svd")
        assert be.n_fetch <= (inner + 1) * res.n_iter + 10


# ---------------------------------------------------------------------------
# RVC
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_rvc_matches_cpu(sparse):
    rng = np.random.default_rng(0)
    n, p = 80, 30
    X = (sp.random_array((n, p), density=0.3, random_state=1, format="csr") if sparse
         else rng.standard_normal((n, p)))
    w = np.zeros(p)
    w[[2, 5]] = [2.0, -3.0]
    y = (X @ w + 1.0 * rng.standard_normal(n) > 0).astype(float)
    sw = rng.uniform(0.5, 2.0, n)
    for kw in ({}, {"fit_intercept": False}, {"sample_weight": sw}):
        ref = rvm_classification(X, y, **kw)
        with strict_device():
            res = rvm_classification(dev(X), dev(y), **{k: dev(v) for k, v in kw.items()})
        # the Laplace mode is found by Newton to ‖∇‖∞ < newton_tol = 1e-9 on both
        # paths, so the modes may differ by about newton_tol ‖H⁻¹‖ (here ≲ 1e-7)
        np.testing.assert_array_equal(host(res.active), ref.active)
        np.testing.assert_allclose(host(res.x), ref.x, rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(res.log_marginal_likelihood,
                                   ref.log_marginal_likelihood, rtol=1e-9)
        np.testing.assert_allclose(res.intercept, ref.intercept, rtol=1e-7, atol=1e-7)
        assert res.n_iter == ref.n_iter and res.bias_active == ref.bias_active


# ---------------------------------------------------------------------------
# bad input, warnings, callbacks
# ---------------------------------------------------------------------------
def test_bad_input_and_mixing():
    X, y, _ = _regression(n=20, p=10)
    bad = y.copy()
    bad[3] = np.nan
    with strict_device():
        with pytest.raises(ValueError, match="y contains NaN"):
            sbl_fast(dev(X), dev(bad))
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            sbl_em(dev(X), dev(y[:5]))
        with pytest.raises(TypeError, match=r"X is a array_api_strict \(device\).*y is a "
                           r"numpy \(host\)"):
            sbl_fast(dev(X), y)
        with pytest.raises(TypeError, match="host and device"):
            kronecker_sbl(dev(y[:20]), [X[:4, :5], dev(X[:5, :4])])
        with pytest.raises(ValueError, match="binary targets"):
            rvm_classification(dev(X), dev(y))
        with pytest.raises(ValueError, match="noise_variance"):
            sbl_em(dev(X), dev(y), noise_variance=-1.0)


def test_convergence_warning_and_callback():
    from sklearn.exceptions import ConvergenceWarning

    X, y, _ = _regression()
    with strict_device():
        with pytest.warns(ConvergenceWarning):
            res = sbl_em(dev(X), dev(y), max_iter=2)
        assert res.n_iter == 2 and not res.converged
        seen = []

        def stop(r):
            seen.append(host(r.x).copy())
            return len(seen) == 3

        res = sbl_fast(dev(X), dev(y), callback=stop)
    assert res.n_iter == 3 and res.message == "stopped by callback"
    assert len(seen) == 3


# ---------------------------------------------------------------------------
# on a GPU
# ---------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["fast", "em", "block", "rvc", "kron"])
def test_cupy_matches_numpy(solver):
    cp = pytest.importorskip("cupy")
    from sparseopt.gpu import to_device

    X, _, rng = _regression(n=60, p=80, seed=5)
    Xs = sp.random_array((60, 80), density=0.2, random_state=5, format="csr")
    for design in (X, Xs):
        Xd = to_device(sp.csr_array(design)) if sp.issparse(design) else cp.asarray(design)
        yy = design @ np.where(np.arange(80) % 17 == 0, 1.0, 0.0) + 0.05 * rng.standard_normal(60)
        if solver == "fast":
            ref, res = sbl_fast(design, yy), sbl_fast(Xd, cp.asarray(yy))
        elif solver == "em":
            ref, res = sbl_em(design, yy), sbl_em(Xd, cp.asarray(yy))
        elif solver == "block":
            ref, res = block_sbl(design, yy, 4), block_sbl(Xd, cp.asarray(yy), 4)
        elif solver == "rvc":
            lab = (yy > np.median(yy)).astype(float)
            ref, res = rvm_classification(design, lab), rvm_classification(Xd,
                                                                             cp.asarray(lab))
        else:
            A1, A2 = rng.standard_normal((6, 8)), rng.standard_normal((5, 10))
            yk = np.kron(A1, A2) @ rng.standard_normal(80) * (np.arange(80) % 9 == 0)
            ref = kronecker_sbl(yk, [A1, A2])
            res = kronecker_sbl(cp.asarray(yk), [cp.asarray(A1), cp.asarray(A2)])
        assert isinstance(res.x, cp.ndarray)
        np.testing.assert_array_equal(cp.asnumpy(res.active), ref.active)
        np.testing.assert_allclose(cp.asnumpy(res.x), ref.x, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(res.log_marginal_likelihood,
                                   ref.log_marginal_likelihood, rtol=1e-8)
        if solver == "kron":
            break
