"""Device twin of scikit-learn's ``validate_data`` for the estimators' device paths.

The estimators keep device input (CuPy, or any array-API array behind a
registered backend) on its device; :func:`validate_data_xp` validates it there
and raises what :func:`sklearn.utils.validation.validate_data` raises on the
same NumPy input (type, first line of the message), in the same order:

1. ``X`` (``check_array``): sparse refused unless ``accept_sparse``, complex
   data, 2-D (0-D / 1-D / N-D messages), NaN / infinity (``allow_nan``: NaN
   allowed, infinity refused), at least ``ensure_min_samples`` samples and one
   feature;
2. ``y`` (``_check_y``): at most 2-D, 1-D or a column vector (raveled with a
   ``DataConversionWarning``), finite, real; then the sample counts agree;
3. the number of features against ``n_features_in_`` (``reset=False``);
4. ``sample_weight`` (``_check_sample_weight``, dtype float64): finite, 1-D or
   scalar, ``(n_samples,)``, not all zero, non-negative if asked.

Shapes and dtypes are known without touching the data; every *value* check
(finiteness, weights' signs) is a device reduction, and they are all fetched
in **one** transfer together with the caller's ``extra`` scalars.  To keep
scikit-learn's order of errors, a check that fails on shapes first fetches the
value checks that come before it (and raises the first failing one).
Warnings are deferred the same way, so a column-vector ``y`` warns only if
the error scikit-learn would raise before it does not occur.

Host input never comes here: the estimators call ``validate_data`` for it.
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import DataConversionWarning

from sparseopt.solvers._xp_linalg import fetch, is_sparse_input, real_float_xp

__all__ = ["ValidatedXP", "check_sample_weight_xp", "validate_data_xp"]

_SPARSE_MSG = ("Sparse data was passed for X, but dense data is required. Use "
               "'.toarray()' to convert to a dense numpy array.")
_NAN_HELP = (" does not accept missing values encoded as NaN natively. For supervised "
             "learning, you might want to consider "
             "sklearn.ensemble.HistGradientBoostingClassifier and Regressor which "
             "accept missing values encoded as NaNs natively.")


class ValidatedXP(NamedTuple):
    """What :func:`validate_data_xp` returns."""

    X: object
    """Dense float32/float64 device array, or the sparse input (real ``data``)."""
    y: object
    """1-D device target (dtype kept) or ``None``."""
    sample_weight: object
    """float64 device array of shape ``(n_samples,)`` or ``None``."""
    extra: tuple
    """The caller's ``extra`` scalars as Python floats."""


class _Deferred:
    """Value checks and warnings in scikit-learn's order, resolved by one transfer.

    ``check(flag, exc)`` queues a device boolean whose truth raises ``exc``;
    ``warn(...)`` queues a warning; :meth:`fail` raises a shape error after the
    queued checks that precede it; :meth:`resolve` fetches every flag (and the
    extra scalars) at once and raises or warns in the order queued.
    """

    def __init__(self, nx):
        self.nx = nx
        self.events = []   # ("check", flag, exc) or ("warn", message, category)

    def check(self, flag, exc):
        self.events.append(("check", flag, exc))

    def warn(self, message, category):
        self.events.append(("warn", message, category))

    def finite(self, a, input_name, est_name, allow_nan=False, dtype=None):
        """Queue ``_assert_all_finite``'s checks of a float array.

        ``dtype``: the input's dtype when ``a`` is a converted copy: nothing to
        check unless it was a floating one (integers are finite).
        """
        xp = self.nx.xp
        floating = ("real floating", "complex floating")
        if not xp.isdtype(a.dtype if dtype is None else dtype, floating) or a.size == 0:
            return
        label = f"{input_name} " if input_name else ""
        if not allow_nan:
            msg = f"Input {label}contains NaN."
            if est_name and input_name == "X":
                msg += f"\n{est_name}{_NAN_HELP}"
            self.check(xp.any(xp.isnan(a)), ValueError(msg))
        dname = "float32" if a.dtype == xp.float32 else "float64"
        self.check(xp.any(xp.isinf(a)), ValueError(
            f"Input {label}contains infinity or a value too large for dtype('{dname}')."))

    def resolve(self, extra=()):
        """Fetch all queued flags and ``extra`` in one transfer; raise / warn in order."""
        flags = [e[1] for e in self.events if e[0] == "check"]
        values = fetch(self.nx, *flags, *extra) if flags or extra else ()
        it = iter(values[:len(flags)])
        for kind, a, b in self.events:
            if kind == "warn":
                warnings.warn(a, b, stacklevel=4)
            elif next(it):
                raise b
        self.events = []
        return tuple(values[len(flags):])

    def fail(self, exc):
        """Raise ``exc`` after the queued checks and warnings (they come first on the host)."""
        self.resolve()
        raise exc


def _float_or_complex(xp, a, d, name):
    """``check_array``'s ``dtype=[float64, float32]``: complex data is a ``ValueError``."""
    if xp.isdtype(a.dtype, "complex floating"):
        d.fail(ValueError("Complex data not supported"))
    return real_float_xp(xp, a, name)


def _check_x(nx, d, X, est_name, *, accept_sparse, allow_nan, ensure_min_samples,
             input_name="X"):
    """``check_array(X, dtype=[float64, float32], ...)`` queued on ``d``."""
    xp = nx.xp
    context = f" by {est_name}" if est_name else ""
    if is_sparse_input(X) or hasattr(X, "toarray"):
        if not accept_sparse:
            d.fail(TypeError(_SPARSE_MSG))
        data = X.data
        if xp.isdtype(data.dtype, "complex floating"):
            d.fail(ValueError("Complex data not supported"))
        real_float_xp(xp, data, input_name)        # dtype check only: kept as given
        shape = tuple(int(s) for s in X.shape)
        if len(shape) != 2:
            d.fail(ValueError(f"Expected 2D input, got input with shape {shape}."))
        d.finite(data, input_name, est_name, allow_nan)
    else:
        dtype_in = X.dtype
        X = _float_or_complex(xp, X, d, input_name)
        if X.ndim < 2:
            d.fail(ValueError(
                f"Expected 2D array, got {'scalar' if X.ndim == 0 else '1D'} array "
                "instead:"))
        if X.ndim > 2:
            d.fail(ValueError(f"Found array with dim {X.ndim}, while dim <= 2 is "
                              f"required{context}."))
        shape = tuple(int(s) for s in X.shape)
        d.finite(X, input_name, est_name, allow_nan, dtype=dtype_in)
    if shape[0] < ensure_min_samples:
        d.fail(ValueError(f"Found array with {shape[0]} sample(s) (shape={shape}) while a "
                          f"minimum of {ensure_min_samples} is required{context}."))
    if shape[1] < 1:
        d.fail(ValueError(f"Found array with {shape[1]} feature(s) (shape={shape}) while a "
                          f"minimum of 1 is required{context}."))
    return X, shape


def _check_y(nx, d, y, est_name):
    """``_check_y(y, multi_output=False)`` queued on ``d`` (dtype kept)."""
    xp = nx.xp
    if y.ndim > 2:
        d.fail(ValueError(f"Found array with dim {y.ndim}, while dim <= 2 is required."))
    shape = tuple(int(s) for s in y.shape)
    if y.ndim == 2 and shape[1] == 1:
        d.warn("A column-vector y was passed when a 1d array was expected. Please change "
               "the shape of y to (n_samples, ), for example using ravel().",
               DataConversionWarning)
        y = xp.reshape(y, (-1,))
    elif y.ndim != 1:
        d.fail(ValueError(f"y should be a 1d array, got an array of shape {shape} instead."))
    d.finite(y, "y", est_name)
    if xp.isdtype(y.dtype, "complex floating"):
        d.fail(ValueError("Complex data not supported"))
    if not xp.isdtype(y.dtype, ("real floating", "integral", "bool")):
        d.fail(TypeError(f"y must hold numbers, got dtype {y.dtype}"))
    return y


def _check_n_features(d, est, n_features, reset):
    """``_check_n_features``: set ``n_features_in_`` or compare with it."""
    if reset:
        est.n_features_in_ = n_features
        if hasattr(est, "feature_names_in_"):   # device arrays carry no column names
            del est.feature_names_in_
    elif hasattr(est, "n_features_in_") and n_features != est.n_features_in_:
        d.fail(ValueError(f"X has {n_features} features, but {type(est).__name__} is "
                          f"expecting {est.n_features_in_} features as input."))


def _check_weight(nx, d, sample_weight, n, ensure_non_negative):
    """``_check_sample_weight(sample_weight, X, dtype=np.float64, ...)`` queued on ``d``."""
    xp = nx.xp
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sw = xp.full(n, float(sample_weight), dtype=xp.float64)
    else:
        sw = xp.astype(_float_or_complex(xp, sample_weight, d, "sample_weight"),
                       xp.float64)
        d.finite(sw, "sample_weight", None, dtype=sample_weight.dtype)
        if sw.ndim == 0:
            (value,) = fetch(nx, sw)
            d.fail(TypeError("Input should have at least 1 dimension i.e. satisfy "
                             f"`len(x.shape) > 0`, got scalar `{np.asarray(value)!r}` "
                             "instead."))
        if sw.ndim != 1:
            d.fail(ValueError(
                f"Sample weights must be 1D array or scalar, got {sw.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {n}."))
        if sw.shape[0] != n:
            d.fail(ValueError(f"sample_weight.shape == {tuple(int(s) for s in sw.shape)}"
                              f", expected {(n,)}!"))
    d.check(xp.all(sw == 0.0), ValueError(
        "Sample weights must contain at least one non-zero number."))
    if ensure_non_negative:
        d.check(xp.any(sw < 0.0), ValueError(
            "Negative values in data passed to `sample_weight`."))
    return sw


def validate_data_xp(nx, est, X, y=None, *, reset, accept_sparse=False, allow_nan=False,
                     y_numeric=False, ensure_min_samples=1, sample_weight=None,
                     ensure_non_negative=False, extra=None):
    """Validate device ``X`` (and ``y``, ``sample_weight``) as ``validate_data`` does.

    Parameters
    ----------
    nx : backend
        The backend owning the arrays (:func:`sparseopt.get_backend`).
    est : estimator or None
        Named in the messages; its ``n_features_in_`` is set (``reset=True``)
        or checked (``reset=False``).  ``None``: ``check_array`` without an
        estimator (no name in the messages, no feature count).
    X : device array or sparse matrix on the device, shape (n_samples, n_features)
        Dense: float32/float64 kept, other real floats, integers and booleans
        become float64 (``dtype=[np.float64, np.float32]``).  Sparse (only with
        ``accept_sparse``): returned as given, its ``data`` checked.
    y : device array or None
        A 1-D target (a column vector is raveled with a warning); dtype kept.
    reset : bool
        As in ``validate_data``.
    accept_sparse : bool
        Accept a sparse ``X`` (else scikit-learn's ``TypeError``).
    allow_nan : bool
        ``ensure_all_finite="allow-nan"``: NaN (missing entries) allowed in
        ``X``, infinity still refused.
    y_numeric : bool
        Accepted for symmetry with ``validate_data``; array-API dtypes are all
        numeric, so it changes nothing on a device.
    ensure_min_samples : int
        As in ``check_array``.
    sample_weight : device array, number or None
        Checked as ``_check_sample_weight(..., dtype=np.float64,
        ensure_non_negative=ensure_non_negative)`` after ``X`` and ``y``.
    ensure_non_negative : bool
        Refuse negative sample weights.
    extra : callable or None
        ``extra(X, y) -> tuple of device scalars`` (on the validated arrays),
        fetched in the same transfer as the value checks and returned as
        floats; evaluated on possibly non-finite data that are then refused.

    Returns
    -------
    ValidatedXP
        ``(X, y, sample_weight, extra)``.

    Raises
    ------
    ValueError, TypeError
        scikit-learn's type and first message line for the same NumPy input.
    """
    del y_numeric   # every array-API dtype is numeric
    d = _Deferred(nx)
    est_name = None if est is None else type(est).__name__
    X, shape = _check_x(nx, d, X, est_name, accept_sparse=accept_sparse,
                        allow_nan=allow_nan, ensure_min_samples=ensure_min_samples)
    if y is not None:
        y = _check_y(nx, d, y, est_name)
        if int(y.shape[0]) != shape[0]:
            d.fail(ValueError("Found input variables with inconsistent numbers of "
                              f"samples: {[shape[0], int(y.shape[0])]!r}"))
    if est is not None:
        _check_n_features(d, est, shape[1], reset)
    sample_weight = _check_weight(nx, d, sample_weight, shape[0], ensure_non_negative)
    scalars = () if extra is None else tuple(extra(X, y))
    with np.errstate(invalid="ignore", over="ignore"):
        values = d.resolve(scalars)
    return ValidatedXP(X, y, sample_weight, values)


def check_sample_weight_xp(nx, sample_weight, n_samples, *, ensure_non_negative=False):
    """``_check_sample_weight(sample_weight, X, dtype=np.float64)`` on a device.

    float64 weights of shape ``(n_samples,)`` (a number is broadcast; ``None``
    stays ``None``), with scikit-learn's messages; the value checks (finite,
    not all zero, non-negative if asked) take one transfer.
    """
    d = _Deferred(nx)
    sw = _check_weight(nx, d, sample_weight, n_samples, ensure_non_negative)
    d.resolve()
    return sw
