"""Sparse Bayesian learning: scikit-learn estimators and functions.

* :class:`SparseBayesianRegression`: relevance vector regression / ARD, with
  Tipping & Faul's fast marginal likelihood solver (default) or EM-SBL.
* :class:`RelevanceVectorClassifier`: relevance vector classification with a
  Laplace approximation (binary; one-vs-rest for more classes).
* :func:`kronecker_sbl` and :class:`KroneckerSBL`: SBL with a Kronecker
  dictionary ``A₁ ⊗ A₂ ⊗ …`` that is never formed (He & Joseph; AM, SVD and
  block-sparse AM algorithms).
* :func:`block_sbl`: block SBL with a known partition.
* :func:`sbl_regression`, :func:`rvm_classification` and
  :func:`log_marginal_likelihood`: the functional API and the evidence.

The algorithms live in :mod:`sparseopt.solvers.sbl` and its siblings; this
module validates input and maps results to fitted attributes.

Device (CuPy) input stays on the device: it is validated where it lives with
``validate_data``'s messages, kernel matrices are computed with array-API
operations, the solvers' device paths fit, and the fitted arrays and the
predictions are device arrays.  Host input takes the unchanged scikit-learn
path; mixing host and device arrays (between ``fit`` and ``predict`` too) is a
``TypeError`` naming which is where.
"""

import numbers
import warnings
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from sparseopt.solvers._xp_linalg import (
    csr_matmul,
    device_backend,
    fetch,
    fetch_array,
    is_sparse_input,
    onehot,
    sparse_parts,
)
from sparseopt.solvers._xp_validation import validate_data_xp
from sparseopt.solvers.sbl import SBLResult, log_marginal_likelihood, sbl_regression
from sparseopt.solvers.sbl_em import block_sbl
from sparseopt.solvers.sbl_kron import KroneckerSBLResult, kron_apply, kronecker_sbl
from sparseopt.solvers.sbl_rvc import RVCResult, rvm_classification

__all__ = [
    "KroneckerSBL",
    "KroneckerSBLResult",
    "RVCResult",
    "RelevanceVectorClassifier",
    "SBLResult",
    "SparseBayesianRegression",
    "block_sbl",
    "kronecker_sbl",
    "log_marginal_likelihood",
    "rvm_classification",
    "sbl_regression",
]

_KERNELS = {"linear", "rbf", "poly", "sigmoid", "laplacian", "cosine"}


class _KernelBasisMixin:
    """Basis functions: the features themselves, or kernels at training points."""

    def _kernel_params(self, n_features, X, var=None):
        gamma = self.gamma
        if gamma == "scale":
            if var is None:  # host X (a device X's variance comes fetched)
                var = X.power(2).mean() - X.mean() ** 2 if sp.issparse(X) else X.var()
            gamma = 1.0 / (n_features * var) if var > 0 else 1.0
        elif gamma == "auto":
            gamma = 1.0 / n_features
        return {"gamma": gamma, "degree": self.degree, "coef0": self.coef0}

    def _basis(self, X, centers):
        """Design matrix of ``X``: ``X`` itself or ``K(X, centers)``."""
        if self.kernel is None:
            return X
        if self.kernel == "precomputed":
            return X
        return pairwise_kernels(X, centers, metric=self.kernel, filter_params=True,
                                **self.kernel_params_)

    def _check_kernel_device(self, X):
        """Refuse what has no device implementation: a callable kernel, a kernel on sparse X."""
        if self.kernel is None or self.kernel == "precomputed":
            return
        if callable(self.kernel):
            raise ValueError(
                f"kernel={self.kernel!r}: a callable kernel runs on host (NumPy) arrays "
                "only; for device arrays compute the Gram matrix on the device and use "
                f"kernel='precomputed', or use one of {sorted(_KERNELS)}")
        if is_sparse_input(X) or hasattr(X, "toarray"):
            raise ValueError(
                f"kernel={self.kernel!r} needs a dense device X (a sparse device X is "
                "supported with kernel=None or kernel='precomputed'); densify X or pass "
                "the Gram matrix with kernel='precomputed'")

    def _basis_device(self, nx, X, centers, same=False):
        """Device twin of :meth:`_basis`: kernels computed with array-API operations."""
        if self.kernel is None or self.kernel == "precomputed":
            return X
        return _pairwise_kernel_xp(nx.xp, X, centers, self.kernel, same=same,
                                   **self.kernel_params_)


def _prior_params():
    return {
        "kernel": [None, StrOptions(_KERNELS | {"precomputed"}), callable],
        "gamma": [StrOptions({"scale", "auto"}), Interval(numbers.Real, 0, None,
                                                          closed="neither")],
        "degree": [Interval(numbers.Integral, 0, None, closed="left")],
        "coef0": [Interval(numbers.Real, None, None, closed="neither")],
        "tol": [None, Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "n_threads": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }


# ---------------------------------------------------------------------------
# device (CuPy / array-API) input: validation and kernels where the data live
# ---------------------------------------------------------------------------
def _on_device(**named):
    """Backend of device arrays among ``named``, ``None`` for host input.

    Host input (NumPy, scipy.sparse, lists, pandas) keeps the scikit-learn path
    untouched; a mix of host and device arrays is a ``TypeError`` naming which
    argument is where (:func:`~sparseopt.solvers._xp_linalg.device_backend`).
    Python numbers (a scalar ``sample_weight``) are neither.
    """
    named = {k: v for k, v in named.items() if not isinstance(v, numbers.Number)}
    if all(v is None or isinstance(v, np.ndarray) or sp.issparse(v)
           for v in named.values()):
        return None
    return device_backend(**named)


def _x_dtype(X):
    """dtype of a device design (its ``data`` when sparse)."""
    return X.data.dtype if is_sparse_input(X) else X.dtype


def _validate_xp(nx, est, X, y=None, *, accept_sparse=True, **kw):
    """:func:`~sparseopt.solvers._xp_validation.validate_data_xp` with the host
    path's default ``accept_sparse`` (the host passes ``["csr", "csc"]``)."""
    return validate_data_xp(nx, est, X, y, accept_sparse=accept_sparse, **kw)


def _variance_xp(xp, X):
    """Variance of all entries of a device ``X`` (implicit zeros of a sparse one included).

    Fetched with the finiteness flags, so it may be computed on a non-finite
    ``X`` that is then refused (no NumPy warning for it).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        if not is_sparse_input(X):
            return xp.var(xp.astype(X, xp.float64))
        data = xp.astype(X.data, xp.float64)
        size = X.shape[0] * X.shape[1]
        return xp.sum(data * data) / size - (xp.sum(data) / size) ** 2


def _select_columns_xp(nx, X, idx):
    """Dense ``X[:, idx]`` of a dense or sparse device ``X`` (sparse: one SpMM)."""
    xp = nx.xp
    if not is_sparse_input(X):
        return xp.take(X, idx, axis=1)
    csr = sparse_parts(nx, X)
    return csr_matmul(nx, csr, onehot(xp, idx, X.shape[1], dtype=csr[2].dtype))


def _row_norms_sq(xp, A):
    return xp.sum(A * A, axis=1)


def _pairwise_kernel_xp(xp, X, Y, metric, *, gamma, degree, coef0, same=False):
    """``K(X, Y)`` on the device, in float64, cast to ``X``'s dtype.

    The formulas of :mod:`sklearn.metrics.pairwise`: ``rbf`` from
    ``‖x‖² + ‖y‖² − 2 xᵀy`` clipped at 0 (zero diagonal when ``Y is X``),
    ``laplacian`` from L1 distances (row blocks bound the ``n × m × p``
    temporary), ``cosine`` on rows scaled to unit norm (zero rows stay zero).
    """
    dt = X.dtype
    A = xp.astype(X, xp.float64)
    B = A if same else xp.astype(Y, xp.float64)
    if metric == "laplacian":
        step = max(1, 2**22 // max(1, B.shape[0] * B.shape[1]))
        n = A.shape[0]
        D = xp.concat([xp.sum(xp.abs(A[s:min(s + step, n), None, :] - B[None, :, :]),
                              axis=2) for s in range(0, n, step)], axis=0)
        return xp.astype(xp.exp(-gamma * D), dt)
    if metric == "cosine":
        def unit(M):
            nrm = xp.sqrt(_row_norms_sq(xp, M))
            return M / xp.where(nrm == 0, 1.0, nrm)[:, None]
        A = unit(A)
        B = A if same else unit(B)
    G = A @ B.T
    if metric in ("linear", "cosine"):
        K = G
    elif metric == "poly":
        K = (gamma * G + coef0) ** degree
    elif metric == "sigmoid":
        K = xp.tanh(gamma * G + coef0)
    else:  # rbf
        D = -2.0 * G + _row_norms_sq(xp, A)[:, None] + _row_norms_sq(xp, B)[None, :]
        D = xp.maximum(D, 0.0)
        if same:
            D = xp.where(xp.eye(D.shape[0], dtype=xp.float64) == 1, 0.0, D)
        K = xp.exp(-gamma * D)
    return xp.astype(K, dt)


def _expit_xp(xp, t):
    """The logistic sigmoid without overflow."""
    e = xp.exp(-xp.abs(t))
    return xp.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class SparseBayesianRegression(_KernelBasisMixin, RegressorMixin, BaseEstimator):
    """Sparse Bayesian regression: relevance vector machine / ARD.

    The model is ``y = Φ(X) w + b + e`` with ``e ~ N(0, σ²)`` and one Gaussian
    prior ``w_i ~ N(0, 1/λ_i)`` per basis function.  The precisions ``λ`` (and
    ``σ²`` unless ``noise_variance`` is given) maximise the evidence

    .. math::

        \\log p(y|λ,σ^2) = -\\tfrac12\\left[n\\log 2π + \\log|C| + y^TC^{-1}y\\right],
        \\qquad C = σ^2 I + Φ Λ^{-1} Φ^T,

    and most ``λ_i`` go to infinity, which removes basis function ``i``.  With
    ``kernel=None`` the basis functions are the features (automatic relevance
    determination, as scikit-learn's :class:`~sklearn.linear_model.ARDRegression`);
    with a kernel they are ``K(·, x_j)`` at the training points (Tipping's
    relevance vector machine).

    Parameters
    ----------
    solver : {"fast", "em"}, default="fast"
        ``"fast"``: Tipping & Faul's sequential marginal likelihood
        maximisation, ``O(n m + p m)`` per step and ``O(p m)`` memory with
        ``m`` the active set (dense or sparse ``X``).  ``"em"``: EM-SBL of
        Wipf & Rao (dense ``n × p`` work array).
    noise_variance : float or None, default=None
        Known noise variance ``σ²``; ``None`` learns it.  When ``p ≫ n`` a
        learned noise level tends to collapse (see the user guide); a known
        value gives sparser, more accurate models.
    fit_intercept : bool, default=True
        Centre the basis functions and the target (implicitly for sparse X).
    kernel : None, str or callable, default=None
        ``None``: linear model in the features (ARD).  Otherwise a kernel
        name accepted by :func:`sklearn.metrics.pairwise.pairwise_kernels`
        (``"rbf"``, ``"poly"``, ``"linear"``, ...) or ``"precomputed"``.
    gamma : {"scale", "auto"} or float, default="scale"
        Kernel coefficient (as :class:`~sklearn.svm.SVR`).
    degree : int, default=3
    coef0 : float, default=1.0
    tol : float or None, default=None
        Solver tolerance: ``|Δ log α|`` (fast, default 1e-3) or relative
        change of ``γ`` (EM, default 1e-4).
    max_iter : int or None, default=None
        Maximum iterations (fast: actions, default 10000; EM: default 1000).
    prune : float, default=1e-6
        EM only: relative pruning threshold on the prior variances.
    n_threads : int or None, default=None
        BLAS threads during the fit.
    verbose : int, default=0

    Attributes
    ----------
    coef_ : ndarray of shape (n_basis,)
        Posterior mean of the weights (zero for pruned basis functions).
        ``n_basis`` is ``n_features`` without a kernel, else the number of
        training samples.
    intercept_ : float
    alpha_ : float
        Estimated (or given) noise precision ``1/σ²`` (scikit-learn's name).
    lambda_ : ndarray of shape (n_basis,)
        Weight precisions; ``inf`` for pruned basis functions.
    sigma_ : ndarray of shape (n_active, n_active)
        Posterior covariance of the active weights (order of ``active_``).
    active_ : ndarray of int
        Indices of the relevant basis functions.
    relevance_vectors_ : ndarray
        Training points of the active basis functions (kernel models only).
    noise_variance_ : float
    scores_ : ndarray
        Log evidence after each iteration.
    log_marginal_likelihood_ : float
    n_iter_ : int
    result_ : SBLResult
        The solver's full result.

    See Also
    --------
    sklearn.linear_model.ARDRegression : ARD with MacKay's fixed point.
    RelevanceVectorClassifier : the classification counterpart.

    Notes
    -----
    Device (CuPy) ``X`` and ``y`` are fitted on the device and the fitted
    arrays stay there (scalars and histories are host numbers); predictions
    of device input are device arrays.  The named kernels are computed on the
    device with scikit-learn's formulas; a callable kernel, or a kernel on a
    sparse device ``X``, raises ``ValueError`` (use ``kernel="precomputed"``).
    A model fitted on one side refuses input from the other (``TypeError``).

    References
    ----------
    M. E. Tipping and A. C. Faul, "Fast marginal likelihood maximisation for
    sparse Bayesian models", AISTATS 2003.
    D. P. Wipf and B. D. Rao, "Sparse Bayesian learning for basis selection",
    IEEE TSP 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import SparseBayesianRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 20))
    >>> y = 2 * X[:, 3] - X[:, 7] + 0.01 * rng.standard_normal(50)
    >>> reg = SparseBayesianRegression(noise_variance=1e-4).fit(X, y)
    >>> reg.coef_[[3, 7]].round(2)
    array([ 2., -1.])
    >>> bool(np.abs(np.delete(reg.coef_, [3, 7])).max() < 0.01)
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        "solver": [StrOptions({"fast", "em"})],
        "noise_variance": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "prune": [Interval(numbers.Real, 0, 1, closed="left")],
        **_prior_params(),
    }

    def __init__(self, *, solver="fast", noise_variance=None, fit_intercept=True,
                 kernel=None, gamma="scale", degree=3, coef0=1.0, tol=None,
                 max_iter=None, prune=1e-6, n_threads=None, verbose=0):
        self.solver = solver
        self.noise_variance = noise_variance
        self.fit_intercept = fit_intercept
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.tol = tol
        self.max_iter = max_iter
        self.prune = prune
        self.n_threads = n_threads
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, callback=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            (``(n_samples, n_samples)`` with ``kernel="precomputed"``).
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample noise precision multipliers: an integer weight is the
            same as repeating the sample (the weights are not normalised,
            since they change the amount of evidence).
        callback : callable, default=None
            ``callback(result)`` after each solver iteration; ``True`` stops.

        Returns
        -------
        self
        """
        nx = _on_device(X=X, y=y, sample_weight=sample_weight)
        if nx is None:
            X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                                 dtype=[np.float64, np.float32], y_numeric=True)
            if sample_weight is not None:
                sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            self.kernel_params_ = self._kernel_params(X.shape[1], X)
        else:
            X, y, sample_weight = self._validate_device(nx, X, y, sample_weight)
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(
                f"kernel='precomputed' needs a square Gram matrix X, got {tuple(X.shape)}")
        if nx is None:
            Phi = self._basis(X, X)
            if self.kernel is not None:
                Phi = np.asarray(Phi, dtype=X.dtype)
            y = y.astype(X.dtype, copy=False)
        else:
            Phi = self._basis_device(nx, X, X, same=True)
            y = nx.xp.astype(y, _x_dtype(X))
        opts = {"prune": self.prune} if self.solver == "em" else {}
        res = sbl_regression(
            Phi, y, solver=self.solver,
            noise_variance=self.noise_variance, fit_intercept=self.fit_intercept,
            sample_weight=sample_weight, tol=self.tol, max_iter=self.max_iter,
            n_threads=self.n_threads, verbose=self.verbose, callback=callback, **opts)
        self.result_ = res
        self.coef_ = res.x
        self.intercept_ = res.intercept if self.fit_intercept else 0.0
        self.active_ = res.active
        self.lambda_ = res.alpha
        self.sigma_ = res.sigma
        self.noise_variance_ = res.noise_variance
        self.alpha_ = 1.0 / res.noise_variance
        self.scores_ = res.history["log_marginal_likelihood"]
        self.log_marginal_likelihood_ = res.log_marginal_likelihood
        self.n_iter_ = res.n_iter
        if nx is None:
            if self.kernel not in (None, "precomputed"):
                self.relevance_vectors_ = X[self.active_]
            self._x_offset = res.x_offset[self.active_] if self.fit_intercept else None
        else:  # device fit: the fitted arrays stay on the device
            xp = nx.xp
            if self.kernel not in (None, "precomputed"):
                self.relevance_vectors_ = xp.take(X, self.active_, axis=0)
            self._x_offset = (xp.take(res.x_offset, self.active_) if self.fit_intercept
                              else None)
        return self

    def _validate_device(self, nx, X, y, sample_weight):
        """Device twin of ``validate_data`` (same messages); sets ``kernel_params_``."""
        self._check_kernel_device(X)
        scale = self.gamma == "scale"
        X, y, sample_weight, var = _validate_xp(
            nx, self, X, y, reset=True, y_numeric=True, sample_weight=sample_weight,
            extra=(lambda X, y: (_variance_xp(nx.xp, X),)) if scale else None)
        self.kernel_params_ = self._kernel_params(X.shape[1], X,
                                                  var=var[0] if scale else None)
        return X, y, sample_weight

    def _active_basis(self, X):
        """Active basis functions of X, centred like the training design."""
        if self.kernel is None or self.kernel == "precomputed":
            B = X[:, self.active_]
        else:
            B = pairwise_kernels(X, self.relevance_vectors_, metric=self.kernel,
                                 filter_params=True, **self.kernel_params_)
        B = B.toarray() if sp.issparse(B) else np.asarray(B)
        return B

    def predict(self, X, return_std=False):
        """Predict with the posterior mean, optionally with its standard deviation.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return ``sqrt(σ² + bᵀ Σ b)`` with ``b`` the (centred) active
            basis functions of each sample.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,), only with ``return_std``
        """
        check_is_fitted(self)
        nx = _on_device(X=X, coef_=self.coef_)
        if nx is not None:
            return self._predict_device(nx, X, return_std)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=[np.float64, np.float32])
        B = self._active_basis(X)
        coef = self.coef_[self.active_]
        y_mean = (B @ coef + self.intercept_).astype(X.dtype, copy=False)
        if not return_std:
            return y_mean
        if self._x_offset is not None:
            B = B - self._x_offset
        var = np.einsum("ij,ij->i", B @ self.sigma_, B) + self.noise_variance_
        return y_mean, np.sqrt(var).astype(X.dtype, copy=False)

    def _predict_device(self, nx, X, return_std):
        """:meth:`predict` for a device ``X`` and a device fit: no host round trip."""
        xp = nx.xp
        self._check_kernel_device(X)
        X = _validate_xp(nx, self, X, reset=False).X
        dt = _x_dtype(X)
        if self.kernel is None or self.kernel == "precomputed":
            B = _select_columns_xp(nx, X, self.active_)
        else:
            B = _pairwise_kernel_xp(xp, X, self.relevance_vectors_, self.kernel,
                                    **self.kernel_params_)
        y_mean = xp.astype(B @ xp.take(self.coef_, self.active_) + self.intercept_, dt)
        if not return_std:
            return y_mean
        if self._x_offset is not None:
            B = B - self._x_offset
        var = xp.sum((B @ self.sigma_) * B, axis=1) + self.noise_variance_
        return y_mean, xp.astype(xp.sqrt(var), dt)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.pairwise = self.kernel == "precomputed"
        return tags


class RelevanceVectorClassifier(_KernelBasisMixin, ClassifierMixin, BaseEstimator):
    """Relevance vector classification with a Laplace approximation.

    ``P(y = 1 | x) = σ(φ(x)ᵀ w + b)`` with an ARD prior ``w_i ~ N(0, 1/λ_i)``
    on every basis function.  The precisions maximise the Laplace
    approximation of the evidence with Tipping & Faul's sequential
    add / re-estimate / delete steps (see
    :func:`sparseopt.solvers.sbl_rvc.rvm_classification`).  More than two
    classes are handled one-vs-rest, with normalised probabilities.

    Parameters
    ----------
    kernel : None, str or callable, default=None
        ``None``: the basis functions are the features (a sparse linear
        classifier); otherwise a kernel for
        :func:`sklearn.metrics.pairwise.pairwise_kernels` (``"rbf"``, ...),
        evaluated at the training points (the RVM), or ``"precomputed"``.
    gamma : {"scale", "auto"} or float, default="scale"
    degree : int, default=3
    coef0 : float, default=1.0
    fit_intercept : bool, default=True
        Add a constant basis function (under the ARD prior, as SparseBayes).
    tol : float or None, default=None
        ``|Δ log α|`` stopping tolerance (default 1e-3).
    max_iter : int or None, default=None
        Maximum add / re-estimate / delete actions per binary problem
        (default 1000).
    n_threads : int or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_problems, n_basis)
        Weights of the basis functions (``n_problems`` is 1 for two classes).
    intercept_ : ndarray of shape (n_problems,)
    lambda_ : ndarray of shape (n_problems, n_basis)
        Prior precisions (``inf`` when pruned).
    active_ : list of ndarray
        Relevant basis functions of each problem.
    sigma_ : list of ndarray
        Laplace posterior covariance of each problem's active weights (the
        bias last when it is in the model).
    support_ : ndarray of int
        Union of the active basis functions.
    relevance_vectors_ : ndarray
        Training points of ``support_`` (kernel models only).
    log_marginal_likelihood_ : ndarray of shape (n_problems,)
    n_iter_ : ndarray of shape (n_problems,)
    results_ : list of RVCResult

    Notes
    -----
    Device (CuPy) ``X`` and ``y`` are fitted on the device and the fitted
    arrays stay there (scalars and histories are host numbers); predictions
    of device input are device arrays.  The named kernels are computed on the
    device with scikit-learn's formulas; a callable kernel, or a kernel on a
    sparse device ``X``, raises ``ValueError`` (use ``kernel="precomputed"``).
    A model fitted on one side refuses input from the other (``TypeError``).

    References
    ----------
    M. E. Tipping, "Sparse Bayesian learning and the relevance vector
    machine", JMLR 1, 2001.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sparseopt import RelevanceVectorClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = RelevanceVectorClassifier().fit(X, y)
    >>> bool(clf.score(X, y) > 0.95), len(clf.active_[0]) < 30
    (True, True)
    """

    _parameter_constraints: ClassVar[dict] = {
        "fit_intercept": ["boolean"],
        **_prior_params(),
    }

    def __init__(self, *, kernel=None, gamma="scale", degree=3, coef0=1.0,
                 fit_intercept=True, tol=None, max_iter=None, n_threads=None,
                 verbose=0):
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, callback=None):
        """Fit one binary RVM (or one per class, one-vs-rest).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Multiplies each sample's log-likelihood (an integer weight is the
            same as repeating the sample; not normalised).
        callback : callable, default=None
            Passed to the solver of each binary problem.

        Returns
        -------
        self
        """
        nx = _on_device(X=X, y=y, sample_weight=sample_weight)
        if nx is not None:
            return self._fit_device(nx, X, y, sample_weight, callback)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        present = (self.classes_ if sample_weight is None
                   else np.unique(y[sample_weight > 0]))
        if present.size < 2:
            raise ValueError(
                "RelevanceVectorClassifier needs samples of at least 2 classes (with "
                f"positive weight); the data contains only one class: {present[:1]!r}")
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(
                f"kernel='precomputed' needs a square Gram matrix X, got {X.shape}")
        self.kernel_params_ = self._kernel_params(X.shape[1], X)
        Phi = self._basis(X, X)
        if self.kernel is not None:
            Phi = np.asarray(Phi, dtype=X.dtype)
        targets = ([y_idx == 1] if self.classes_.size == 2
                   else [y_idx == k for k in range(self.classes_.size)])
        self._solve(Phi, [tk.astype(np.float64) for tk in targets], sample_weight,
                    callback)
        res = self.results_
        self.coef_ = np.vstack([r.x for r in res])
        self.intercept_ = np.array([r.intercept for r in res], dtype=X.dtype)
        self.lambda_ = np.vstack([r.alpha for r in res])
        self.active_ = [r.active for r in res]
        self.sigma_ = [r.sigma for r in res]
        self.log_marginal_likelihood_ = np.array([r.log_marginal_likelihood for r in res])
        self.n_iter_ = np.array([r.n_iter for r in res])
        self.support_ = np.unique(np.concatenate(self.active_)).astype(np.intp)
        if self.kernel not in (None, "precomputed"):
            self.relevance_vectors_ = X[self.support_]
        return self

    def _solve(self, Phi, targets, sample_weight, callback):
        """One binary RVM per target (0/1 float64 arrays, host or device)."""
        opts = {}
        if self.tol is not None:
            opts["tol"] = self.tol
        if self.max_iter is not None:
            opts["max_iter"] = self.max_iter
        self.results_ = [
            rvm_classification(Phi, tk, sample_weight=sample_weight,
                               fit_intercept=self.fit_intercept,
                               n_threads=self.n_threads, verbose=self.verbose,
                               callback=callback, **opts)
            for tk in targets
        ]

    def _fit_device(self, nx, X, y, sample_weight, callback):
        """:meth:`fit` for device arrays: labels, kernel and fitted arrays on the device.

        ``classes_`` is ``unique_inverse(y)``'s (sorted) values; a floating
        ``y`` with non-integral values is a continuous target, refused as by
        :func:`~sklearn.utils.multiclass.check_classification_targets`.
        """
        xp = nx.xp
        self._check_kernel_device(X)

        def extra(X, y):   # gamma="scale"'s variance, a continuous-target flag
            var = _variance_xp(xp, X) if self.gamma == "scale" else 0.0
            floating = xp.isdtype(y.dtype, "real floating")
            return (var, xp.any(y != xp.round(y))) if floating else (var,)

        X, y, sample_weight, (var, *continuous) = _validate_xp(
            nx, self, X, y, reset=True, sample_weight=sample_weight, extra=extra)
        if continuous and continuous[0]:
            raise ValueError(
                "Unknown label type: continuous. Maybe you are trying to fit a "
                "classifier, which expects discrete classes on a regression target "
                "with continuous values.")
        classes, y_idx = xp.unique_inverse(y)
        k = int(classes.shape[0])
        if sample_weight is None or k < 2:
            present = k
        else:
            hit = (y_idx[:, None] == xp.arange(k, dtype=y_idx.dtype)[None, :]) & \
                (sample_weight > 0)[:, None]
            present_mask = xp.any(hit, axis=0)
            (present,) = fetch(nx, xp.sum(xp.astype(present_mask, xp.int64)))
        if present < 2:
            first = fetch_array(nx, classes if present == k else
                                xp.take(classes, xp.nonzero(present_mask)[0]))[:1]
            raise ValueError(
                "RelevanceVectorClassifier needs samples of at least 2 classes (with "
                f"positive weight); the data contains only one class: {first!r}")
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(
                f"kernel='precomputed' needs a square Gram matrix X, got {tuple(X.shape)}")
        self.classes_ = classes
        self.kernel_params_ = self._kernel_params(X.shape[1], X, var=var)
        Phi = self._basis_device(nx, X, X, same=True)
        targets = [y_idx == 1] if k == 2 else [y_idx == j for j in range(k)]
        self._solve(Phi, [xp.astype(t, xp.float64) for t in targets], sample_weight,
                    callback)
        res = self.results_
        self.coef_ = xp.stack([r.x for r in res])
        self.intercept_ = xp.asarray([r.intercept for r in res], dtype=_x_dtype(X))
        self.lambda_ = xp.stack([r.alpha for r in res])
        self.active_ = [r.active for r in res]
        self.sigma_ = [r.sigma for r in res]
        self.log_marginal_likelihood_ = np.array([r.log_marginal_likelihood for r in res])
        self.n_iter_ = np.array([r.n_iter for r in res])
        self.support_ = xp.sort(xp.unique_values(xp.concat(self.active_)))
        if self.kernel not in (None, "precomputed"):
            self.relevance_vectors_ = xp.take(X, self.support_, axis=0)
        return self

    def _latent_device(self, nx, X):
        """:meth:`_latent` for a device ``X`` and a device fit."""
        xp = nx.xp
        self._check_kernel_device(X)
        X = _validate_xp(nx, self, X, reset=False).X
        if self.kernel is None or self.kernel == "precomputed":
            B = _select_columns_xp(nx, X, self.support_)
        else:
            B = _pairwise_kernel_xp(xp, X, self.relevance_vectors_, self.kernel,
                                    **self.kernel_params_)
        mean = B @ xp.take(self.coef_, self.support_, axis=1).T + self.intercept_
        var = []
        for r in self.results_:
            Bk = xp.take(B, xp.searchsorted(self.support_, r.active), axis=1)
            if r.bias_active:
                Bk = xp.concat([Bk, xp.ones((Bk.shape[0], 1), dtype=Bk.dtype)], axis=1)
            var.append(xp.sum((Bk @ r.sigma) * Bk, axis=1))
        var = xp.astype(xp.stack(var, axis=1), mean.dtype)
        return xp.astype(mean, _x_dtype(X)), var

    def _support_basis(self, X):
        if self.kernel is None or self.kernel == "precomputed":
            B = X[:, self.support_]
        else:
            B = pairwise_kernels(X, self.relevance_vectors_, metric=self.kernel,
                                 filter_params=True, **self.kernel_params_)
        return B.toarray() if sp.issparse(B) else np.asarray(B)

    def _latent(self, X):
        """Posterior mean and variance of each problem's latent function."""
        check_is_fitted(self)
        nx = _on_device(X=X, coef_=self.coef_)
        if nx is not None:
            return self._latent_device(nx, X)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=[np.float64, np.float32])
        B = self._support_basis(X)
        mean = B @ self.coef_[:, self.support_].T + self.intercept_
        var = np.empty_like(mean)
        for k, r in enumerate(self.results_):
            cols = np.searchsorted(self.support_, r.active)
            Bk = B[:, cols]
            if r.bias_active:
                Bk = np.hstack([Bk, np.ones((Bk.shape[0], 1), dtype=Bk.dtype)])
            var[:, k] = np.einsum("ij,ij->i", Bk @ r.sigma, Bk)
        return mean.astype(X.dtype, copy=False), var

    def decision_function(self, X):
        """Logit of the predictive probability of the positive class.

        The posterior mean ``m`` of the latent function ``φ(x)ᵀ w + b``,
        moderated by its posterior variance ``s²`` (MacKay):
        ``m / sqrt(1 + π s² / 8)``.  Its sign is that of ``m``.

        Returns
        -------
        ndarray of shape (n_samples,) for two classes, else (n_samples, n_classes)
        """
        z = self._moderated(X)
        return z[:, 0] if self.classes_.size == 2 else z

    def _moderated(self, X):
        mean, var = self._latent(X)
        nx = _on_device(mean=mean)
        if nx is not None:
            xp = nx.xp
            return mean / xp.astype(xp.sqrt(1.0 + np.pi * var / 8.0), mean.dtype)
        return mean / np.sqrt(1.0 + np.pi * var / 8.0).astype(mean.dtype)

    def predict_proba(self, X):
        """Class probabilities, moderated by the posterior uncertainty.

        MacKay's approximation of ``∫ σ(f) N(f | m, s²) df ≈
        σ(m / sqrt(1 + π s² / 8))``; one-vs-rest probabilities are
        normalised to sum to one.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        z = self._moderated(X)
        nx = _on_device(z=z)
        if nx is not None:
            xp = nx.xp
            p = _expit_xp(xp, z)
            if z.shape[1] == 1:
                return xp.stack([1.0 - p[:, 0], p[:, 0]], axis=1)
            total = xp.sum(p, axis=1, keepdims=True)
            return p / xp.where(total == 0, 1.0, total)
        p = expit(z)
        if self.classes_.size == 2:
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        total = p.sum(axis=1, keepdims=True)
        total[total == 0] = 1.0
        return p / total

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        nx = _on_device(proba=proba)
        if nx is not None:
            return nx.xp.log(proba)
        with np.errstate(divide="ignore"):
            return np.log(proba)

    def predict(self, X):
        """Most probable class (sign of the latent mean for two classes)."""
        z = self._moderated(X)
        nx = _on_device(z=z)
        if nx is not None:
            xp = nx.xp
            idx = (xp.astype(z[:, 0] > 0, xp.int64) if z.shape[1] == 1
                   else xp.argmax(z, axis=1))
            return xp.take(self.classes_, idx)
        if self.classes_.size == 2:
            return self.classes_[(z[:, 0] > 0).astype(int)]
        return self.classes_[np.argmax(z, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.pairwise = self.kernel == "precomputed"
        return tags


class KroneckerSBL(TransformerMixin, BaseEstimator):
    """Kronecker-structured sparse Bayesian coding of signals.

    Each row ``y`` of ``X`` is explained as ``y = (A₁ ⊗ … ⊗ A_I) x + e`` with a
    sparse ``x`` found by :func:`kronecker_sbl` (He & Joseph): the dictionary
    is given as its factors and never formed.  Like
    :class:`sklearn.decomposition.SparseCoder`, the dictionary is a parameter:
    :meth:`transform` codes signals, :meth:`inverse_transform` synthesises
    them.

    Parameters
    ----------
    factors : sequence of ndarray of shape (M_i, N_i)
        Dictionary factors; signals have ``M = Π M_i`` entries and codes
        ``N = Π N_i``.
    method : {"svd", "am", "am_block", "classic"}, default="svd"
    noise_variance : float or None, default=None
        Known noise variance (``None`` learns it per signal).
    block_sizes : int or sequence, default=None
        Block structure for ``method="am_block"``.
    tol : float, default=1e-4
    max_iter : int, default=500
    prune : float or None, default=None
    n_threads : int or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    coef_ : ndarray of shape (n_signals, N)
        Codes of the signals seen in :meth:`fit`.
    gammas_ : list of list of ndarray
        Factor hyperparameters of each signal.
    noise_variance_ : ndarray of shape (n_signals,)
    n_iter_ : int
        Largest number of iterations over the signals.
    n_components_ : int
        ``N``.

    Notes
    -----
    With device (CuPy) signals and factors, every signal is coded on the
    device and ``coef_``, ``gammas_`` and the outputs of :meth:`transform`
    and :meth:`inverse_transform` are device arrays; signals and factors on
    different sides are a ``TypeError``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import KroneckerSBL
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    >>> x = np.kron(np.eye(10)[2], np.eye(10)[5])
    >>> Y = (np.kron(A1, A2) @ x)[None, :]
    >>> coder = KroneckerSBL([A1, A2], noise_variance=1e-6).fit(Y)
    >>> int(np.argmax(np.abs(coder.coef_[0])))
    25
    """

    _parameter_constraints: ClassVar[dict] = {
        "factors": ["array-like", list, tuple],
        "method": [StrOptions({"svd", "am", "am_block", "classic"})],
        "noise_variance": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "block_sizes": [None, Interval(numbers.Integral, 1, None, closed="left"),
                        list, tuple],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "prune": [None, Interval(numbers.Real, 0, 1, closed="left")],
        "n_threads": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(self, factors, *, method="svd", noise_variance=None, block_sizes=None,
                 tol=1e-4, max_iter=500, prune=None, n_threads=None, verbose=0):
        self.factors = factors
        self.method = method
        self.noise_variance = noise_variance
        self.block_sizes = block_sizes
        self.tol = tol
        self.max_iter = max_iter
        self.prune = prune
        self.n_threads = n_threads
        self.verbose = verbose

    def _code(self, X, nx=None):
        if nx is None:
            rows = list(np.asarray(X, dtype=np.float64))
        else:  # device signals: each row coded by the device solver
            X64 = nx.xp.astype(X, nx.xp.float64)
            rows = [X64[i, :] for i in range(X.shape[0])]
        with warnings.catch_warnings():   # one warning for all signals, below
            warnings.simplefilter("ignore", ConvergenceWarning)
            results = [
                kronecker_sbl(row, self.factors, method=self.method,
                              noise_variance=self.noise_variance,
                              block_sizes=self.block_sizes, tol=self.tol,
                              max_iter=self.max_iter, prune=self.prune,
                              n_threads=self.n_threads, verbose=self.verbose)
                for row in rows
            ]
        n_bad = sum(not r.converged for r in results)
        if n_bad:
            warnings.warn(
                f"KroneckerSBL: {n_bad} of {len(results)} signals did not converge in "
                f"max_iter={self.max_iter} iterations (tol={self.tol}); increase "
                "max_iter or loosen tol", ConvergenceWarning, stacklevel=3)
        if nx is not None:
            xp = nx.xp
            return xp.astype(xp.stack([r.x for r in results]), X.dtype), results
        N = int(np.prod([np.shape(A)[1] for A in self.factors]))
        codes = (np.vstack([r.x for r in results]) if results
                 else np.zeros((0, N)))
        return codes.astype(X.dtype, copy=False), results

    def _factor_list(self):
        f = self.factors
        return list(f) if isinstance(f, list | tuple) else f

    def _validate_device(self, nx, X, reset):
        """Device twin of ``validate_data`` for the signals (same messages)."""
        return _validate_xp(nx, self, X, reset=reset, accept_sparse=False).X

    def _check_shape(self, X):
        M = int(np.prod([np.shape(A)[0] for A in self.factors]))
        if X.shape[1] != M:
            raise ValueError(
                f"X has {X.shape[1]} features per signal, the Kronecker dictionary "
                f"has {M} rows")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Code the signals of ``X`` and store the codes in ``coef_``.

        Parameters
        ----------
        X : array-like of shape (n_signals, M)
        y : ignored

        Returns
        -------
        self
        """
        nx = _on_device(X=X, factors=self._factor_list())
        if nx is None:
            X = validate_data(self, X, dtype=[np.float64, np.float32])
        else:
            X = self._validate_device(nx, X, reset=True)
        self._check_shape(X)
        self.coef_, results = self._code(X, nx)
        self.gammas_ = [r.gammas for r in results]
        self.noise_variance_ = np.array([r.noise_variance for r in results])
        self.n_iter_ = max((r.n_iter for r in results), default=0)
        self.n_components_ = int(np.prod([np.shape(A)[1] for A in self.factors]))
        return self

    def fit_transform(self, X, y=None):
        """Fit and return the codes ``coef_``."""
        return self.fit(X).coef_

    def transform(self, X):
        """Sparse codes of the signals ``X``.

        Returns
        -------
        ndarray of shape (n_signals, N)
        """
        check_is_fitted(self)
        nx = _on_device(X=X, factors=self._factor_list())
        if nx is not None:
            return self._code(self._validate_device(nx, X, reset=False), nx)[0]
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self._code(X)[0]

    def inverse_transform(self, X):
        """Signals ``(A₁ ⊗ … ⊗ A_I) x`` of codes ``x`` (rows of ``X``).

        Returns
        -------
        ndarray of shape (n_codes, M)
        """
        check_is_fitted(self)
        nx = _on_device(X=X, factors=self._factor_list())
        if nx is not None:
            return self._inverse_device(nx, X)
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_components_:
            raise ValueError(f"codes must have {self.n_components_} columns, got "
                             f"{X.shape[1]}")
        factors = [np.asarray(A, dtype=np.float64) for A in self.factors]
        out = [kron_apply(factors, row) for row in X.astype(np.float64)]
        M = int(np.prod([A.shape[0] for A in factors]))
        return (np.vstack(out) if out else np.zeros((0, M))).astype(X.dtype, copy=False)

    def _inverse_device(self, nx, X):
        """:meth:`inverse_transform` of device codes with device factors."""
        from sparseopt.solvers.sbl_xp_kron import kron_apply_xp

        xp = nx.xp
        X = _validate_xp(nx, None, X, reset=False, accept_sparse=False).X
        if X.shape[1] != self.n_components_:
            raise ValueError(f"codes must have {self.n_components_} columns, got "
                             f"{X.shape[1]}")
        factors = [xp.astype(A, xp.float64) for A in self._factor_list()]
        X64 = xp.astype(X, xp.float64)
        M = int(np.prod([A.shape[0] for A in factors]))
        out = [kron_apply_xp(xp, factors, X64[i, :]) for i in range(X.shape[0])]
        out = xp.stack(out) if out else xp.zeros((0, M), dtype=xp.float64)
        return xp.astype(out, X.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags
