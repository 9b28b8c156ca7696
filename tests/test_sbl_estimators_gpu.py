"""The SBL estimators on device arrays, tested without a GPU.

``SparseBayesianRegression``, ``RelevanceVectorClassifier`` and ``KroneckerSBL``
keep device input on the device: validation, kernel matrices, the solvers'
device paths and predict / predict_proba / transform run on the device, and
the fitted arrays stay there.  Here the device is ``array_api_strict`` behind
the stand-in backends of ``tests/strict_device.py`` (which also refuses any
implicit host conversion and counts the explicit ones) and
``tests/xp_strict_backend.py``.

Tolerances.  Host and device run the same float64 algorithms with the same
discrete decisions (active sets, pruning); only summation orders differ
(BLAS vs. array-API reductions, sklearn's kernel formulas vs. ours), so the
inputs of every solve agree to a few ulps and the results to that times the
conditioning of the posterior: ``RTOL = 1e-9`` (as in ``tests/test_sbl_gpu.py``).
Two quantities are looser, for reasons the solvers fix, not the rounding:
``lambda_ = s²/θ`` with ``θ = q² − s`` a difference of nearly equal numbers for
weakly relevant columns (``rtol=1e-6``), and the RVC, whose Laplace mode is
found by Newton to ``‖∇‖∞ < newton_tol = 1e-9`` on each path: each mode may
differ by about ``newton_tol ‖Σ‖₂`` (``Σ = H⁻¹``; ``‖Σ‖₂ < 20`` here, checked), and each
mode feeds the next ``α`` re-estimate, so the differences accumulate over the
add/re-estimate/delete actions.  We use the functional solver's device-test
tolerance (``tests/test_sbl_gpu.py``): ``1e-7`` on the O(1) weights, and
``1e-7 ‖b‖₂`` on a decision value ``bᵀw`` (observed: 2e-14 to 1.4e-8).

``@pytest.mark.gpu`` tests compare CuPy with NumPy on a device::

    python -m pytest -m gpu tests/test_sbl_estimators_gpu.py
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import pairwise_kernels

from sparseopt.bayes import (
    KroneckerSBL,
    RelevanceVectorClassifier,
    SparseBayesianRegression,
    _pairwise_kernel_xp,
)
from tests import xp_strict_backend
from tests.strict_device import dev, host, strict_device, xps

RTOL = 1e-9
ATOL = 1e-11
STRICT = type(xps.asarray(0.0))


@pytest.fixture(params=["strict_device", "xp_strict_backend"])
def device(request):
    """Either stand-in device backend (both register array_api_strict): the
    regressor runs on both, the rest on the stricter one."""
    ctx = strict_device() if request.param == "strict_device" else \
        xp_strict_backend.registered()
    with ctx as be:
        yield be


@pytest.fixture
def strict():
    """The stricter stand-in alone (refuses implicit host conversions)."""
    with strict_device() as be:
        yield be


def _regression(n=40, p=12, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    X = (sp.random_array((n, p), density=0.3, random_state=seed, format="csr")
         if sparse else rng.standard_normal((n, p)))
    w = np.zeros(p)
    w[[1 % p, 4 % p, 9 % p]] = [1.5, -2.0, 1.0]
    y = X @ w + 0.5 + 0.05 * rng.standard_normal(n)
    return X, y, rng


def _classification(n=70, p=6, seed=0, n_classes=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    f = X[:, 0] - 0.8 * X[:, 2] + 0.8 * rng.standard_normal(n)
    y = np.digitize(f, [0.0] if n_classes == 2 else [-0.6, 0.6])
    return X, y


def _close(dev_arr, ref, rtol=RTOL, atol=ATOL):
    assert isinstance(dev_arr, STRICT)
    np.testing.assert_allclose(host(dev_arr), ref, rtol=rtol,
                               atol=atol * max(1.0, np.abs(ref).max(initial=0.0)))


def _compare_regression(est, ref):
    np.testing.assert_array_equal(host(est.active_), ref.active_)
    _close(est.coef_, ref.coef_)
    fin = np.isfinite(ref.lambda_)
    np.testing.assert_array_equal(np.isfinite(host(est.lambda_)), fin)
    np.testing.assert_allclose(host(est.lambda_)[fin], ref.lambda_[fin], rtol=1e-6)
    _close(est.sigma_, ref.sigma_, rtol=10 * RTOL)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_, rtol=RTOL)
    np.testing.assert_allclose(est.log_marginal_likelihood_,
                               ref.log_marginal_likelihood_, rtol=RTOL)
    np.testing.assert_allclose(est.scores_, ref.scores_, rtol=RTOL)
    assert est.n_iter_ == ref.n_iter_ and est.n_features_in_ == ref.n_features_in_


# ---------------------------------------------------------------------------
# the kernels on the device
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["linear", "rbf", "poly", "sigmoid", "laplacian",
                                    "cosine"])
def test_device_kernels_match_sklearn(metric):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((9, 4)), rng.standard_normal((5, 4))
    X[3] = 0.0   # a zero row (cosine keeps it zero)
    params = {"gamma": 0.3, "degree": 3, "coef0": 0.5}
    for A, B, same in ((X, Y, False), (X, X, True)):
        ref = pairwise_kernels(A, B, metric=metric, filter_params=True, **params)
        Ad = xps.asarray(A)
        K = _pairwise_kernel_xp(xps, Ad, Ad if same else xps.asarray(B), metric,
                                same=same, **params)
        # entries are O(1) sums of 4 products: a few ulps apart
        np.testing.assert_allclose(np.asarray(K), ref, rtol=1e-13, atol=1e-14)
    K32 = _pairwise_kernel_xp(xps, xps.asarray(X.astype(np.float32)),
                              xps.asarray(Y.astype(np.float32)), metric, **params)
    assert K32.dtype == xps.float32


# ---------------------------------------------------------------------------
# SparseBayesianRegression
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("opts", [
    {},
    {"solver": "em", "max_iter": 300},
    {"fit_intercept": False, "noise_variance": 0.01},
    {"weights": True},
    {"sparse": True},
    {"sparse": True, "solver": "em", "max_iter": 300},
    {"kernel": "rbf"},
    {"kernel": "poly", "degree": 2, "gamma": 0.1},
    {"kernel": "laplacian", "gamma": "auto"},
    {"kernel": "precomputed"},
])
def test_regression_matches_host(device, opts):
    opts = dict(opts)
    sparse = opts.pop("sparse", False)
    X, y, rng = _regression(sparse=sparse)
    Xt = X[:7]
    if opts.get("kernel") == "precomputed":
        X, Xt = X @ X.T, Xt @ X.T
    fit_kw = {"sample_weight": rng.uniform(0.5, 2.0, y.shape[0])} \
        if opts.pop("weights", False) else {}
    ref = SparseBayesianRegression(**opts).fit(X, y, **fit_kw)
    mean, std = ref.predict(Xt, return_std=True)
    Xd, yd = dev(X), dev(y)
    est = SparseBayesianRegression(**opts).fit(Xd, yd, **{k: dev(v) for k, v in
                                                          fit_kw.items()})
    _compare_regression(est, ref)
    if isinstance(device, xp_strict_backend.StrictBackend):
        return
    device.n_fetch = 0
    mean_d, std_d = est.predict(dev(Xt), return_std=True)
    # the only transfers of a prediction are the input checks (sparse X: two,
    # the format's own check included); no host round trip of the data
    assert device.n_fetch <= (2 if sparse else 1)
    _close(mean_d, mean)
    _close(std_d, std)
    _close(est.predict(dev(Xt)), mean)
    if opts.get("kernel") not in (None, "precomputed"):
        _close(est.relevance_vectors_, ref.relevance_vectors_, rtol=0, atol=0)
    if not sparse:
        np.testing.assert_array_equal(host(Xd), X)   # input not modified
        np.testing.assert_array_equal(host(yd), y)


def test_regression_fitted_attributes_on_device_and_float32():
    X, y, _ = _regression(seed=2)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    ref = SparseBayesianRegression(kernel="rbf").fit(X32, y32)
    with strict_device():
        est = SparseBayesianRegression(kernel="rbf").fit(dev(X32), dev(y32))
        pred, std = est.predict(dev(X32[:5]), return_std=True)
    for name in ("coef_", "lambda_", "sigma_", "active_", "relevance_vectors_"):
        assert isinstance(getattr(est, name), STRICT), name
    assert est.coef_.dtype == xps.float32 and pred.dtype == xps.float32
    assert std.dtype == xps.float32
    # float32 data: the kernel (float32 on the host, float64 on the device, then
    # rounded) and the data differ by float32 rounding, ~6e-8 relative
    np.testing.assert_array_equal(host(est.active_), ref.active_)
    np.testing.assert_allclose(host(pred), ref.predict(X32[:5]), rtol=1e-4, atol=1e-4)


def test_regression_edge_cases_and_callback():
    X, y, _ = _regression(n=15, p=4, seed=3)
    with strict_device():
        one = SparseBayesianRegression().fit(dev(X[:, :1]), dev(y))
        zero = SparseBayesianRegression().fit(dev(X), dev(np.zeros(15)))
        single = SparseBayesianRegression(noise_variance=0.1).fit(dev(X[:1]), dev(y[:1]))
        seen = []

        def stop(res):
            seen.append(res.n_iter)
            return len(seen) == 2

        cb = SparseBayesianRegression().fit(dev(X), dev(y), callback=stop)
        pred_zero = zero.predict(dev(X))
    ref_one = SparseBayesianRegression().fit(X[:, :1], y)
    _close(one.coef_, ref_one.coef_)
    assert host(zero.active_).size == 0
    np.testing.assert_array_equal(host(pred_zero), np.zeros(15))
    ref_single = SparseBayesianRegression(noise_variance=0.1).fit(X[:1], y[:1])
    _close(single.coef_, ref_single.coef_)
    assert cb.n_iter_ == 2 and len(seen) == 2


# ---------------------------------------------------------------------------
# RelevanceVectorClassifier
# ---------------------------------------------------------------------------
RVC_TOL = 1e-7   # see the module docstring


@pytest.mark.parametrize("opts", [
    {},
    {"fit_intercept": False},
    {"n_classes": 3},
    {"weights": True},
    {"kernel": "rbf"},
    {"sparse": True},
])
def test_classifier_matches_host(strict, opts):
    opts = dict(opts)
    X, y = _classification(n_classes=opts.pop("n_classes", 2))
    if opts.pop("sparse", False):
        X = sp.csr_array(np.where(np.abs(X) > 0.5, X, 0.0))
    fit_kw = {"sample_weight": np.random.default_rng(4).uniform(0.5, 2.0, y.shape[0])} \
        if opts.pop("weights", False) else {}
    ref = RelevanceVectorClassifier(**opts).fit(X, y, **fit_kw)
    est = RelevanceVectorClassifier(**opts).fit(dev(X), dev(y), **{k: dev(v) for k, v in
                                                                 fit_kw.items()})
    for name in ("classes_", "coef_", "intercept_", "lambda_", "support_"):
        assert isinstance(getattr(est, name), STRICT), name
    np.testing.assert_array_equal(host(est.classes_), ref.classes_)
    np.testing.assert_array_equal(host(est.support_), ref.support_)
    for a, r in zip(est.active_, ref.active_, strict=True):
        np.testing.assert_array_equal(host(a), r)
    # Newton's stopping rule, not the rounding, sets this tolerance (it assumes
    # a well-conditioned posterior: checked here)
    assert max(np.linalg.norm(S, 2) for S in ref.sigma_) < 20.0
    atol = RVC_TOL
    np.testing.assert_allclose(host(est.coef_), ref.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(host(est.intercept_), ref.intercept_, rtol=0, atol=atol)
    np.testing.assert_allclose(est.log_marginal_likelihood_,
                               ref.log_marginal_likelihood_, rtol=1e-9)
    np.testing.assert_array_equal(est.n_iter_, ref.n_iter_)
    Xt = X[:15]
    # a decision value is bᵀw: |Δ| ≤ ‖b‖₂ ‖Δw‖₂
    bnorm = np.sqrt(sp.csr_array(Xt).power(2).sum(axis=1)).max() \
        if sp.issparse(Xt) else np.linalg.norm(Xt, axis=1).max()
    scale = max(1.0, bnorm) if opts.get("kernel") is None else np.sqrt(len(ref.support_))
    df = est.decision_function(dev(Xt))
    np.testing.assert_allclose(host(df), ref.decision_function(Xt), rtol=0,
                               atol=atol * scale)
    proba = est.predict_proba(dev(Xt))
    assert isinstance(proba, STRICT)
    np.testing.assert_allclose(host(proba), ref.predict_proba(Xt), rtol=0,
                               atol=atol * scale)
    np.testing.assert_allclose(host(est.predict_log_proba(dev(Xt))),
                               ref.predict_log_proba(Xt), rtol=1e-6)
    labels = est.predict(dev(Xt))
    assert isinstance(labels, STRICT)
    np.testing.assert_array_equal(host(labels), ref.predict(Xt))


# ---------------------------------------------------------------------------
# KroneckerSBL
# ---------------------------------------------------------------------------
def _kron_problem():
    rng = np.random.default_rng(0)
    A1, A2 = rng.standard_normal((4, 6)), rng.standard_normal((3, 5))
    codes = np.zeros((3, 30))
    codes[0, 3], codes[1, [5, 20]], codes[2, 7] = 1.0, [1.0, -2.0], 0.5
    Y = codes @ np.kron(A1, A2).T + 0.01 * rng.standard_normal((3, 12))
    return A1, A2, Y


@pytest.mark.parametrize("kw", [{"noise_variance": 1e-4},
                                {"method": "am_block", "block_sizes": 2,
                                 "noise_variance": 1e-4}])
def test_kronecker_matches_host(strict, kw):
    A1, A2, Y = _kron_problem()
    ref = KroneckerSBL([A1, A2], **kw).fit(Y[:2])
    est = KroneckerSBL([dev(A1), dev(A2)], **kw).fit(dev(Y[:2]))
    _close(est.coef_, ref.coef_, rtol=1e-8)   # test_sbl_gpu's Kronecker tolerance
    assert isinstance(est.gammas_[0][0], STRICT)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_, rtol=RTOL)
    assert est.n_iter_ == ref.n_iter_
    _close(est.transform(dev(Y[2:])), ref.transform(Y[2:]), rtol=1e-8)
    _close(est.inverse_transform(est.coef_), ref.inverse_transform(ref.coef_), rtol=1e-8)


def test_kronecker_convergence_warning_and_float32():
    A1, A2, Y = _kron_problem()
    with strict_device():
        with pytest.warns(ConvergenceWarning, match="3 of 3 signals"):
            KroneckerSBL([dev(A1), dev(A2)], max_iter=2).fit(dev(Y))
        est = KroneckerSBL([dev(A1), dev(A2)], noise_variance=1e-4).fit(
            dev(Y.astype(np.float32)))
    assert est.coef_.dtype == xps.float32


# ---------------------------------------------------------------------------
# mixing and bad input
# ---------------------------------------------------------------------------
def test_host_device_mixing_is_a_type_error():
    X, y, _ = _regression(n=20, p=5)
    yc = (y > np.median(y)).astype(int)
    A1, A2, Y = _kron_problem()
    host_reg = SparseBayesianRegression().fit(X, y)
    host_clf = RelevanceVectorClassifier().fit(X, yc)
    with strict_device():
        dev_reg = SparseBayesianRegression().fit(dev(X), dev(y))
        dev_clf = RelevanceVectorClassifier().fit(dev(X), dev(yc))
        to_dev = r"X is a array_api_strict \(device\).*coef_ is a numpy \(host\)"
        to_host = r"X is a numpy \(host\).*coef_ is a array_api_strict \(device\)"
        with pytest.raises(TypeError, match=to_dev):
            host_reg.predict(dev(X))
        with pytest.raises(TypeError, match=to_host):
            dev_reg.predict(X)
        with pytest.raises(TypeError, match=to_dev):
            host_clf.predict_proba(dev(X))
        with pytest.raises(TypeError, match=to_host):
            dev_clf.predict(X)
        with pytest.raises(TypeError, match=r"y is a numpy \(host\)"):
            SparseBayesianRegression().fit(dev(X), y)
        with pytest.raises(TypeError, match=r"sample_weight is a numpy \(host\)"):
            RelevanceVectorClassifier().fit(dev(X), dev(yc), sample_weight=np.ones(20))
        with pytest.raises(TypeError, match=r"factors\[0\] is a numpy \(host\)"):
            KroneckerSBL([A1, A2]).fit(dev(Y))
        kron_dev = KroneckerSBL([dev(A1), dev(A2)], noise_variance=1e-4).fit(dev(Y))
        with pytest.raises(TypeError, match=r"X is a numpy \(host\)"):
            kron_dev.transform(Y)
        # a scalar sample_weight is neither host nor device
        SparseBayesianRegression().fit(dev(X), dev(y), sample_weight=2.0)


def _same_error(host_call, dev_call):
    """Both raise the same exception type with the same first message line."""
    with pytest.raises((ValueError, TypeError)) as h:
        host_call()
    with pytest.raises(h.type) as d:
        dev_call()
    assert str(d.value).splitlines()[0] == str(h.value).splitlines()[0]


def test_bad_input_same_errors_as_host():
    X, y, _ = _regression(n=20, p=5)
    yc = (y > np.median(y)).astype(float)
    nan_X, inf_X, nan_y = X.copy(), X.copy(), y.copy()
    nan_X[2, 3], inf_X[4, 1], nan_y[5] = np.nan, np.inf, np.nan
    A1, A2, Y = _kron_problem()
    nan_Y = Y.copy()
    nan_Y[1, 2] = np.nan
    R, C = SparseBayesianRegression, RelevanceVectorClassifier
    cases = [
        (R, (nan_X, y), {}), (R, (inf_X, y), {}), (R, (X, nan_y), {}),
        (R, (X[:, 0], y), {}), (R, (X, y[:7]), {}), (R, (X[:0], y[:0]), {}),
        (R, (X[:, :0], y), {}), (R, (X, np.c_[y, y]), {}),
        (R, (X, y), {"sample_weight": np.ones(4)}),
        (R, (X, y), {"sample_weight": -np.ones(20)}),
        (C, (nan_X, yc), {}), (C, (X, y), {}), (C, (X, np.zeros(20)), {}),
        (C, (X, yc), {"sample_weight": np.where(yc > 0, 1.0, 0.0)}),
    ]
    with strict_device():
        for est, args, kw in cases:
            _same_error(lambda est=est, args=args, kw=kw: est().fit(*args, **kw),
                        lambda est=est, args=args, kw=kw: est().fit(
                            *map(dev, args), **{k: dev(v) for k, v in kw.items()}))
        _same_error(lambda: R(kernel="precomputed").fit(X, y),
                    lambda: R(kernel="precomputed").fit(dev(X), dev(y)))
        host_fit, dev_fit = R().fit(X, y), R().fit(dev(X), dev(y))
        host_clf, dev_clf = C().fit(X, yc), C().fit(dev(X), dev(yc))
        for bad in (nan_X, X[:, :3], X[0]):
            _same_error(lambda bad=bad: host_fit.predict(bad),
                        lambda bad=bad: dev_fit.predict(dev(bad)))
            _same_error(lambda bad=bad: host_clf.predict_proba(bad),
                        lambda bad=bad: dev_clf.predict_proba(dev(bad)))
        K = KroneckerSBL([dev(A1), dev(A2)], noise_variance=1e-4)
        Kh = KroneckerSBL([A1, A2], noise_variance=1e-4)
        for bad in (nan_Y, Y[:, :5]):
            _same_error(lambda bad=bad: Kh.fit(bad), lambda bad=bad: K.fit(dev(bad)))
        with pytest.raises(TypeError, match="Sparse data was passed for X"):
            K.fit(dev(sp.csr_array(Y)))


def test_kernel_choices_refused_on_device():
    X, y, _ = _regression(n=20, p=5)
    with strict_device():
        with pytest.raises(ValueError, match=r"kernel=<function .*callable kernel runs "
                           r"on host"):
            SparseBayesianRegression(kernel=lambda a, b: a @ b).fit(dev(X), dev(y))
        with pytest.raises(ValueError, match="kernel='rbf' needs a dense device X"):
            RelevanceVectorClassifier(kernel="rbf").fit(
                dev(sp.csr_array(X)), dev((y > 0).astype(int)))


# ---------------------------------------------------------------------------
# on a GPU
# ---------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("which", ["dense", "sparse", "rbf", "rvc", "kron"])
def test_cupy_estimators_match_numpy(which):
    cp = pytest.importorskip("cupy")
    from sparseopt.gpu import to_device

    if which == "kron":
        A1, A2, Y = _kron_problem()
        ref = KroneckerSBL([A1, A2], noise_variance=1e-4).fit(Y)
        est = KroneckerSBL([cp.asarray(A1), cp.asarray(A2)], noise_variance=1e-4).fit(
            cp.asarray(Y))
        assert isinstance(est.coef_, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(est.coef_), ref.coef_, rtol=1e-7,
                                   atol=1e-9)
        return
    if which == "rvc":
        X, y = _classification(n_classes=3)
        ref = RelevanceVectorClassifier(kernel="rbf").fit(X, y)
        est = RelevanceVectorClassifier(kernel="rbf").fit(cp.asarray(X), cp.asarray(y))
        proba = est.predict_proba(cp.asarray(X))
        assert isinstance(proba, cp.ndarray) and isinstance(est.coef_, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(proba), ref.predict_proba(X), atol=1e-6)
        np.testing.assert_array_equal(cp.asnumpy(est.predict(cp.asarray(X))),
                                      ref.predict(X))
        return
    X, y, _ = _regression(sparse=which == "sparse")
    Xd = to_device(sp.csr_array(X)) if sp.issparse(X) else cp.asarray(X)
    kw = {"kernel": "rbf"} if which == "rbf" else {}
    ref = SparseBayesianRegression(**kw).fit(X, y)
    est = SparseBayesianRegression(**kw).fit(Xd, cp.asarray(y))
    mean, std = est.predict(Xd, return_std=True)
    assert isinstance(est.coef_, cp.ndarray) and isinstance(mean, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(est.active_), ref.active_)
    ref_mean, ref_std = ref.predict(X, return_std=True)
    np.testing.assert_allclose(cp.asnumpy(est.coef_), ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(cp.asnumpy(mean), ref_mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(cp.asnumpy(std), ref_std, rtol=1e-7, atol=1e-9)
    with pytest.raises(TypeError, match=r"X is a numpy \(host\)"):
        est.predict(X)
