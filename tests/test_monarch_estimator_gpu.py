"""MonarchApproximation on device arrays, tested without a GPU.

``fit`` validates device input where it lives (with scikit-learn's
``validate_data`` messages), projects with :func:`monarch_project`'s device
path, and keeps ``monarch_``'s blocks on the device; ``transform`` of device
input runs the device product and returns a device array.  The device here is
``array_api_strict`` behind the stand-in backend of
``tests/xp_strict_backend.py`` (registered per test, so dispatch runs exactly
as for CuPy), with every implicit host conversion of a strict array made to
fail the test and the explicit transfers (``to_numpy``) counted.

Tolerances.  Host and device solve the same problem (the projection's optimum
is unique for distinct singular values) by different float64 algorithms: the
host takes a partial symmetric eigensolver of each slab's Gram matrix for the
larger slabs and batched SVDs for the tiny ones, the device batched SVDs for
all.  So the fitted dense matrices agree to rounding amplified by the slabs'
relative singular gaps (``eps * sigma_1 / gap``, O(10) for these Gaussian
slabs): ``TOL = 1e-12`` relative to ``max |M|`` (observed: at most 2e-14;
``tests/test_monarch_gpu.py`` allows 1e-9 for its larger, closer-gapped
slabs).  The residual norm ``relative_error_`` is stationary at the optimum
(first-order errors in the factors change it to second order):
``rtol=1e-12``.  ``transform`` is a short sum of products of the same
factors: ``TOL`` as well.

``@pytest.mark.gpu`` tests compare CuPy with NumPy on a device::

    python -m pytest -m gpu tests/test_monarch_estimator_gpu.py
"""

import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sparseopt import MonarchApproximation
from tests.xp_strict_backend import registered

xs = pytest.importorskip("array_api_strict")
STRICT = type(xs.asarray(0.0))
TOL = 1e-12


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _refuse(*_args, **_kwargs):
    raise AssertionError("implicit host conversion of a device array")


@pytest.fixture
def device(monkeypatch):
    """The stand-in backend; strict arrays refuse implicit host conversion and
    the explicit fetches are counted in ``backend.n_fetch``."""
    with registered() as backend:
        backend.n_fetch = 0

        def to_numpy(a):
            backend.n_fetch += 1
            return np.array(a._array, copy=True)

        monkeypatch.setattr(backend, "to_numpy", to_numpy)
        for name in ("__array__", "__float__", "__int__", "__bool__"):
            monkeypatch.setattr(STRICT, name, _refuse)
        yield backend


def host(a):
    assert isinstance(a, STRICT)
    return np.array(a._array, copy=True)


def _dense_close(dev_est, ref_est):
    D, Dr = host(dev_est.monarch_.todense()), ref_est.monarch_.todense()
    np.testing.assert_allclose(D, Dr, rtol=TOL, atol=TOL * np.abs(Dr).max())


# ---------------------------------------------------------------------------
# agreement with the host estimator
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape, params", [
    ((64, 48), {"nblocks": 4, "rank": 2}),
    ((16, 16), {}),                                    # nblocks="auto"
    ((48, 36), {"nblocks": (4, 6)}),                   # rectangular blocks
    ((10, 10), {"nblocks": 4, "pad": True}),           # zero padding
    ((24, 24), {"nblocks": 2, "inner_size": 48}),      # inner size above min(m, n)
    ((64, 64), {"nblocks": 4}),                        # host: partial eigensolver
    ((1, 6), {"nblocks": 1}),                          # one row
    ((6, 1), {"nblocks": 1}),                          # one feature
])
def test_fit_transform_match_host(device, shape, params):
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape)
    X = rng.standard_normal((5, shape[1]))
    ref = MonarchApproximation(**params).fit(W)
    Wd, Xd = xs.asarray(W), xs.asarray(X)
    est = MonarchApproximation(**params).fit(Wd)
    # fitted arrays on the device, scalars and sizes as on the host
    assert isinstance(est.monarch_.L_blocks, STRICT)
    assert isinstance(est.monarch_.R_blocks, STRICT)
    assert est.monarch_.dtype == xs.float64
    assert est.monarch_.shape == ref.monarch_.shape
    assert est.monarch_.padded_shape == ref.monarch_.padded_shape
    assert est.monarch_.nblocks == ref.monarch_.nblocks
    _dense_close(est, ref)
    assert isinstance(est.relative_error_, float)
    np.testing.assert_allclose(est.relative_error_, ref.relative_error_, rtol=1e-12,
                               atol=1e-15)
    assert est.n_params_ == ref.n_params_ and est.compression_ == ref.compression_
    assert est.n_features_in_ == ref.n_features_in_ == shape[1]
    np.testing.assert_array_equal(est.get_feature_names_out(), ref.get_feature_names_out())
    Y = est.transform(Xd)
    assert isinstance(Y, STRICT) and Y.dtype == xs.float64
    Yr = ref.transform(X)
    np.testing.assert_allclose(host(Y), Yr, rtol=TOL, atol=TOL * np.abs(Yr).max())
    Y2 = MonarchApproximation(**params).fit_transform(Wd)
    np.testing.assert_allclose(host(Y2), ref.transform(W), rtol=TOL,
                               atol=TOL * np.abs(W).max())
    # inputs untouched
    np.testing.assert_array_equal(host(Wd), W)
    np.testing.assert_array_equal(host(Xd), X)


def test_no_host_round_trips(device):
    """Only scalars cross, a fixed number of times (not per block or per slab).

    fit: the finiteness checks of the estimator, of ``monarch_project``'s ``W``
    and of ``MonarchMatrix``'s ``L`` and ``R`` (two flags each), and the two
    norms of ``relative_error_`` (one transfer); transform: the finiteness check.
    """
    rng = np.random.default_rng(1)
    W = xs.asarray(rng.standard_normal((64, 64)))
    est = MonarchApproximation(nblocks=8, rank=2).fit(W)
    assert device.n_fetch <= 5
    device.n_fetch = 0
    est.transform(xs.asarray(rng.standard_normal((7, 64))))
    assert device.n_fetch == 1


def test_exact_and_zero(device):
    rng = np.random.default_rng(2)
    A = np.kron(rng.standard_normal((8, 8)), rng.standard_normal((8, 8)))
    est = MonarchApproximation(nblocks=8).fit(xs.asarray(A))
    assert est.relative_error_ < 1e-12       # a Kronecker product is Monarch
    np.testing.assert_allclose(host(est.monarch_.todense()), A,
                               atol=1e-11 * np.abs(A).max())
    zero = MonarchApproximation(nblocks=4).fit(xs.zeros((16, 16), dtype=xs.float64))
    assert zero.relative_error_ == 0.0
    np.testing.assert_array_equal(host(zero.transform(xs.ones((2, 16)))), 0.0)


def test_float32_and_integer_input(device):
    rng = np.random.default_rng(3)
    W = rng.standard_normal((32, 16)).astype(np.float32)
    X = rng.standard_normal((4, 16)).astype(np.float32)
    ref = MonarchApproximation(nblocks=4).fit(W)
    est = MonarchApproximation(nblocks=4).fit(xs.asarray(W))
    assert est.monarch_.dtype == xs.float32 and isinstance(est.monarch_.L_blocks, STRICT)
    # float32 factors of float64 SVDs: both rounded once to float32
    D, Dr = host(est.monarch_.todense()), ref.monarch_.todense()
    np.testing.assert_allclose(D, Dr, rtol=1e-5, atol=1e-5 * np.abs(Dr).max())
    np.testing.assert_allclose(est.relative_error_, ref.relative_error_, rtol=1e-5)
    Y = est.transform(xs.asarray(X))
    assert Y.dtype == xs.float32                      # output dtype follows the input
    Yr = ref.transform(X)
    assert Yr.dtype == np.float32
    np.testing.assert_allclose(host(Y), Yr, rtol=1e-5, atol=1e-5 * np.abs(Yr).max())
    Y64 = est.transform(xs.asarray(X.astype(np.float64)))   # float32 only when both are
    assert Y64.dtype == xs.float64 and ref.transform(X.astype(np.float64)).dtype == np.float64
    ints = np.arange(24 * 8).reshape(24, 8) % 7 - 3
    ref_i = MonarchApproximation(nblocks=4).fit(ints)
    est_i = MonarchApproximation(nblocks=4).fit(xs.asarray(ints))
    assert est_i.monarch_.dtype == xs.float64 and ref_i.monarch_.dtype == np.float64
    _dense_close(est_i, ref_i)
    np.testing.assert_allclose(host(est_i.transform(xs.asarray(ints[:3]))),
                               ref_i.transform(ints[:3]), rtol=TOL, atol=TOL * 10)


def test_refit_switches_sides(device):
    """A refit on the other side replaces everything, names included."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(4)
    W = rng.standard_normal((8, 8))
    est = MonarchApproximation(nblocks=2).fit(pd.DataFrame(W, columns=list("abcdefgh")))
    assert list(est.feature_names_in_) == list("abcdefgh")
    est.fit(xs.asarray(W))
    assert not hasattr(est, "feature_names_in_")
    assert isinstance(est.monarch_.L_blocks, STRICT)
    est.fit(W)
    assert isinstance(est.monarch_.L_blocks, np.ndarray)


# ---------------------------------------------------------------------------
# bad input: host/device mixing, and the host's errors for device input
# ---------------------------------------------------------------------------
def test_mixing_is_a_type_error_saying_which_is_where(device):
    rng = np.random.default_rng(5)
    W = rng.standard_normal((16, 16))
    on_host = MonarchApproximation(nblocks=4).fit(W)
    on_dev = MonarchApproximation(nblocks=4).fit(xs.asarray(W))
    with pytest.raises(TypeError, match=r"X: array_api_strict \(device\), "
                                        r"monarch_: numpy \(host\)"):
        on_host.transform(xs.asarray(W))
    for X in (W, W.tolist()):
        with pytest.raises(TypeError, match=r"X: numpy \(host\), "
                                            r"monarch_: array_api_strict \(device\)"):
            on_dev.transform(X)


def _first_line(exc_info):
    return str(exc_info.value).splitlines()[0]


def _bad(W, kind):
    W = W.copy()
    if kind == "nan":
        W[1, 2] = np.nan
    elif kind == "inf":
        W[0, 0] = -np.inf
    elif kind == "inf32":
        W = W.astype(np.float32)
        W[3, 1] = np.inf
    elif kind == "1d":
        W = W[0]
    elif kind == "3d":
        W = W[None]
    elif kind == "0d":
        W = W[0, 0]
    elif kind == "no_rows":
        W = W[:0]
    elif kind == "no_cols":
        W = W[:, :0]
    elif kind == "complex":
        W = W + 1j
    return W


@pytest.mark.parametrize("kind", ["nan", "inf", "inf32", "1d", "3d", "0d", "no_rows",
                                  "no_cols", "complex"])
def test_fit_bad_input_same_errors_as_host(device, kind):
    W = _bad(np.random.default_rng(6).standard_normal((8, 8)), kind)
    with pytest.raises((ValueError, TypeError)) as ref:
        MonarchApproximation().fit(W)
    with pytest.raises(ref.type, match=re.escape(_first_line(ref))):
        MonarchApproximation().fit(xs.asarray(W))


@pytest.mark.parametrize("params", [
    {"nblocks": 3},                      # does not divide 8 (or 6)
    {"nblocks": (2, 4)},                 # 4 does not divide 6 columns
    {"nblocks": 2, "inner_size": 5},     # inner size not a multiple of the blocks
    {"rank": 0},
    {"nblocks": 0},
    {"nblocks": (2, 2, 2)},
])
def test_fit_bad_params_same_errors_as_host(device, params):
    W = np.random.default_rng(7).standard_normal((8, 6))
    with pytest.raises((ValueError, TypeError)) as ref:
        MonarchApproximation(**params).fit(W)
    with pytest.raises(ref.type, match=re.escape(_first_line(ref))):
        MonarchApproximation(**params).fit(xs.asarray(W))


@pytest.mark.parametrize("kind", ["nan", "inf", "inf32", "1d", "3d", "no_rows",
                                  "complex", "features"])
def test_transform_bad_input_same_errors_as_host(device, kind):
    rng = np.random.default_rng(8)
    W = rng.standard_normal((8, 6))
    X = rng.standard_normal((4, 6)) if kind != "features" else rng.standard_normal((4, 5))
    X = _bad(X, kind)
    ref_est = MonarchApproximation(nblocks=2).fit(W)
    est = MonarchApproximation(nblocks=2).fit(xs.asarray(W))
    with pytest.raises((ValueError, TypeError)) as ref:
        ref_est.transform(X)
    with pytest.raises(ref.type, match=re.escape(_first_line(ref))):
        est.transform(xs.asarray(X))


def test_not_fitted(device):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MonarchApproximation().transform(xs.ones((2, 4)))


# ---------------------------------------------------------------------------
# on a GPU
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cupy_matches_numpy(cp, dtype):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((256, 192)).astype(dtype)
    X = rng.standard_normal((33, 192)).astype(dtype)
    ref = MonarchApproximation(nblocks=8, rank=2).fit(W)
    est = MonarchApproximation(nblocks=8, rank=2).fit(cp.asarray(W))
    assert isinstance(est.monarch_.L_blocks, cp.ndarray) and est.monarch_.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4   # as in test_monarch_gpu.py
    np.testing.assert_allclose(est.relative_error_, ref.relative_error_,
                               rtol=1e-12 if dtype == np.float64 else 1e-5)
    Y = est.transform(cp.asarray(X))
    assert isinstance(Y, cp.ndarray) and Y.dtype == dtype and Y.flags.c_contiguous
    np.testing.assert_allclose(cp.asnumpy(Y), ref.transform(X), rtol=tol, atol=tol * 10)
    with pytest.raises(TypeError, match=r"X: numpy \(host\)"):
        est.transform(X)
    bad = W.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MonarchApproximation(nblocks=8).fit(cp.asarray(bad))
