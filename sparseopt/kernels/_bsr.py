"""BSR sparse-times-dense kernels: ``A @ X`` and ``A.T @ X``.

``A`` is given by block row pointers ``indptr``, block column ``indices`` and
``data`` of shape ``(n_blocks, R, C)``.  Chunks of block rows (``splits``, of
about equal block count) run in parallel; a single chunk runs serially.
Each dense block is applied four columns (or rows, for the transpose) at a
time, so every pass over an output row of length ``k`` does four
multiply-adds per element: a quarter of the output traffic of a naive block
loop, with a vectorized inner loop.  ``A.T @ X`` scatters into private buffers
per chunk, then reduces, as the CSR kernel does.
"""

import numpy as np
from numba import njit, prange

from sparseopt.kernels._spmm import add_buffers


@njit(cache=True, nogil=True)
def _bsr_rows(indptr, indices, data, X, out, b0, b1):
    R = data.shape[1]
    C = data.shape[2]
    n_vec = X.shape[1]
    for ib in range(b0, b1):
        for r in range(R):
            for v in range(n_vec):
                out[ib * R + r, v] = 0
        for kb in range(indptr[ib], indptr[ib + 1]):
            x0 = indices[kb] * C
            for r in range(R):
                o = ib * R + r
                c = 0
                while c + 4 <= C:
                    a0 = data[kb, r, c]
                    a1 = data[kb, r, c + 1]
                    a2 = data[kb, r, c + 2]
                    a3 = data[kb, r, c + 3]
                    j = x0 + c
                    for v in range(n_vec):
                        out[o, v] += (a0 * X[j, v] + a1 * X[j + 1, v]
                                      + a2 * X[j + 2, v] + a3 * X[j + 3, v])
                    c += 4
                while c < C:
                    a = data[kb, r, c]
                    j = x0 + c
                    for v in range(n_vec):
                        out[o, v] += a * X[j, v]
                    c += 1


@njit(cache=True, nogil=True, parallel=True)
def bsr_spmm(indptr, indices, data, X, out, splits):
    """``out = A @ X`` for BSR ``A``; ``X`` C-ordered of shape ``(n_cols, k)``."""
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _bsr_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    for t in prange(n_parts):
        _bsr_rows(indptr, indices, data, X, out, splits[t], splits[t + 1])


@njit(cache=True, nogil=True)
def _bsr_t_rows(indptr, indices, data, X, out, b0, b1):
    R = data.shape[1]
    C = data.shape[2]
    n_vec = X.shape[1]
    for ib in range(b0, b1):
        for kb in range(indptr[ib], indptr[ib + 1]):
            o0 = indices[kb] * C
            for c in range(C):
                o = o0 + c
                r = 0
                while r + 4 <= R:
                    a0 = data[kb, r, c]
                    a1 = data[kb, r + 1, c]
                    a2 = data[kb, r + 2, c]
                    a3 = data[kb, r + 3, c]
                    i = ib * R + r
                    for v in range(n_vec):
                        out[o, v] += (a0 * X[i, v] + a1 * X[i + 1, v]
                                      + a2 * X[i + 2, v] + a3 * X[i + 3, v])
                    r += 4
                while r < R:
                    a = data[kb, r, c]
                    i = ib * R + r
                    for v in range(n_vec):
                        out[o, v] += a * X[i, v]
                    r += 1


@njit(cache=True, nogil=True, parallel=True)
def bsr_spmm_t(indptr, indices, data, X, out, splits):
    """``out = A.T @ X`` for BSR ``A`` without forming the transpose (race-free)."""
    n_parts = splits.shape[0] - 1
    out[:] = 0
    if n_parts == 1:
        _bsr_t_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    n_out, n_vec = out.shape
    buffers = np.zeros((n_parts - 1, n_out, n_vec), dtype=out.dtype)
    for t in prange(n_parts):
        target = out if t == 0 else buffers[t - 1]
        _bsr_t_rows(indptr, indices, data, X, target, splits[t], splits[t + 1])
    add_buffers(out, buffers)
