"""Tipping & Faul's fast marginal likelihood maximisation for SBL regression.

The evidence separates in one hyperparameter at a time (Faul & Tipping 2002):
with the other columns fixed and ``C_{-j}`` the covariance without column
``j``, define the sparsity and quality factors

.. math::

    s_j = φ_j^T C_{-j}^{-1} φ_j,\\qquad q_j = φ_j^T C_{-j}^{-1} y,\\qquad
    θ_j = q_j^2 - s_j .

The evidence as a function of ``α_j`` alone peaks at ``α_j = s_j² / θ_j`` when
``θ_j > 0`` and at ``α_j = ∞`` (column out of the model) otherwise.  Each
iteration takes the one action (add, re-estimate or delete a column) that
increases the evidence most, and updates ``Σ``, ``μ`` and the factors of all
``p`` columns by rank-one formulas, costing ``O(p m)`` with ``m`` the active
set (plus one ``Φᵀ φ_j`` product, ``O(nnz)``, when a column enters).  Memory is
``O(p m + n m)``: no ``p × p`` matrix is ever formed.

The noise precision ``β = 1/σ²`` (when learned) is re-estimated with MacKay's
update ``β = (n − Σ_i (1 − α_i Σ_ii)) / ‖y − Φμ‖²`` on the first
``beta_update_start`` iterations and then every ``beta_update_every``-th, and
the statistics are then recomputed in full (``O(p m² + n m²)``).

Stopping rule (SparseBayes v2): no action increases the evidence, or the best
action is a re-estimation changing ``log α`` by less than ``tol`` while no
deletion is pending, and a final noise update changes ``log β`` by less than
``1e-6``.

References
----------
M. E. Tipping and A. C. Faul, "Fast marginal likelihood maximisation for sparse
Bayesian models", AISTATS 2003.
M. E. Tipping, "Sparse Bayesian learning and the relevance vector machine",
JMLR 1, 2001.
"""

import time

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.kernels._sbl import (
    ACTION_ADD,
    ACTION_REESTIMATE,
    max_abs_rows,
    tf_rank1,
    tf_reestimate,
    tf_select,
)
from sparseopt.solvers._xp_linalg import device_backend
from sparseopt.solvers.sbl import (
    _LOG2PI,
    SBLResult,
    blas_threads,
    check_regression_inputs,
    prepare_regression,
)

__all__ = ["sbl_fast"]

_MIN_DELTA_LOG_BETA = 1e-6
_BETA_MAX_FACTOR = 1e6


def _chol_upper_inv(H):
    """Return ``(Linv, logdet)`` with ``H = L Lᵀ`` and ``Linv = L⁻¹``.

    A tiny diagonal jitter is added if ``H`` is numerically singular.
    """
    m = H.shape[0]
    jitter = 0.0
    for _ in range(8):
        try:
            L = cholesky(H + jitter * np.eye(m), lower=True, check_finite=False)
            break
        except LinAlgError:
            jitter = max(jitter * 100.0, 1e-12 * float(np.trace(H)) / m)
    else:  # pragma: no cover - pathological input
        raise LinAlgError("posterior precision matrix is not positive definite")
    Linv = solve_triangular(L, np.eye(m), lower=True, check_finite=False)
    return Linv, 2.0 * float(np.log(np.diag(L)).sum())


class _FastState:
    """Active-set state of the fast SBL loop (all float64)."""

    def __init__(self, design, t, beta):
        self.design = design
        self.t = t
        self.n, self.p = design.n_eff, design.p
        n_rows = design.n
        self.beta = beta
        self.Phi_t = design.rmatvec(t)
        self.cap = 0
        self.m = 0
        self.G = np.zeros((self.p, 0), order="F")   # Φᵀ Φ_A
        self.A = np.zeros((n_rows, 0), order="F")   # Φ_A
        self.alpha = np.zeros(0)
        self.used = np.zeros(0, dtype=np.int64)
        self.pos = np.full(self.p, -1, dtype=np.int64)
        self.Sigma = np.zeros((0, 0))
        self.mu = np.zeros(0)
        self.S_in = np.zeros(self.p)
        self.Q_in = np.zeros(self.p)
        self.logml = -np.inf

    def _grow(self):
        cap = max(16, 2 * self.cap)
        G = np.zeros((self.p, cap), order="F")
        A = np.zeros((self.A.shape[0], cap), order="F")
        alpha = np.zeros(cap)
        used = np.zeros(cap, dtype=np.int64)
        m = self.m
        G[:, :m] = self.G[:, :m]
        A[:, :m] = self.A[:, :m]
        alpha[:m] = self.alpha[:m]
        used[:m] = self.used[:m]
        self.G, self.A, self.alpha, self.used, self.cap = G, A, alpha, used, cap

    def append(self, j, phi, g, alpha):
        if self.m == self.cap:
            self._grow()
        m = self.m
        self.A[:, m] = phi
        self.G[:, m] = g
        self.alpha[m] = alpha
        self.used[m] = j
        self.pos[j] = m
        self.m = m + 1

    def remove(self, k):
        m = self.m
        j = self.used[k]
        last = m - 1
        if k != last:  # keep columns contiguous: move the last one into slot k
            self.A[:, k] = self.A[:, last]
            self.G[:, k] = self.G[:, last]
            self.alpha[k] = self.alpha[last]
            self.used[k] = self.used[last]
            self.pos[self.used[k]] = k
        self.pos[j] = -1
        self.m = last
        return last

    def full_statistics(self):
        """Recompute Σ, μ, S, Q and the evidence from scratch."""
        m, beta, n = self.m, self.beta, self.n
        A = self.A[:, :m]
        G = self.G[:, :m]
        H = beta * (A.T @ A)
        H[np.diag_indices(m)] += self.alpha[:m]
        Linv, logdet_H = _chol_upper_inv(H)
        self.Sigma = Linv.T @ Linv
        self.mu = beta * (self.Sigma @ self.Phi_t[self.used[:m]])
        GL = G @ Linv.T
        self.S_in = beta * self.design.sqnorm - beta * beta * np.einsum("ij,ij->i", GL, GL)
        self.Q_in = beta * (self.Phi_t - G @ self.mu)
        e = self.t - A @ self.mu
        a = self.alpha[:m]
        self.logml = -0.5 * (n * _LOG2PI - n * np.log(beta) - np.log(a).sum()
                             + logdet_H + beta * float(e @ e) + float(a @ self.mu**2))
        return e

    def residual(self):
        return self.t - self.A[:, :self.m] @ self.mu

    # rank-one updates ------------------------------------------------------
    def reestimate(self, j, new_alpha):
        k = self.pos[j]
        kappa = 1.0 / (self.Sigma[k, k] + 1.0 / (new_alpha - self.alpha[k]))
        tf_reestimate(self.Sigma, self.mu, self.G, self.S_in, self.Q_in, k, kappa,
                      self.beta)
        self.alpha[k] = new_alpha

    def add(self, j, new_alpha):
        beta, m = self.beta, self.m
        phi = self.design.column(j)
        g = self.design.rmatvec(phi)          # Φᵀ φ_j
        bphi = beta * g
        tmp = self.Sigma @ bphi[self.used[:m]] if m else np.zeros(0)
        s_ii = 1.0 / (new_alpha + self.S_in[j])
        s_i = -s_ii * tmp
        Sigma = np.empty((m + 1, m + 1))
        Sigma[:m, :m] = self.Sigma - np.outer(s_i, tmp)
        Sigma[:m, m] = s_i
        Sigma[m, :m] = s_i
        Sigma[m, m] = s_ii
        mu_i = s_ii * self.Q_in[j]
        mu = np.empty(m + 1)
        mu[:m] = self.mu - mu_i * tmp
        mu[m] = mu_i
        mci = bphi - beta * (self.G[:, :m] @ tmp) if m else bphi
        tf_rank1(self.S_in, self.Q_in, mci, -s_ii, -mu_i)
        self.Sigma, self.mu = Sigma, mu
        self.append(j, phi, g, new_alpha)
        return g

    def delete(self, j):
        k = self.pos[j]
        m = self.m
        Skk = self.Sigma[k, k]
        s_k = self.Sigma[:, k].copy()
        mu_k = self.mu[k]
        v = self.beta * (self.G[:, :m] @ s_k)
        Sigma = self.Sigma - np.outer(s_k / Skk, s_k)
        mu = self.mu - (mu_k / Skk) * s_k
        tf_rank1(self.S_in, self.Q_in, v, 1.0 / Skk, mu_k / Skk)
        last = self.remove(k)
        if k != last:  # mirror the column move in Σ and μ
            order = np.arange(m)
            order[k] = last
            order = order[:last]
            Sigma = Sigma[np.ix_(order, order)]
            mu = mu[order]
        else:
            Sigma = Sigma[:last, :last]
            mu = mu[:last]
        self.Sigma, self.mu = Sigma, mu


def sbl_fast(X, y, *, noise_variance=None, fit_intercept=False, sample_weight=None,
             tol=1e-3, max_iter=10000, beta_update_start=10, beta_update_every=5,
             zero_factor=1e-12, alignment_max=1.0 - 1e-3, priority_deletion=True,
             n_threads=None, verbose=0, callback=None):
    """Sparse Bayesian regression by fast marginal likelihood maximisation.

    Tipping & Faul (2003): greedy sequential addition, re-estimation and
    deletion of basis functions, each step maximising the evidence

    .. math::

        \\mathcal{L}(α, σ^2) = -\\tfrac12\\left[n\\log 2π + \\log|C| + y^TC^{-1}y\\right],
        \\quad C = σ^2 I + Σ_i α_i^{-1} φ_i φ_i^T,

    exactly in one ``α_i``.  Columns are normalised to unit norm internally;
    the returned ``alpha``, ``sigma`` and coefficients are in the units of
    ``X``.

    Parameters
    ----------
    X : array_like or sparse matrix of shape (n, p)
    y : array_like of shape (n,)
    noise_variance : float or None
        Known ``σ²``; ``None`` learns it (initialised at ``(0.1 std y)²``,
        floored at ``1e-6 var y``).
    fit_intercept : bool
        Centre ``X`` and ``y`` (implicitly when ``X`` is sparse).
    sample_weight : array_like of shape (n,) or None
        Per-sample noise precision multipliers (an integer weight is the same
        as repeating the sample).
    tol : float
        Stop when the best action is a re-estimation with ``|Δ log α| < tol``
        (SparseBayes' ``MinDeltaLogAlpha``, default 1e-3).
    max_iter : int
        Maximum number of actions.
    beta_update_start, beta_update_every : int
        Noise re-estimation schedule (SparseBayes: 10 and 5).
    zero_factor : float
        ``θ_j ≤ zero_factor`` counts as ``θ_j ≤ 0``.
    alignment_max : float
        Columns whose cosine with an active column exceeds this never enter
        (protects ``Σ`` from duplicated columns).
    priority_deletion : bool
        Prefer deletions that increase the evidence (SparseBayes default).
    n_threads : int or None
        BLAS threads during the run (default: the configured ``n_threads``,
        else 1, since the loop is made of small products).
    verbose : int
    callback : callable or None
        ``callback(result)`` after each iteration; ``True`` stops the run.

    Returns
    -------
    SBLResult
        ``history`` has ``"log_marginal_likelihood"``, ``"n_active"`` and
        ``"noise_variance"`` per iteration.

    Notes
    -----
    The working precision is float64 whatever the input dtype; the returned
    arrays follow the input dtype.
    """
    nx = device_backend(X=X, y=y, sample_weight=sample_weight)
    if nx is not None:  # CuPy (or another non-NumPy namespace): the device path
        from sparseopt.solvers.sbl_xp_fast import sbl_fast_xp

        return sbl_fast_xp(nx, X, y, noise_variance, fit_intercept, sample_weight, tol,
                           max_iter, beta_update_start, beta_update_every, zero_factor,
                           alignment_max, priority_deletion, verbose, callback)
    with blas_threads(n_threads, default=1):
        return _sbl_fast(X, y, noise_variance, fit_intercept, sample_weight, tol,
                         max_iter, beta_update_start, beta_update_every, zero_factor,
                         alignment_max, priority_deletion, verbose, callback)


def _sbl_fast(X, y, noise_variance, fit_intercept, sample_weight, tol, max_iter,
              beta_update_start, beta_update_every, zero_factor, alignment_max,
              priority_deletion, verbose, callback):
    t_start = time.perf_counter()
    X, y, sample_weight, noise_variance = check_regression_inputs(
        X, y, sample_weight, noise_variance)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    beta_update_start = check_positive_int(beta_update_start, "beta_update_start",
                                           allow_zero=True)
    beta_update_every = check_positive_int(beta_update_every, "beta_update_every")
    zero_factor = check_scalar(zero_factor, "zero_factor", low=0.0)
    alignment_max = check_scalar(alignment_max, "alignment_max", low=0.0, high=1.0,
                                 include_low=False)
    out_dtype = X.dtype
    design, t, x_off, y_off = prepare_regression(
        X, y, fit_intercept=fit_intercept, sample_weight=sample_weight)
    n = design.n_eff
    learn_noise = noise_variance is None
    tt = float(t @ t)
    var_t = tt / n

    state = _FastState(design, t, 1.0)
    result = SBLResult(tol=tol)
    history = {"log_marginal_likelihood": [], "n_active": [], "noise_variance": []}
    if tt == 0.0 or not design.valid.any():
        return _trivial_result(result, design, t, x_off, y_off, noise_variance,
                               out_dtype, history, t_start)

    beta_max = _BETA_MAX_FACTOR / var_t
    beta = 1.0 / noise_variance if not learn_noise else min(100.0 / var_t, beta_max)
    state.beta = beta
    # start from the column most aligned with the target
    cand = design.valid.copy()
    score = np.where(cand, np.abs(state.Phi_t), -1.0)
    j0 = int(np.argmax(score))
    phi0 = design.column(j0)
    g0 = design.rmatvec(phi0)
    q2 = state.Phi_t[j0] ** 2
    denom = q2 - 1.0 / beta
    alpha0 = 1.0 / denom if denom > 0 else 1.0 / q2
    state.append(j0, phi0, g0, alpha0)
    state.full_statistics()
    aligned = np.abs(g0) > alignment_max
    aligned[j0] = False
    cand &= ~aligned

    monitor = IterationMonitor("sbl_fast", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        j, action, dml, new_alpha, any_delete = tf_select(
            state.S_in, state.Q_in, state.pos, state.alpha, cand, zero_factor,
            state.m, priority_deletion)
        terminate = j < 0 or dml <= 0.0
        if not terminate and action == ACTION_REESTIMATE:
            stop_crit = abs(np.log(new_alpha) - np.log(state.alpha[state.pos[j]]))
            terminate = stop_crit < tol and not any_delete
        elif j < 0 or dml <= 0.0:
            stop_crit = 0.0
        else:
            stop_crit = np.inf
        if not terminate:
            if action == ACTION_REESTIMATE:
                state.reestimate(j, new_alpha)
            elif action == ACTION_ADD:
                g = state.add(j, new_alpha)
                newly = np.abs(g) > alignment_max
                newly[j] = False
                cand &= ~newly
            else:
                state.delete(j)
                if state.m:
                    aligned = max_abs_rows(state.G, state.m) > alignment_max
                    aligned[state.used[:state.m]] = False
                    cand = design.valid & ~aligned
            state.logml += dml
        if learn_noise and (terminate or it <= beta_update_start
                            or it % beta_update_every == 0):
            e = state.residual()
            gamma_sum = float(state.m - state.alpha[:state.m] @ np.diag(state.Sigma))
            ee = float(e @ e)
            new_beta = (n - gamma_sum) / ee if ee > 0 and n > gamma_sum else beta_max
            new_beta = min(new_beta, beta_max)
            dlogb = abs(np.log(new_beta) - np.log(state.beta))
            if dlogb > _MIN_DELTA_LOG_BETA:
                state.beta = new_beta
                state.full_statistics()
                terminate = False
        elif not terminate and it % 100 == 0:
            state.full_statistics()  # clear the drift of the rank-one updates
        history["log_marginal_likelihood"].append(state.logml)
        history["n_active"].append(state.m)
        history["noise_variance"].append(1.0 / state.beta)
        if terminate:
            converged = True
            message = "converged: no action changes the evidence by more than tol"
            break
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill_result(result, state, x_off, y_off, out_dtype, history, it,
                             stop_crit, converged, message)
            if monitor.step(it, result, log_marginal_likelihood=state.logml,
                            n_active=state.m, stop_crit=min(stop_crit, 1e300)):
                message = "stopped by callback"
                break
    monitor.close()
    state.full_statistics()
    _fill_result(result, state, x_off, y_off, out_dtype, history, it, stop_crit,
                 converged, message)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("sbl_fast", stop_crit, tol, it, what="|Δ log α|")
    return result


def _fill_result(result, state, x_off, y_off, out_dtype, history, it, stop_crit,
                 converged, message):
    design = state.design
    m = state.m
    used = state.used[:m]
    order = np.argsort(used)
    used = used[order]
    scale = design.scale[used]
    coef = np.zeros(design.p)
    coef[used] = state.mu[order] / scale
    alpha = np.full(design.p, np.inf)
    alpha[used] = state.alpha[:m][order] * scale**2
    Sigma = state.Sigma[np.ix_(order, order)] / np.outer(scale, scale)
    result.x = coef.astype(out_dtype)
    result.alpha = alpha.astype(out_dtype)
    result.active = used.copy()
    result.sigma = Sigma.astype(out_dtype)
    result.noise_variance = float(1.0 / state.beta)
    result.intercept = float(y_off - x_off @ coef)
    result.x_offset = x_off
    result.log_marginal_likelihood = float(state.logml)
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}


def _trivial_result(result, design, t, x_off, y_off, noise_variance, out_dtype,
                    history, t_start):
    """All-zero (centred) target or all-zero design: the empty model."""
    n, p = design.n_eff, design.p
    s2 = noise_variance if noise_variance is not None else max(float(t @ t) / n, 1e-12)
    ll = -0.5 * (n * _LOG2PI + n * np.log(s2) + float(t @ t) / s2)
    result.x = np.zeros(p, dtype=out_dtype)
    result.alpha = np.full(p, np.inf, dtype=out_dtype)
    result.active = np.zeros(0, dtype=np.int64)
    result.sigma = np.zeros((0, 0), dtype=out_dtype)
    result.noise_variance = float(s2)
    result.intercept = float(y_off)
    result.x_offset = x_off
    result.log_marginal_likelihood = float(ll)
    result.converged = True
    result.stop_crit = 0.0
    result.message = "target or design is zero: empty model"
    history["log_marginal_likelihood"].append(ll)
    history["n_active"].append(0)
    history["noise_variance"].append(s2)
    result.history = {k: np.asarray(v) for k, v in history.items()}
    result.timings["total"] = time.perf_counter() - t_start
    return result
