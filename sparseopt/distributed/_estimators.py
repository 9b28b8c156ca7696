"""scikit-learn estimators on row-partitioned data: Lasso, ElasticNet, L1-logistic.

They accept dask arrays in ``fit``, ``predict`` and ``decision_function``
(sparse chunks from :func:`~sparseopt.distributed.from_scipy` and friends, or
dense chunks) and compute on the active :class:`dask.distributed.Client` (or
dask's local scheduler without one); ``predict`` on a dask array returns a
lazy dask array.  NumPy and scipy.sparse input behave as with any
scikit-learn estimator (validated with ``validate_data``) and are solved
in-process when no client is active.  The solver is distributed FISTA (see
:mod:`sparseopt.distributed._glm`).
"""

import numbers
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from sparseopt.distributed._arrays import _dask, is_dask_array
from sparseopt.distributed._glm import _solve, predict_linear

__all__ = ["ElasticNet", "Lasso", "SparseLogisticRegression"]


def _check_dask_X(est, X, reset):
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if reset:
        est.n_features_in_ = X.shape[1]
    elif X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input")
    return X


class _DistributedLinear(BaseEstimator):
    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "l1_ratio": [Interval(numbers.Real, 0, 1, closed="right")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "check_every": [Interval(numbers.Integral, 1, None, closed="left")],
        "row_chunks": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
    }
    _loss = "squared"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _validate_fit(self, X, y):
        if is_dask_array(X) or is_dask_array(y):
            if not is_dask_array(X):
                raise TypeError("give X and y both as dask arrays, or neither")
            return _check_dask_X(self, X, reset=True), y
        return validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32],
                             y_numeric=self._loss == "squared")

    def _fit(self, X, y):
        res = _solve(X, y, loss=self._loss, alpha=self.alpha, l1_ratio=self.l1_ratio,
                     fit_intercept=self.fit_intercept, tol=self.tol, max_iter=self.max_iter,
                     check_every=self.check_every, coef_init=None, intercept_init=None,
                     client=None, row_chunks=self.row_chunks, verbose=self.verbose,
                     callback=None)
        self.coef_ = res.coef
        self.intercept_ = res.intercept
        self.n_iter_ = res.n_iter
        self.dual_gap_ = res.stop_crit
        self.result_ = res
        return self

    def _decision(self, X):
        check_is_fitted(self)
        if is_dask_array(X):
            X = _check_dask_X(self, X, reset=False)
            return predict_linear(X, self.coef_.astype(X.dtype, copy=False), self.intercept_)
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                          reset=False)
        return np.asarray(X @ self.coef_.astype(X.dtype, copy=False) + self.intercept_)


class Lasso(RegressorMixin, _DistributedLinear):
    r"""Lasso on row-partitioned (dask) data.

    Minimises :math:`\frac{1}{2n}\|y - Xw - b\|^2 + \alpha\|w\|_1` (the
    objective of :class:`sklearn.linear_model.Lasso`) by distributed FISTA,
    stopping when the duality gap is at most ``tol * ||y - mean(y)||^2``.

    Parameters
    ----------
    alpha : float, default=1.0
    fit_intercept : bool, default=True
    tol : float, default=1e-4
    max_iter : int, default=1000
    check_every : int, default=10
        Iterations between two evaluations of the duality gap.
    row_chunks : int, optional
        Rows per block when in-memory data is sent to a cluster.
    verbose : int, default=0

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
    dual_gap_ : float
        Final relative duality gap.
    result_ : DistributedGLMResult
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sparseopt.distributed import Lasso, from_scipy
    >>> X = sp.random_array((100, 8), density=0.5, format="csr", random_state=0)
    >>> y = X @ np.arange(8.0)
    >>> model = Lasso(alpha=0.01).fit(from_scipy(X, 25), y)
    >>> model.predict(from_scipy(X, 25)).shape
    (100,)
    """

    _parameter_constraints: ClassVar[dict] = {
        k: v for k, v in _DistributedLinear._parameter_constraints.items() if k != "l1_ratio"}
    l1_ratio = 1.0

    def __init__(self, alpha=1.0, *, fit_intercept=True, tol=1e-4, max_iter=1000,
                 check_every=10, row_chunks=None, verbose=0):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.check_every = check_every
        self.row_chunks = row_chunks
        self.verbose = verbose

    def fit(self, X, y):
        """Fit on ``X`` (dask, NumPy or sparse) and ``y``."""
        self._validate_params()
        X, y = self._validate_fit(X, y)
        return self._fit(X, y)

    def predict(self, X):
        """``X @ coef_ + intercept_`` (a lazy dask array for dask ``X``)."""
        return self._decision(X)


class ElasticNet(Lasso):
    r"""Elastic net on row-partitioned (dask) data.

    Minimises :math:`\frac{1}{2n}\|y - Xw - b\|^2 + \alpha\rho\|w\|_1 +
    \frac{\alpha(1-\rho)}{2}\|w\|^2` (:class:`sklearn.linear_model.ElasticNet`).

    Parameters
    ----------
    alpha : float, default=1.0
    l1_ratio : float in (0, 1], default=0.5
    fit_intercept, tol, max_iter, check_every, row_chunks, verbose
        As in :class:`Lasso`.

    Attributes
    ----------
    coef_, intercept_, n_iter_, dual_gap_, result_, n_features_in_
        As in :class:`Lasso`.
    """

    _parameter_constraints: ClassVar[dict] = dict(_DistributedLinear._parameter_constraints)

    def __init__(self, alpha=1.0, *, l1_ratio=0.5, fit_intercept=True, tol=1e-4,
                 max_iter=1000, check_every=10, row_chunks=None, verbose=0):
        super().__init__(alpha, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter,
                         check_every=check_every, row_chunks=row_chunks, verbose=verbose)
        self.l1_ratio = l1_ratio


class SparseLogisticRegression(ClassifierMixin, _DistributedLinear):
    r"""Binary L1 (elastic-net) logistic regression on row-partitioned data.

    Minimises :math:`\frac1n\sum_i\log(1+e^{-y_i(x_i^\top w+b)}) + \alpha\rho\|w\|_1
    + \frac{\alpha(1-\rho)}{2}\|w\|^2` with :math:`y_i = \pm 1` for
    ``classes_[1]`` / ``classes_[0]`` (skglm's ``SparseLogisticRegression``),
    stopping when the KKT violation is at most ``tol``.

    Parameters
    ----------
    alpha : float, default=1.0
    l1_ratio : float in (0, 1], default=1.0
    fit_intercept, tol, max_iter, check_every, row_chunks, verbose
        As in :class:`Lasso`.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    n_iter_, result_, n_features_in_
    """

    _loss = "logistic"

    def __init__(self, alpha=1.0, *, l1_ratio=1.0, fit_intercept=True, tol=1e-4,
                 max_iter=1000, check_every=10, row_chunks=None, verbose=0):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.check_every = check_every
        self.row_chunks = row_chunks
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y):
        """Fit on ``X`` (dask, NumPy or sparse) and binary labels ``y``."""
        from sklearn.utils.multiclass import check_classification_targets

        self._validate_params()
        X, y = self._validate_fit(X, y)
        if is_dask_array(y):
            _, da = _dask()
            classes = np.asarray(da.unique(y).compute())
        else:
            check_classification_targets(y)
            classes = np.unique(y)
        if classes.shape[0] != 2:
            k = classes.shape[0]
            raise ValueError(f"Only binary classification is supported by "
                             f"SparseLogisticRegression: y has {k} class{'es' * (k != 1)}")
        self.classes_ = classes
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        if is_dask_array(y):
            _, da = _dask()
            y_pm = da.where(y == classes[1], 1.0, -1.0).astype(dtype)
        else:
            y_pm = np.where(y == classes[1], 1.0, -1.0).astype(dtype)
        self._fit(X, y_pm)
        self.coef_ = self.coef_[None, :]
        self.intercept_ = np.array([self.intercept_])
        return self

    def decision_function(self, X):
        """Scores ``X @ coef_ + intercept_`` (positive: ``classes_[1]``)."""
        check_is_fitted(self)
        coef, icpt = self.coef_[0], float(self.intercept_[0])
        if is_dask_array(X):
            X = _check_dask_X(self, X, reset=False)
            return predict_linear(X, coef.astype(X.dtype, copy=False), icpt)
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                          reset=False)
        return np.asarray(X @ coef.astype(X.dtype, copy=False) + icpt)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, 2)."""
        from scipy.special import expit

        d = self.decision_function(X)
        if is_dask_array(d):
            _, da = _dask()
            p = d.map_blocks(expit)
            return da.stack([1 - p, p], axis=1)
        p = expit(d)
        return np.stack([1 - p, p], axis=1)

    def predict(self, X):
        """Predicted labels (a lazy dask array for dask ``X``)."""
        d = self.decision_function(X)
        if is_dask_array(d):
            return d.map_blocks(lambda s: self.classes_[(s > 0).astype(int)],
                                dtype=self.classes_.dtype)
        return self.classes_[(d > 0).astype(int)]
