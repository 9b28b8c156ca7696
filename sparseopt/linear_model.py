"""Sparse linear models with scikit-learn's API.

Estimators: :class:`Lasso`, :class:`ElasticNet`, :class:`GroupLasso`,
:class:`MCPRegression`, :class:`SCADRegression`, :class:`L0Regression`,
:class:`SparseLogisticRegression` and :class:`LassoCV`; functions
:func:`lasso_path` and :func:`enet_path`.

All regressors minimise scikit-learn's objective

.. math::

    \\min_{w, b}\\ \\frac{1}{2} \\sum_i s_i (y_i - x_i^T w - b)^2 + \\Omega(w),
    \\qquad s_i = \\frac{\\text{sample\\_weight}_i}{\\sum_k \\text{sample\\_weight}_k}

(``s_i = 1/n`` without weights), :class:`SparseLogisticRegression` the
weighted mean logistic loss plus ``alpha ||w||_1``.  They share one solver,
:func:`sparseopt.solvers.regression.solve`: coordinate descent on working sets
with Anderson extrapolation and gap-safe screening, run by fused Numba epochs
on dense (Fortran) or sparse (CSC) designs.  ``tol`` is a relative duality gap
``gap / P(0)`` for the convex models and a relative fixed-point (KKT)
violation for MCP, SCAD and L0.
"""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import check_cv
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from sparseopt._backend import get_backend
from sparseopt._validation import check_scalar
from sparseopt.solvers._xp_linalg import device_backend, fetch
from sparseopt.solvers._xp_validation import validate_data_xp
from sparseopt.solvers.regression import (
    group_lipschitz,
    group_penalty,
    l0_penalty,
    l1_penalty,
    mcp_penalty,
    prepare_design,
    scad_penalty,
    solve,
    solve_path,
)
from sparseopt.solvers.regression._fista import solve_fista, solve_path_fista
from sparseopt.solvers.regression._xp import (
    array_namespace,
    binary_labels_xp,
    dtype_of,
    host_csr,
    linear_predict_xp,
    prepare_design_xp,
    take_rows_xp,
)
from sparseopt.solvers.regression._xp import expit as expit_xp
from sparseopt.solvers.regression._xp_penalty import PenaltyXP

__all__ = [
    "ElasticNet",
    "GroupLasso",
    "L0Regression",
    "Lasso",
    "LassoCV",
    "MCPRegression",
    "SCADRegression",
    "SparseLogisticRegression",
    "enet_path",
    "lasso_path",
]

_ACCEPT_SPARSE = ("csc", "csr", "coo")


def _from_sparseopt(X):
    """Turn a sparseopt CSR/BSR container into scipy.sparse (zero-copy)."""
    if not sp.issparse(X) and hasattr(X, "to_scipy") and hasattr(X, "indptr"):
        return X.to_scipy()
    return X


def _is_float32(xp, X):
    data = X.data if hasattr(X, "indptr") else X
    return data.dtype == xp.float32


def _host_scalars(a):
    """``a`` on the host (device intercepts of a previous fit are fetched)."""
    nx = device_backend(a=a)
    return a if nx is None else nx.to_numpy(a)


# ----------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------
class _SparseLinearBase(BaseEstimator):
    """Shared fit logic; subclasses define ``_penalty(design, n_features)``."""

    _datafit = "quadratic"
    _common_constraints: ClassVar[dict] = {
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "solver": [StrOptions({"auto", "cd", "fista"})],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _validate_xy(self, X, y, sample_weight):
        nx = device_backend(X=X, y=y, sample_weight=sample_weight)
        if nx is not None:
            # device arrays: validated where they live with validate_data's
            # messages (all value checks in one transfer); no host copy
            X, y, sample_weight, _ = validate_data_xp(
                nx, self, X, y, reset=True, accept_sparse=True,
                y_numeric=self._datafit == "quadratic", sample_weight=sample_weight,
                ensure_non_negative=True)
            return X, y, sample_weight
        X = _from_sparseopt(X)
        X, y = validate_data(self, X, y, accept_sparse=_ACCEPT_SPARSE,
                             dtype=[np.float64, np.float32], y_numeric=
                             self._datafit == "quadratic", order=None)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        return X, y, sample_weight

    def _generic_backend(self, X, y):
        """Backend of the generic (FISTA) solver, or None for coordinate descent."""
        nx = device_backend(X=X, y=y)
        solver = getattr(self, "solver", "auto")
        if nx is not None:
            if solver == "cd":
                raise ValueError(
                    "solver='cd' (working-set coordinate descent) runs on host "
                    "(NumPy/scipy) arrays only; use solver='auto' or 'fista' for "
                    "device arrays")
            return nx
        return get_backend() if solver == "fista" else None

    def _solve(self, X, y, sample_weight, *, labels=None, alpha=None):
        alpha = self.alpha if alpha is None else alpha
        target = y if labels is None else labels
        nx = self._generic_backend(X, target)
        if nx is None:
            design = prepare_design(
                X, target, datafit=self._datafit, sample_weight=sample_weight,
                fit_intercept=self.fit_intercept, check_input=False)
        else:
            design = prepare_design_xp(
                nx, host_csr(X), target, datafit=self._datafit,
                sample_weight=sample_weight, fit_intercept=self.fit_intercept,
                # device input was validated by validate_data_xp in fit
                check_input=device_backend(X=X, y=target) is None)
        pen, lips_blocks = self._penalty(design, X.shape[1])
        w0 = b0 = None
        if getattr(self, "warm_start", False) and hasattr(self, "coef_") and \
                self.coef_.shape[-1] == X.shape[1]:
            w0 = self.coef_[0] if self.coef_.ndim == 2 else self.coef_
            b0 = float(np.ravel(_host_scalars(self.intercept_))[0]) \
                if self.fit_intercept else None
        kw = dict(alpha_user=alpha, w0=w0, b0=b0, tol=self.tol, max_iter=self.max_iter,
                  verbose=self.verbose, name=type(self).__name__,
                  callback=getattr(self, "_callback", None))
        if nx is None:
            res = solve(design, pen, lips_blocks=lips_blocks, **kw)
        else:
            if w0 is not None and device_backend(w0=w0) is not device_backend(X=X):
                kw["w0"] = None   # coef_ from a fit on the other device: cold start
            res = solve_fista(design, pen, **kw)
        self.result_ = res
        self.n_iter_ = res.n_iter
        self.dual_gap_ = res.dual_gap
        self.stop_crit_ = res.stop_crit
        return res, design

    def _set_solution(self, res, dtype):
        if not isinstance(res.x, np.ndarray):   # device result: stays there
            xp = array_namespace(res.x)
            self.coef_ = xp.astype(res.x, dtype_of(xp, dtype))
            self.intercept_ = float(res.intercept) if self.fit_intercept else 0.0
            return
        self.coef_ = np.asarray(res.x, dtype=dtype)
        self.intercept_ = dtype.type(res.intercept) if self.fit_intercept \
            else dtype.type(0.0)

    @property
    def sparse_coef_(self):
        """Coefficients as a scipy.sparse CSR row vector."""
        return sp.csr_matrix(self.coef_.reshape(1, -1))


class _RegressorBase(RegressorMixin, _SparseLinearBase):
    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Dense (Fortran order avoids a copy) or sparse (CSC avoids a copy).
            Never modified.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative; normalised by their sum, so integer weights are
            equivalent to repeated rows.

        Returns
        -------
        self
        """
        self._validate_params()
        X, y, sample_weight = self._validate_xy(X, y, sample_weight)
        res, _ = self._solve(X, y, sample_weight)
        self._set_solution(res, X.data.dtype if hasattr(X, "indptr") else X.dtype)
        return self

    def predict(self, X):
        """Linear prediction ``X @ coef_ + intercept_`` (on the device for device input)."""
        check_is_fitted(self)
        nx = device_backend(X=X, coef_=self.coef_)
        if nx is not None:
            X = validate_data_xp(nx, self, X, reset=False, accept_sparse=True).X
            return linear_predict_xp(nx, X, self.coef_, self.n_features_in_,
                                     check_input=False) + self.intercept_
        X = _from_sparseopt(X)
        X = validate_data(self, X, accept_sparse=_ACCEPT_SPARSE, reset=False,
                          dtype=[np.float64, np.float32])
        return safe_sparse_dot(X, self.coef_) + self.intercept_


# ----------------------------------------------------------------------------
class Lasso(_RegressorBase):
    """Linear regression with an L1 penalty.

    Minimises ``1/2 sum_i s_i (y_i - x_i^T w - b)^2 + alpha ||w||_1`` with
    ``s`` the normalised sample weights (``1/n`` by default): the objective of
    :class:`sklearn.linear_model.Lasso`.

    Parameters
    ----------
    alpha : float, default=1.0
        Regularisation strength, > 0.  For ``alpha >= alpha_max =
        ||X_c^T S y_c||_inf`` the solution is zero.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept (eliminated exactly by implicit
        centring; sparse inputs stay sparse).
    max_iter : int, default=100
        Outer iterations (working-set solves).
    tol : float, default=1e-4
        Relative duality gap ``gap / P(0)`` at which to stop.
    warm_start : bool, default=False
        Start from the previous solution.
    positive : bool, default=False
        Constrain the coefficients to be non-negative.
    verbose : int, default=0

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Outer iterations run.
    dual_gap_ : float
        Final absolute duality gap.
    stop_crit_ : float
        Final relative duality gap (compared with ``tol``).
    result_ : RegressionResult
        Full solver output (history, epochs, screened features).

    References
    ----------
    Tibshirani (1996), "Regression shrinkage and selection via the lasso";
    Massias, Gramfort & Salmon (2018), "Celer".

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import Lasso
    >>> X = np.array([[0., 0.], [1., 1.], [2., 2.]])
    >>> Lasso(alpha=0.1).fit(X, [0., 1., 2.]).coef_.round(3)
    array([0.85, 0.  ])
    """

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "positive": ["boolean"],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, alpha=1.0, *, fit_intercept=True, max_iter=100, tol=1e-4,
                 warm_start=False, positive=False, verbose=0, solver="auto"):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def _penalty(self, design, p):
        return l1_penalty(self.alpha, 1.0, self.positive), None


class ElasticNet(_RegressorBase):
    """Linear regression with the elastic-net penalty.

    Minimises ``1/2 sum_i s_i (y_i - x_i^T w - b)^2 + alpha l1_ratio ||w||_1
    + alpha (1 - l1_ratio) / 2 ||w||_2^2`` (scikit-learn's objective).

    Parameters
    ----------
    alpha : float, default=1.0
    l1_ratio : float in [0, 1], default=0.5
    fit_intercept, max_iter, tol, warm_start, positive, verbose
        As in :class:`Lasso`.

    Attributes
    ----------
    coef_, intercept_, n_iter_, dual_gap_, stop_crit_, result_
        As in :class:`Lasso`.
    """

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "positive": ["boolean"],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, alpha=1.0, *, l1_ratio=0.5, fit_intercept=True, max_iter=100,
                 tol=1e-4, warm_start=False, positive=False, verbose=0, solver="auto"):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def _penalty(self, design, p):
        return l1_penalty(self.alpha, self.l1_ratio, self.positive), None


class MCPRegression(_RegressorBase):
    """Linear regression with the minimax concave penalty (MCP).

    Penalty per coefficient (Zhang 2010): ``alpha |w| - w^2 / (2 gamma)`` for
    ``|w| <= gamma alpha``, ``gamma alpha^2 / 2`` beyond.  Nonconvex: the
    solver returns a stationary point (coordinate-wise minimum), and ``tol``
    bounds the fixed-point violation ``max_j L_j |w_j - prox_j(w_j - g_j /
    L_j)|`` relative to ``||grad f(0)||_inf``.

    Parameters
    ----------
    alpha : float, default=1.0
    gamma : float, default=3.0
        Concavity parameter, > 1 (the coordinate problems stay convex when
        ``gamma L_j > 1``; other cases are still solved exactly).
    fit_intercept, max_iter, tol, warm_start, positive, verbose
        As in :class:`Lasso`.

    Attributes
    ----------
    coef_, intercept_, n_iter_, stop_crit_, result_
        As in :class:`Lasso` (``dual_gap_`` is NaN: no duality for MCP).

    References
    ----------
    Zhang (2010), "Nearly unbiased variable selection under minimax concave
    penalty", Ann. Statist.; Breheny & Huang (2011).
    """

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "gamma": [Interval(Real, 1, None, closed="neither")],
        "positive": ["boolean"],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, alpha=1.0, *, gamma=3.0, fit_intercept=True, max_iter=100,
                 tol=1e-4, warm_start=False, positive=False, verbose=0, solver="auto"):
        self.alpha = alpha
        self.gamma = gamma
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def _penalty(self, design, p):
        return mcp_penalty(self.alpha, self.gamma, self.positive), None


class SCADRegression(_RegressorBase):
    """Linear regression with the SCAD penalty (Fan & Li 2001).

    Penalty per coefficient: ``alpha |w|`` for ``|w| <= alpha``,
    ``(2 gamma alpha |w| - w^2 - alpha^2) / (2 (gamma - 1))`` up to ``gamma
    alpha`` and ``alpha^2 (gamma + 1) / 2`` beyond.  Stopping as in
    :class:`MCPRegression`.

    Parameters
    ----------
    alpha : float, default=1.0
    gamma : float, default=3.7
        > 2 (Fan & Li's recommended value is 3.7).
    fit_intercept, max_iter, tol, warm_start, positive, verbose
        As in :class:`Lasso`.

    References
    ----------
    Fan & Li (2001), "Variable selection via nonconcave penalized likelihood
    and its oracle properties", JASA.
    """

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "gamma": [Interval(Real, 2, None, closed="neither")],
        "positive": ["boolean"],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, alpha=1.0, *, gamma=3.7, fit_intercept=True, max_iter=100,
                 tol=1e-4, warm_start=False, positive=False, verbose=0, solver="auto"):
        self.alpha = alpha
        self.gamma = gamma
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def _penalty(self, design, p):
        return scad_penalty(self.alpha, self.gamma, self.positive), None


class L0Regression(_RegressorBase):
    """Linear regression with an L0 (+ optional ridge) penalty.

    Minimises ``1/2 sum_i s_i (y_i - x_i^T w - b)^2 + alpha ||w||_0
    + l2_reg / 2 ||w||_2^2`` by coordinate descent with exact hard-thresholding
    updates on working sets (the CD scheme of L0Learn, without its local
    combinatorial swaps).  The result is a coordinate-wise minimum: each
    coefficient is optimal given the others, so on the support the
    coefficients are the (ridge) least-squares fit.  ``tol`` bounds the
    relative fixed-point violation, as in :class:`MCPRegression`.

    Parameters
    ----------
    alpha : float, default=1.0
        Price of one non-zero coefficient.
    l2_reg : float, default=0.0
        Ridge weight (L0L2 model), >= 0.
    fit_intercept, max_iter, tol, warm_start, positive, verbose
        As in :class:`Lasso`.

    References
    ----------
    Hazimeh & Mazumder (2020), "Fast best subset selection: coordinate descent
    and local combinatorial optimization algorithms", Operations Research.
    """

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "positive": ["boolean"],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, alpha=1.0, *, l2_reg=0.0, fit_intercept=True, max_iter=100,
                 tol=1e-4, warm_start=False, positive=False, verbose=0, solver="auto"):
        self.alpha = alpha
        self.l2_reg = l2_reg
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def _penalty(self, design, p):
        return l0_penalty(self.alpha, self.l2_reg, self.positive), None


# ----------------------------------------------------------------------------
def _parse_groups(groups, n_features):
    """Return ``(grp_ptr, grp_idx)`` for ``groups`` or raise naming ``groups``.

    ``groups`` is an int (contiguous groups of that size), a sequence of ints
    (contiguous group sizes) or a sequence of index sequences (explicit groups).
    They must partition ``range(n_features)``.
    """
    if isinstance(groups, Integral) and not isinstance(groups, bool):
        if groups < 1:
            raise ValueError(f"groups must be a positive group size, got {groups}")
        if n_features % groups:
            raise ValueError(
                f"groups={groups} does not divide n_features={n_features}; pass "
                "a list of group sizes or of index lists instead")
        sizes = np.full(n_features // groups, groups)
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), \
            np.arange(n_features, dtype=np.int64)
    try:
        items = list(groups)
    except TypeError as exc:
        raise TypeError("groups must be an int, a list of group sizes or a list of "
                        "index lists") from exc
    if not items:
        raise ValueError("groups must not be empty")
    if all(isinstance(g, Integral) and not isinstance(g, bool) for g in items):
        sizes = np.asarray(items, dtype=np.int64)
        if np.any(sizes < 1):
            raise ValueError("groups: group sizes must be positive")
        if sizes.sum() != n_features:
            raise ValueError(f"groups: sizes sum to {int(sizes.sum())} but X has "
                             f"{n_features} features; groups must cover every "
                             "feature exactly once")
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), \
            np.arange(n_features, dtype=np.int64)
    idx_lists = []
    for g in items:
        arr = np.asarray(g)
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
            raise ValueError("groups: each group must be a non-empty list of "
                             "integer feature indices")
        idx_lists.append(arr.astype(np.int64))
    flat = np.concatenate(idx_lists)
    if flat.min() < 0 or flat.max() >= n_features:
        raise ValueError(f"groups: feature indices must lie in [0, {n_features})")
    counts = np.bincount(flat, minlength=n_features)
    if np.any(counts != 1):
        missing = np.flatnonzero(counts == 0)
        dup = np.flatnonzero(counts > 1)
        raise ValueError(
            "groups must cover every feature exactly once: "
            + (f"missing features {missing[:10].tolist()} " if missing.size else "")
            + (f"repeated features {dup[:10].tolist()}" if dup.size else ""))
    ptr = np.concatenate([[0], np.cumsum([len(g) for g in idx_lists])])
    return ptr.astype(np.int64), flat


class GroupLasso(_RegressorBase):
    """Linear regression with the group-Lasso penalty.

    Minimises ``1/2 sum_i s_i (y_i - x_i^T w - b)^2 + alpha sum_g c_g ||w_g||_2``
    by block coordinate descent (exact block proximal steps with the block
    Lipschitz constant ``||X_g||_2^2 / n``) on working sets of groups.

    Parameters
    ----------
    groups : int, list of int, or list of lists of int
        Contiguous groups of one size, a vector of contiguous group sizes, or
        explicit index lists; must partition the features.
    alpha : float, default=1.0
    weights : array-like of shape (n_groups,), default=None
        Positive group weights ``c_g``; ``None`` means all ones (as skglm and
        celer).  Use ``np.sqrt(sizes)`` for Yuan & Lin's scaling.
    fit_intercept, max_iter, tol, warm_start, positive, verbose
        As in :class:`Lasso`.

    References
    ----------
    Yuan & Lin (2006), "Model selection and estimation in regression with
    grouped variables", JRSS-B.
    """

    _parameter_constraints: ClassVar[dict] = {
        "groups": ["array-like", Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "weights": ["array-like", None],
        "positive": ["boolean"],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, groups=1, alpha=1.0, *, weights=None, fit_intercept=True,
                 max_iter=100, tol=1e-4, warm_start=False, positive=False,
                 verbose=0, solver="auto"):
        self.groups = groups
        self.alpha = alpha
        self.weights = weights
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def _penalty(self, design, p):
        ptr, idx = _parse_groups(self.groups, p)
        n_groups = ptr.size - 1
        if self.weights is None:
            weights = np.ones(n_groups)
        else:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.shape != (n_groups,):
                raise ValueError(f"weights must have one entry per group "
                                 f"({n_groups}), got shape {weights.shape}")
            if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
                raise ValueError("weights must be positive and finite")
        # the generic (FISTA) solver needs no group eigenvalues: its step uses
        # the whole design's constant and its screening a Frobenius bound
        lips = None if getattr(design, "generic", False) else \
            group_lipschitz(design, ptr, idx)
        return group_penalty(self.alpha, ptr, idx, weights, self.positive), lips


# ----------------------------------------------------------------------------
class SparseLogisticRegression(ClassifierMixin, _SparseLinearBase):
    """Binary logistic regression with an L1 (elastic-net) penalty.

    Minimises ``sum_i s_i log(1 + exp(-y_i (x_i^T w + b))) + alpha (l1_ratio
    ||w||_1 + (1 - l1_ratio) / 2 ||w||^2)`` with labels ``y_i`` in {-1, +1}
    and normalised sample weights ``s`` (``1/n`` by default).  This is
    scikit-learn's ``LogisticRegression(l1_ratio=1, C=1 / (n alpha))`` up to
    the factor ``n C``, except that the intercept is not penalised.

    The solver is proximal coordinate descent (step ``1/L_j``, ``L_j = sum_i s_i
    x_ij^2 / 4``) on working sets with Anderson extrapolation; ``tol`` is the
    relative duality gap (the dual point is rebalanced so that it satisfies
    the intercept's constraint).

    Parameters
    ----------
    alpha : float, default=1.0
    l1_ratio : float in (0, 1], default=1.0
    fit_intercept, max_iter, tol, warm_start, verbose
        As in :class:`Lasso`.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    n_iter_, dual_gap_, stop_crit_, result_
        As in :class:`Lasso`.

    References
    ----------
    Massias et al. (2020), "Dual extrapolation for sparse generalized linear
    models", JMLR.
    """

    _datafit = "logistic"
    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "l1_ratio": [Interval(Real, 0, 1, closed="right")],
        **_SparseLinearBase._common_constraints,
    }

    def __init__(self, alpha=1.0, *, l1_ratio=1.0, fit_intercept=True, max_iter=100,
                 tol=1e-4, warm_start=False, verbose=0, solver="auto"):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose
        self.solver = solver

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _penalty(self, design, p):
        return l1_penalty(self.alpha, self.l1_ratio, False), None

    def fit(self, X, y, sample_weight=None):
        """Fit the model (binary targets only; see class docstring).

        Device (CuPy) ``X`` and ``y`` are fitted on the device: ``coef_``,
        ``intercept_`` and ``classes_`` are then device arrays.
        """
        self._validate_params()
        X, y, sample_weight = self._validate_xy(X, y, sample_weight)
        nx = device_backend(X=X, y=y)
        if nx is not None:
            self.classes_, labels = binary_labels_xp(nx, y)
            res, _ = self._solve(X, y, sample_weight, labels=labels)
            xp = nx.xp
            dt = xp.float32 if _is_float32(xp, X) else xp.float64
            self.coef_ = xp.reshape(xp.astype(res.x, dt), (1, -1))
            self.intercept_ = xp.asarray(
                [res.intercept if self.fit_intercept else 0.0], dtype=dt)
            return self
        check_classification_targets(y)
        enc = LabelEncoder()
        codes = enc.fit_transform(y)
        self.classes_ = enc.classes_
        k = self.classes_.size
        if k != 2:
            raise ValueError(
                "Only binary classification is supported. SparseLogisticRegression "
                f"needs exactly 2 classes in y, got {k} class{'es' if k != 1 else ''}")
        labels = np.where(codes == 1, 1.0, -1.0)
        res, _ = self._solve(X, y, sample_weight, labels=labels)
        self.coef_ = np.asarray(res.x, dtype=X.dtype).reshape(1, -1)
        self.intercept_ = np.array([res.intercept if self.fit_intercept else 0.0],
                                   dtype=X.dtype)
        return self

    def decision_function(self, X):
        """``X @ coef_.T + intercept_``: positive for ``classes_[1]``."""
        check_is_fitted(self)
        nx = device_backend(X=X, coef_=self.coef_)
        if nx is not None:
            X = validate_data_xp(nx, self, X, reset=False, accept_sparse=True).X
            return linear_predict_xp(nx, X, self.coef_[0, :], self.n_features_in_,
                                     check_input=False) + self.intercept_[0]
        X = _from_sparseopt(X)
        X = validate_data(self, X, accept_sparse=_ACCEPT_SPARSE, reset=False,
                          dtype=[np.float64, np.float32])
        return safe_sparse_dot(X, self.coef_[0]) + self.intercept_[0]

    def predict(self, X):
        """Predicted class labels."""
        scores = self.decision_function(X)
        if not isinstance(scores, np.ndarray):
            xp = array_namespace(scores)
            return xp.take(self.classes_, xp.astype(scores > 0, xp.int64))
        return self.classes_[(scores > 0).astype(int)]

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``."""
        scores = self.decision_function(X)
        if not isinstance(scores, np.ndarray):
            xp = array_namespace(scores)
            p1 = expit_xp(xp, scores)
            return xp.stack([1 - p1, p1], axis=1)
        from scipy.special import expit
        p1 = expit(scores)
        return np.column_stack([1 - p1, p1])

    def predict_log_proba(self, X):
        proba = self.predict_proba(X)
        if not isinstance(proba, np.ndarray):
            return array_namespace(proba).log(proba)
        return np.log(proba)


# ----------------------------------------------------------------------------
# paths and cross-validation
# ----------------------------------------------------------------------------
def _alpha_grid(design, pen, n_alphas, eps):
    if getattr(design, "generic", False):
        penx = PenaltyXP(design.nx, pen, design.p)
        (amax,) = fetch(design.nx, penx.alpha_max_dev(design.grad0))
        amax /= pen._a_scale
    else:
        amax = pen.alpha_max(design.grad0, design.lips)
    if not amax > 0:
        amax = np.finfo(np.float64).tiny
    return np.geomspace(amax, amax * eps, n_alphas)


def enet_path(X, y, *, l1_ratio=0.5, eps=1e-3, n_alphas=100, alphas=None,
              fit_intercept=False, sample_weight=None, positive=False, tol=1e-4,
              max_iter=100, verbose=0, callback=None, coef_init=None, solver="auto"):
    """Elastic-net regularisation path with warm starts.

    Solves :class:`ElasticNet`'s objective for each ``alpha`` (decreasing),
    starting each solve from the previous solution; screening and the working
    sets restart at every ``alpha``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    l1_ratio : float in (0, 1], default=0.5
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the automatic grid.
    n_alphas : int, default=100
    alphas : array-like, optional
        Explicit grid (solved in decreasing order).
    fit_intercept : bool, default=False
        As :func:`sklearn.linear_model.enet_path`, the default does not fit
        an intercept (center the data or pass True).
    sample_weight : array-like, optional
    positive : bool, default=False
    tol, max_iter, verbose
        Per-``alpha`` stopping (relative duality gap) and outer iterations.
    callback : callable, optional
        ``callback(result)`` after each ``alpha``; returning True stops.
    coef_init : array-like, optional
        Warm start for the first ``alpha``.
    solver : {"auto", "cd", "fista"}, default="auto"
        ``"auto"``: working-set coordinate descent for host (NumPy/scipy)
        input, accelerated proximal gradient (FISTA with restart, the same
        stopping rule) for device (CuPy) input, which then stays on the device
        (``coefs`` is a device array).  ``"fista"`` forces the latter on the
        host too.

    Returns
    -------
    PathResult
        ``alphas``, ``coefs`` (n_features, n_alphas), ``intercepts``,
        ``dual_gaps`` (absolute), ``stop_crits`` (relative gaps), ``n_iters``.
    """
    l1_ratio = check_scalar(l1_ratio, "l1_ratio", low=0, high=1, include_low=False)
    eps = check_scalar(eps, "eps", low=0, high=1, include_low=False)
    if solver not in ("auto", "cd", "fista"):
        raise ValueError(f"solver must be 'auto', 'cd' or 'fista', got {solver!r}")
    nx = device_backend(X=X, y=y, sample_weight=sample_weight, coef_init=coef_init)
    if nx is not None and solver == "cd":
        raise ValueError("solver='cd' runs on host (NumPy/scipy) arrays only; use "
                         "solver='auto' or 'fista' for device arrays")
    if nx is None and solver == "fista":
        nx = get_backend()
    pen = l1_penalty(1.0, l1_ratio, positive)
    if nx is None:
        X = _from_sparseopt(X)
        design = prepare_design(X, y, sample_weight=sample_weight,
                                fit_intercept=fit_intercept)
    else:
        if not hasattr(y, "shape"):
            y = nx.xp.asarray(y, dtype=nx.xp.float64)
        design = prepare_design_xp(nx, host_csr(X), y, sample_weight=sample_weight,
                                   fit_intercept=fit_intercept)
    if alphas is None:
        if not isinstance(n_alphas, Integral) or n_alphas < 1:
            raise ValueError(f"n_alphas must be a positive int, got {n_alphas!r}")
        alphas = _alpha_grid(design, pen, n_alphas, eps)
    else:
        alphas = np.asarray(alphas, dtype=np.float64).ravel()
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError("alphas must be positive and finite")
        alphas = np.sort(alphas)[::-1]
    kw = dict(w0=coef_init, tol=tol, max_iter=max_iter, verbose=verbose,
              callback=callback, name="enet_path")
    if nx is not None:
        return solve_path_fista(design, pen, alphas, **kw)
    res = solve_path(design, pen, alphas, **kw)
    res.coefs = res.coefs.astype(design.in_dtype, copy=False)
    res.x = res.coefs
    return res


def lasso_path(X, y, *, eps=1e-3, n_alphas=100, alphas=None, fit_intercept=False,
               sample_weight=None, positive=False, tol=1e-4, max_iter=100,
               verbose=0, callback=None, coef_init=None, solver="auto"):
    """Lasso regularisation path with warm starts (see :func:`enet_path`).

    Returns
    -------
    PathResult
    """
    return enet_path(X, y, l1_ratio=1.0, eps=eps, n_alphas=n_alphas, alphas=alphas,
                     fit_intercept=fit_intercept, sample_weight=sample_weight,
                     positive=positive, tol=tol, max_iter=max_iter, verbose=verbose,
                     callback=callback, coef_init=coef_init, solver=solver)


class LassoCV(RegressorMixin, _SparseLinearBase):
    """Lasso with ``alpha`` chosen by cross-validation along a warm-started path.

    Parameters
    ----------
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the grid.
    n_alphas : int, default=100
    alphas : array-like, default=None
        Explicit grid (overrides ``eps`` and ``n_alphas``).
    cv : int, cross-validation generator or iterable, default=5
    fit_intercept, max_iter, tol, positive, verbose
        As in :class:`Lasso`.

    Attributes
    ----------
    alpha_ : float
        Selected ``alpha`` (smallest mean validation error).
    alphas_ : ndarray of shape (n_alphas,)
    mse_path_ : ndarray of shape (n_alphas, n_folds)
        (Weighted) mean squared validation error per fold.
    coef_, intercept_, n_iter_, dual_gap_
        Of the final fit on all the data at ``alpha_``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "eps": [Interval(Real, 0, 1, closed="neither")],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "alphas": ["array-like", None],
        "cv": ["cv_object"],
        "positive": ["boolean"],
        **{k: v for k, v in _SparseLinearBase._common_constraints.items()
           if k != "warm_start"},
    }

    def __init__(self, *, eps=1e-3, n_alphas=100, alphas=None, cv=5,
                 fit_intercept=True, max_iter=100, tol=1e-4, positive=False,
                 verbose=0, solver="auto"):
        self.eps = eps
        self.n_alphas = n_alphas
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.positive = positive
        self.verbose = verbose
        self.solver = solver

    def fit(self, X, y, sample_weight=None):
        """Cross-validate the grid, then refit at the best ``alpha``.

        Device (CuPy) input is cross-validated on the device (the folds' rows
        are gathered there; ``cv`` only sees the number of samples).
        """
        self._validate_params()
        X, y, sample_weight = self._validate_xy(X, y, sample_weight)
        pen = l1_penalty(1.0, 1.0, self.positive)
        nx = self._generic_backend(X, y)
        device = nx is not None and device_backend(X=X, y=y) is not None
        if self.alphas is None:
            if nx is None:
                design = prepare_design(X, y, sample_weight=sample_weight,
                                        fit_intercept=self.fit_intercept,
                                        check_input=False)
            else:
                design = prepare_design_xp(nx, host_csr(X), y,
                                           sample_weight=sample_weight,
                                           fit_intercept=self.fit_intercept)
            alphas = _alpha_grid(design, pen, self.n_alphas, self.eps)
        else:
            alphas = np.sort(np.asarray(self.alphas, dtype=np.float64).ravel())[::-1]
            if alphas.size == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas <= 0):
                raise ValueError("alphas must be positive and finite")
        if sp.issparse(X):
            X = X.tocsr()   # row indexing of the folds
        cv = check_cv(self.cv)
        folds = list(cv.split(np.zeros((X.shape[0], 1)))) if device else \
            list(cv.split(X, y))
        mse = np.zeros((alphas.size, len(folds)))
        kw = dict(tol=self.tol, max_iter=self.max_iter, verbose=self.verbose)
        for f, (tr, te) in enumerate(folds):
            if nx is not None:
                mse[:, f] = self._fold_mse_generic(nx, device, X, y, sample_weight, tr,
                                                   te, pen, alphas, kw)
                continue
            sw_tr = None if sample_weight is None else sample_weight[tr]
            d = prepare_design(X[tr], y[tr], sample_weight=sw_tr,
                               fit_intercept=self.fit_intercept, check_input=False)
            path = solve_path(d, pen, alphas, name="LassoCV", **kw)
            pred = safe_sparse_dot(X[te], path.coefs) + path.intercepts[None, :]
            err = (np.asarray(y[te], dtype=np.float64)[:, None] - pred) ** 2
            if sample_weight is None:
                mse[:, f] = err.mean(axis=0)
            else:
                sw = sample_weight[te]
                mse[:, f] = (sw @ err) / max(sw.sum(), np.finfo(float).tiny)
        best = int(np.argmin(mse.mean(axis=1)))
        self.alpha_ = float(alphas[best])
        self.alphas_ = alphas
        self.mse_path_ = mse
        res, _ = self._solve(X, y, sample_weight, alpha=self.alpha_)
        self._set_solution(res, X.data.dtype if hasattr(X, "indptr") else X.dtype)
        return self

    def _fold_mse_generic(self, nx, device, X, y, sample_weight, tr, te, pen, alphas, kw):
        """Validation errors of one fold along the grid by the generic solver."""
        xp = nx.xp
        if device:
            def rows(a, idx):
                return None if a is None else take_rows_xp(nx, a, idx)
        else:
            def rows(a, idx):
                return None if a is None else a[idx]
        d = prepare_design_xp(nx, host_csr(rows(X, tr)), rows(y, tr),
                              sample_weight=rows(sample_weight, tr),
                              fit_intercept=self.fit_intercept)
        path = solve_path_fista(d, pen, alphas, name="LassoCV", **kw)
        X_te = host_csr(rows(X, te))
        pred = linear_predict_xp(nx, X_te, path.coefs, X.shape[1])
        pred = xp.astype(pred, xp.float64) + xp.asarray(path.intercepts)[None, :]
        err = (xp.astype(rows(y, te), xp.float64)[:, None] - pred) ** 2
        if sample_weight is None:
            out = xp.mean(err, axis=0)
        else:
            sw = xp.astype(xp.asarray(rows(sample_weight, te)), xp.float64)
            out = (sw @ err) / xp.maximum(xp.sum(sw), np.finfo(float).tiny)
        return np.asarray(nx.to_numpy(out), dtype=np.float64)

    def _penalty(self, design, p):
        return l1_penalty(self.alpha_, 1.0, self.positive), None

    def predict(self, X):
        """Linear prediction ``X @ coef_ + intercept_``."""
        return _RegressorBase.predict(self, X)
