"""Backend-generic (device) sparse Bayesian learning: the design and EM-SBL.

The same algorithms as :mod:`sparseopt.solvers.sbl` and
:mod:`sparseopt.solvers.sbl_em`, written against the array namespace ``nx.xp``
of a backend (CuPy on a GPU) and its sparse kernels, so a CuPy ``X`` and ``y``
give CuPy results without the data leaving the device.  The public functions
(:func:`~sparseopt.solvers.sbl_em.sbl_em`, ...) dispatch here when their
inputs are device arrays; NumPy input keeps the CPU code.

Conventions of the device paths:

* working precision float64 (as on the CPU); outputs follow the input dtype;
* the hyperparameters, the posterior and the data stay on the device; the
  host keeps only the control state (active-set indices, iteration counters)
  and the scalars of the history, fetched with **one** transfer per iteration
  (:func:`~sparseopt.solvers._xp_linalg.fetch`) together with the stopping
  criterion;
* a sparse ``X`` (:class:`sparseopt.CSR` on device arrays or a
  ``cupyx.scipy.sparse`` matrix) stays sparse in :class:`XpDesign`: products
  with ``Φ`` and ``Φᵀ`` go through ``nx.spmm`` / ``nx.spmm_t``, centring and
  column scaling are applied implicitly, as on the CPU.

References
----------
D. P. Wipf and B. D. Rao, "Sparse Bayesian learning for basis selection",
IEEE TSP 52(8), 2004.
"""

import math
import time

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.solvers._xp_linalg import (
    as_float_array,
    chol_inv,
    csr_matmul,
    csr_rmatmul,
    fetch,
    fetch_array,
    host_float_dtype,
    is_sparse_input,
    onehot,
    padded_groups,
    row_ids,
    scatter,
    segment_sum,
    solve_triangular,
    sparse_parts,
)
from sparseopt.solvers.sbl import _LOG2PI, SBLResult

__all__ = ["XpDesign", "evidence_active_xp", "sbl_em_xp"]


# ---------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------
def check_design_xp(nx, X, name="X"):
    """``(X, n, p, in_dtype)``: a dense float device array or a CSR tuple."""
    xp = nx.xp
    if is_sparse_input(X):
        indptr, indices, data, shape = sparse_parts(nx, X, name)
        return (indptr, indices, data, shape), shape[0], shape[1], data.dtype
    X = as_float_array(nx, X, name, 2)
    return X, X.shape[0], X.shape[1], X.dtype if X.dtype == xp.float32 else xp.float64


def check_regression_xp(nx, X, y, sample_weight, noise_variance):
    """Device twin of :func:`sparseopt.solvers.sbl.check_regression_inputs`."""
    X, n, p, xdt = check_design_xp(nx, X)
    y = as_float_array(nx, y, "y", 1)
    if y.shape[0] != n:
        raise ValueError(f"X and y have inconsistent numbers of samples: {n} != {y.shape[0]}")
    if n < 1 or p < 1:
        raise ValueError(f"X must have at least one sample and one feature, got {(n, p)}")
    if sample_weight is not None:
        sample_weight = as_float_array(nx, sample_weight, "sample_weight", 1)
        if sample_weight.shape[0] != n:
            raise ValueError(f"sample_weight has {sample_weight.shape[0]} entries, X has "
                             f"{n} samples")
        neg, total = fetch(nx, nx.xp.any(sample_weight < 0), nx.xp.sum(sample_weight))
        if neg or total <= 0:
            raise ValueError("sample_weight must be non-negative with a positive sum")
    if noise_variance is not None:
        noise_variance = check_scalar(noise_variance, "noise_variance", low=0.0,
                                      include_low=False)
    return X, y, sample_weight, noise_variance, host_float_dtype(nx.xp, xdt)


def to_out(xp, a, dtype):
    """Cast a float64 device result to the output dtype (a NumPy dtype)."""
    return xp.astype(a, xp.float32 if dtype == np.float32 else xp.float64)


# ---------------------------------------------------------------------------
# design
# ---------------------------------------------------------------------------
class XpDesign:
    """Device twin of :class:`sparseopt.solvers.sbl.Design` (float64 throughout).

    ``Φ = D_u (X − 1 cᵀ) diag(1/s)``: dense ``X`` is materialised once,
    sparse ``X`` stays a CSR ``(indptr, indices, data, shape)`` with the row
    weights folded into its values and the shift applied in every product.
    """

    def __init__(self, nx, X, offset=None, row_scale=None, normalize=True, groups=None):
        xp = self.xp = nx.xp
        self.nx = nx
        self.sparse = isinstance(X, tuple)
        self.n, self.p = X[3] if self.sparse else X.shape
        self.n_eff = float(self.n)
        n, p = self.n, self.p
        u = xp.ones(n, dtype=xp.float64) if row_scale is None else row_scale
        c = xp.zeros(p, dtype=xp.float64) if offset is None else offset
        self.u = u
        if self.sparse:
            indptr, indices, data, shape = X
            data = xp.astype(data, xp.float64)
            if row_scale is not None:
                data = data * xp.take(u, row_ids(xp, indptr, n))
            self.A = (indptr, indices, data, shape)
            self.A2 = None
            self.c = c
            col_sq = csr_rmatmul(nx, (indptr, indices, data * data, shape),
                                 xp.ones(n, dtype=xp.float64))
            ux = csr_rmatmul(nx, self.A, u)
            sq = xp.maximum(col_sq - 2.0 * c * ux + c * c * xp.sum(u * u), 0.0)
        else:
            Phi = xp.astype(X, xp.float64, copy=True)
            if offset is not None:
                Phi = Phi - c[None, :]
            if row_scale is not None:
                Phi = Phi * u[:, None]
            self.X = Phi
            self.c = None
            sq = xp.sum(Phi * Phi, axis=0)
        norms = xp.sqrt(sq)
        top = xp.max(norms) if p else xp.asarray(0.0)
        self.valid = norms > 1e-12 * xp.maximum(top, xp.asarray(1.0, dtype=xp.float64))
        if normalize and groups is not None:
            labels, padded = groups
            cnt = xp.sum(xp.astype(padded < p, xp.float64), axis=1)
            rms = xp.take(xp.sqrt(segment_sum(xp, sq, padded) / cnt), labels)
            norms = xp.where(rms > 0, rms, norms)
        one = xp.ones(p, dtype=xp.float64)
        self.scale = xp.where(self.valid, norms, one) if normalize else one
        self.sqnorm = xp.where(self.valid, sq / self.scale**2, 0.0 * one)
        if not self.sparse and normalize:
            self.X = self.X / self.scale[None, :]

    def rmatvec(self, v):
        """``Φᵀ v``."""
        xp = self.xp
        if self.sparse:
            out = csr_rmatmul(self.nx, self.A, v)
            return (out - self.c * xp.sum(self.u * v)) / self.scale
        return self.X.T @ v

    def rmatmat(self, V):
        """``Φᵀ V`` for ``V`` of shape ``(n, k)``."""
        if self.sparse:
            out = csr_rmatmul(self.nx, self.A, V)
            out = out - self.c[:, None] * (self.u @ V)[None, :]
            return out / self.scale[:, None]
        return self.X.T @ V

    def columns(self, idx):
        """``Φ[:, idx]`` (dense ``(n, len(idx))``) for a device int array ``idx``."""
        xp = self.xp
        if self.sparse:
            E = onehot(xp, idx, self.p)
            cols = csr_matmul(self.nx, self.A, E)
            cols = cols - self.u[:, None] * xp.take(self.c, idx)[None, :]
            return cols / xp.take(self.scale, idx)[None, :]
        return xp.take(self.X, idx, axis=1)

    def column(self, j):
        """``Φ[:, j]`` for a host int ``j``."""
        xp = self.xp
        return self.columns(xp.full(1, j, dtype=xp.int64))[:, 0]

    def sq_rmatvec(self, v):
        """``(Φ ∘ Φ)ᵀ v`` without the shift (RVC; no centring there)."""
        if self.sparse:
            if self.A2 is None:
                indptr, indices, data, shape = self.A
                self.A2 = (indptr, indices, data * data, shape)
            return csr_rmatmul(self.nx, self.A2, v) / self.scale**2
        return (self.X * self.X).T @ v

    def dense(self):
        """The whole ``Φ`` as a dense device array."""
        xp = self.xp
        if self.sparse:
            return self.columns(xp.arange(self.p, dtype=xp.int64))
        return self.X


def prepare_regression_xp(nx, X, y, *, fit_intercept=False, sample_weight=None,
                          normalize=True, groups=None):
    """Device twin of :func:`sparseopt.solvers.sbl.prepare_regression`.

    Returns ``(design, t, x_offset, y_offset)``; ``y_offset`` is a Python float
    (fetched once at set-up), the rest are device arrays.
    """
    xp = nx.xp
    sparse = isinstance(X, tuple)
    n, p = X[3] if sparse else X.shape
    y64 = xp.astype(y, xp.float64)
    if sample_weight is not None:
        w = xp.astype(sample_weight, xp.float64)
        u = xp.sqrt(w)
        n_eff = fetch(nx, xp.sum(w))[0]
    else:
        w = u = None
        n_eff = float(n)
    if fit_intercept:
        if w is None:
            y_offset = fetch(nx, xp.mean(y64))[0]
            x_offset = (csr_rmatmul(nx, X, xp.ones(n, dtype=xp.float64)) / n if sparse
                        else xp.mean(xp.astype(X, xp.float64), axis=0))
        else:
            y_offset = fetch(nx, w @ y64)[0] / n_eff
            x_offset = (csr_rmatmul(nx, X, w) if sparse
                        else xp.astype(X, xp.float64).T @ w) / n_eff
        x_offset = xp.astype(x_offset, xp.float64)
    else:
        y_offset = 0.0
        x_offset = None
    t = y64 - y_offset
    if u is not None:
        t = t * u
    design = XpDesign(nx, X, offset=x_offset, row_scale=u, normalize=normalize,
                      groups=groups)
    design.n_eff = n_eff
    if x_offset is None:
        x_offset = xp.zeros(p, dtype=xp.float64)
    return design, t, x_offset, y_offset


# ---------------------------------------------------------------------------
# evidence
# ---------------------------------------------------------------------------
def evidence_active_xp(nx, Phi, t, alpha, beta, n_eff=None):
    """Device twin of ``sbl._evidence_active``: ``(L, mu, Sigma)``, ``L`` a float."""
    xp = nx.xp
    m = Phi.shape[1]
    n = Phi.shape[0] if n_eff is None else n_eff
    if m == 0:
        tt = fetch(nx, t @ t)[0]
        ll = -0.5 * (n * _LOG2PI - n * np.log(beta) + beta * tt)
        return ll, xp.zeros(0, dtype=xp.float64), xp.zeros((0, 0), dtype=xp.float64)
    H = beta * (Phi.T @ Phi) + xp.eye(m, dtype=xp.float64) * alpha[None, :]
    state = {}

    def extra(Linv, logdet):
        Sigma = Linv.T @ Linv
        mu = Sigma @ (beta * (Phi.T @ t))
        e = t - Phi @ mu
        state["mu"], state["Sigma"] = mu, Sigma
        ll = -0.5 * (n * _LOG2PI - n * math.log(beta) - xp.sum(xp.log(alpha)) + logdet
                     + beta * (e @ e) + alpha @ (mu * mu))
        return (ll,)

    _, _, (ll,) = chol_inv(nx, H, extra)
    return ll, state["mu"], state["Sigma"]


# ---------------------------------------------------------------------------
# EM-SBL
# ---------------------------------------------------------------------------
def _chol_factor(xp, M, jitter):
    from sparseopt.solvers._xp_linalg import _cholesky

    if jitter:
        M = M + jitter * xp.eye(M.shape[0], dtype=M.dtype)
    return _cholesky(xp, M)


def em_estep_xp(xp, Phi, t, gamma, s2, n_eff=None, jitter=0.0):
    """Device twin of :func:`sparseopt.solvers.sbl_em.em_estep`.

    ``s2`` is a 0-d device array; returns device ``(mu, diag_sigma, loglik,
    trace_term)``.  A failed factorisation shows as a non-finite ``loglik``
    (the caller retries with a ``jitter``).
    """
    n, k = Phi.shape
    log_s2 = xp.log(s2)
    if k == 0:
        nn = n if n_eff is None else n_eff
        ll = -0.5 * (nn * _LOG2PI + nn * log_s2 + (t @ t) / s2)
        zero = xp.zeros(0, dtype=xp.float64)
        return zero, zero, ll, xp.zeros((), dtype=xp.float64)
    if k > n:  # dual form
        C = (Phi * gamma[None, :]) @ Phi.T + s2 * xp.eye(n, dtype=xp.float64)
        L = _chol_factor(xp, C, jitter)
        z = solve_triangular(xp, L, t[:, None], lower=True)[:, 0]
        W = solve_triangular(xp, L, Phi, lower=True)
        mu = gamma * (W.T @ z)
        colsq = xp.sum(W * W, axis=0)
        diag_sigma = gamma - gamma * gamma * colsq
        logdet = 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L)))
        quad = z @ z
        trace_term = gamma @ colsq
    else:  # primal form scaled by Γ^{1/2}
        sg = xp.sqrt(gamma)
        B = Phi * sg[None, :]
        M = (B.T @ B) / s2 + xp.eye(k, dtype=xp.float64)
        L = _chol_factor(xp, M, jitter)
        Linv = solve_triangular(xp, L, xp.eye(k, dtype=xp.float64), lower=True)
        b = B.T @ t / s2
        v = Linv @ b
        mu = sg * (Linv.T @ v)
        dm = xp.sum(Linv * Linv, axis=0)
        diag_sigma = gamma * dm
        logdet = n * log_s2 + 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L)))
        quad = ((t @ t) - s2 * (v @ v)) / s2
        trace_term = k - xp.sum(dm)
    ll = -0.5 * (n * _LOG2PI + logdet + quad)
    if n_eff is not None:
        ll = ll - 0.5 * (n_eff - n) * (_LOG2PI + log_s2)
    return mu, xp.maximum(diag_sigma, 0.0), ll, trace_term


def _estep_retry(nx, Phi, t, gamma, s2, n_eff, first):
    """``first`` is the E-step already computed; redo with jitter if it failed."""
    xp = nx.xp
    out = first
    ll = fetch(nx, out[2])[0]
    jitter = 0.0
    trace = None
    for _ in range(8):
        if np.isfinite(ll):
            return out
        if trace is None:
            G = Phi * xp.sqrt(gamma)[None, :]
            trace = fetch(nx, xp.sum(G * G))[0] / max(1, min(Phi.shape))
        jitter = max(100.0 * jitter, 1e-12 * max(trace, 1.0))
        out = em_estep_xp(xp, Phi, t, gamma, s2, n_eff, jitter=jitter)
        ll = fetch(nx, out[2])[0]
    from numpy.linalg import LinAlgError

    raise LinAlgError("covariance matrix is not positive definite")  # pragma: no cover


class _Working:
    """The working set of EM: groups with ``γ > 0`` and their columns (host indices)."""

    def __init__(self, nx, Phi, gid, groups_pos):
        xp = nx.xp
        self.groups = groups_pos                         # host ids of working groups
        gpos = np.full(int(gid.max()) + 1, -1, np.int64)
        gpos[groups_pos] = np.arange(groups_pos.size)
        cols = np.flatnonzero(gpos[gid] >= 0)
        self.cols = cols
        self.k = cols.size
        lab = gpos[gid[cols]]
        self.lab = xp.asarray(lab)
        self.padded = xp.asarray(padded_groups(lab, groups_pos.size)) if cols.size else None
        self.size = xp.asarray(np.bincount(lab, minlength=groups_pos.size).astype(float))
        self.Phi = xp.take(Phi, xp.asarray(cols), axis=1) if cols.size else \
            xp.zeros((Phi.shape[0], 0), dtype=xp.float64)


def sbl_em_xp(nx, X, y, noise_variance, fit_intercept, sample_weight, groups, tol,
              max_iter, prune, normalize, verbose, callback):
    """EM-SBL and block SBL on device arrays (see :func:`sparseopt.solvers.sbl_em.sbl_em`)."""
    from sparseopt.solvers.sbl_em import _check_groups

    xp = nx.xp
    t_start = time.perf_counter()
    X, y, sample_weight, noise_variance, out_dtype = check_regression_xp(
        nx, X, y, sample_weight, noise_variance)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    prune = check_scalar(prune, "prune", low=0.0, high=1.0, include_high=False)
    p = X[3][1] if isinstance(X, tuple) else X.shape[1]
    if groups is not None and not isinstance(groups, np.ndarray | list | tuple):
        groups = fetch_array(nx, groups)               # device labels: control data
    gid = None if groups is None else _check_groups(groups, p)
    dev_groups = None
    if gid is not None:
        n_groups = int(gid.max()) + 1
        dev_groups = (xp.asarray(gid), xp.asarray(padded_groups(gid, n_groups)))
    design, t, x_off, y_off = prepare_regression_xp(
        nx, X, y, fit_intercept=fit_intercept, sample_weight=sample_weight,
        normalize=normalize, groups=dev_groups)
    n = design.n_eff
    gid = np.arange(p) if gid is None else gid
    n_groups = int(gid.max()) + 1
    Phi = design.dense()
    learn_noise = noise_variance is None
    valid = fetch_array(nx, design.valid).astype(bool)
    tt = fetch(nx, t @ t)[0]
    var_t = tt / n if tt > 0 else 1e-10
    s2_floor = 1e-6 * var_t
    s2_host = noise_variance if not learn_noise else 0.01 * var_t
    s2 = xp.full((), s2_host, dtype=xp.float64)
    valid_g = np.bincount(gid, weights=valid, minlength=n_groups) > 0
    pos_groups = np.flatnonzero(valid_g) if tt != 0.0 else np.zeros(0, np.int64)
    work = _Working(nx, Phi, gid, pos_groups)
    gamma_w = xp.ones(pos_groups.size, dtype=xp.float64)
    result = SBLResult(tol=tol)
    history = {"log_marginal_likelihood": [], "n_active": [], "noise_variance": [],
               "stop_crit": []}
    monitor = IterationMonitor("sbl_em", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        gamma = xp.take(gamma_w, work.lab) if work.k else xp.zeros(0, dtype=xp.float64)
        est = em_estep_xp(xp, work.Phi, t, gamma, s2, n)
        mu, dsig, ll, trace_term = est
        # M-step
        if work.k:
            new_g = segment_sum(xp, mu * mu + dsig, work.padded) / work.size
        else:
            new_g = gamma_w
        if learn_noise:
            e = t - work.Phi @ mu
            s2_new = xp.maximum((e @ e + s2 * trace_term) / n,
                                xp.full((), s2_floor, dtype=xp.float64))
        else:
            s2_new = s2
        gmax = xp.max(new_g) if work.k else xp.zeros((), dtype=xp.float64)
        new_g = xp.where(new_g < prune * gmax, 0.0 * new_g, new_g)
        norm = xp.sqrt(gamma_w @ gamma_w)
        diff = new_g - gamma_w
        crit = xp.where(norm > 0, xp.sqrt(diff @ diff) / xp.where(norm > 0, norm, 1.0),
                        0.0 * norm)
        n_pos = xp.sum(xp.astype(new_g > 0, xp.float64))
        ll_h, stop_crit, s2_next, n_pos = fetch(nx, ll, crit, s2_new, n_pos)
        if not np.isfinite(ll_h) and work.k:
            # the factorisation failed: redo this iteration with a jitter
            mu, dsig, ll, trace_term = _estep_retry(nx, work.Phi, t, gamma, s2, n, est)
            new_g = segment_sum(xp, mu * mu + dsig, work.padded) / work.size
            if learn_noise:
                e = t - work.Phi @ mu
                s2_new = xp.maximum((e @ e + s2 * trace_term) / n,
                                    xp.full((), s2_floor, dtype=xp.float64))
            gmax = xp.max(new_g)
            new_g = xp.where(new_g < prune * gmax, 0.0 * new_g, new_g)
            diff = new_g - gamma_w
            crit = xp.sqrt(diff @ diff) / xp.sqrt(gamma_w @ gamma_w)
            ll_h, stop_crit, s2_next, n_pos = fetch(
                nx, ll, crit, s2_new, xp.sum(xp.astype(new_g > 0, xp.float64)))
        history["log_marginal_likelihood"].append(ll_h)
        history["n_active"].append(work.k)
        history["noise_variance"].append(s2_host)
        history["stop_crit"].append(stop_crit)
        s2, s2_host = s2_new, s2_next
        gamma_w = new_g
        if int(n_pos) < work.groups.size:  # pruned: shrink the working set
            keep = fetch_array(nx, gamma_w > 0).astype(bool)
            gamma_w = gamma_w[xp.asarray(keep)] if keep.any() else \
                xp.zeros(0, dtype=xp.float64)
            work = _Working(nx, Phi, gid, work.groups[keep])
        if stop_crit < tol:
            converged = True
            message = "converged: relative change of gamma below tol"
            break
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill_em(nx, result, design, Phi, t, work, gamma_w, s2, s2_host, x_off,
                         y_off, out_dtype, history, it, stop_crit, converged, message,
                         final=False)
            if monitor.step(it, result, log_marginal_likelihood=ll_h, n_active=work.k,
                            stop_crit=stop_crit):
                message = "stopped by callback"
                break
    monitor.close()
    _fill_em(nx, result, design, Phi, t, work, gamma_w, s2, s2_host, x_off, y_off,
             out_dtype, history, it, stop_crit, converged, message, final=True)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("sbl_em", stop_crit, tol, it, what="relative change of gamma")
    return result


def _fill_em(nx, result, design, Phi, t, work, gamma_w, s2, s2_host, x_off, y_off,
             out_dtype, history, it, stop_crit, converged, message, final):
    """Posterior at the current hyperparameters, in the units of X (device arrays)."""
    xp = nx.xp
    p = design.p
    keep_dev = xp.asarray(work.cols)
    gamma = xp.take(gamma_w, work.lab) if work.k else xp.zeros(0, dtype=xp.float64)
    if final:
        ll, mu, Sigma = evidence_active_xp(nx, work.Phi, t, 1.0 / gamma, 1.0 / s2_host,
                                           n_eff=design.n_eff)
        result.log_marginal_likelihood = float(ll)
    else:
        mu = em_estep_xp(xp, work.Phi, t, gamma, s2)[0]
        Sigma = xp.zeros((work.k, work.k), dtype=xp.float64)
    scale = xp.take(design.scale, keep_dev) if work.k else xp.zeros(0, dtype=xp.float64)
    coef = scatter(xp, keep_dev, mu / scale, p)
    alpha = scatter(xp, keep_dev, scale**2 / gamma, p, fill=np.inf)
    result.x = to_out(xp, coef, out_dtype)
    result.alpha = to_out(xp, alpha, out_dtype)
    result.active = keep_dev
    result.sigma = to_out(xp, Sigma / (scale[:, None] * scale[None, :]), out_dtype)
    result.noise_variance = float(s2_host)
    result.intercept = y_off - fetch(nx, x_off @ coef)[0]
    result.x_offset = x_off
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}
