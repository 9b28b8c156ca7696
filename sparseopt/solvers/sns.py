"""Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024) with a mass-based sparsifier.

Stage 1 runs stabilised Sinkhorn sweeps.  Stage 2 takes Newton steps on the
concave dual

    D(f, g) = <a, f> + <b, g> - reg Σ_ij exp((f_i + g_j - M_ij) / reg),

whose Hessian is ``-(1/reg) [[diag(r), P], [Pᵀ, diag(c)]]`` with ``r = P1``,
``c = Pᵀ1``.  The off-diagonal block ``P`` is replaced by a sparse ``S``
keeping the largest entries (all but a fraction ``delta`` of the mass, or the
paper's fixed count), the diagonal stays exact, and the system is solved by
Jacobi-preconditioned CG on the Schur complement
``diag(c) - Sᵀ diag(1/r) S`` (positive semi-definite, singular along the
constant vector only when nothing is dropped).  The step length comes from
Armijo backtracking on D.

The Newton stage works on scalings of an absorbed base plan
``P = diag(e^{s/reg}) P0 diag(e^{t/reg})``, so a line-search trial costs one
streaming pass over ``P0`` (marginals, mass and the histogram that sets the
next sparsity threshold), and ``P0`` is re-exponentiated from ``M`` only when
``|s|/reg`` or ``|t|/reg`` exceed ``absorb_threshold``.
"""

import math

import numpy as np

from sparseopt.kernels._sinkhorn import (
    HIST_BINS,
    HIST_SHIFT,
    build_csr,
    csr_matvec,
    csr_rmatvec,
    marginals_hist,
    masked_matvec,
    masked_rmatvec_diag,
    masked_schur_matvec,
    schur_diag,
    schur_matvec,
    threshold_bin,
)
from sparseopt.solvers._ot_core import form_kernel
from sparseopt.solvers.sinkhorn import ScalingSinkhorn

__all__ = ["pcg", "sns_core"]

_EPS = np.finfo(np.float64).eps


def pcg(matvec, rhs, diag, rtol, maxiter):
    """Jacobi-preconditioned conjugate gradient from 0; returns ``(x, n_iter)``."""
    x = np.zeros_like(rhs)
    res = rhs.copy()
    bnorm = np.linalg.norm(rhs)
    if bnorm == 0.0:
        return x, 0
    inv_d = 1.0 / diag
    z = res * inv_d
    p = z.copy()
    rz = float(res @ z)
    Ap = np.empty_like(rhs)
    target = rtol * bnorm
    it = 0
    while it < maxiter:
        matvec(p, Ap)
        pAp = float(p @ Ap)
        if pAp <= 0.0 or not np.isfinite(pAp):
            break
        alpha = rz / pAp
        x += alpha * p
        res -= alpha * Ap
        it += 1
        if np.linalg.norm(res) <= target:
            break
        z = res * inv_d
        rz_new = float(res @ z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, it


def _bin_value(k):
    """Smallest float64 of histogram bin ``k``."""
    return float(np.array([k << HIST_SHIFT], dtype=np.int64).view(np.float64)[0])


class _Sparsifier:
    """Builds the sparse off-diagonal block S from the histogram of the last pass.

    ``floor`` (updated after each build, ``2^-10`` times the last threshold)
    lets the next histogram pass lump the many negligible entries instead of
    binning them; when the threshold would fall among them, the caller
    recomputes an exact histogram.
    """

    def __init__(self, n, m, sparsify, delta, density):
        self.delta = delta
        self.keep = 0 if sparsify == "mass" else max(1, math.ceil(density * n))
        self.buf = np.empty(m)
        self.indptr = np.empty(n + 1, dtype=np.int64)
        self.floor = 0.0

    def threshold(self, mass, err, hist_mass, hist_count):
        """First kept bin and count, or None when the histogram is too coarse.

        The mass rule drops at most ``min(delta * mass, err)``: the fixed
        fraction far from the solution, the marginal error near it (SSNS ties
        the dropped mass to the gradient norm), so the Newton steps keep
        converging fast on degenerate problems (W1 costs) whose plans have
        many entries of comparable size.
        """
        if self.keep:
            first, nnz = threshold_bin(hist_mass, hist_count, np.inf, self.keep)
        else:
            first, nnz = threshold_bin(hist_mass, hist_count,
                                       min(self.delta * mass, err), 0)
        if self.floor > 0.0 and first <= 1:
            return None
        return first, nnz

    def build(self, P0, x, y, first, nnz):
        indices = np.empty(nnz, dtype=np.int64)
        data = np.empty(nnz)
        build_csr(P0, x, y, first, nnz, self.indptr, indices, data, self.buf)
        return self.indptr, indices, data


def sns_core(a, b, M, reg, init, tol, max_iter, trace, *, sinkhorn_iter=20,
             switch_tol=None, sparsify="mass", delta=1e-3, density=2.0, cg_tol=None,
             max_cg_iter=200, armijo=1e-4, max_backtrack=30, absorb_threshold=30.0,
             fallback_sweeps=10, shift=1.0, dense_fraction=0.125, tau=None):
    """Run SNS on one problem with positive weights; return the solver state."""
    n, m = M.shape
    # ---- stage 1: stabilised Sinkhorn --------------------------------------
    sk = ScalingSinkhorn(a, b, M, reg, tau=tau)
    err = sk.start(None if init is None else init[0])
    n_sk = 1
    trace.record(err, n_sk, n_sk, 0, sk.potentials)
    switch = -1.0 if switch_tol is None else switch_tol
    while err > tol and err > switch and n_sk < sinkhorn_iter and not trace.stopped:
        err = sk.sweep()
        n_sk += 1
        trace.record(err, n_sk, n_sk, 0, sk.potentials, force=err <= tol)
    history = {"nnz_per_row": [], "step": [], "cg_iter": []}
    if err <= tol or trace.stopped:
        state = sk.state()
        state.update(n_sinkhorn=n_sk, n_newton=0, n_cg=0, converged=err <= tol,
                     message="converged in stage 1" if err <= tol else "stopped",
                     history=history)
        return state

    # ---- stage 2: sparse Newton on scalings of an absorbed base plan ---------
    f0, g0, P0 = sk.absorbed()
    # revival bound: an entry of P0 that underflowed must stay negligible after
    # scaling by exp((s_i + t_j)/reg)
    lim = 700.0 if P0.dtype == np.float64 else 60.0
    absorb_threshold = min(absorb_threshold, lim / 2)
    s = np.zeros(n)
    t = np.zeros(m)
    x = np.ones(n)
    y = np.ones(m)
    r = np.empty(n)
    c = np.empty(m)
    hist_mass = np.empty(HIST_BINS)
    hist_count = np.empty(HIST_BINS, dtype=np.int64)
    buf = np.empty(m)
    sparsifier = _Sparsifier(n, m, sparsify, delta, density)
    mass = marginals_hist(P0, x, y, r, c, hist_mass, hist_count, buf, sparsifier.floor)
    err = float(np.abs(r - a).sum() + np.abs(c - b).sum())
    r_try, c_try = np.empty(n), np.empty(m)
    hm_try, hc_try = np.empty(HIST_BINS), np.empty(HIST_BINS, dtype=np.int64)
    Sy = np.empty(n)
    tmp = np.empty(m)
    n_newton = 0
    n_cg = 0
    n_reabsorb = 0
    n_fallback = 0
    n_sweeps_fb = fallback_sweeps
    mu = shift
    nm = max(n, m)

    def potentials():
        return f0 + s, g0 + t

    while err > tol and n_newton < max_iter and not trace.stopped:
        n_newton += 1
        ga = a - r
        gb = b - c
        th = sparsifier.threshold(mass, err, hist_mass, hist_count)
        if th is None:  # the threshold lies among the lumped entries: exact pass
            sparsifier.floor = 0.0
            mass = marginals_hist(P0, x, y, r, c, hist_mass, hist_count, buf, 0.0)
            th = sparsifier.threshold(mass, err, hist_mass, hist_count)
        first, nnz = th
        history["nnz_per_row"].append(nnz / n)
        # Levenberg-Marquardt shift lam (SSNS): vanishes with the error
        lam = mu * err / nm
        rs = r + lam
        cs = c + lam
        inv_r = 1.0 / rs
        diag = np.empty(m)
        if nnz > dense_fraction * n * m:
            # S keeps a large part of P: apply it masked on the fly, one pass over
            # P0 per product, instead of building a CSR matrix
            theta = _bin_value(first)
            masked_rmatvec_diag(P0, x, y, theta, reg * ga * inv_r, inv_r, cs, tmp, diag)

            def matvec(p, out, P0=P0, x=x, y=y, theta=theta, inv_r=inv_r, cs=cs):
                masked_schur_matvec(P0, x, y, theta, inv_r, cs, p, out, buf)

            def s_matvec(p, out, P0=P0, x=x, y=y, theta=theta):
                masked_matvec(P0, x, y, theta, p, out)
        else:
            indptr, indices, data = sparsifier.build(P0, x, y, first, nnz)
            csr_rmatvec(indptr, indices, data, reg * ga * inv_r, tmp)
            schur_diag(indptr, indices, data, inv_r, cs, diag)

            def matvec(p, out, indptr=indptr, indices=indices, data=data, inv_r=inv_r,
                       cs=cs):
                schur_matvec(indptr, indices, data, inv_r, cs, p, out)

            def s_matvec(p, out, indptr=indptr, indices=indices, data=data):
                csr_matvec(indptr, indices, data, p, out)
        sparsifier.floor = _bin_value(first) * 2.0**-10
        rhs = reg * gb - tmp
        np.maximum(diag, 1e-10 * cs, out=diag)
        dt, k = pcg(matvec, rhs, diag, 1e-2 if cg_tol is None else cg_tol, max_cg_iter)
        n_cg += k
        history["cg_iter"].append(k)
        s_matvec(dt, Sy)
        ds = (reg * ga - Sy) * inv_r
        slope = float(ga @ ds + gb @ dt)
        lin = float(a @ ds + b @ dt)
        slack = 64 * _EPS * reg * mass
        alpha = 1.0
        accepted = False
        if slope > 0 and np.isfinite(slope):
            for _ in range(max_backtrack):
                s_try = s + alpha * ds
                t_try = t + alpha * dt
                hi = max(s_try.max() + t_try.max(), s_try.max(), t_try.max()) / reg
                lo = min(s_try.min(), t_try.min()) / reg
                if hi < lim and lo > -700.0:
                    x_try = np.exp(s_try / reg)
                    y_try = np.exp(t_try / reg)
                    mass_try = marginals_hist(P0, x_try, y_try, r_try, c_try,
                                              hm_try, hc_try, buf, sparsifier.floor)
                    gain = alpha * lin - reg * (mass_try - mass)
                    if np.isfinite(mass_try) and gain >= armijo * alpha * slope - slack:
                        accepted = True
                        break
                alpha *= 0.5
        history["step"].append(alpha if accepted else 0.0)
        if accepted:
            s, t, x, y = s_try, t_try, x_try, y_try
            r, r_try = r_try, r
            c, c_try = c_try, c
            hist_mass, hm_try = hm_try, hist_mass
            hist_count, hc_try = hc_try, hist_count
            mass = mass_try
            n_sweeps_fb = fallback_sweeps
            mu = mu * 0.25 if alpha == 1.0 else mu * 4.0
            # gauge: P is invariant under (s - k, t + k); centre the ranges
            kappa = 0.25 * (s.max() + s.min() - t.max() - t.min())
            s = s - kappa
            t = t + kappa
            x = np.exp(s / reg)
            y = np.exp(t / reg)
            if (s.max() + t.max()) / reg > absorb_threshold or min(
                    s.min(), t.min()) / reg < -lim / 2:
                f0 = f0 + s
                g0 = g0 + t
                form_kernel(M, f0, g0, reg, P0)
                s, t, x, y = np.zeros(n), np.zeros(m), np.ones(n), np.ones(m)
                n_reabsorb += 1
                mass = marginals_hist(P0, x, y, r, c, hist_mass, hist_count, buf,
                                      sparsifier.floor)
            err = float(np.abs(r - a).sum() + np.abs(c - b).sum())
            trace.record(err, n_sk + n_newton, n_sk, n_newton, potentials,
                         force=err <= tol)
        else:
            # no acceptable step: stabilised Sinkhorn sweeps from the current
            # potentials (their number doubles while Newton keeps failing)
            n_fallback += 1
            mu *= 16.0
            sk = ScalingSinkhorn(a, b, M, reg, tau=tau, K=P0)
            err = sk.resume(f0 + s, g0 + t)
            for _ in range(n_sweeps_fb):
                err = sk.sweep()
                n_sk += 1
                trace.record(err, n_sk + n_newton, n_sk, n_newton, sk.potentials,
                             force=err <= tol)
                if err <= tol or trace.stopped:
                    break
            n_sweeps_fb = min(2 * n_sweeps_fb, 10_000)
            f0, g0, P0 = sk.absorbed()
            s, t, x, y = np.zeros(n), np.zeros(m), np.ones(n), np.ones(m)
            mass = marginals_hist(P0, x, y, r, c, hist_mass, hist_count, buf,
                                  sparsifier.floor)
            err = float(np.abs(r - a).sum() + np.abs(c - b).sum())

    history["n_reabsorb"] = n_reabsorb
    history["n_fallback"] = n_fallback
    for key in ("nnz_per_row", "step", "cg_iter"):
        history[key] = np.asarray(history[key])
    return {
        "f": f0, "g": g0, "K": P0, "u": x, "v": y, "n_sinkhorn": n_sk,
        "n_newton": n_newton, "n_cg": n_cg, "converged": err <= tol,
        "message": "converged" if err <= tol else "max_iter reached",
        "history": history,
    }
