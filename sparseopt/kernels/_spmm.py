"""CSR sparse-times-dense kernels: ``A @ x``, ``A @ X`` and ``A.T @ X``.

``A`` is given by ``(indptr, indices, data)`` with ``n_rows = len(indptr) - 1``.
None of these kernels needs sorted or duplicate-free indices: duplicates add up,
as in scipy.

Every kernel takes ``splits``, row boundaries of chunks of about equal nnz
(:func:`sparseopt.kernels._partition.balanced_splits`): chunks run in parallel,
and a single chunk runs serially without entering Numba's thread pool (whose
launch costs more than small products).  Callers pass index arrays viewed as
unsigned (``uint32``) when they are int32: Numba then drops the negative-index
wraparound test from every gather, which is worth about 2x on SpMV.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _spmv_rows(indptr, indices, data, x, out, r0, r1):
    for i in range(r0, r1):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * x[indices[k]]
        out[i] = acc


@njit(cache=True, nogil=True, parallel=True)
def csr_spmv(indptr, indices, data, x, out, splits):
    """``out[i] = sum_k data[k] * x[indices[k]]`` over row ``i``."""
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _spmv_rows(indptr, indices, data, x, out, 0, indptr.shape[0] - 1)
        return
    for t in prange(n_parts):
        _spmv_rows(indptr, indices, data, x, out, splits[t], splits[t + 1])


@njit(cache=True, nogil=True)
def _spmm_rows(indptr, indices, data, X, out, r0, r1):
    # four stored entries per pass over the output row: a quarter of the
    # load/store traffic on out[i], and an inner loop over the dense columns
    # that LLVM vectorizes
    n_vec = X.shape[1]
    for i in range(r0, r1):
        for c in range(n_vec):
            out[i, c] = 0
        k = indptr[i]
        end = indptr[i + 1]
        while k + 4 <= end:
            a0 = data[k]
            a1 = data[k + 1]
            a2 = data[k + 2]
            a3 = data[k + 3]
            j0 = indices[k]
            j1 = indices[k + 1]
            j2 = indices[k + 2]
            j3 = indices[k + 3]
            for c in range(n_vec):
                out[i, c] += a0 * X[j0, c] + a1 * X[j1, c] + a2 * X[j2, c] + a3 * X[j3, c]
            k += 4
        while k < end:
            a = data[k]
            j = indices[k]
            for c in range(n_vec):
                out[i, c] += a * X[j, c]
            k += 1


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm(indptr, indices, data, X, out, splits):
    """``out = A @ X`` for C-ordered ``X`` of shape ``(n_cols, k)``."""
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _spmm_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    for t in prange(n_parts):
        _spmm_rows(indptr, indices, data, X, out, splits[t], splits[t + 1])


@njit(cache=True, nogil=True, parallel=True)
def add_buffers(out, buffers):
    """``out += buffers.sum(axis=0)``, in parallel over the rows of ``out``.

    The reduction step of the transposed kernels, whose row chunks scatter into
    private buffers.
    """
    for j in prange(out.shape[0]):
        for t in range(buffers.shape[0]):
            for c in range(out.shape[1]):
                out[j, c] += buffers[t, j, c]


@njit(cache=True, nogil=True)
def _spmm_t_rows(indptr, indices, data, X, out, r0, r1):
    n_vec = X.shape[1]
    for i in range(r0, r1):
        for k in range(indptr[i], indptr[i + 1]):
            a = data[k]
            j = indices[k]
            for c in range(n_vec):
                out[j, c] += a * X[i, c]


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm_t(indptr, indices, data, X, out, splits):
    """``out = A.T @ X`` without forming ``A.T``.

    Row chunk ``t`` scatters into a private buffer, so threads never write the
    same memory; the buffers are then summed in parallel over output rows.
    With one chunk the scatter goes straight into ``out``.  ``X`` has shape
    ``(n_rows, k)``, ``out`` ``(n_cols, k)``.
    """
    n_parts = splits.shape[0] - 1
    out[:] = 0
    if n_parts == 1:
        _spmm_t_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    n_out, n_vec = out.shape
    buffers = np.zeros((n_parts - 1, n_out, n_vec), dtype=out.dtype)
    for t in prange(n_parts):
        # chunk 0 writes out directly: one buffer fewer to allocate and reduce
        target = out if t == 0 else buffers[t - 1]
        _spmm_t_rows(indptr, indices, data, X, target, splits[t], splits[t + 1])
    add_buffers(out, buffers)
