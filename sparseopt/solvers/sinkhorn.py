"""Stabilised Sinkhorn: scaling iterations with log-domain absorption, and a pure
log-domain variant.

Both produce the iterates of POT's ``ot.sinkhorn`` (``g`` updated first, then
``f``), so iteration counts are comparable; they differ in how they stay
finite at small ``reg``.
"""

import numpy as np

from sparseopt.kernels._sinkhorn import (
    col_min_shifted,
    lse_cols,
    marginals,
    scaling_sweep,
)
from sparseopt.solvers._ot_core import form_kernel, log_update_f, log_update_g

__all__ = ["ScalingSinkhorn", "sinkhorn_core"]


def _tau_for(dtype):
    # |log u|, |log v| bound before absorbing: float32 kernels keep entries down
    # to ~e^-87, so a tighter bound keeps every significant entry representable.
    return 20.0 if np.dtype(dtype) == np.float32 else 50.0


class ScalingSinkhorn:
    """Stabilised scaling Sinkhorn on ``P = diag(u) K diag(v)``.

    The state after :meth:`start` and after each :meth:`sweep` has exact row
    marginals; ``self.err`` is the L1 column error (the full L1 marginal error
    of the current iterate) and comes for free from the fused kernel.
    """

    def __init__(self, a, b, M, reg, tau=None, K=None):
        self.a, self.b, self.M, self.reg = a, b, M, reg
        n, m = M.shape
        self.tau = _tau_for(M.dtype) if tau is None else float(tau)
        self.lo, self.hi = np.exp(-self.tau), np.exp(self.tau)
        self.K = np.empty((n, m), dtype=M.dtype) if K is None else K
        self.work = np.empty(m)
        self.u = np.ones(n)
        self.v = np.ones(m)
        self.w = np.empty(m)
        self.r = np.empty(n)
        self.n_absorb = 0

    def start(self, f_init=None):
        """Start from ``f_init`` (zeros by default) and do the first iteration.

        ``g`` starts at the c-transform ``min_i (M_ij - f_i)``, which makes the
        largest entry of every column of K equal to 1: the first ``g`` update
        (``v = b / Kᵀ1``) cannot divide by zero, whatever ``M / reg``.  In exact
        arithmetic the iterates are those of POT's ``ot.sinkhorn``.
        """
        M = self.M
        self.f = np.zeros(M.shape[0]) if f_init is None else f_init.copy()
        self.g = np.empty(M.shape[1])
        col_min_shifted(M, self.f, self.g)
        if not np.isfinite(self.g).all():
            raise ValueError("init[0] must have a finite entry")
        self._reform()
        self.n_absorb = 0
        return self.sweep()

    def resume(self, f, g):
        """Continue from potentials ``(f, g)``: form K (u = v = 1); returns the error."""
        self.f = np.array(f, dtype=np.float64)
        self.g = np.array(g, dtype=np.float64)
        self._reform()
        return self.err

    def absorbed(self):
        """Absorb u, v into f, g and K in place (no exponential); returns ``(f, g, K)``."""
        with np.errstate(divide="ignore"):
            self.f = self.f + self.reg * np.log(self.u)
            self.g = self.g + self.reg * np.log(self.v)
        np.multiply(self.K, self.u[:, None], out=self.K, casting="unsafe")
        np.multiply(self.K, self.v[None, :], out=self.K, casting="unsafe")
        self.u[:] = 1.0
        self.v[:] = 1.0
        return self.f, self.g, self.K

    def _reform(self):
        """Re-form K from f, g with unit scalings; recompute w = Kᵀ u and the error."""
        form_kernel(self.M, self.f, self.g, self.reg, self.K)
        self.u[:] = 1.0
        self.v[:] = 1.0
        marginals(self.K, self.u, self.v, self.r, self.w)
        self.n_absorb += 1
        self.err = float(np.abs(self.w - self.b).sum() + np.abs(self.r - self.a).sum())

    def _ok(self, lo, hi):
        return lo >= self.lo and hi <= self.hi

    def sweep(self):
        """One Sinkhorn iteration (g then f) in scaling form; absorbs when needed."""
        reg = self.reg
        with np.errstate(divide="ignore"):
            v_new = self.b / self.w
        vmin, vmax = v_new.min(), v_new.max()
        if not self._ok(vmin, vmax):
            # absorb u, then an exact log-domain g update (handles w_j = 0)
            self.f = self.f + reg * np.log(self.u)
            if np.isfinite(vmax) and vmin > 0:
                self.g = self.g + reg * np.log(v_new)
            else:
                self.g = log_update_g(self.M, self.f, self.b, reg, self.work)
            form_kernel(self.M, self.f, self.g, reg, self.K)
            self.u[:] = 1.0
            self.v[:] = 1.0
            self.n_absorb += 1
        else:
            self.v = v_new
        umin, umax = scaling_sweep(self.K, self.a, self.v, self.u, self.w)
        if not self._ok(umin, umax):
            self.g = self.g + reg * np.log(self.v)
            if np.isfinite(umax) and umin > 0:
                self.f = self.f + reg * np.log(self.u)
            else:
                self.f = log_update_f(self.M, self.g, self.a, reg)
            self._reform()
            return self.err
        self.err = float(np.abs(self.v * self.w - self.b).sum())
        return self.err

    def potentials(self):
        """Current ``(f + reg log u, g + reg log v)``."""
        return self.f + self.reg * np.log(self.u), self.g + self.reg * np.log(self.v)

    def state(self):
        return {"f": self.f, "g": self.g, "K": self.K, "u": self.u, "v": self.v}


class LogSinkhorn:
    """Pure log-domain Sinkhorn (log-sum-exp updates; no kernel matrix)."""

    def __init__(self, a, b, M, reg):
        self.a, self.b, self.M, self.reg = a, b, M, reg
        self.work = np.empty(M.shape[1])
        self.lc = np.empty(M.shape[1])

    def start(self, f_init=None):
        f = np.zeros(self.M.shape[0]) if f_init is None else f_init.copy()
        self.g = log_update_g(self.M, f, self.b, self.reg, self.work)
        return self._f_update()

    def _f_update(self):
        reg = self.reg
        self.f = log_update_f(self.M, self.g, self.a, reg)
        lse_cols(self.M, self.f, 1.0 / reg, self.lc, self.work)
        with np.errstate(over="ignore"):
            col = np.exp(self.g / reg + self.lc)
        self.err = float(np.abs(col - self.b).sum())
        return self.err

    def sweep(self):
        with np.errstate(divide="ignore"):
            self.g = self.reg * (np.log(self.b) - self.lc)
        return self._f_update()

    def potentials(self):
        return self.f, self.g

    def state(self):
        K = np.empty(self.M.shape, dtype=self.M.dtype)
        form_kernel(self.M, self.f, self.g, self.reg, K)
        return {"f": self.f, "g": self.g, "K": K,
                "u": np.ones(self.M.shape[0]), "v": np.ones(self.M.shape[1])}


def sinkhorn_core(a, b, M, reg, init, tol, max_iter, trace, *, method="stabilized",
                  tau=None):
    """Run Sinkhorn on one problem with positive weights; return the solver state."""
    if method == "log":
        solver = LogSinkhorn(a, b, M, reg)
    else:
        solver = ScalingSinkhorn(a, b, M, reg, tau=tau)
    err = solver.start(None if init is None else init[0])
    it = 1
    trace.record(err, it, it, 0, solver.potentials)
    while err > tol and it < max_iter and not trace.stopped:
        err = solver.sweep()
        it += 1
        if not np.isfinite(err):
            break
        trace.record(err, it, it, 0, solver.potentials, force=err <= tol)
    converged = bool(err <= tol)
    state = solver.state()
    state.update(
        n_sinkhorn=it, n_newton=0, converged=converged,
        message="converged" if converged else (
            "non-finite marginal error" if not np.isfinite(err) else "max_iter reached"),
        history={"n_absorb": getattr(solver, "n_absorb", 0)},
    )
    return state
