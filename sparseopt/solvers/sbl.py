"""Sparse Bayesian learning: shared model pieces and the regression entry point.

Model (Tipping 2001; Wipf & Rao 2004)::

    y = Φ w + e,   e ~ N(0, σ² I),   w_i ~ N(0, γ_i),   α_i = 1 / γ_i.

Type-II maximum likelihood picks the hyperparameters ``γ`` (and ``σ²`` unless
it is known) that maximise the log marginal likelihood (the *evidence*)

.. math::

    \\mathcal{L}(γ, σ^2) = -\\tfrac12\\left[n \\log 2π + \\log|C| + y^T C^{-1} y\\right],
    \\qquad C = σ^2 I + Φ Γ Φ^T .

Given the hyperparameters the posterior of the weights is Gaussian with
``Σ = (Φᵀ Φ / σ² + Γ⁻¹)⁻¹`` and ``μ = Σ Φᵀ y / σ²``; most ``γ_i`` go to zero,
which prunes the corresponding columns (the *relevance vectors*).

This module holds what every SBL solver shares: the result type, the design
preparation (centering, row weights and column scaling applied implicitly for
sparse input), the evidence and :func:`sbl_regression`, which dispatches to the
fast marginal likelihood solver (:mod:`sparseopt.solvers.sbl_fast`) or to
EM-SBL (:mod:`sparseopt.solvers.sbl_em`).
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from sparseopt._result import SolverResult
from sparseopt._validation import check_array, check_finite, check_scalar

__all__ = [
    "SBLResult",
    "log_marginal_likelihood",
    "sbl_regression",
]

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(kw_only=True, repr=False)
class SBLResult(SolverResult):
    """Outcome of a sparse Bayesian learning run.

    ``x`` holds the posterior mean of all ``p`` coefficients (zero outside the
    active set) and ``history["log_marginal_likelihood"]`` the evidence after
    each iteration (non-decreasing for the fast solver at a fixed noise level
    and for EM).

    Attributes
    ----------
    alpha : ndarray of shape (p,)
        Prior precisions ``α_i = 1/γ_i``; ``inf`` for pruned coefficients.
    active : ndarray of int
        Indices of the coefficients kept in the model (sorted).
    sigma : ndarray of shape (m, m)
        Posterior covariance of the active coefficients, in the order of
        ``active``.  Never a ``p × p`` matrix.
    noise_variance : float
        ``σ²``, learned or the known value passed in.
    intercept : float
        Intercept (0 unless ``fit_intercept`` was set).
    x_offset : ndarray of shape (p,)
        Column offsets subtracted from ``X`` (weighted means with
        ``fit_intercept``, else zeros).
    log_marginal_likelihood : float
        Final evidence ``𝓛`` (of the centred, weighted problem).
    """

    alpha: np.ndarray = None
    active: np.ndarray = None
    sigma: np.ndarray = None
    noise_variance: float = np.nan
    intercept: float = 0.0
    x_offset: np.ndarray = None
    log_marginal_likelihood: float = -np.inf


def blas_threads(n_threads, default=1):
    """Context manager limiting BLAS threads for a solver's loop.

    ``n_threads`` (or the configured ``n_threads``) wins; otherwise ``default``
    (``None`` leaves BLAS alone).  The SBL loops are made of many small matrix
    products, for which extra threads cost more than they save on a loaded
    machine, so the fast solvers default to one thread.
    """
    import contextlib

    from threadpoolctl import threadpool_limits

    from sparseopt._config import get_config

    n = n_threads if n_threads is not None else get_config()["n_threads"]
    if n is None:
        n = default
    if n is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


# ---------------------------------------------------------------------------
# design matrix
# ---------------------------------------------------------------------------
def as_design_input(X, name="X"):
    """Return a dense float array or a scipy CSC matrix, validated.

    Accepts numpy arrays, scipy.sparse matrices/arrays and objects with a
    ``to_scipy()`` method (``sparseopt.CSR``).  Input is never modified.
    """
    if hasattr(X, "to_scipy") and not sp.issparse(X):
        X = X.to_scipy()
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {X.shape}")
        dtype = X.dtype
        if dtype.kind in "biu":
            dtype = np.float64
        elif dtype.kind != "f":
            raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
        elif dtype not in (np.float32, np.float64):
            dtype = np.float64
        X = sp.csc_matrix(X, dtype=dtype)
        check_finite(X.data, name)
        return X
    return check_array(X, name, ndim=2, dtype="float")


class Design:
    """The normalised design ``Φ = D_u (X − 1 cᵀ) diag(1/s)`` applied implicitly.

    ``u`` are square-root row weights, ``c`` the column offsets (means when
    centering) and ``s`` the column norms of the shifted, weighted matrix, so
    every non-zero column of ``Φ`` has unit norm.  Dense input is materialised
    once (a copy in the input dtype); sparse input stays sparse and the shift
    is applied in each product, so ``Φ`` is never densified.

    Parameters
    ----------
    X : ndarray or scipy CSC matrix of shape (n, p)
    offset : ndarray of shape (p,) or None
    row_scale : ndarray of shape (n,) or None
    normalize : bool
        Scale columns to unit norm (zero columns keep scale 1).
    groups : ndarray of int of shape (p,) or None
        Block labels (``0 … n_groups−1``): the columns of a block share one
        scale, the root mean square of their norms, so that a common prior
        variance on the scaled block is a common prior in the units of X.
    """

    def __init__(self, X, offset=None, row_scale=None, normalize=True, groups=None):
        self.n, self.p = X.shape
        self.n_eff = float(self.n)
        self.dtype = X.dtype
        self.sparse = sp.issparse(X)
        u = np.ones(self.n) if row_scale is None else np.asarray(row_scale, float)
        c = np.zeros(self.p) if offset is None else np.asarray(offset, float)
        self.u = u
        if self.sparse:
            Xs = X if row_scale is None else sp.csc_matrix(sp.diags(u) @ X)
            self.X = Xs
            self.c = c
            # column squared norms of Xs - u c^T
            col_sq = np.asarray(Xs.multiply(Xs).sum(axis=0)).ravel()
            ux = np.asarray(Xs.T @ u).ravel()
            sq = col_sq - 2.0 * c * ux + c * c * float(u @ u)
            sq = np.maximum(sq, 0.0)
        else:
            Phi = X - c.astype(X.dtype) if offset is not None else X.copy()
            if row_scale is not None:
                Phi *= u[:, None].astype(X.dtype)
            self.X = Phi
            self.c = None
            sq = np.einsum("ij,ij->j", Phi, Phi, dtype=np.float64)
        norms = np.sqrt(sq)
        self.valid = norms > 1e-12 * max(1.0, float(norms.max(initial=0.0)))
        if normalize and groups is not None:
            cnt = np.bincount(groups)
            rms = np.sqrt(np.bincount(groups, weights=sq) / cnt)[groups]
            norms = np.where(rms > 0, rms, norms)
        self.scale = np.where(self.valid, norms, 1.0) if normalize else np.ones(self.p)
        self.sqnorm = np.where(self.valid, sq / self.scale**2, 0.0)
        if not self.sparse and normalize:
            self.X /= self.scale.astype(self.dtype)

    # Φᵀ v for an n-vector v
    def rmatvec(self, v):
        v = np.asarray(v, dtype=np.float64)
        if self.sparse:
            out = np.asarray(self.X.T @ v, dtype=np.float64).ravel()
            out -= self.c * float(self.u @ v)
            return out / self.scale
        return np.asarray(self.X.T @ v.astype(self.dtype), dtype=np.float64)

    # Φ[:, idx] as a dense (n, len(idx)) float64 array
    def columns(self, idx):
        idx = np.asarray(idx, dtype=np.intp)
        if self.sparse:
            cols = self.X[:, idx].toarray().astype(np.float64)
            cols -= np.outer(self.u, self.c[idx])
            return cols / self.scale[idx]
        return np.asarray(self.X[:, idx], dtype=np.float64)

    def column(self, j):
        return self.columns([j])[:, 0]

    def rmatmat(self, V):
        """``Φᵀ V`` for a dense ``(n, k)`` array ``V`` (float64)."""
        V = np.asarray(V, dtype=np.float64)
        if self.sparse:
            out = np.asarray(self.X.T @ V, dtype=np.float64)
            out -= np.outer(self.c, self.u @ V)
            return out / self.scale[:, None]
        return np.asarray(self.X.T @ V.astype(self.dtype), dtype=np.float64)

    def sq_rmatvec(self, v):
        """``(Φ ∘ Φ)ᵀ v``: weighted squared column norms (no shift; RVC only)."""
        if getattr(self, "_X2", None) is None:   # cached: called every iteration
            self._X2 = (self.X.multiply(self.X).tocsc() if self.sparse
                        else self.X * self.X)
        if self.sparse:
            out = np.asarray(self._X2.T @ v, dtype=np.float64).ravel()
            return out / self.scale**2
        return np.asarray(self._X2.T @ v.astype(self.dtype), dtype=np.float64)

    def dense(self):
        """The whole ``Φ`` as a dense float64 array (used by EM-SBL)."""
        return self.columns(np.arange(self.p))


def prepare_regression(X, y, *, fit_intercept=False, sample_weight=None,
                       normalize=True, groups=None):
    """Centre, weight and normalise a regression problem.

    Returns ``(design, t, x_offset, y_offset)`` where ``t`` is the weighted,
    centred float64 target and ``design`` the normalised operator.

    A sample weight ``w_i`` multiplies the noise precision of sample ``i``, so
    an integer weight is the same as repeating the sample: rows are scaled by
    ``√w_i`` and ``design.n_eff = Σ w_i`` replaces ``n`` in the evidence and
    the noise update.
    """
    n, p = X.shape
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        u = np.sqrt(w)
        n_eff = float(w.sum())
    else:
        w = None
        u = None
        n_eff = float(n)
    y64 = np.asarray(y, dtype=np.float64)
    if fit_intercept:
        if w is None:
            y_offset = float(y64.mean())
            x_offset = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
        else:
            y_offset = float(w @ y64 / n_eff)
            x_offset = np.asarray(X.T @ w, dtype=np.float64).ravel() / n_eff
    else:
        y_offset = 0.0
        x_offset = None
    t = y64 - y_offset
    if u is not None:
        t = t * u
    design = Design(X, offset=x_offset, row_scale=u, normalize=normalize, groups=groups)
    design.n_eff = n_eff
    if x_offset is None:
        x_offset = np.zeros(p)
    return design, t, x_offset, y_offset


def check_regression_inputs(X, y, sample_weight, noise_variance):
    """Validate ``(X, y, sample_weight, noise_variance)`` of a regression solver."""
    X = as_design_input(X)
    y = check_array(y, "y", ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: {X.shape[0]} != {y.shape[0]}"
        )
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have at least one sample and one feature, got {X.shape}")
    if sample_weight is not None:
        sample_weight = check_array(sample_weight, "sample_weight", ndim=1)
        if sample_weight.shape[0] != X.shape[0]:
            raise ValueError(
                f"sample_weight has {sample_weight.shape[0]} entries, X has "
                f"{X.shape[0]} samples"
            )
        if (sample_weight < 0).any() or sample_weight.sum() <= 0:
            raise ValueError("sample_weight must be non-negative with a positive sum")
    if noise_variance is not None:
        noise_variance = check_scalar(noise_variance, "noise_variance", low=0.0,
                                      include_low=False)
    return X, y, sample_weight, noise_variance


# ---------------------------------------------------------------------------
# evidence
# ---------------------------------------------------------------------------
def log_marginal_likelihood(X, y, alpha, noise_variance):
    """Log evidence ``log p(y | α, σ²)`` of the SBL model, computed directly.

    .. math::

        \\mathcal{L} = -\\tfrac12\\left[n\\log 2π + \\log|C| + y^T C^{-1} y\\right],
        \\quad C = σ^2 I + Σ_{i: α_i<∞} α_i^{-1} φ_i φ_i^T .

    Used to compare hyperparameters found by different solvers (for instance
    scikit-learn's ``ARDRegression``) on the same objective.  Costs
    ``O(n m² + m³)`` with ``m`` the number of finite ``α_i`` (via the
    determinant lemma and Woodbury identity).

    Parameters
    ----------
    X : array_like or sparse matrix of shape (n, p)
    y : array_like of shape (n,)
    alpha : array_like of shape (p,)
        Prior precisions; ``inf`` (or values above 1e300) prune a column.
    noise_variance : float
        ``σ² > 0``.

    Returns
    -------
    float
    """
    X = as_design_input(X)
    y = check_array(y, "y", ndim=1)
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.shape != (X.shape[1],):
        raise ValueError(f"alpha must have shape ({X.shape[1]},), got {alpha.shape}")
    s2 = check_scalar(noise_variance, "noise_variance", low=0.0, include_low=False)
    act = np.flatnonzero(np.isfinite(alpha) & (alpha < 1e300))
    cols = X[:, act]
    Phi = cols.toarray() if sp.issparse(cols) else np.asarray(cols)
    return _evidence_active(Phi.astype(np.float64), np.asarray(y, float),
                            alpha[act], 1.0 / s2)[0]


def _evidence_active(Phi, t, alpha, beta, n_eff=None):
    """Evidence, posterior mean and covariance from the active columns.

    Returns ``(L, mu, Sigma)`` with ``Σ = (β ΦᵀΦ + A)⁻¹``.  ``n_eff`` replaces
    the number of rows (weighted problems).
    """
    m = Phi.shape[1]
    n = Phi.shape[0] if n_eff is None else n_eff
    if m == 0:
        ll = -0.5 * (n * _LOG2PI - n * np.log(beta) + beta * float(t @ t))
        return ll, np.zeros(0), np.zeros((0, 0))
    H = beta * (Phi.T @ Phi)
    H[np.diag_indices(m)] += alpha
    L = np.linalg.cholesky(H)
    rhs = beta * (Phi.T @ t)
    z = _solve_tri(L, rhs, lower=True)
    mu = _solve_tri(L.T, z, lower=False)
    Linv = _solve_tri(L, np.eye(m), lower=True)
    Sigma = Linv.T @ Linv
    e = t - Phi @ mu
    logdet_H = 2.0 * np.log(np.diag(L)).sum()
    ll = -0.5 * (n * _LOG2PI - n * np.log(beta) - np.log(alpha).sum() + logdet_H
                 + beta * float(e @ e) + float(alpha @ (mu * mu)))
    return ll, mu, Sigma


def _solve_tri(L, b, lower):
    from scipy.linalg import solve_triangular

    return solve_triangular(L, b, lower=lower, check_finite=False)


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------
def sbl_regression(X, y, *, solver="fast", noise_variance=None, fit_intercept=False,
                   sample_weight=None, tol=None, max_iter=None, verbose=0,
                   callback=None, **kwargs):
    """Sparse Bayesian regression (relevance vector machine / ARD).

    Maximises the evidence of ``y = Φ w + e`` over per-coefficient prior
    variances ``γ_i`` (and the noise variance ``σ²`` unless given).

    Parameters
    ----------
    X : array_like or sparse matrix of shape (n, p)
        Design (dictionary).  scipy.sparse and ``sparseopt.CSR`` stay sparse
        for ``solver="fast"``; ``solver="em"`` needs ``Φ`` densely.
    y : array_like of shape (n,)
    solver : {"fast", "em"}
        ``"fast"``: Tipping & Faul's sequential marginal likelihood
        maximisation (:func:`sparseopt.solvers.sbl_fast.sbl_fast`).
        ``"em"``: EM-SBL of Wipf & Rao (:func:`sparseopt.solvers.sbl_em.sbl_em`).
    noise_variance : float or None
        Known ``σ²`` (in the units of ``y``); ``None`` learns it.
    fit_intercept : bool
        Centre ``X`` and ``y`` (implicitly for sparse ``X``).
    sample_weight : array_like of shape (n,) or None
        Per-sample noise precision multipliers (an integer weight is the same
        as repeating the sample).
    tol, max_iter, verbose, callback
        See the solver.  ``None`` picks the solver's default.
    **kwargs
        Further solver options.

    Returns
    -------
    SBLResult
    """
    from sparseopt.solvers.sbl_em import sbl_em
    from sparseopt.solvers.sbl_fast import sbl_fast

    if solver == "fast":
        fn = sbl_fast
    elif solver == "em":
        fn = sbl_em
    else:
        raise ValueError(f"solver must be 'fast' or 'em', got {solver!r}")
    opts = {}
    if tol is not None:
        opts["tol"] = tol
    if max_iter is not None:
        opts["max_iter"] = max_iter
    return fn(X, y, noise_variance=noise_variance, fit_intercept=fit_intercept,
              sample_weight=sample_weight, verbose=verbose, callback=callback,
              **opts, **kwargs)
