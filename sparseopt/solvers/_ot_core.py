"""Building blocks shared by the Sinkhorn and SNS solvers.

The working representation of a plan is ``P = diag(u) K diag(v)`` with
``K = exp((f_i + g_j - M_ij) / reg)`` an *absorbed* Gibbs kernel: the
potentials ``f``, ``g`` (float64) carry the large dynamic range, the scalings
``u``, ``v`` (float64) stay within ``[exp(-tau), exp(tau)]`` and ``K`` (the
working dtype) is re-formed when they drift out (Schmitzer 2019,
"Stabilized sparse scaling algorithms for entropy regularized transport
problems").
"""

import time

import numpy as np
import scipy.sparse as sp

from sparseopt.kernels._sinkhorn import (
    HIST_BINS,
    build_csr,
    gibbs_exponent,
    lse_cols,
    lse_rows,
    marginals_hist,
    plan_and_cost,
    threshold_bin,
)
from sparseopt.solvers._ot_result import OTResult

__all__ = [
    "Trace",
    "finalize",
    "form_kernel",
    "log_update_f",
    "log_update_g",
    "sparse_plan",
]


def form_kernel(M, f, g, reg, K):
    """``K = exp((f_i + g_j - M_ij) / reg)`` in K's dtype (numpy's SIMD exp)."""
    gibbs_exponent(M, f, g, 1.0 / reg, K)
    np.exp(K, out=K)
    return K


def log_update_g(M, f, b, reg, work):
    """Exact log-domain update ``g = reg (log b - LSE_i((f_i - M_ij)/reg))``."""
    out = np.empty(M.shape[1])
    lse_cols(M, f, 1.0 / reg, out, work)
    with np.errstate(divide="ignore"):
        return reg * (np.log(b) - out)


def log_update_f(M, g, a, reg):
    """Exact Sinkhorn update of f in the log domain."""
    out = np.empty(M.shape[0])
    lse_rows(M, g, 1.0 / reg, out)
    with np.errstate(divide="ignore"):
        return reg * (np.log(a) - out)


class Trace:
    """Marginal-error history with timestamps, and the monitor/callback glue."""

    def __init__(self, monitor, reg, check_every):
        self.monitor = monitor
        self.reg = reg
        self.check_every = max(1, int(check_every))
        self.errors = []
        self.times = []
        self.t0 = time.perf_counter()
        self.stopped = False

    def record(self, err, it, n_sinkhorn, n_newton, potentials, force=False):
        """Store one error; every ``check_every`` records (or when forced) log and
        call the callback.  Returns True when the callback asked to stop."""
        self.errors.append(float(err))
        self.times.append(time.perf_counter() - self.t0)
        if not force and (len(self.errors) - 1) % self.check_every:
            return False
        result = None
        if self.monitor.callback is not None:
            f, g = potentials()
            result = OTResult(
                f=f, g=g, n_sinkhorn=n_sinkhorn, n_newton=n_newton, n_iter=it,
                marginal_error=np.asarray(self.errors), stop_crit=float(err),
                reg=self.reg, history={"time": np.asarray(self.times)},
            )
        if self.monitor.step(it, result, marginal_error=err):
            self.stopped = True
        return self.stopped


def sparse_plan(K, x, y, drop_mass):
    """CSR of ``diag(x) K diag(y)`` without its smallest entries of total mass <= drop_mass."""
    n, m = K.shape
    r = np.empty(n)
    c = np.empty(m)
    hist_mass = np.empty(HIST_BINS)
    hist_count = np.empty(HIST_BINS, dtype=np.int64)
    buf = np.empty(m)
    marginals_hist(K, x, y, r, c, hist_mass, hist_count, buf, 0.0)
    first, nnz = threshold_bin(hist_mass, hist_count, drop_mass, 0)
    idx_dtype = np.int32 if max(nnz, n, m) < np.iinfo(np.int32).max else np.int64
    indptr = np.empty(n + 1, dtype=idx_dtype)
    indices = np.empty(nnz, dtype=idx_dtype)
    data = np.empty(nnz, dtype=np.float64)
    build_csr(K, x, y, first, nnz, indptr, indices, data, buf)
    return indptr, indices, data


def _csr_object(indptr, indices, data, shape):
    try:
        from sparseopt.formats import CSR
    except ImportError:  # pragma: no cover - formats not available
        CSR = None
    if CSR is not None:
        try:
            return CSR((data, indices, indptr), shape=shape)
        except Exception:  # pragma: no cover - fall back to scipy
            pass
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def finalize(state, prob_a, prob_b, M, reg, *, plan, plan_drop, dtype, ia, ib, shape):
    """Plan, cost, objective and measured marginal error of a solved (sub)problem.

    ``state`` holds ``f, g, K, u, v`` of the support-restricted problem; ``ia``,
    ``ib`` are the support indices (None: all) and ``shape`` the full shape.
    """
    f, g, K, u, v = state["f"], state["g"], state["K"], state["u"], state["v"]
    a, b = prob_a if ia is None else prob_a[ia], prob_b if ib is None else prob_b[ib]
    n, m = K.shape
    with np.errstate(divide="ignore"):
        f_out = f + reg * np.log(u)
        g_out = g + reg * np.log(v)
    if plan == "sparse":
        indptr, indices, data = sparse_plan(K, u, v, plan_drop)
        rows = np.repeat(np.arange(n), np.diff(indptr))
        r = np.bincount(rows, weights=data, minlength=n)
        c = np.bincount(indices, weights=data, minlength=m)
        cost = float(np.dot(data, M[rows, indices]))
        data = data.astype(dtype)
        N, Mm = shape
        if ia is not None or ib is not None:
            ri = np.arange(n) if ia is None else ia
            ci = indices if ib is None else ib[indices]
            full = sp.csr_matrix((data, (ri[rows], ci)), shape=shape)
            full.sort_indices()
            indptr, indices, data = full.indptr, full.indices, full.data
        P_out = _csr_object(indptr, indices, data, (N, Mm))
    else:
        P = np.empty((n, m), dtype=dtype)
        r = np.empty(n)
        c = np.empty(m)
        cost = plan_and_cost(K, u, v, M, P, r, c)
        if plan is None:
            P_out = None
        elif ia is None and ib is None:
            P_out = P
        else:
            P_out = np.zeros(shape, dtype=dtype)
            P_out[np.ix_(np.arange(n) if ia is None else ia,
                         np.arange(m) if ib is None else ib)] = P
    err = float(np.abs(r - a).sum() + np.abs(c - b).sum())
    objective = float(np.dot(r, f_out) + np.dot(c, g_out))
    return {
        "plan": P_out, "cost": float(cost), "objective": objective,
        "f": f_out, "g": g_out, "error": err,
    }
