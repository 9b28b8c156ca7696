"""BSR sparse-times-dense kernels: ``A @ X`` and ``A.T @ X``.

``A`` is given by block row pointers ``indptr``, block column ``indices`` and
``data`` of shape ``(n_blocks, R, C)``.  Block rows are independent, so
``A @ X`` runs block rows in parallel; ``A.T @ X`` scatters into private
buffers per chunk of block rows, then reduces, as the CSR kernel does.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _block_row_product(indptr, indices, data, X, out_rows, ib):
    # out_rows (R, k) += sum over blocks of row ib: block (R, C) @ X[j*C:(j+1)*C]
    R = data.shape[1]
    C = data.shape[2]
    n_vec = X.shape[1]
    for kb in range(indptr[ib], indptr[ib + 1]):
        x0 = indices[kb] * C
        blk = data[kb]
        for r in range(R):
            o = out_rows[r]
            for c in range(C):
                a = blk[r, c]
                if a != 0:
                    xr = X[x0 + c]
                    for v in range(n_vec):
                        o[v] += a * xr[v]


@njit(cache=True, nogil=True, parallel=True)
def bsr_spmm(indptr, indices, data, X, out):
    """``out = A @ X`` for BSR ``A``; ``X`` C-ordered of shape ``(n_cols, k)``."""
    R = data.shape[1]
    n_block_rows = indptr.shape[0] - 1
    for ib in prange(n_block_rows):
        rows = out[ib * R:(ib + 1) * R]
        rows[:] = 0
        _block_row_product(indptr, indices, data, X, rows, ib)


@njit(cache=True, nogil=True)
def _bsr_spmm_t_rows(indptr, indices, data, X, out, b0, b1):
    R = data.shape[1]
    C = data.shape[2]
    n_vec = X.shape[1]
    for ib in range(b0, b1):
        for kb in range(indptr[ib], indptr[ib + 1]):
            o0 = indices[kb] * C
            blk = data[kb]
            for r in range(R):
                xr = X[ib * R + r]
                for c in range(C):
                    a = blk[r, c]
                    if a != 0:
                        o = out[o0 + c]
                        for v in range(n_vec):
                            o[v] += a * xr[v]


@njit(cache=True, nogil=True, parallel=True)
def bsr_spmm_t(indptr, indices, data, X, out, splits):
    """``out = A.T @ X`` for BSR ``A`` without forming the transpose (race-free)."""
    n_parts = splits.shape[0] - 1
    out[:] = 0
    if n_parts == 1:
        _bsr_spmm_t_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    n_out, n_vec = out.shape
    buffers = np.zeros((n_parts, n_out, n_vec), dtype=out.dtype)
    for t in prange(n_parts):
        _bsr_spmm_t_rows(indptr, indices, data, X, buffers[t], splits[t], splits[t + 1])
    for j in prange(n_out):
        for t in range(n_parts):
            b = buffers[t, j]
            for c in range(n_vec):
                out[j, c] += b[c]
