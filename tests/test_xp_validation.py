"""Device input is refused with the host's errors, for every estimator with a device path.

:func:`sparseopt.solvers._xp_validation.validate_data_xp` is the one device
twin of scikit-learn's ``validate_data``.  Each case below feeds the same bad
input to an estimator on the host (NumPy, scikit-learn's ``validate_data``)
and on the device (``array_api_strict`` behind the stand-in backend of
``tests/strict_device.py``, which also makes any implicit host conversion
fail), and requires the same outcome: the same exception type with the same
first message line, or success on both, with the same
``DataConversionWarning`` (column-vector ``y``).  Several cases hold two
faults, to check that the device reports the one the host reports first.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import DataConversionWarning

from sparseopt.bayes import KroneckerSBL, RelevanceVectorClassifier, SparseBayesianRegression
from sparseopt.decomposition import RobustPCA
from sparseopt.linear_model import Lasso, SparseLogisticRegression
from sparseopt.solvers._xp_validation import check_sample_weight_xp, validate_data_xp
from sparseopt.structured import MonarchApproximation
from tests import xp_strict_backend
from tests.strict_device import dev, strict_device, xps

N, P = 12, 6
_RNG = np.random.default_rng(0)
X0 = _RNG.standard_normal((N, P))
Y_REG = X0 @ np.array([1.0, 0.0, -2.0, 0.0, 0.5, 0.0]) + 0.1 * _RNG.standard_normal(N)
Y_CLF = (np.arange(N) % 2).astype(float)
A1, A2 = _RNG.standard_normal((2, 3)), _RNG.standard_normal((3, 4))   # M = 6 rows


def _factory(name, device):
    conv = dev if device else (lambda a: a)
    return {
        "SparseBayesianRegression": lambda: SparseBayesianRegression(),
        "RelevanceVectorClassifier": lambda: RelevanceVectorClassifier(),
        "Lasso": lambda: Lasso(alpha=0.1),
        "SparseLogisticRegression": lambda: SparseLogisticRegression(alpha=0.01),
        "MonarchApproximation": lambda: MonarchApproximation(nblocks=2),
        "RobustPCA": lambda: RobustPCA(random_state=0),
        "KroneckerSBL": lambda: KroneckerSBL([conv(A1), conv(A2)], noise_variance=1e-2),
    }[name]()


SUPERVISED = {"SparseBayesianRegression": Y_REG, "RelevanceVectorClassifier": Y_CLF,
              "Lasso": Y_REG, "SparseLogisticRegression": Y_CLF}
ESTIMATORS = [*SUPERVISED, "MonarchApproximation", "RobustPCA", "KroneckerSBL"]
PREDICT = {"SparseBayesianRegression": "predict", "RelevanceVectorClassifier": "predict_proba",
           "Lasso": "predict", "SparseLogisticRegression": "decision_function",
           "MonarchApproximation": "transform", "RobustPCA": "transform",
           "KroneckerSBL": "transform"}


def _put(X, value, dtype=np.float64):
    X = X.astype(dtype)   # a copy
    X[2, 3] = value
    return X


def _sparse_nan(X):
    X = sp.csr_array(X)
    X.data[1] = np.nan
    return X


_X_FAULTS = {
    "ok": lambda X: X,
    "nan": lambda X: _put(X, np.nan),
    "inf": lambda X: _put(X, np.inf),
    "inf32": lambda X: _put(X, np.inf, np.float32),
    "1d": lambda X: X[0],
    "0d": lambda X: np.asarray(X[0, 0]),
    "3d": lambda X: X[None],
    "no_rows": lambda X: X[:0],
    "no_cols": lambda X: X[:, :0],
    "complex": lambda X: X + 1j,
    "int": lambda X: np.rint(3 * X).astype(np.int64),
    "sparse": sp.csr_array,
    "sparse_nan": _sparse_nan,
    "features": lambda X: X[:, :P - 1],
}


def _bad_x(X, kind):
    """``X`` with one fault (or several, joined by '+', applied left to right)."""
    for k in kind.split("+"):
        X = _X_FAULTS[k](X)
    return X


def _outcome(call):
    """``(exception type, first line)`` or ``(None, None)``, and the warning categories."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            call()
            exc = (None, None)
        except (ValueError, TypeError) as e:
            exc = (type(e), str(e).splitlines()[0] if str(e) else "")
    cats = sorted({w.category.__name__ for w in seen
                   if issubclass(w.category, DataConversionWarning)})
    return exc, cats


def _on_device(name):
    """The stand-in device: the stricter one (implicit host conversions refused),
    except for Monarch, whose device projection needs the fuller one
    (``asarray``), as in ``tests/test_monarch_estimator_gpu.py``."""
    return (xp_strict_backend.registered() if name == "MonarchApproximation"
            else strict_device())


def _same(name, host_call, dev_call):
    ref = _outcome(host_call)
    with _on_device(name):
        got = _outcome(dev_call)
    assert got == ref


# Monarch and RobustPCA are dense-only: their dispatch (``_xp_checks.device_backend``)
# does not recognise a device CSR, so the sparse cases are for the others.
_DENSE_ONLY = {"MonarchApproximation", "RobustPCA"}


def _skip_sparse(name, kind):
    if "sparse" in kind and name in _DENSE_ONLY:
        pytest.skip("dense-only estimator: a device CSR is refused by dispatch, before "
                    "validation")


@pytest.fixture
def device():
    with strict_device() as be:
        yield be


X_KINDS = ["nan", "inf", "inf32", "1d", "0d", "3d", "no_rows", "no_cols", "complex",
           "int", "sparse", "sparse_nan", "nan+no_rows", "complex+1d"]


@pytest.mark.parametrize("kind", X_KINDS)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_bad_x(name, kind):
    _skip_sparse(name, kind)
    X = _bad_x(X0, kind)
    y = SUPERVISED.get(name)
    args = () if y is None else (y,)
    _same(name, lambda: _factory(name, False).fit(X, *args),
          lambda: _factory(name, True).fit(dev(X), *map(dev, args)))


def _bad_y(y, kind):
    y = y.copy()
    if kind == "nan":
        y[3] = np.nan
    elif kind == "inf":
        y[3] = np.inf
    elif kind == "2d":
        y = np.c_[y, y]
    elif kind == "col":
        y = y[:, None]
    elif kind == "3d":
        y = y[:, None, None]
    elif kind == "0d":
        y = np.asarray(y[0])
    elif kind == "short":
        y = y[:-2]
    elif kind == "complex":
        y = y + 1j
    elif kind == "nan+short":
        y[3] = np.nan
        y = y[:-2]
    elif kind == "col+short":
        y = y[:-2, None]
    return y


Y_KINDS = ["nan", "inf", "2d", "col", "3d", "0d", "short", "complex", "nan+short",
           "col+short", "x_nan+short", "x_features_ok+2d"]


@pytest.mark.parametrize("kind", Y_KINDS)
@pytest.mark.parametrize("name", list(SUPERVISED))
def test_fit_bad_y(name, kind):
    X = _bad_x(X0, "nan") if kind.startswith("x_nan") else X0
    y = _bad_y(SUPERVISED[name], kind.removeprefix("x_nan+").removeprefix("x_features_ok+"))
    _same(name, lambda: _factory(name, False).fit(X, y),
          lambda: _factory(name, True).fit(dev(X), dev(y)))


W_KINDS = ["nan", "2d", "0d", "short", "zeros", "negative", "scalar", "nan+2d",
           "y_nan+short"]


@pytest.mark.parametrize("kind", W_KINDS)
@pytest.mark.parametrize("name", list(SUPERVISED))
def test_fit_bad_sample_weight(name, kind):
    y = SUPERVISED[name].copy()
    w = np.ones(N)
    if kind.startswith("y_nan"):
        y[1] = np.nan
    if "nan" in kind.split("+"):
        w[4] = np.nan
    if "2d" in kind:
        w = np.c_[w, w]
    if kind == "0d":
        w = np.asarray(2.0)
    if "short" in kind:
        w = w[:-1]
    if kind == "zeros":
        w = np.zeros(N)
    if kind == "negative":
        w = -np.ones(N)
    if kind == "scalar":
        if name in ("Lasso", "SparseLogisticRegression"):
            pytest.skip("a Python number beside device arrays counts as host data there")
        w = 2.0
    _same(name, lambda: _factory(name, False).fit(X0, y, sample_weight=w),
          lambda: _factory(name, True).fit(dev(X0), dev(y), sample_weight=dev(w)))


_FITTED = {}


def _fitted(name):
    """A host and a device fit on good data (once per module)."""
    if name not in _FITTED:
        y = SUPERVISED.get(name)
        args = () if y is None else (y,)
        with _on_device(name):
            _FITTED[name] = (_factory(name, False).fit(X0, *args),
                             _factory(name, True).fit(dev(X0), *map(dev, args)))
    return _FITTED[name]


PREDICT_KINDS = ["nan", "inf32", "1d", "3d", "no_rows", "complex", "int", "sparse",
                 "features", "features+nan", "features+no_rows"]


@pytest.mark.parametrize("kind", PREDICT_KINDS)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_predict_bad_x(name, kind):
    _skip_sparse(name, kind)
    host_est, dev_est = _fitted(name)
    X = _bad_x(X0[:4], kind)
    method = PREDICT[name]
    _same(name, lambda: getattr(host_est, method)(X),
          lambda: getattr(dev_est, method)(dev(X)))


# ---------------------------------------------------------------------------
# the function itself
# ---------------------------------------------------------------------------
class _Est:
    pass


def test_value_checks_take_one_transfer(device):
    before = device.n_fetch
    out = validate_data_xp(device, _Est(), dev(X0), dev(Y_REG), reset=True,
                           sample_weight=dev(np.ones(N)), ensure_non_negative=True,
                           extra=lambda X, y: (device.xp.sum(X), device.xp.max(y)))
    assert device.n_fetch - before == 1
    np.testing.assert_allclose(out.extra, (X0.sum(), Y_REG.max()), rtol=1e-14)
    assert out.X.dtype == xps.float64 and out.sample_weight.dtype == xps.float64
    before = device.n_fetch
    X = validate_data_xp(device, None, dev(X0.astype(np.int32)), reset=False).X
    assert X.dtype == xps.float64 and device.n_fetch == before   # nothing to check


def test_dtypes_and_attributes(device):
    est = _Est()
    est.feature_names_in_ = np.array(["a"] * P, dtype=object)
    X32 = validate_data_xp(device, est, dev(X0.astype(np.float32)), reset=True).X
    assert X32.dtype == xps.float32
    assert est.n_features_in_ == P and not hasattr(est, "feature_names_in_")
    Xb = validate_data_xp(device, est, dev(X0 > 0), reset=False).X
    assert Xb.dtype == xps.float64
    sw = check_sample_weight_xp(device, 3.0, N)
    np.testing.assert_array_equal(np.asarray(sw._array), np.full(N, 3.0))
    assert check_sample_weight_xp(device, None, N) is None
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        check_sample_weight_xp(device, dev(-np.ones(N)), N, ensure_non_negative=True)
    # NaN allowed (missing entries), infinity still refused
    Xn = X0.copy()
    Xn[0, 0] = np.nan
    validate_data_xp(device, est, dev(Xn), reset=False, allow_nan=True)
    Xn[1, 1] = np.inf
    with pytest.raises(ValueError, match=r"Input X contains infinity or a value too large "
                                         r"for dtype\('float64'\)\."):
        validate_data_xp(device, est, dev(Xn), reset=False, allow_nan=True)
