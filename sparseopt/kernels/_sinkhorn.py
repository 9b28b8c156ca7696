"""Fused Numba kernels for entropic optimal transport (Sinkhorn and SNS).

Every kernel streams the dense ``(n, m)`` kernel/plan matrix once, row by row,
so that a row stays in cache while it is used twice (a dot product, then an
``axpy`` into a column accumulator).  That halves the memory traffic of the
textbook two matrix-vector products per Sinkhorn sweep.

The matrix argument may be float32 or float64 (C-contiguous); every vector and
every accumulation is float64, so there are at most two compiled signatures per
kernel.
"""

import math

import numpy as np
from numba import njit

_FM = {"reassoc", "contract", "nsz"}  # vectorise reductions, keep inf/nan semantics

# Bins of the mass histogram: sign+exponent+3 mantissa bits of a float64 (2^(1/8) wide).
HIST_SHIFT = 49
HIST_BINS = 1 << (64 - HIST_SHIFT - 1)


@njit(cache=True, nogil=True, fastmath=_FM)
def scaling_sweep(K, a, v, u, w):
    """One fused half-sweep pair: ``u = a / (K v)`` then ``w = Kᵀ u``.

    Returns ``(umin, umax)``; ``umax`` is ``inf`` when some ``(K v)_i`` is zero.
    """
    n, m = K.shape
    w[:] = 0.0
    umin = np.inf
    umax = 0.0
    for i in range(n):
        Ki = K[i]
        s = 0.0
        for j in range(m):
            s += Ki[j] * v[j]
        if s > 0.0:
            ui = a[i] / s
        else:
            ui = np.inf
        u[i] = ui
        umin = min(umin, ui)
        umax = max(umax, ui)
        if ui < np.inf:
            for j in range(m):
                w[j] += ui * Ki[j]
    return umin, umax


@njit(cache=True, nogil=True, fastmath=_FM)
def marginals(K, x, y, r, c):
    """Marginals of ``P = diag(x) K diag(y)``: ``r = P 1``, ``c = Pᵀ 1``; returns ``ΣP``."""
    n, m = K.shape
    c[:] = 0.0
    for i in range(n):
        Ki = K[i]
        xi = x[i]
        s = 0.0
        for j in range(m):
            s += Ki[j] * y[j]
        r[i] = xi * s
        for j in range(m):
            c[j] += xi * Ki[j]
    total = 0.0
    for j in range(m):
        c[j] *= y[j]
        total += c[j]
    return total


@njit(cache=True, nogil=True, fastmath=_FM)
def plan_and_cost(K, x, y, M, P, r, c):
    """Write ``P = diag(x) K diag(y)`` (P's dtype) and its marginals; return ``<P, M>``."""
    n, m = K.shape
    c[:] = 0.0
    cost = 0.0
    for i in range(n):
        xi = x[i]
        s = 0.0
        ci = 0.0
        for j in range(m):
            p = xi * K[i, j] * y[j]
            P[i, j] = p
            s += p
            ci += p * M[i, j]
            c[j] += p
        r[i] = s
        cost += ci
    return cost


@njit(cache=True, nogil=True, fastmath=_FM)
def cost_of(K, x, y, M, r, c):
    """Marginals and ``<P, M>`` of ``P = diag(x) K diag(y)`` without writing P."""
    n, m = K.shape
    c[:] = 0.0
    cost = 0.0
    for i in range(n):
        xi = x[i]
        s = 0.0
        ci = 0.0
        for j in range(m):
            p = xi * K[i, j] * y[j]
            s += p
            ci += p * M[i, j]
            c[j] += p
        r[i] = s
        cost += ci
    return cost


@njit(cache=True, nogil=True, fastmath=_FM)
def gibbs_exponent(M, f, g, inv_reg, out):
    """``out = (f_i + g_j - M_ij) / reg`` (exponentiated afterwards by numpy's SIMD exp)."""
    n, m = M.shape
    for i in range(n):
        fi = f[i]
        for j in range(m):
            out[i, j] = (fi + g[j] - M[i, j]) * inv_reg


@njit(cache=True, nogil=True, fastmath=_FM)
def col_min_shifted(M, f, out):
    """``out_j = min_i (M_ij - f_i)`` over the rows with finite ``f_i``."""
    n, m = M.shape
    out[:] = np.inf
    for i in range(n):
        fi = f[i]
        if fi > -np.inf:
            for j in range(m):
                out[j] = min(out[j], M[i, j] - fi)


@njit(cache=True, nogil=True, fastmath=_FM)
def lse_rows(M, g, inv_reg, out):
    """``out_i = log Σ_j exp((g_j - M_ij)/reg)`` (two passes over each cached row)."""
    n, m = M.shape
    for i in range(n):
        mx = -np.inf
        for j in range(m):
            mx = max(mx, (g[j] - M[i, j]) * inv_reg)
        if mx == -np.inf:
            out[i] = -np.inf
            continue
        s = 0.0
        for j in range(m):
            s += math.exp((g[j] - M[i, j]) * inv_reg - mx)
        out[i] = mx + math.log(s)


@njit(cache=True, nogil=True, fastmath=_FM)
def lse_cols(M, f, inv_reg, out, work):
    """``out_j = log Σ_i exp((f_i - M_ij)/reg)``, streaming rows (``work``: m floats)."""
    n, m = M.shape
    mx = work
    mx[:] = -np.inf
    for i in range(n):
        fi = f[i]
        for j in range(m):
            mx[j] = max(mx[j], (fi - M[i, j]) * inv_reg)
    out[:] = 0.0
    for i in range(n):
        fi = f[i]
        for j in range(m):
            if mx[j] > -np.inf:
                out[j] += math.exp((fi - M[i, j]) * inv_reg - mx[j])
    for j in range(m):
        if mx[j] == -np.inf:
            out[j] = -np.inf
        else:
            out[j] = mx[j] + math.log(out[j])


@njit(cache=True, nogil=True, fastmath=_FM)
def marginals_hist(K, x, y, r, c, hist_mass, hist_count, buf, floor):
    """:func:`marginals` plus a histogram of the entries of P by magnitude.

    Bin ``k`` holds the entries whose float64 bit pattern shifted right by
    :data:`HIST_SHIFT` is ``k`` (bins ``2^(1/8)`` wide); ``hist_mass`` gets their
    mass and ``hist_count`` their number.  Entries below ``floor`` (> 0) are not
    binned but lumped into bin 1 (a cheap compare instead of a scatter); bin 0
    holds exact zeros when ``floor == 0`` (otherwise zeros are not counted).
    ``buf`` is a float64 work row (m).
    """
    n, m = K.shape
    c[:] = 0.0
    hist_mass[:] = 0.0
    hist_count[:] = 0
    bits = buf.view(np.int64)
    low_mass = 0.0
    low_count = 0
    for i in range(n):
        Ki = K[i]
        xi = x[i]
        s = 0.0
        for j in range(m):
            p = xi * Ki[j] * y[j]
            buf[j] = p
            s += p
        r[i] = s
        for j in range(m):
            c[j] += xi * Ki[j]
        for j in range(m):
            p = buf[j]
            if p < floor:
                if p > 0.0:
                    low_mass += p
                    low_count += 1
            else:
                k = bits[j] >> HIST_SHIFT
                hist_mass[k] += p
                hist_count[k] += 1
    hist_mass[1] += low_mass
    hist_count[1] += low_count
    total = 0.0
    for j in range(m):
        c[j] *= y[j]
        total += c[j]
    return total


@njit(cache=True, nogil=True)
def threshold_bin(hist_mass, hist_count, drop_mass, keep_count):
    """First kept bin: drop the lowest bins while their mass stays <= ``drop_mass``
    (and, when ``keep_count > 0``, while at least ``keep_count`` entries remain).

    Returns ``(bin, n_kept)``.
    """
    nb = hist_mass.shape[0]
    total_count = 0
    for k in range(nb):
        total_count += hist_count[k]
    acc = 0.0
    remaining = total_count
    k = 0
    while k < nb:
        if keep_count > 0:
            if remaining - hist_count[k] < keep_count:
                break
        else:
            if acc + hist_mass[k] > drop_mass:
                break
        acc += hist_mass[k]
        remaining -= hist_count[k]
        k += 1
    # zero entries (bin 0) are never kept
    if k == 0:
        remaining -= hist_count[0]
        k = 1
    return k, remaining


@njit(cache=True, nogil=True)
def build_csr(K, x, y, first_bin, nnz, indptr, indices, data, buf):
    """CSR of the entries of ``P = diag(x) K diag(y)`` whose histogram bin is >= ``first_bin``.

    ``nnz`` is the exact count from :func:`threshold_bin`; returns the count written.
    """
    n, m = K.shape
    bits = buf.view(np.int64)
    pos = 0
    indptr[0] = 0
    for i in range(n):
        Ki = K[i]
        xi = x[i]
        for j in range(m):
            buf[j] = xi * Ki[j] * y[j]
        for j in range(m):
            if (bits[j] >> HIST_SHIFT) >= first_bin and pos < nnz:
                indices[pos] = j
                data[pos] = buf[j]
                pos += 1
        indptr[i + 1] = pos
    return pos


@njit(cache=True, nogil=True, fastmath=_FM)
def schur_matvec(indptr, indices, data, inv_r, c, y, out):
    """``out = diag(c) y - Sᵀ diag(1/r) S y`` in one pass over the CSR matrix S."""
    n = indptr.shape[0] - 1
    m = c.shape[0]
    for j in range(m):
        out[j] = c[j] * y[j]
    for i in range(n):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * y[indices[k]]
        s *= inv_r[i]
        if s != 0.0:
            for k in range(indptr[i], indptr[i + 1]):
                out[indices[k]] -= s * data[k]


@njit(cache=True, nogil=True, fastmath=_FM)
def schur_diag(indptr, indices, data, inv_r, c, out):
    """Diagonal of ``diag(c) - Sᵀ diag(1/r) S`` (the Jacobi preconditioner)."""
    n = indptr.shape[0] - 1
    m = c.shape[0]
    for j in range(m):
        out[j] = c[j]
    for i in range(n):
        for k in range(indptr[i], indptr[i + 1]):
            out[indices[k]] -= data[k] * data[k] * inv_r[i]


@njit(cache=True, nogil=True, fastmath=_FM)
def csr_matvec(indptr, indices, data, y, out):
    """``out = S y`` for a CSR matrix S."""
    n = indptr.shape[0] - 1
    for i in range(n):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * y[indices[k]]
        out[i] = s


@njit(cache=True, nogil=True, fastmath=_FM)
def csr_rmatvec(indptr, indices, data, z, out):
    """``out = Sᵀ z`` for a CSR matrix S (scatter)."""
    n = indptr.shape[0] - 1
    out[:] = 0.0
    for i in range(n):
        zi = z[i]
        if zi != 0.0:
            for k in range(indptr[i], indptr[i + 1]):
                out[indices[k]] += zi * data[k]


# ---- masked dense variants: S = P * [P >= theta], P = diag(x) K diag(y), never stored.
# One streaming pass over K each; cheaper than CSR once S keeps more than ~1/8 of P.


@njit(cache=True, nogil=True, fastmath=_FM)
def masked_schur_matvec(K, x, y, theta, inv_r, c, z, out, buf):
    """``out = diag(c) z - Sᵀ diag(1/r) S z`` for the masked plan S (one pass)."""
    n, m = K.shape
    for j in range(m):
        out[j] = c[j] * z[j]
    for i in range(n):
        Ki = K[i]
        xi = x[i]
        s = 0.0
        for j in range(m):
            p = xi * Ki[j] * y[j]
            q = p if p >= theta else 0.0
            buf[j] = q
            s += q * z[j]
        s *= inv_r[i]
        for j in range(m):
            out[j] -= s * buf[j]


@njit(cache=True, nogil=True, fastmath=_FM)
def masked_rmatvec_diag(K, x, y, theta, w, inv_r, c, out, diag):
    """``out = Sᵀ w`` and ``diag = c - Σ_i S_ij² / r_i`` for the masked plan S."""
    n, m = K.shape
    out[:] = 0.0
    for j in range(m):
        diag[j] = c[j]
    for i in range(n):
        Ki = K[i]
        xi = x[i]
        wi = w[i]
        ri = inv_r[i]
        for j in range(m):
            p = xi * Ki[j] * y[j]
            q = p if p >= theta else 0.0
            out[j] += wi * q
            diag[j] -= q * q * ri


@njit(cache=True, nogil=True, fastmath=_FM)
def masked_matvec(K, x, y, theta, z, out):
    """``out = S z`` for the masked plan S."""
    n, m = K.shape
    for i in range(n):
        Ki = K[i]
        xi = x[i]
        s = 0.0
        for j in range(m):
            p = xi * Ki[j] * y[j]
            q = p if p >= theta else 0.0
            s += q * z[j]
        out[i] = s
