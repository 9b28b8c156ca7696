"""CSR sparse-times-dense kernels: ``A @ x``, ``A @ X`` and ``A.T @ X``.

``A`` is given by ``(indptr, indices, data)`` with ``n_rows = len(indptr) - 1``.
None of these kernels needs sorted or duplicate-free indices: duplicates add up,
as in scipy.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def csr_spmv(indptr, indices, data, x, out):
    """``out[i] = sum_k data[k] * x[indices[k]]`` over row ``i``; rows in parallel."""
    n_rows = indptr.shape[0] - 1
    for i in prange(n_rows):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * x[indices[k]]
        out[i] = acc


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm(indptr, indices, data, X, out):
    """``out = A @ X`` for C-ordered ``X`` of shape ``(n_cols, k)``; rows in parallel.

    Each output row is accumulated in a contiguous ``k``-vector: one gather of a
    row of ``X`` per stored entry, a streaming write per output row.
    """
    n_rows = indptr.shape[0] - 1
    n_vec = X.shape[1]
    for i in prange(n_rows):
        row = out[i]
        for c in range(n_vec):
            row[c] = 0
        for k in range(indptr[i], indptr[i + 1]):
            a = data[k]
            xr = X[indices[k]]
            for c in range(n_vec):
                row[c] += a * xr[c]


@njit(cache=True, nogil=True)
def _csr_spmm_t_rows(indptr, indices, data, X, out, r0, r1):
    n_vec = X.shape[1]
    for i in range(r0, r1):
        xr = X[i]
        for k in range(indptr[i], indptr[i + 1]):
            a = data[k]
            o = out[indices[k]]
            for c in range(n_vec):
                o[c] += a * xr[c]


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm_t(indptr, indices, data, X, out, splits):
    """``out = A.T @ X`` without forming ``A.T``.

    Row chunk ``t`` (rows ``splits[t]:splits[t+1]``) scatters into a private
    buffer, so threads never write the same memory; the buffers are then summed
    in parallel over output rows.  With one chunk the scatter goes straight into
    ``out``.  ``X`` has shape ``(n_rows, k)``, ``out`` ``(n_cols, k)``.
    """
    n_parts = splits.shape[0] - 1
    out[:] = 0
    if n_parts == 1:
        _csr_spmm_t_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    n_out, n_vec = out.shape
    buffers = np.zeros((n_parts, n_out, n_vec), dtype=out.dtype)
    for t in prange(n_parts):
        _csr_spmm_t_rows(indptr, indices, data, X, buffers[t], splits[t], splits[t + 1])
    for j in prange(n_out):
        for t in range(n_parts):
            b = buffers[t, j]
            for c in range(n_vec):
                out[j, c] += b[c]
