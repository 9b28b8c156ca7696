"""EM-SBL (Wipf & Rao 2004) and block SBL with a known partition.

E-step: the Gaussian posterior of the weights given ``γ`` and ``σ²``,

.. math::

    μ = Γ Φ^T C^{-1} y, \\qquad \\operatorname{diag} Σ = γ - γ^2 ∘
    \\operatorname{colsum}\\big((L^{-1} Φ)^2\\big), \\qquad C = σ^2 I + Φ Γ Φ^T = L L^T,

computed in the dual (``n × n``) form when more than ``n`` columns are active
and in the primal (``m × m``, scaled by ``Γ^{1/2}``) form otherwise; only the
diagonal of ``Σ`` is ever formed.

M-step:

.. math::

    γ_i ← μ_i^2 + Σ_{ii}, \\qquad
    σ^2 ← \\frac{\\|y - Φμ\\|^2 + σ^2 \\sum_i (1 - Σ_{ii}/γ_i)}{n}.

Block SBL (Zhang & Rao 2011, with identity intra-block correlation) shares one
``γ_g`` per block ``g`` of a known partition: ``γ_g ← mean_{i∈g}(μ_i² + Σ_ii)``.
Each EM step increases the evidence.  Columns (blocks) whose ``γ`` falls below
``prune`` times the largest one are removed.  Stopping rule: relative change
``‖γ_new − γ‖ / ‖γ‖ < tol`` (as in He & Joseph's KroSBL code).

References
----------
D. P. Wipf and B. D. Rao, "Sparse Bayesian learning for basis selection",
IEEE TSP 52(8), 2004.
Z. Zhang and B. D. Rao, "Sparse signal recovery with temporally correlated
source vectors using sparse Bayesian learning", IEEE JSTSP 5(5), 2011.
"""

import time

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.solvers._xp_linalg import device_backend
from sparseopt.solvers.sbl import (
    _LOG2PI,
    SBLResult,
    blas_threads,
    check_regression_inputs,
    prepare_regression,
)

__all__ = ["block_sbl", "em_estep", "sbl_em"]


def _chol(M):
    jitter = 0.0
    m = M.shape[0]
    for _ in range(8):
        try:
            return cholesky(M + jitter * np.eye(m), lower=True, check_finite=False)
        except LinAlgError:
            jitter = max(100.0 * jitter, 1e-12 * float(np.trace(M)) / m)
    raise LinAlgError("covariance matrix is not positive definite")  # pragma: no cover


def em_estep(Phi, t, gamma, s2, n_eff=None):
    """Posterior mean, diagonal covariance and evidence for given ``γ``, ``σ²``.

    Parameters
    ----------
    Phi : ndarray of shape (n, k)
        Active columns (float64).
    t : ndarray of shape (n,)
    gamma : ndarray of shape (k,)
        Positive prior variances.
    s2 : float
        Noise variance.
    n_eff : float or None
        Sum of the sample weights when the rows of ``Phi`` and ``t`` were
        scaled by their square roots (``None``: the number of rows).

    Returns
    -------
    mu, diag_sigma : ndarray of shape (k,)
    loglik : float
        The log evidence.
    trace_term : float
        ``Σ_i (1 − Σ_ii/γ_i)``, the effective number of parameters.
    """
    n, k = Phi.shape
    if k == 0:
        n = n if n_eff is None else n_eff
        ll = -0.5 * (n * _LOG2PI + n * np.log(s2) + float(t @ t) / s2)
        return np.zeros(0), np.zeros(0), ll, 0.0
    if k > n:  # dual form
        C = (Phi * gamma) @ Phi.T
        C[np.diag_indices(n)] += s2
        L = _chol(C)
        z = solve_triangular(L, t, lower=True, check_finite=False)
        W = solve_triangular(L, Phi, lower=True, check_finite=False)
        mu = gamma * (W.T @ z)
        colsq = np.einsum("ij,ij->j", W, W)
        diag_sigma = gamma - gamma * gamma * colsq
        logdet = 2.0 * float(np.log(np.diag(L)).sum())
        quad = float(z @ z)
        trace_term = float(gamma @ colsq)
    else:  # primal form scaled by Γ^{1/2}: M = I + Γ^{1/2} ΦᵀΦ Γ^{1/2} / σ²
        sg = np.sqrt(gamma)
        B = Phi * sg
        M = (B.T @ B) / s2
        M[np.diag_indices(k)] += 1.0
        L = _chol(M)
        Linv = solve_triangular(L, np.eye(k), lower=True, check_finite=False)
        b = B.T @ t / s2
        v = Linv @ b                           # M⁻¹ = Linvᵀ Linv
        mu = sg * (Linv.T @ v)
        dm = np.einsum("ij,ij->j", Linv, Linv)  # diag M⁻¹
        diag_sigma = gamma * dm
        logdet = n * np.log(s2) + 2.0 * float(np.log(np.diag(L)).sum())
        quad = (float(t @ t) - s2 * float(v @ v)) / s2
        trace_term = float(k - dm.sum())
    ll = -0.5 * (n * _LOG2PI + logdet + quad)
    if n_eff is not None:
        ll -= 0.5 * (n_eff - n) * (_LOG2PI + np.log(s2))
    return mu, np.maximum(diag_sigma, 0.0), ll, trace_term


def _check_groups(groups, p):
    g = np.asarray(groups)
    if g.shape != (p,):
        raise ValueError(f"groups must have shape ({p},) (one label per column), "
                         f"got {g.shape}")
    if g.dtype.kind not in "iu":
        raise TypeError(f"groups must hold integer labels, got dtype {g.dtype}")
    _, inv = np.unique(g, return_inverse=True)
    return inv.astype(np.int64)


def sbl_em(X, y, *, noise_variance=None, fit_intercept=False, sample_weight=None,
           groups=None, tol=1e-4, max_iter=1000, prune=1e-6, normalize=True,
           n_threads=None, verbose=0, callback=None):
    """Sparse Bayesian regression by expectation–maximisation (EM-SBL).

    Maximises the evidence of ``y = Φ w + e``, ``w_i ~ N(0, γ_i)``,
    ``e ~ N(0, σ² I)`` with the EM updates of Wipf & Rao (2004); with
    ``groups`` one ``γ`` is shared per block (block SBL).  See the module
    docstring for the formulas.

    Parameters
    ----------
    X : array_like or sparse matrix of shape (n, p)
        Densified internally (EM needs ``L⁻¹Φ``, an ``n × p`` array).
    y : array_like of shape (n,)
    noise_variance : float or None
        Known ``σ²``; ``None`` learns it (floored at ``1e-6 var y``).
    fit_intercept : bool
    sample_weight : array_like of shape (n,) or None
    groups : array_like of int of shape (p,) or None
        Block label of each column (block SBL); ``None``: one column per block.
    tol : float
        Relative change of ``γ`` at which to stop.
    max_iter : int
    prune : float
        Relative pruning threshold on ``γ`` (``γ_i < prune · max γ`` → 0).
        Pruning is a heuristic: it speeds EM up (irrelevant ``γ_i`` decay
        only linearly) and may lower the evidence slightly at the step where
        it happens.  ``0`` disables it.
    normalize : bool
        Work with unit-norm columns (the fixed points are the same; the
        starting point ``γ = 1`` and the relative pruning then treat all
        columns alike).  ``False`` runs EM on ``X`` as given (the classic SBL
        baseline of the Kronecker-SBL paper).
    n_threads : int or None
        BLAS threads (default: the configured ``n_threads``, else 1: on a
        shared machine extra threads slowed these small factorisations down
        many times in our measurements).
    verbose : int
    callback : callable or None

    Returns
    -------
    SBLResult
        ``sigma`` is the full posterior covariance of the active set
        (computed once at the end), ``alpha = 1/γ``.
    """
    nx = device_backend(X=X, y=y, sample_weight=sample_weight)
    if nx is not None:  # CuPy (or another non-NumPy namespace): the device path
        from sparseopt.solvers.sbl_xp import sbl_em_xp

        return sbl_em_xp(nx, X, y, noise_variance, fit_intercept, sample_weight, groups,
                         tol, max_iter, prune, normalize, verbose, callback)
    with blas_threads(n_threads, default=1):
        return _sbl_em(X, y, noise_variance, fit_intercept, sample_weight, groups,
                       tol, max_iter, prune, normalize, verbose, callback)


def _sbl_em(X, y, noise_variance, fit_intercept, sample_weight, groups, tol,
            max_iter, prune, normalize, verbose, callback):
    t_start = time.perf_counter()
    X, y, sample_weight, noise_variance = check_regression_inputs(
        X, y, sample_weight, noise_variance)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    prune = check_scalar(prune, "prune", low=0.0, high=1.0, include_high=False)
    out_dtype = X.dtype
    gid = None if groups is None else _check_groups(groups, X.shape[1])
    design, t, x_off, y_off = prepare_regression(
        X, y, fit_intercept=fit_intercept, sample_weight=sample_weight,
        normalize=normalize, groups=gid)
    n, p = design.n_eff, design.p
    gid = np.arange(p) if gid is None else gid
    n_groups = int(gid.max()) + 1
    group_size = np.bincount(gid, minlength=n_groups).astype(np.float64)
    Phi = design.dense()
    learn_noise = noise_variance is None
    tt = float(t @ t)
    var_t = tt / n if tt > 0 else 1e-10  # zero target: the empty model
    s2_floor = 1e-6 * var_t
    s2 = noise_variance if not learn_noise else 0.01 * var_t
    # a group is active while its γ > 0; zero columns never enter
    valid_g = np.bincount(gid, weights=design.valid, minlength=n_groups) > 0
    gamma_g = np.where(valid_g, 1.0, 0.0)
    if tt == 0.0:
        gamma_g[:] = 0.0
    result = SBLResult(tol=tol)
    history = {"log_marginal_likelihood": [], "n_active": [], "noise_variance": [],
               "stop_crit": []}
    monitor = IterationMonitor("sbl_em", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0
    mu = np.zeros(0)
    keep = np.zeros(0, dtype=np.int64)
    for it in range(1, max_iter + 1):
        gamma = gamma_g[gid]
        keep = np.flatnonzero(gamma > 0)
        mu, dsig, ll, trace_term = em_estep(Phi[:, keep], t, gamma[keep], s2, n)
        history["log_marginal_likelihood"].append(ll)
        history["n_active"].append(keep.size)
        history["noise_variance"].append(s2)
        # M-step
        second = np.zeros(p)
        second[keep] = mu * mu + dsig
        new_g = np.bincount(gid, weights=second, minlength=n_groups) / group_size
        new_g[gamma_g == 0] = 0.0
        if learn_noise:
            e = t - Phi[:, keep] @ mu
            s2 = max((float(e @ e) + s2 * trace_term) / n, s2_floor)
        gmax = new_g.max(initial=0.0)
        new_g[new_g < prune * gmax] = 0.0
        norm = float(np.linalg.norm(gamma_g))
        stop_crit = float(np.linalg.norm(new_g - gamma_g)) / norm if norm > 0 else 0.0
        history["stop_crit"].append(stop_crit)
        gamma_g = new_g
        if stop_crit < tol:
            converged = True
            message = "converged: relative change of gamma below tol"
            break
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill(result, design, Phi, t, gamma_g[gid], s2, x_off, y_off, out_dtype,
                      history, it, stop_crit, converged, message, final=False)
            if monitor.step(it, result, log_marginal_likelihood=ll,
                            n_active=keep.size, stop_crit=stop_crit):
                message = "stopped by callback"
                break
    monitor.close()
    _fill(result, design, Phi, t, gamma_g[gid], s2, x_off, y_off, out_dtype, history,
          it, stop_crit, converged, message, final=True)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("sbl_em", stop_crit, tol, it, what="relative change of gamma")
    return result


def _fill(result, design, Phi, t, gamma, s2, x_off, y_off, out_dtype, history, it,
          stop_crit, converged, message, final):
    """Posterior at the final hyperparameters, mapped back to the units of X."""
    p = design.p
    keep = np.flatnonzero(gamma > 0)
    coef = np.zeros(p)
    if final:
        from sparseopt.solvers.sbl import _evidence_active

        ll, mu, Sigma = _evidence_active(Phi[:, keep], t, 1.0 / gamma[keep], 1.0 / s2,
                                         n_eff=design.n_eff)
        result.log_marginal_likelihood = float(ll)
    else:
        mu = em_estep(Phi[:, keep], t, gamma[keep], s2)[0]
        Sigma = np.zeros((keep.size, keep.size))
    scale = design.scale[keep]
    coef[keep] = mu / scale
    alpha = np.full(p, np.inf)
    alpha[keep] = scale**2 / gamma[keep]
    result.x = coef.astype(out_dtype)
    result.alpha = alpha.astype(out_dtype)
    result.active = keep
    result.sigma = (Sigma / np.outer(scale, scale)).astype(out_dtype)
    result.noise_variance = float(s2)
    result.intercept = float(y_off - x_off @ coef)
    result.x_offset = x_off
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}


def block_sbl(X, y, groups, *, noise_variance=None, fit_intercept=False,
              sample_weight=None, tol=1e-4, max_iter=1000, prune=1e-6, n_threads=None,
              verbose=0, callback=None):
    r"""Block sparse Bayesian learning with a known block partition.

    Each block ``g`` of coefficients gets one prior variance,
    ``w_g ~ N(0, γ_g I)``, and the evidence is maximised by EM:

    .. math::

        γ_g ← \frac{1}{d_g} \sum_{i ∈ g} \left(μ_i^2 + Σ_{ii}\right),

    ``d_g`` the block size (BSBL-EM of Zhang & Rao with identity intra-block
    correlation).  Whole blocks are pruned together.

    Parameters
    ----------
    X : array_like or sparse matrix of shape (n, p)
    y : array_like of shape (n,)
    groups : int or array_like of int of shape (p,)
        An ``int`` ``d`` splits the columns into consecutive blocks of ``d``
        (the last one may be shorter); an array gives each column's label.
    noise_variance, fit_intercept, sample_weight, tol, max_iter, prune, n_threads, verbose, callback
        As :func:`sbl_em`.

    Returns
    -------
    SBLResult

    References
    ----------
    Z. Zhang and B. D. Rao, "Extension of SBL algorithms for the recovery of
    block sparse signals with intra-block correlation", IEEE TSP 61(8), 2013.
    """
    n_cols = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else None
    if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool):
        size = check_positive_int(int(groups), "groups")
        if n_cols is None:
            raise ValueError("X must be a 2-D array")
        groups = np.arange(n_cols) // size
    return sbl_em(X, y, noise_variance=noise_variance, fit_intercept=fit_intercept,
                  sample_weight=sample_weight, groups=groups, tol=tol,
                  max_iter=max_iter, prune=prune, n_threads=n_threads, verbose=verbose,
                  callback=callback)
