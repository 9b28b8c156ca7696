"""Backend-generic (device) fast marginal likelihood SBL (Tipping & Faul 2003).

The algorithm of :mod:`sparseopt.solvers.sbl_fast` on ``nx.xp`` arrays: the
sparsity/quality factors ``S``, ``Q`` of all ``p`` columns, ``Σ``, ``μ``,
``Φᵀ Φ_A`` and ``Φ_A`` live on the device and are updated by the same
rank-one formulas (each step ``O(p m)`` dense work, plus one ``Φᵀ φ_j`` by
``nx.spmm_t`` when a column enters a sparse design).

The candidate scan of ``kernels._sbl.tf_select`` becomes :func:`tf_select_xp`,
vectorised over the columns: the best re-estimation/addition and the best
deletion are two ``argmax`` reductions, and their seven numbers come to the
host in **one** transfer per iteration; that is the only synchronisation of
an iteration, except on noise re-estimation steps (``‖e‖²`` and, when ``β``
moves, the log-evidence of the refactorised posterior: one more each).  The
host then takes the same decisions as the CPU solver (the action decides the
shapes of the next step, so it must be known there).
"""

import math
import time

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.kernels._sbl import ACTION_ADD, ACTION_DELETE, ACTION_REESTIMATE
from sparseopt.solvers._xp_linalg import chol_inv, fetch, fetch_array, scatter
from sparseopt.solvers.sbl import _LOG2PI, SBLResult
from sparseopt.solvers.sbl_xp import check_regression_xp, prepare_regression_xp, to_out

__all__ = ["decode_select", "sbl_fast_xp", "tf_select_xp"]

_MIN_DELTA_LOG_BETA = 1e-6
_BETA_MAX_FACTOR = 1e6


def tf_select_xp(xp, S_in, Q_in, active, alpha_full, candidate, zero_factor, m):
    """The Tipping–Faul candidate scan of ``tf_select``, vectorised.

    Returns one float64 device vector ``[j, Δ, action, α_new, any_delete,
    j_del, Δ_del]``: the best re-estimation or addition (first maximiser of
    the evidence increase ``Δ``), and the best deletion.  Decode it on the host
    with :func:`decode_select`.
    """
    f64 = xp.float64
    S, Q = S_in, Q_in
    one = xp.ones_like(S)
    a = xp.where(active, alpha_full, one)
    r = a / xp.where(active, a - S, one)
    s = r * S
    q = r * Q
    theta = q * q - s
    re_ok = active & (theta > zero_factor)
    na = s * s / xp.where(re_ok, theta, one)
    delta = xp.where(re_ok, 1.0 / na - 1.0 / a, 0.0 * one)   # 0 off the candidates
    d_re = 0.5 * (delta * Q * Q / (delta * S + 1.0) - xp.log1p(S * delta))
    theta_n = Q * Q - S
    add_ok = (~active) & candidate & (theta_n > zero_factor)
    quot = Q * Q / xp.where(add_ok, S, one)
    quot = xp.where(add_ok, quot, one)
    d_add = 0.5 * (quot - 1.0 - xp.log(quot))
    alpha_add = S * S / xp.where(add_ok, theta_n, one)
    ninf = xp.full(S.shape, -np.inf, dtype=f64)
    d = xp.where(re_ok, d_re, xp.where(add_ok, d_add, ninf))
    new_alpha = xp.where(re_ok, na, alpha_add)
    best = xp.argmax(d)
    bi = xp.reshape(best, (1,))
    del_ok = active & ~(theta > zero_factor) if m > 1 else xp.zeros(S.shape, dtype=xp.bool)
    d_del = -0.5 * (q * q / xp.where(del_ok, s + a, one)
                    - xp.log1p(xp.where(del_ok, s / a, 0.0 * one)))
    dd = xp.where(del_ok, d_del, ninf)
    jd = xp.argmax(dd)
    ji = xp.reshape(jd, (1,))
    return xp.stack([
        xp.astype(best, f64), xp.take(d, bi)[0],
        float(ACTION_ADD) + float(ACTION_REESTIMATE - ACTION_ADD)
        * xp.astype(xp.take(re_ok, bi)[0], f64),
        xp.take(new_alpha, bi)[0], xp.astype(xp.any(del_ok), f64),
        xp.astype(jd, f64), xp.take(dd, ji)[0],
    ])


def decode_select(vals, priority_deletion):
    """Host decision from the fetched :func:`tf_select_xp` vector (as ``tf_select``)."""
    j, d, action, new_alpha, any_delete, j_del, d_del = (float(v) for v in vals)
    any_delete = bool(any_delete)
    if not d > 0.0:  # nothing increases the evidence (also -inf: no candidate)
        j, d, action, new_alpha = -1, 0.0, ACTION_REESTIMATE, np.inf
    if any_delete and (priority_deletion or d_del > d):
        return int(j_del), ACTION_DELETE, d_del, np.inf, True
    return int(j), int(action), d, new_alpha, any_delete


class _XpFastState:
    """Active-set state of the device fast SBL loop (float64 device arrays)."""

    def __init__(self, nx, design, t, beta):
        xp = self.xp = nx.xp
        self.nx = nx
        self.design = design
        self.t = t
        self.n, self.p = design.n_eff, design.p
        self.beta = beta
        self.Phi_t = design.rmatvec(t)
        self.cap = 0
        self.m = 0
        self.G = xp.zeros((self.p, 0), dtype=xp.float64)     # Φᵀ Φ_A
        self.A = xp.zeros((design.n, 0), dtype=xp.float64)   # Φ_A
        self.alpha = np.zeros(0)                              # host copy of α_A
        self.used = np.zeros(0, dtype=np.int64)               # host active indices
        self.used_dev = xp.zeros(0, dtype=xp.int64)
        self.pos = np.full(self.p, -1, dtype=np.int64)
        self.active = xp.zeros(self.p, dtype=xp.bool)
        self.alpha_full = xp.ones(self.p, dtype=xp.float64)
        self.Sigma = xp.zeros((0, 0), dtype=xp.float64)
        self.mu = xp.zeros(0, dtype=xp.float64)
        self.S_in = xp.zeros(self.p, dtype=xp.float64)
        self.Q_in = xp.zeros(self.p, dtype=xp.float64)
        self.logml = -np.inf

    def _grow(self):
        xp = self.xp
        cap = max(16, 2 * self.cap)
        m = self.m
        G = xp.zeros((self.p, cap), dtype=xp.float64)
        A = xp.zeros((self.A.shape[0], cap), dtype=xp.float64)
        used_dev = xp.zeros(cap, dtype=xp.int64)
        if m:
            G[:, :m] = self.G[:, :m]
            A[:, :m] = self.A[:, :m]
            used_dev[:m] = self.used_dev[:m]
        alpha = np.zeros(cap)
        used = np.zeros(cap, dtype=np.int64)
        alpha[:m] = self.alpha[:m]
        used[:m] = self.used[:m]
        self.G, self.A, self.used_dev = G, A, used_dev
        self.alpha, self.used, self.cap = alpha, used, cap

    def append(self, j, phi, g, alpha):
        if self.m == self.cap:
            self._grow()
        m = self.m
        self.A[:, m] = phi
        self.G[:, m] = g
        self.alpha[m] = alpha
        self.used[m] = j
        self.used_dev[m] = j
        self.pos[j] = m
        self.active[j] = True
        self.alpha_full[j] = alpha
        self.m = m + 1

    def set_alpha(self, k, value):
        self.alpha[k] = value
        self.alpha_full[int(self.used[k])] = value

    def remove(self, k):
        m = self.m
        j = int(self.used[k])
        last = m - 1
        if k != last:
            self.A[:, k] = self.A[:, last]
            self.G[:, k] = self.G[:, last]
            self.alpha[k] = self.alpha[last]
            self.used[k] = self.used[last]
            self.used_dev[k] = int(self.used[last])
            self.pos[self.used[k]] = k
        self.pos[j] = -1
        self.active[j] = False
        self.alpha_full[j] = 1.0
        self.m = last
        return last

    def alpha_dev(self):
        return self.xp.take(self.alpha_full, self.used_dev[:self.m])

    def full_statistics(self):
        """Recompute Σ, μ, S, Q and the evidence (one synchronisation: log|H|, 𝓛)."""
        xp = self.xp
        m, beta, n = self.m, self.beta, self.n
        A = self.A[:, :m]
        G = self.G[:, :m]
        a = self.alpha_dev()
        H = beta * (A.T @ A) + xp.eye(m, dtype=xp.float64) * a[None, :]
        design = self.design

        def extra(Linv, logdet):
            self.Sigma = Linv.T @ Linv
            self.mu = beta * (self.Sigma @ xp.take(self.Phi_t, self.used_dev[:m]))
            GL = G @ Linv.T
            self.S_in = beta * design.sqnorm - beta * beta * xp.sum(GL * GL, axis=1)
            self.Q_in = beta * (self.Phi_t - G @ self.mu)
            e = self.t - A @ self.mu
            logml = -0.5 * (n * _LOG2PI - n * math.log(beta) - xp.sum(xp.log(a)) + logdet
                            + beta * (e @ e) + a @ (self.mu * self.mu))
            return (logml,)

        _, _, (self.logml,) = chol_inv(self.nx, H, extra)

    def residual(self):
        return self.t - self.A[:, :self.m] @ self.mu

    # rank-one updates (no synchronisation) -----------------------------------
    def reestimate(self, j, new_alpha):
        k = int(self.pos[j])
        m = self.m
        Skk = self.Sigma[k, k]
        kappa = 1.0 / (Skk + 1.0 / (new_alpha - float(self.alpha[k])))
        s = self.Sigma[:, k]
        mu_k = self.mu[k]
        self.Sigma = self.Sigma - kappa * (s[:, None] * s[None, :])
        self.mu = self.mu - (mu_k * kappa) * s
        v = self.beta * (self.G[:, :m] @ s)
        self.S_in = self.S_in + kappa * v * v
        self.Q_in = self.Q_in + (kappa * mu_k) * v
        self.set_alpha(k, new_alpha)

    def add(self, j, new_alpha):
        xp = self.xp
        beta, m = self.beta, self.m
        phi = self.design.column(j)
        g = self.design.rmatvec(phi)
        bphi = beta * g
        if m:
            tmp = self.Sigma @ xp.take(bphi, self.used_dev[:m])
        else:
            tmp = xp.zeros(0, dtype=xp.float64)
        s_ii = 1.0 / (new_alpha + self.S_in[j])
        s_i = -s_ii * tmp
        top = xp.concat([self.Sigma - s_i[:, None] * tmp[None, :], s_i[:, None]], axis=1)
        bottom = xp.concat([s_i, xp.reshape(s_ii, (1,))])[None, :]
        Sigma = xp.concat([top, bottom], axis=0)
        mu_i = s_ii * self.Q_in[j]
        mu = xp.concat([self.mu - mu_i * tmp, xp.reshape(mu_i, (1,))])
        mci = bphi - beta * (self.G[:, :m] @ tmp) if m else bphi
        self.S_in = self.S_in - s_ii * mci * mci
        self.Q_in = self.Q_in - mu_i * mci
        self.Sigma, self.mu = Sigma, mu
        self.append(j, phi, g, new_alpha)
        return g

    def delete(self, j):
        xp = self.xp
        k = int(self.pos[j])
        m = self.m
        Skk = self.Sigma[k, k]
        s_k = self.Sigma[:, k]
        mu_k = self.mu[k]
        v = self.beta * (self.G[:, :m] @ s_k)
        Sigma = self.Sigma - (s_k / Skk)[:, None] * s_k[None, :]
        mu = self.mu - (mu_k / Skk) * s_k
        self.S_in = self.S_in + v * v / Skk
        self.Q_in = self.Q_in + (mu_k / Skk) * v
        last = self.remove(k)
        if k != last:  # mirror the column move in Σ and μ
            r = xp.arange(last, dtype=xp.int64)
            order = xp.where(r == k, xp.full(last, last, dtype=xp.int64), r)
            Sigma = xp.take(xp.take(Sigma, order, axis=0), order, axis=1)
            mu = xp.take(mu, order)
        else:
            Sigma = Sigma[:last, :last]
            mu = mu[:last]
        self.Sigma, self.mu = Sigma, mu


def sbl_fast_xp(nx, X, y, noise_variance, fit_intercept, sample_weight, tol, max_iter,
                beta_update_start, beta_update_every, zero_factor, alignment_max,
                priority_deletion, verbose, callback):
    """Fast marginal likelihood SBL on device arrays (see ``sbl_fast``)."""
    xp = nx.xp
    t_start = time.perf_counter()
    X, y, sample_weight, noise_variance, out_dtype = check_regression_xp(
        nx, X, y, sample_weight, noise_variance)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    beta_update_start = check_positive_int(beta_update_start, "beta_update_start",
                                           allow_zero=True)
    beta_update_every = check_positive_int(beta_update_every, "beta_update_every")
    zero_factor = check_scalar(zero_factor, "zero_factor", low=0.0)
    alignment_max = check_scalar(alignment_max, "alignment_max", low=0.0, high=1.0,
                                 include_low=False)
    design, t, x_off, y_off = prepare_regression_xp(
        nx, X, y, fit_intercept=fit_intercept, sample_weight=sample_weight)
    n = design.n_eff
    learn_noise = noise_variance is None
    state = _XpFastState(nx, design, t, 1.0)
    cand = design.valid
    score = xp.where(cand, xp.abs(state.Phi_t), -xp.ones_like(state.Phi_t))
    j0 = xp.argmax(score)
    tt, any_valid, j0, phi_t0 = fetch(nx, t @ t, xp.any(cand), j0,
                                      xp.take(state.Phi_t, xp.reshape(j0, (1,)))[0])
    result = SBLResult(tol=tol)
    history = {"log_marginal_likelihood": [], "n_active": [], "noise_variance": []}
    if tt == 0.0 or not any_valid:
        return _trivial_xp(nx, result, design, tt, x_off, y_off, noise_variance,
                           out_dtype, history, t_start)
    var_t = tt / n
    beta_max = _BETA_MAX_FACTOR / var_t
    beta = 1.0 / noise_variance if not learn_noise else min(100.0 / var_t, beta_max)
    state.beta = beta
    j0 = int(j0)
    phi0 = design.column(j0)
    g0 = design.rmatvec(phi0)
    q2 = phi_t0**2
    denom = q2 - 1.0 / beta
    alpha0 = 1.0 / denom if denom > 0 else 1.0 / q2
    state.append(j0, phi0, g0, alpha0)
    state.full_statistics()
    aligned = xp.abs(g0) > alignment_max
    aligned[j0] = False
    cand = cand & ~aligned

    monitor = IterationMonitor("sbl_fast", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        packed = tf_select_xp(xp, state.S_in, state.Q_in, state.active, state.alpha_full,
                              cand, zero_factor, state.m)
        vals = fetch_array(nx, packed).astype(np.float64)
        j, action, dml, new_alpha, any_delete = decode_select(vals, priority_deletion)
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
                newly = xp.abs(g) > alignment_max
                newly[j] = False
                cand = cand & ~newly
            else:
                state.delete(j)
                if state.m:
                    G = xp.abs(state.G[:, :state.m])
                    aligned = (xp.max(G, axis=1) > alignment_max) & ~state.active
                    cand = design.valid & ~aligned
            state.logml += dml
        if learn_noise and (terminate or it <= beta_update_start
                            or it % beta_update_every == 0):
            e = state.residual()
            a = state.alpha_dev()
            gamma_sum, ee = fetch(nx, state.m - a @ xp.linalg.diagonal(state.Sigma), e @ e)
            new_beta = (n - gamma_sum) / ee if ee > 0 and n > gamma_sum else beta_max
            new_beta = min(new_beta, beta_max)
            dlogb = abs(np.log(new_beta) - np.log(state.beta))
            if dlogb > _MIN_DELTA_LOG_BETA:
                state.beta = new_beta
                state.full_statistics()
                terminate = False
        elif not terminate and it % 100 == 0:
            state.full_statistics()
        history["log_marginal_likelihood"].append(state.logml)
        history["n_active"].append(state.m)
        history["noise_variance"].append(1.0 / state.beta)
        if terminate:
            converged = True
            message = "converged: no action changes the evidence by more than tol"
            break
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill_fast(nx, result, state, x_off, y_off, out_dtype, history, it,
                           stop_crit, converged, message)
            if monitor.step(it, result, log_marginal_likelihood=state.logml,
                            n_active=state.m, stop_crit=min(stop_crit, 1e300)):
                message = "stopped by callback"
                break
    monitor.close()
    state.full_statistics()
    _fill_fast(nx, result, state, x_off, y_off, out_dtype, history, it, stop_crit,
               converged, message)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("sbl_fast", stop_crit, tol, it, what="|Δ log α|")
    return result


def _fill_fast(nx, result, state, x_off, y_off, out_dtype, history, it, stop_crit,
               converged, message):
    xp = nx.xp
    design = state.design
    m = state.m
    used = state.used[:m]
    order = np.argsort(used)
    used_s = xp.asarray(used[order])
    order_d = xp.asarray(order)
    scale = xp.take(design.scale, used_s)
    mu = xp.take(state.mu, order_d)
    alpha = xp.take(state.alpha_dev(), order_d)
    coef = scatter(xp, used_s, mu / scale, design.p)
    alpha_all = scatter(xp, used_s, alpha * scale**2, design.p, fill=np.inf)
    Sigma = xp.take(xp.take(state.Sigma, order_d, axis=0), order_d, axis=1)
    result.x = to_out(xp, coef, out_dtype)
    result.alpha = to_out(xp, alpha_all, out_dtype)
    result.active = used_s
    result.sigma = to_out(xp, Sigma / (scale[:, None] * scale[None, :]), out_dtype)
    result.noise_variance = float(1.0 / state.beta)
    result.intercept = y_off - fetch(nx, x_off @ coef)[0]
    result.x_offset = x_off
    result.log_marginal_likelihood = float(state.logml)
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}


def _trivial_xp(nx, result, design, tt, x_off, y_off, noise_variance, out_dtype, history,
                t_start):
    """All-zero (centred) target or all-zero design: the empty model."""
    xp = nx.xp
    n, p = design.n_eff, design.p
    s2 = noise_variance if noise_variance is not None else max(tt / n, 1e-12)
    ll = -0.5 * (n * _LOG2PI + n * np.log(s2) + tt / s2)
    result.x = to_out(xp, xp.zeros(p, dtype=xp.float64), out_dtype)
    result.alpha = to_out(xp, xp.full(p, np.inf, dtype=xp.float64), out_dtype)
    result.active = xp.zeros(0, dtype=xp.int64)
    result.sigma = to_out(xp, xp.zeros((0, 0), dtype=xp.float64), out_dtype)
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
