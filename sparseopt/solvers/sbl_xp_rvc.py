"""Backend-generic (device) relevance vector classification.

:func:`sparseopt.solvers.sbl_rvc.rvm_classification` on ``nx.xp`` arrays: the
Laplace approximation's Newton search for the posterior mode, the factors
``S``, ``Q`` of all columns (``Φᵀ B Φ_A`` by ``nx.spmm_t`` for a sparse
design) and the Tipping–Faul action choice
(:func:`~sparseopt.solvers.sbl_xp_fast.tf_select_xp`) run on the device.

Synchronisations: each Newton step is one (its stopping test: the gradient's
max-norm and the log-posterior at all eight step lengths of the halving line
search, evaluated at once as an ``n × 8`` product instead of one after the
other), and each outer iteration two more (the log-determinant of the
Laplace covariance, and the selected action).
"""

import time

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.kernels._sbl import ACTION_ADD, ACTION_REESTIMATE
from sparseopt.solvers._xp_linalg import (
    _cholesky,
    as_float_array,
    chol_inv,
    fetch,
    fetch_array,
    row_ids,
    scatter,
    solve_triangular,
)
from sparseopt.solvers.sbl_xp import XpDesign, check_design_xp, to_out
from sparseopt.solvers.sbl_xp_fast import decode_select, tf_select_xp

__all__ = ["rvc_xp"]

_LRS = 0.5 ** np.arange(8)   # step lengths tried by the CPU line search: 1 … 2^-7


def _log_expit(xp, f):
    return -xp.logaddexp(xp.zeros_like(f), -f)


def _log_posterior(xp, F, t, W, alpha, sw):
    """Log posterior at the columns of ``F = A W`` (``F`` of shape (n, k), ``W`` (m, k))."""
    ll = sw @ (t[:, None] * _log_expit(xp, F) + (1.0 - t)[:, None] * _log_expit(xp, -F))
    return ll - 0.5 * xp.sum(alpha[:, None] * W * W, axis=0)


def _hessian(xp, A, f, alpha, sw):
    y = xp.exp(_log_expit(xp, f))
    b = sw * y * (1.0 - y)
    H = (A * b[:, None]).T @ A + xp.eye(A.shape[1], dtype=xp.float64) * alpha[None, :]
    return y, H


def _find_mode(nx, A, t, w, alpha, sw, max_iter, tol):
    """Newton's method with step halving; returns ``(w, y, Linv, logdet_H, lp)``."""
    xp = nx.xp
    lrs = xp.asarray(_LRS)
    f = A @ w
    lp = None
    for _ in range(max_iter):
        y, H = _hessian(xp, A, f, alpha, sw)
        grad = A.T @ (sw * (t - y)) - alpha * w
        L = _cholesky(xp, H)
        z = solve_triangular(xp, L, grad[:, None], lower=True)
        step = solve_triangular(xp, L.T, z, lower=False)[:, 0]
        W = w[:, None] + step[:, None] * lrs[None, :]
        F = f[:, None] + (A @ step)[:, None] * lrs[None, :]
        cand = _log_posterior(xp, F, t, W, alpha, sw)
        gmax = xp.max(xp.abs(grad)) if w.shape[0] else xp.zeros((), dtype=xp.float64)
        cur = _log_posterior(xp, f[:, None], t, w[:, None], alpha, sw)[0]
        vals = fetch_array(nx, xp.concat([xp.stack([gmax, cur]), cand]))
        if not np.isfinite(vals[2:]).all() and np.isfinite(vals[1]):
            # the Newton system was not positive definite: jittered factorisation
            Linv, _, _ = chol_inv(nx, H)
            step = Linv.T @ (Linv @ grad)
            W = w[:, None] + step[:, None] * lrs[None, :]
            F = f[:, None] + (A @ step)[:, None] * lrs[None, :]
            vals[2:] = fetch_array(nx, _log_posterior(xp, F, t, W, alpha, sw))
        gmax_h, lp = float(vals[0]), float(vals[1])
        if gmax_h < tol:
            break
        ok = np.flatnonzero(vals[2:] >= lp)
        if not ok.size:
            break
        i = int(ok[0])
        w, f = W[:, i], F[:, i]
        lp_old, lp = lp, float(vals[2 + i])
        if lp - lp_old < 1e-12 * max(1.0, abs(lp)):
            break
    y, H = _hessian(xp, A, f, alpha, sw)
    need_lp = lp is None

    def extra(Linv, logdet):
        if need_lp:
            return (_log_posterior(xp, f[:, None], t, w[:, None], alpha, sw)[0],)
        return ()

    Linv, logdet_H, more = chol_inv(nx, H, extra)
    if need_lp:
        lp = more[0]
    return w, y, Linv, logdet_H, lp


def _with_bias(nx, X, n, p):
    """``[X, 1]``: a column of ones appended (dense or CSR)."""
    xp = nx.xp
    if not isinstance(X, tuple):
        return xp.concat([xp.astype(X, xp.float64), xp.ones((n, 1), dtype=xp.float64)],
                         axis=1)
    indptr, indices, data, _ = X
    idt = xp.int64
    rows = xp.concat([row_ids(xp, indptr, n), xp.arange(n, dtype=idt)])
    cols = xp.concat([xp.astype(indices, idt), xp.full(n, p, dtype=idt)])
    vals = xp.concat([xp.astype(data, xp.float64), xp.ones(n, dtype=xp.float64)])
    order = xp.argsort(rows, stable=True)
    new_indptr = xp.astype(indptr, idt) + xp.arange(n + 1, dtype=idt)
    return (new_indptr, xp.take(cols, order), xp.take(vals, order), (n, p + 1))


def rvc_xp(nx, X, y, sample_weight, fit_intercept, tol, max_iter, zero_factor,
           alignment_max, priority_deletion, newton_max_iter, newton_tol, verbose,
           callback):
    """Binary RVC on device arrays (see :func:`sparseopt.solvers.sbl_rvc.rvm_classification`)."""
    from sparseopt.solvers.sbl_rvc import RVCResult

    xp = nx.xp
    t_start = time.perf_counter()
    X, n, p, xdt = check_design_xp(nx, X)
    t = xp.astype(as_float_array(nx, y, "y", 1), xp.float64)
    if t.shape[0] != n:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: {n} != {t.shape[0]}")
    if fetch(nx, xp.any((t != 0.0) & (t != 1.0)))[0]:
        raise ValueError("y must hold binary targets in {0, 1}")
    if sample_weight is None:
        sw = xp.ones(n, dtype=xp.float64)
    else:
        sw = xp.astype(as_float_array(nx, sample_weight, "sample_weight", 1), xp.float64)
        if sw.shape[0] != n:
            raise ValueError(f"sample_weight has {sw.shape[0]} entries, X has {n} samples")
        neg, total = fetch(nx, xp.any(sw < 0), xp.sum(sw))
        if neg or total <= 0:
            raise ValueError("sample_weight must be non-negative with a positive sum")
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    newton_max_iter = check_positive_int(newton_max_iter, "newton_max_iter")
    newton_tol = check_scalar(newton_tol, "newton_tol", low=0.0, include_low=False)
    out_dtype = np.dtype(np.float32) if xdt == xp.float32 else np.dtype(np.float64)
    if fit_intercept:
        X = _with_bias(nx, X, n, p)
    design = XpDesign(nx, X)
    P = design.p

    cand = design.valid
    if fit_intercept:
        j0 = P - 1
    else:
        score = xp.where(cand, xp.abs(design.rmatvec(sw * (t - 0.5))),
                         -xp.ones(P, dtype=xp.float64))
        j0 = int(fetch(nx, xp.argmax(score))[0])
    A = design.column(j0)[:, None]
    used = np.array([j0], dtype=np.int64)
    pos = np.full(P, -1, dtype=np.int64)
    pos[j0] = 0
    alpha = np.array([1e-6 if fit_intercept else 1.0])
    active = xp.zeros(P, dtype=xp.bool)
    active[j0] = True
    alpha_full = xp.ones(P, dtype=xp.float64)
    alpha_full[j0] = float(alpha[0])
    w = xp.zeros(1, dtype=xp.float64)
    aligned = xp.abs(design.rmatvec(A[:, 0])) > alignment_max
    aligned[j0] = False
    cand = cand & ~aligned
    history = {"log_marginal_likelihood": [], "n_active": []}
    result = RVCResult(tol=tol)
    monitor = IterationMonitor("rvm_classification", verbose=verbose,
                               callback=callback, max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0

    def alpha_dev():
        return xp.take(alpha_full, xp.asarray(used))

    while True:
        a_dev = alpha_dev()
        w, yhat, Linv, logdet_H, lp = _find_mode(nx, A, t, w, a_dev, sw, newton_max_iter,
                                                 newton_tol)
        m = used.size
        logml = lp + 0.5 * float(np.log(alpha).sum()) - 0.5 * logdet_H
        b = sw * yhat * (1.0 - yhat)
        Z = design.rmatmat(A * b[:, None])
        ZL = Z @ Linv.T
        S_in = design.sq_rmatvec(b) - xp.sum(ZL * ZL, axis=1)
        Q_in = design.rmatvec(sw * (t - yhat))
        if it:
            history["log_marginal_likelihood"].append(logml)
            history["n_active"].append(m)
        if it == max_iter:
            break
        it += 1
        packed = tf_select_xp(xp, S_in, Q_in, active, alpha_full, cand, zero_factor, m)
        j, action, dml, new_alpha, any_delete = decode_select(
            fetch_array(nx, packed).astype(np.float64), priority_deletion)
        if j < 0 or dml <= 0.0:
            stop_crit = 0.0
            converged = True
        elif action == ACTION_REESTIMATE:
            stop_crit = abs(np.log(new_alpha) - np.log(alpha[pos[j]]))
            converged = stop_crit < tol and not any_delete
        else:
            stop_crit = np.inf
        if converged:
            history["log_marginal_likelihood"].append(logml)
            history["n_active"].append(m)
            message = "converged: no action changes the evidence by more than tol"
            break
        if action == ACTION_REESTIMATE:
            alpha[pos[j]] = new_alpha
            alpha_full[j] = new_alpha
        elif action == ACTION_ADD:
            col = design.column(j)
            A = xp.concat([A, col[:, None]], axis=1)
            used = np.append(used, j)
            pos[j] = m
            alpha = np.append(alpha, new_alpha)
            w = xp.concat([w, xp.zeros(1, dtype=xp.float64)])
            active[j] = True
            alpha_full[j] = new_alpha
            newly = xp.abs(design.rmatvec(col)) > alignment_max
            newly[j] = False
            cand = cand & ~newly
        else:
            k = int(pos[j])
            keep = np.arange(m) != k
            r = xp.arange(m, dtype=xp.int64)
            idx = xp.concat([r[:k], r[k + 1:]])
            A, w = xp.take(A, idx, axis=1), xp.take(w, idx)
            used, alpha = used[keep], alpha[keep]
            pos[:] = -1
            pos[used] = np.arange(used.size)
            active[j] = False
            alpha_full[j] = 1.0
            G = design.rmatmat(A)
            aligned = (xp.max(xp.abs(G), axis=1) > alignment_max) & ~active
            cand = design.valid & ~aligned
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill(nx, result, design, used, w, alpha_dev(), Linv, logml,
                      fit_intercept, out_dtype, history, it, stop_crit, False, message)
            if monitor.step(it, result, log_marginal_likelihood=logml, n_active=m,
                            stop_crit=min(stop_crit, 1e300)):
                message = "stopped by callback"
                break
    monitor.close()
    if message == "stopped by callback":  # posterior at the current α
        w, yhat, Linv, logdet_H, lp = _find_mode(nx, A, t, w, alpha_dev(), sw,
                                                 newton_max_iter, newton_tol)
        logml = lp + 0.5 * float(np.log(alpha).sum()) - 0.5 * logdet_H
    _fill(nx, result, design, used, w, alpha_dev(), Linv, logml, fit_intercept,
          out_dtype, history, it, stop_crit, converged, message)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("rvm_classification", stop_crit, tol, it, what="|Δ log α|")
    return result


def _fill(nx, result, design, used, w, alpha, Linv, logml, fit_intercept, out_dtype,
          history, it, stop_crit, converged, message):
    xp = nx.xp
    P = design.p
    p = P - 1 if fit_intercept else P
    order = np.argsort(used)
    used_s = used[order]
    used_d = xp.asarray(used_s)
    order_d = xp.asarray(order)
    scale = xp.take(design.scale, used_d)
    coef_all = scatter(xp, used_d, xp.take(w, order_d) / scale, P)
    alpha_all = scatter(xp, used_d, xp.take(alpha, order_d) * scale**2, P, fill=np.inf)
    if Linv.shape[0] == used.size:
        Sigma = Linv.T @ Linv
    else:
        Sigma = xp.zeros((used.size, used.size), dtype=xp.float64)
    Sigma = xp.take(xp.take(Sigma, order_d, axis=0), order_d, axis=1)
    Sigma = Sigma / (scale[:, None] * scale[None, :])
    result.x = to_out(xp, coef_all[:p], out_dtype)
    result.intercept = fetch(nx, coef_all[p])[0] if fit_intercept else 0.0
    result.bias_active = bool(fit_intercept and used_s.size and used_s[-1] == p)
    result.alpha = to_out(xp, alpha_all[:p], out_dtype)
    result.active = xp.asarray(used_s[used_s < p])
    result.sigma = to_out(xp, Sigma, out_dtype)
    result.log_marginal_likelihood = float(logml)
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}
    result.noise_variance = np.nan
