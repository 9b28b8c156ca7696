"""Fused Monarch products: two block-diagonal GEMM stages with the permutations.

``M @ X = P_out (L (G (R X))))`` with ``L`` and ``R`` block-diagonal (the data
arrays of their BSR containers, shapes ``(l, s, rr)`` and ``(k, rq, p)``) and
``G``, ``P_out`` row permutations given as index arrays.  Each diagonal block
is one BLAS GEMM (``np.dot`` with ``out=``, compiled by Numba to a direct
``?gemm`` call) on a contiguous slice of the C-ordered ``(rows, batch)``
operand; each permutation is applied as contiguous row copies while the block
result is still in cache.  Compared with the generic BSR kernel
(:mod:`sparseopt.kernels._bsr`), which runs scalar loops per block row, the
GEMM does the register blocking, which matters from blocks of about 16 x 16
on.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def monarch_matmul(Lb, Rb, mid_dst, out_pos, X, out):
    """``out = M @ X``; ``X`` of shape ``(k * p, B)``, ``out`` of shape ``(l * s, B)``.

    ``mid_dst[i]`` is the row of the stacked ``L`` input that row ``i`` of the
    stacked ``R`` output feeds; ``out_pos[i]`` the output row of row ``i`` of
    the stacked ``L`` output.  All arrays C-contiguous, one float dtype.
    """
    k, rq, p = Rb.shape
    l, s, rr = Lb.shape
    B = X.shape[1]
    mid = np.empty((l * rr, B), dtype=X.dtype)
    tmp = np.empty((rq, B), dtype=X.dtype)
    for kb in range(k):
        np.dot(Rb[kb], X[kb * p:(kb + 1) * p], tmp)
        base = kb * rq
        for i in range(rq):
            mid[mid_dst[base + i]] = tmp[i]
    tmp2 = np.empty((s, B), dtype=X.dtype)
    for lb in range(l):
        np.dot(Lb[lb], mid[lb * rr:(lb + 1) * rr], tmp2)
        base = lb * s
        for i in range(s):
            out[out_pos[base + i]] = tmp2[i]


@njit(cache=True, nogil=True)
def monarch_matmul_t(Lb, Rb, mid_dst, out_pos, Y, out):
    """``out = M.T @ Y``; ``Y`` of shape ``(l * s, B)``, ``out`` of shape ``(k * p, B)``.

    Same arguments as :func:`monarch_matmul`; the blocks are used transposed
    (BLAS ``trans`` flag, no copy) and the permutations are read as gathers.
    """
    k, rq, p = Rb.shape
    l, s, rr = Lb.shape
    B = Y.shape[1]
    z = np.empty((s, B), dtype=Y.dtype)
    mid = np.empty((l * rr, B), dtype=Y.dtype)
    for lb in range(l):
        base = lb * s
        for i in range(s):
            z[i] = Y[out_pos[base + i]]
        np.dot(Lb[lb].T, z, mid[lb * rr:(lb + 1) * rr])
    v = np.empty((rq, B), dtype=Y.dtype)
    for kb in range(k):
        base = kb * rq
        for i in range(rq):
            v[i] = mid[mid_dst[base + i]]
        np.dot(Rb[kb].T, v, out[kb * p:(kb + 1) * p])
