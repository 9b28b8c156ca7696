"""Fused elementwise Numba kernels of the robust PCA solvers (CPU only).

Each robust PCA iteration makes a few passes over ``m x n`` dense arrays
(soft or hard thresholding, a residual, a multiplier update).  With NumPy each
pass allocates temporaries and re-reads its operands; these kernels fuse a whole
step into one pass over flat (C-contiguous, raveled) arrays.  The
solvers fall back to equivalent array-namespace code on CuPy inputs
(:func:`ialm_sparse_step_xp` and friends), which also document what the
kernels compute.

The kernels are serial on purpose: each pass is memory-bound (about 1 ms per
million entries), and ``parallel=True`` measured 20-36x *slower* on the shared
2-core host (thread wake-ups under contention) while compiling slower from a
cold cache.

``mask`` is a ``uint8`` array of the same length (1 = observed) or an empty
array meaning "everything observed"; the flag is tested once per entry, which
costs nothing next to the memory traffic and halves the compiled signatures.
"""

import numpy as np
from numba import njit

__all__ = [
    "altproj_threshold_step",
    "altproj_threshold_step_xp",
    "ialm_dual_step",
    "ialm_dual_step_xp",
    "ialm_sparse_step",
    "ialm_sparse_step_xp",
]


@njit(cache=True, nogil=True)
def ialm_sparse_step(D, A, Y, inv_mu, thresh, mask, E, X):
    """E = soft(D - A + Y/mu, lam/mu) on observed entries (no shrinkage elsewhere);
    X = D - E + Y/mu (the next SVD input)."""
    has_mask = mask.size > 0
    for i in range(D.size):
        y = Y[i] * inv_mu
        t = D[i] - A[i] + y
        if has_mask and mask[i] == 0:
            e = t
        elif t > thresh:
            e = t - thresh
        elif t < -thresh:
            e = t + thresh
        else:
            e = 0.0
        E[i] = e
        X[i] = D[i] - e + y


@njit(cache=True, nogil=True)
def ialm_dual_step(D, A, E, Y, mu):
    """Z = D - A - E; Y += mu * Z in place; return ||Z||_F^2."""
    acc = 0.0
    for i in range(D.size):
        z = D[i] - A[i] - E[i]
        Y[i] += mu * z
        acc += z * z
    return acc


@njit(cache=True, nogil=True)
def altproj_threshold_step(D, L, zeta, inv_p, mask, S, Z):
    """S = hard(D - L, zeta) on observed entries (0 elsewhere);
    Z = L + P_obs(D - L - S) / p (the partial-observation gradient step; with
    everything observed, p = 1 and Z = D - S); return ||P_obs(D - L - S)||^2."""
    has_mask = mask.size > 0
    acc = 0.0
    for i in range(D.size):
        if has_mask and mask[i] == 0:
            S[i] = 0.0
            Z[i] = L[i]
        else:
            r = D[i] - L[i]
            if r > zeta or r < -zeta:
                S[i] = r
                Z[i] = L[i]
            else:
                S[i] = 0.0
                Z[i] = L[i] + inv_p * r
                acc += r * r
    return acc


# ---------------------------------------------------------------------------
# array-namespace twins (CuPy, or NumPy for reference in tests)


def ialm_sparse_step_xp(xp, D, A, Y, inv_mu, thresh, mask, E, X):
    """Array-namespace version of :func:`ialm_sparse_step`."""
    t = D - A + Y * inv_mu
    e = xp.sign(t) * xp.maximum(xp.abs(t) - thresh, 0)
    if mask.size:
        e = xp.where(mask != 0, e, t)
    E[...] = e
    X[...] = D - e + Y * inv_mu


def ialm_dual_step_xp(xp, D, A, E, Y, mu):
    """Array-namespace version of :func:`ialm_dual_step`."""
    z = D - A - E
    Y += mu * z
    return float(xp.sum(z * z))


def altproj_threshold_step_xp(xp, D, L, zeta, inv_p, mask, S, Z):
    """Array-namespace version of :func:`altproj_threshold_step`."""
    r = D - L
    big = xp.abs(r) > zeta
    if mask.size:
        obs = mask != 0
        big &= obs
        small = obs & ~big
    else:
        small = ~big
    S[...] = xp.where(big, r, 0)
    rs = xp.where(small, r, 0)
    Z[...] = L + inv_p * rs
    return float(xp.sum(rs * rs))


def kernel_mask(mask, size, xp=np):
    """The ``mask`` argument of the kernels: flat uint8, or empty when all observed."""
    if mask is None:
        return xp.zeros(0, dtype=xp.uint8)
    return xp.ascontiguousarray(mask).reshape(size).view(xp.uint8) \
        if mask.dtype == xp.bool_ else xp.ascontiguousarray(mask, dtype=xp.uint8).reshape(size)
