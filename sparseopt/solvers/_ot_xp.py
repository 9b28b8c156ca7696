"""Backend-generic (device) Sinkhorn: the CPU algorithm on ``nx.xp`` arrays.

The CPU solvers (:mod:`sparseopt.solvers.sinkhorn`) stream the kernel matrix
through fused Numba kernels.  On a device the same iterations are written as
array expressions: the fused sweep ``u = a / (K v)``, ``w = Kᵀ u`` becomes two
GEMVs (cuBLAS on CuPy), the log-sum-exp updates are reductions over an axis,
``K = exp((f + g - M) / reg)`` is an elementwise expression.  The state and its
precision policy are those of the CPU: potentials and scalings in float64, the
kernel matrix in the working dtype (products cast the vector to it and the
result back to float64).

Synchronisation: the CPU computes the marginal error at every iteration (it
comes free with the fused sweep), so the device loop fetches one small vector
per iteration -- the error plus the ranges of the new scalings, which decide
the absorptions.  A sweep is therefore computed *speculatively* (``v``, ``u``,
``w`` and the error in one go) and redone through the exact log-domain update
in the rare iterations whose scalings leave ``[exp(-tau), exp(tau)]``: the
iterates are exactly the CPU's.
"""

import math

from sparseopt.solvers._xp_checks import fetch, host_dtype
from sparseopt.solvers.sinkhorn import _tau_for

__all__ = [
    "LogSinkhornXP",
    "ScalingSinkhornXP",
    "form_kernel_xp",
    "log_update_f_xp",
    "log_update_g_xp",
    "marginals_xp",
    "matvec",
    "rmatvec",
    "sinkhorn_core_xp",
]


def matvec(xp, K, v):
    """``K @ v`` (float64 vector in and out, the product in K's dtype)."""
    return xp.astype(K @ xp.astype(v, K.dtype, copy=False), xp.float64, copy=False)


def rmatvec(xp, K, u):
    """``Kᵀ @ u`` (float64 vector in and out, the product in K's dtype)."""
    return xp.astype(xp.astype(u, K.dtype, copy=False) @ K, xp.float64, copy=False)


def marginals_xp(xp, K, x, y):
    """``r = P 1``, ``c = Pᵀ 1`` of ``P = diag(x) K diag(y)`` and the (device) mass ``Σ P``."""
    r = x * matvec(xp, K, y)
    c = y * rmatvec(xp, K, x)
    return r, c, xp.sum(c)


def form_kernel_xp(xp, M, f, g, reg):
    """``K = exp((f_i + g_j - M_ij) / reg)`` in M's dtype (exponent in float64)."""
    E = (f[:, None] + g[None, :] - M) * (1.0 / reg)
    return xp.exp(xp.astype(E, M.dtype, copy=False))


def _lse(xp, Z, axis):
    """``log Σ exp(Z)`` along ``axis``, max-shifted; ``-inf`` for all ``-inf`` lines."""
    mx = xp.max(Z, axis=axis)
    shift = xp.where(mx > -math.inf, mx, 0.0)
    expanded = shift[:, None] if axis == 1 else shift[None, :]
    return xp.log(xp.sum(xp.exp(Z - expanded), axis=axis)) + shift


def lse_rows_xp(xp, M, g, inv_reg):
    """``out_i = log Σ_j exp((g_j - M_ij) / reg)``."""
    return _lse(xp, (g[None, :] - M) * inv_reg, 1)


def lse_cols_xp(xp, M, f, inv_reg):
    """``out_j = log Σ_i exp((f_i - M_ij) / reg)``."""
    return _lse(xp, (f[:, None] - M) * inv_reg, 0)


def log_update_g_xp(xp, M, f, b, reg):
    """Exact log-domain update ``g = reg (log b - LSE_i((f_i - M_ij)/reg))``."""
    return reg * (xp.log(b) - lse_cols_xp(xp, M, f, 1.0 / reg))


def log_update_f_xp(xp, M, g, a, reg):
    """Exact log-domain update ``f = reg (log a - LSE_j((g_j - M_ij)/reg))``."""
    return reg * (xp.log(a) - lse_rows_xp(xp, M, g, 1.0 / reg))


class ScalingSinkhornXP:
    """Stabilised scaling Sinkhorn on ``P = diag(u) K diag(v)`` (generic arrays).

    Same iterates and absorption rule as :class:`~sparseopt.solvers.sinkhorn.ScalingSinkhorn`.
    """

    def __init__(self, nx, a, b, M, reg, tau=None, K=None):
        self.nx, self.xp = nx, nx.xp
        self.a, self.b, self.M, self.reg = a, b, M, reg
        n, m = M.shape
        self.tau = _tau_for(host_dtype(self.xp, M.dtype)) if tau is None else float(tau)
        self.lo, self.hi = math.exp(-self.tau), math.exp(self.tau)
        self.K = K
        self.u = self.xp.ones(n, dtype=self.xp.float64)
        self.v = self.xp.ones(m, dtype=self.xp.float64)
        self.n_absorb = 0

    def start(self, f_init=None):
        """Start from ``f_init`` (zeros by default) and do the first iteration."""
        xp = self.xp
        n = self.M.shape[0]
        self.f = xp.zeros(n, dtype=xp.float64) if f_init is None else f_init
        # c-transform min_i (M_ij - f_i); rows with f_i = -inf give +inf, ignored
        self.g = xp.min(self.M - self.f[:, None], axis=0)
        (finite,) = fetch(self.nx, xp.all(xp.isfinite(self.g)))
        if not finite:
            raise ValueError("init[0] must have a finite entry")
        self._reform()
        self.n_absorb = 0
        return self.sweep()

    def resume(self, f, g):
        """Continue from potentials ``(f, g)``: form K (u = v = 1); returns the error."""
        self.f = self.xp.astype(f, self.xp.float64)
        self.g = self.xp.astype(g, self.xp.float64)
        self._reform()
        return self.err

    def absorbed(self):
        """Absorb u, v into f, g and K (no exponential); returns ``(f, g, K)``."""
        xp = self.xp
        dt = self.K.dtype
        self.f = self.f + self.reg * xp.log(self.u)
        self.g = self.g + self.reg * xp.log(self.v)
        self.K = (self.K * xp.astype(self.u, dt)[:, None]) * xp.astype(self.v, dt)[None, :]
        self.u = xp.ones_like(self.u)
        self.v = xp.ones_like(self.v)
        return self.f, self.g, self.K

    def _reform(self):
        """Re-form K from f, g with unit scalings; recompute w = Kᵀ u and the error."""
        xp = self.xp
        self.K = form_kernel_xp(xp, self.M, self.f, self.g, self.reg)
        self.u = xp.ones_like(self.u)
        self.v = xp.ones_like(self.v)
        r, self.w, _ = marginals_xp(xp, self.K, self.u, self.v)
        self.n_absorb += 1
        (self.err,) = fetch(self.nx, xp.sum(xp.abs(self.w - self.b))
                            + xp.sum(xp.abs(r - self.a)))

    def _ok(self, lo, hi):
        return lo >= self.lo and hi <= self.hi

    def _half_sweep(self, v):
        """``u = a / (K v)``, ``w = Kᵀ u``, the column error and the ranges, fetched once."""
        xp = self.xp
        u = self.a / matvec(xp, self.K, v)
        w = rmatvec(xp, self.K, u)
        err = xp.sum(xp.abs(v * w - self.b))
        return u, w, err

    def sweep(self):
        """One Sinkhorn iteration (g then f) in scaling form; absorbs when needed."""
        xp, reg = self.xp, self.reg
        v_new = self.b / self.w
        u, w, err = self._half_sweep(v_new)
        vmin, vmax, umin, umax, err = fetch(self.nx, xp.min(v_new), xp.max(v_new),
                                            xp.min(u), xp.max(u), err)
        if not self._ok(vmin, vmax):
            # absorb u, then an exact log-domain g update (handles w_j = 0)
            self.f = self.f + reg * xp.log(self.u)
            if math.isfinite(vmax) and vmin > 0:
                self.g = self.g + reg * xp.log(v_new)
            else:
                self.g = log_update_g_xp(xp, self.M, self.f, self.b, reg)
            self.K = form_kernel_xp(xp, self.M, self.f, self.g, reg)
            self.u = xp.ones_like(self.u)
            self.v = xp.ones_like(self.v)
            self.n_absorb += 1
            u, w, err = self._half_sweep(self.v)
            umin, umax, err = fetch(self.nx, xp.min(u), xp.max(u), err)
        else:
            self.v = v_new
        if not self._ok(umin, umax):
            self.g = self.g + reg * xp.log(self.v)
            if math.isfinite(umax) and umin > 0:
                self.f = self.f + reg * xp.log(u)
            else:
                self.f = log_update_f_xp(xp, self.M, self.g, self.a, reg)
            self._reform()
            return self.err
        self.u, self.w, self.err = u, w, err
        return self.err

    def potentials(self):
        """Current ``(f + reg log u, g + reg log v)``."""
        xp = self.xp
        return self.f + self.reg * xp.log(self.u), self.g + self.reg * xp.log(self.v)

    def state(self):
        return {"f": self.f, "g": self.g, "K": self.K, "u": self.u, "v": self.v}


class LogSinkhornXP:
    """Pure log-domain Sinkhorn (log-sum-exp reductions; no kernel matrix kept)."""

    def __init__(self, nx, a, b, M, reg):
        self.nx, self.xp = nx, nx.xp
        self.a, self.b, self.M, self.reg = a, b, M, reg

    def start(self, f_init=None):
        xp = self.xp
        f = xp.zeros(self.M.shape[0], dtype=xp.float64) if f_init is None else f_init
        self.g = log_update_g_xp(xp, self.M, f, self.b, self.reg)
        return self._f_update()

    def _f_update(self):
        xp, reg = self.xp, self.reg
        self.f = log_update_f_xp(xp, self.M, self.g, self.a, reg)
        self.lc = lse_cols_xp(xp, self.M, self.f, 1.0 / reg)
        col = xp.exp(self.g / reg + self.lc)
        (self.err,) = fetch(self.nx, xp.sum(xp.abs(col - self.b)))
        return self.err

    def sweep(self):
        self.g = self.reg * (self.xp.log(self.b) - self.lc)
        return self._f_update()

    def potentials(self):
        return self.f, self.g

    def state(self):
        xp = self.xp
        n, m = self.M.shape
        return {"f": self.f, "g": self.g,
                "K": form_kernel_xp(xp, self.M, self.f, self.g, self.reg),
                "u": xp.ones(n, dtype=xp.float64), "v": xp.ones(m, dtype=xp.float64)}


def sinkhorn_core_xp(nx, a, b, M, reg, init, tol, max_iter, trace, *, method="stabilized",
                     tau=None):
    """Run Sinkhorn on one problem with positive weights; return the solver state.

    The loop of :func:`sparseopt.solvers.sinkhorn.sinkhorn_core`, on ``nx.xp`` arrays.
    """
    if method == "log":
        solver = LogSinkhornXP(nx, a, b, M, reg)
    else:
        solver = ScalingSinkhornXP(nx, a, b, M, reg, tau=tau)
    err = solver.start(None if init is None else init[0])
    it = 1
    trace.record(err, it, it, 0, solver.potentials)
    while err > tol and it < max_iter and not trace.stopped:
        err = solver.sweep()
        it += 1
        if not math.isfinite(err):
            break
        trace.record(err, it, it, 0, solver.potentials, force=err <= tol)
    converged = bool(err <= tol)
    state = solver.state()
    state.update(
        n_sinkhorn=it, n_newton=0, converged=converged,
        message="converged" if converged else (
            "non-finite marginal error" if not math.isfinite(err) else "max_iter reached"),
        history={"n_absorb": getattr(solver, "n_absorb", 0)},
    )
    return state
