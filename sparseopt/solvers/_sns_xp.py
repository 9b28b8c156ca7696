"""Backend-generic (device) Sinkhorn-Newton-Sparse: the CPU algorithm on ``nx.xp`` arrays.

Stage 1 is :class:`~sparseopt.solvers._ot_xp.ScalingSinkhornXP`.  Stage 2 keeps
the CPU's algorithm step for step (:mod:`sparseopt.solvers.sns`): the same
sparsification rule (a histogram of the plan's entries with bins ``2^(1/8)``
wide, the same bit-pattern bins as the CPU; the threshold is chosen on the host
from the 16384-bin histogram with the CPU's own ``threshold_bin``), the same
Levenberg-Marquardt shift, Jacobi-PCG on the Schur complement, Armijo line
search, absorption and Sinkhorn fallback.  What changes is how the pieces run:

* **Hessian products.**  The sparsified coupling ``S`` (entries of ``P`` at or
  above the threshold ``theta``) is held either as a dense masked array,
  multiplied by two GEMVs per CG iteration, or as two CSR matrices, ``S`` and
  ``Sᵀ``, both built from the dense mask by ``nonzero`` (no sort, no atomics),
  multiplied by the backend's SpMV kernel.  Dense when ``S`` keeps more than
  ``dense_fraction`` (default 1/4) of the entries: a GEMV streams 4 or 8 bytes
  per entry at full bandwidth, a CSR SpMV 8-12 bytes per stored entry plus
  gathers of the vector, and the CSR pair costs three extra passes over the
  plan to build.  See ``docs/gpu.md`` for why sparse Newton stays the default.
* **Histogram.**  Entries below ``floor`` (``2^-10`` times the last threshold)
  are compacted away before binning (one reduction gives their mass), so the
  scatter into bins touches few entries and few atomics collide.
* **Synchronisation.**  One small transfer per Newton step for the histogram,
  one for the slope, one per CG iteration (its residual norm, the CPU's
  stopping test), one per line-search trial (the trial's mass, error and
  ranges, all computed before the transfer).
"""

import math

import numpy as np

from sparseopt.kernels._sinkhorn import HIST_BINS
from sparseopt.solvers._ot_xp import (
    ScalingSinkhornXP,
    form_kernel_xp,
    marginals_xp,
    matvec,
    rmatvec,
)
from sparseopt.solvers._xp_checks import fetch
from sparseopt.solvers.sns import _bin_value, _Sparsifier

__all__ = ["hist_bins", "histogram_xp", "pcg_xp", "sns_core_xp"]

_INT32_MAX = np.iinfo(np.int32).max


def pcg_xp(nx, matvec_fn, rhs, diag, rtol, maxiter):
    """Jacobi-preconditioned CG from 0 on device vectors; returns ``(x, n_iter)``.

    The iterates of :func:`sparseopt.solvers.sns.pcg`; each iteration fetches
    the curvature test and the residual norm together (one synchronisation).
    """
    xp = nx.xp
    x = xp.zeros_like(rhs)
    (bnorm,) = fetch(nx, xp.linalg.vector_norm(rhs))
    if bnorm == 0.0:
        return x, 0
    inv_d = 1.0 / diag
    res = rhs
    z = res * inv_d
    p = z
    rz = res @ z
    target = rtol * bnorm
    it = 0
    while it < maxiter:
        Ap = matvec_fn(p)
        pAp = p @ Ap
        ok = (pAp > 0.0) & xp.isfinite(pAp)
        alpha = xp.where(ok, rz / xp.where(ok, pAp, 1.0), 0.0)
        x = x + alpha * p
        res = res - alpha * Ap
        ok_h, rnorm = fetch(nx, ok, xp.linalg.vector_norm(res))
        if not ok_h:
            break
        it += 1
        if rnorm <= target:
            break
        z = res * inv_d
        rz_new = res @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, it


def hist_bins(xp, p):
    """Histogram bin of positive float64 values: their bit pattern shifted right by 49.

    ``(biased exponent) * 8 + (top three mantissa bits)``, computed exactly from
    ``floor(log2 p)`` corrected by exact powers of two; subnormals go to bin 1.
    """
    e = xp.floor(xp.log2(p))
    e = xp.where(xp.pow(2.0, e) > p, e - 1.0, e)
    e = xp.where(2.0 * xp.pow(2.0, e) <= p, e + 1.0, e)
    frac = p / xp.pow(2.0, e)
    k = (e + 1023.0) * 8.0 + xp.floor((frac - 1.0) * 8.0)
    return xp.astype(xp.clip(k, 1.0, HIST_BINS - 1.0), xp.int64)


def _bincount(xp, k, weights, nbins):
    """Per-bin sums of ``weights`` and counts (``bincount`` where the namespace has it)."""
    fn = getattr(xp, "bincount", None)
    if fn is not None:
        return fn(k, weights=weights, minlength=nbins), fn(k, minlength=nbins)
    # array-API fallback (no bincount in the standard): sort, then bin edges
    order = xp.argsort(k)
    ks = xp.take(k, order)
    cw = xp.cumulative_sum(xp.take(weights, order), include_initial=True)
    pos = xp.searchsorted(ks, xp.arange(nbins + 1, dtype=k.dtype))
    return xp.take(cw, pos[1:]) - xp.take(cw, pos[:-1]), pos[1:] - pos[:-1]


def histogram_xp(nx, P, floor):
    """Host ``(hist_mass, hist_count)`` of the entries of ``P`` (a device array).

    As :func:`sparseopt.kernels._sinkhorn.marginals_hist`: positive entries are
    binned by magnitude; with ``floor > 0`` the entries below it are lumped
    into bin 1 (their mass only).  Zeros are not counted.
    """
    xp = nx.xp
    flat = xp.reshape(P, (-1,))
    vals = xp.astype(flat[flat >= floor] if floor > 0.0 else flat[flat > 0.0], xp.float64)
    mass, count = _bincount(xp, hist_bins(xp, vals), vals, HIST_BINS)
    parts = [xp.astype(mass, xp.float64), xp.astype(count, xp.float64)]
    if floor > 0.0:
        low = xp.sum(xp.where(flat < floor, flat, 0.0), dtype=xp.float64)
        parts.append(xp.reshape(low, (1,)))
    host = np.asarray(nx.to_numpy(xp.concat(parts)))
    hist_mass = host[:HIST_BINS].copy()
    hist_count = host[HIST_BINS:2 * HIST_BINS].astype(np.int64)
    if floor > 0.0:
        hist_mass[1] += host[-1]
    return hist_mass, hist_count


def _theta(first, dtype_is_f32):
    """Smallest value of bin ``first``, rounded up to float32 when the plan is float32."""
    theta = _bin_value(first)
    if dtype_is_f32:
        t32 = np.float32(theta)
        if float(t32) < theta:
            t32 = np.nextafter(t32, np.float32(np.inf))
        theta = float(t32)
    return theta


def _csr_of(nx, A, mask):
    """``(indptr, indices, data)`` of the entries of ``A`` under ``mask`` (row-major)."""
    xp = nx.xp
    counts = xp.count_nonzero(mask, axis=1)
    indptr = xp.cumulative_sum(xp.astype(counts, xp.int64), include_initial=True)
    cols = xp.nonzero(mask)[1]
    data = A[mask]
    nnz = int(data.shape[0])
    idx = xp.int32 if max(nnz, *A.shape) < _INT32_MAX else xp.int64
    return xp.astype(indptr, idx), xp.astype(cols, idx), data


class _Hessian:
    """Products with the sparsified coupling ``S`` and its Schur complement."""

    def __init__(self, nx, P, theta, dense):
        self.nx, self.xp = nx, nx.xp
        xp = self.xp
        self.dense = dense
        if dense:
            self.S = xp.where(P >= theta, P, 0.0)
        else:
            mask = P >= theta
            self.S = _csr_of(nx, P, mask)
            self.ST = _csr_of(nx, P.T, mask.T)

    def _spmv(self, csr, v):
        indptr, indices, data = csr
        out = self.nx.empty((indptr.shape[0] - 1,), data.dtype)
        self.nx.spmv(indptr, indices, data, self.xp.astype(v, data.dtype), out)
        return self.xp.astype(out, self.xp.float64, copy=False)

    def s(self, v):
        """``S v``."""
        return matvec(self.xp, self.S, v) if self.dense else self._spmv(self.S, v)

    def st(self, w):
        """``Sᵀ w``."""
        return rmatvec(self.xp, self.S, w) if self.dense else self._spmv(self.ST, w)

    def st_squared(self, w):
        """``(S∘S)ᵀ w`` (for the Jacobi preconditioner)."""
        xp = self.xp
        if self.dense:
            return rmatvec(xp, self.S * self.S, w)
        indptr, indices, data = self.ST
        return self._spmv((indptr, indices, data * data), w)


def sns_core_xp(nx, a, b, M, reg, init, tol, max_iter, trace, *, sinkhorn_iter=20,
                switch_tol=None, sparsify="mass", delta=1e-3, density=2.0, cg_tol=None,
                max_cg_iter=200, armijo=1e-4, max_backtrack=30, absorb_threshold=30.0,
                fallback_sweeps=10, shift=1.0, dense_fraction=0.25, tau=None):
    """Run SNS on one problem with positive weights; return the solver state.

    The algorithm of :func:`sparseopt.solvers.sns.sns_core` on ``nx.xp`` arrays;
    ``dense_fraction`` chooses the representation of ``S`` (see the module notes).
    """
    xp = nx.xp
    n, m = M.shape
    # ---- stage 1: stabilised Sinkhorn --------------------------------------
    sk = ScalingSinkhornXP(nx, a, b, M, reg, tau=tau)
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
    is_f32 = P0.dtype == xp.float32
    lim = 60.0 if is_f32 else 700.0
    absorb_threshold = min(absorb_threshold, lim / 2)
    # products accumulate in the plan's dtype: its rounding bounds the mass noise
    eps = float(np.finfo(np.float32 if is_f32 else np.float64).eps)
    ones_n = xp.ones(n, dtype=xp.float64)
    ones_m = xp.ones(m, dtype=xp.float64)
    s, t, x, y = xp.zeros_like(ones_n), xp.zeros_like(ones_m), ones_n, ones_m
    sparsifier = _Sparsifier(n, m, sparsify, delta, density)  # host-side threshold rule

    def measure():
        r_, c_, mass_ = marginals_xp(xp, P0, x, y)
        err_, mass_h = fetch(nx, xp.sum(xp.abs(r_ - a)) + xp.sum(xp.abs(c_ - b)), mass_)
        return r_, c_, err_, mass_h

    r, c, err, mass = measure()
    n_newton = n_cg = n_reabsorb = n_fallback = 0
    n_sweeps_fb = fallback_sweeps
    mu = shift
    nm = max(n, m)

    def potentials():
        return f0 + s, g0 + t

    while err > tol and n_newton < max_iter and not trace.stopped:
        n_newton += 1
        ga = a - r
        gb = b - c
        P = (xp.astype(x, P0.dtype)[:, None] * P0) * xp.astype(y, P0.dtype)[None, :]
        hist_mass, hist_count = histogram_xp(nx, P, sparsifier.floor)
        th = sparsifier.threshold(mass, err, hist_mass, hist_count)
        if th is None:  # the threshold lies among the lumped entries: exact pass
            sparsifier.floor = 0.0
            hist_mass, hist_count = histogram_xp(nx, P, 0.0)
            th = sparsifier.threshold(mass, err, hist_mass, hist_count)
        first, nnz = th
        history["nnz_per_row"].append(nnz / n)
        lam = mu * err / nm
        cs = c + lam
        inv_r = 1.0 / (r + lam)
        hess = _Hessian(nx, P, _theta(first, is_f32), dense=nnz > dense_fraction * n * m)
        del P
        sparsifier.floor = _bin_value(first) * 2.0**-10
        tmp = hess.st(reg * ga * inv_r)
        diag = xp.maximum(cs - hess.st_squared(inv_r), 1e-10 * cs)
        rhs = reg * gb - tmp

        def schur(p, hess=hess, inv_r=inv_r, cs=cs):
            return cs * p - hess.st(inv_r * hess.s(p))

        dt, k = pcg_xp(nx, schur, rhs, diag, 1e-2 if cg_tol is None else cg_tol,
                       max_cg_iter)
        n_cg += k
        history["cg_iter"].append(k)
        ds = (reg * ga - hess.s(dt)) * inv_r
        del hess
        slope, lin = fetch(nx, ga @ ds + gb @ dt, a @ ds + b @ dt)
        slack = 64 * eps * reg * mass
        alpha = 1.0
        accepted = False
        if slope > 0 and math.isfinite(slope):
            for _ in range(max_backtrack):
                s_try = s + alpha * ds
                t_try = t + alpha * dt
                x_try = xp.exp(s_try / reg)
                y_try = xp.exp(t_try / reg)
                r_try, c_try, mass_d = marginals_xp(xp, P0, x_try, y_try)
                err_d = xp.sum(xp.abs(r_try - a)) + xp.sum(xp.abs(c_try - b))
                smax, smin, tmax, tmin, mass_try, err_try = fetch(
                    nx, xp.max(s_try), xp.min(s_try), xp.max(t_try), xp.min(t_try),
                    mass_d, err_d)
                hi = max(smax + tmax, smax, tmax) / reg
                lo = min(smin, tmin) / reg
                if hi < lim and lo > -700.0:
                    gain = alpha * lin - reg * (mass_try - mass)
                    if math.isfinite(mass_try) and gain >= armijo * alpha * slope - slack:
                        accepted = True
                        break
                alpha *= 0.5
        history["step"].append(alpha if accepted else 0.0)
        if accepted:
            s, t, r, c, mass, err = s_try, t_try, r_try, c_try, mass_try, err_try
            n_sweeps_fb = fallback_sweeps
            mu = mu * 0.25 if alpha == 1.0 else mu * 4.0
            # gauge: P is invariant under (s - k, t + k); centre the ranges
            kappa = 0.25 * (smax + smin - tmax - tmin)
            s = s - kappa
            t = t + kappa
            x = xp.exp(s / reg)
            y = xp.exp(t / reg)
            if (smax + tmax) / reg > absorb_threshold or min(
                    smin - kappa, tmin + kappa) / reg < -lim / 2:
                f0 = f0 + s
                g0 = g0 + t
                P0 = form_kernel_xp(xp, M, f0, g0, reg)
                s, t, x, y = xp.zeros_like(ones_n), xp.zeros_like(ones_m), ones_n, ones_m
                n_reabsorb += 1
                r, c, err, mass = measure()
            trace.record(err, n_sk + n_newton, n_sk, n_newton, potentials,
                         force=err <= tol)
        else:
            # no acceptable step: stabilised Sinkhorn sweeps from the current
            # potentials (their number doubles while Newton keeps failing)
            n_fallback += 1
            mu *= 16.0
            sk = ScalingSinkhornXP(nx, a, b, M, reg, tau=tau, K=P0)
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
            s, t, x, y = xp.zeros_like(ones_n), xp.zeros_like(ones_m), ones_n, ones_m
            r, c, err, mass = measure()

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
