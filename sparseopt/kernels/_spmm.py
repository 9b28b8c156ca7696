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
    # positions as unsigned 64-bit, so int64 indptr and indices skip Numba's
    # negative-index test as the uint32 views do (1.3-1.5x on int64 input);
    # two accumulators split the chain of dependent adds (short rows gain most)
    one = np.uint64(1)
    two = np.uint64(2)
    for i in range(r0, r1):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        acc0 = 0.0
        acc1 = 0.0
        while k + two <= end:
            acc0 += data[k] * x[np.uint64(indices[k])]
            acc1 += data[k + one] * x[np.uint64(indices[k + one])]
            k += two
        if k < end:
            acc0 += data[k] * x[np.uint64(indices[k])]
        out[i] = acc0 + acc1


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


@njit(cache=True, nogil=True)
def _column_span(indptr, indices, r0, r1):
    """Smallest and largest column index stored in rows ``r0:r1`` (``(0, -1)`` if none)."""
    lo = np.int64(1) << 62
    hi = np.int64(-1)
    for k in range(indptr[r0], indptr[r1]):
        j = np.int64(indices[k])
        lo = min(lo, j)
        hi = max(hi, j)
    if hi < 0:
        lo = np.int64(0)
    return lo, hi


@njit(cache=True, nogil=True)
def _own_interval(lo, hi, t):
    """Largest interval found by trimming ``[lo[t], hi[t]]`` until no other span meets it.

    A span inside the interval splits it: the longer side is kept.  Returns
    ``(a, b)`` with ``a > b`` when nothing is left.
    """
    a = lo[t]
    b = hi[t]
    changed = True
    while changed and a <= b:
        changed = False
        for s in range(lo.shape[0]):
            if s == t or hi[s] < lo[s] or hi[s] < a or lo[s] > b:
                continue  # the same chunk, an empty span, or no overlap
            if lo[s] <= a:
                a = hi[s] + 1
            elif hi[s] >= b:
                b = lo[s] - 1
            elif lo[s] - a >= b - hi[s]:
                b = lo[s] - 1
            else:
                a = hi[s] + 1
            changed = True
    return a, b


@njit(cache=True, nogil=True)
def _spmm_t_rows_split(indptr, indices, data, X, out, buf, r0, r1, lo, ex_lo, ex_hi):
    """Scatter of rows ``r0:r1``: columns in ``[ex_lo, ex_hi]`` straight into ``out``,
    the others into ``buf`` (row ``j - lo`` left of ``ex_lo``, packed after them right of
    ``ex_hi``)."""
    n_vec = X.shape[1]
    n_left = ex_lo - lo
    for i in range(r0, r1):
        for k in range(indptr[i], indptr[i + 1]):
            a = data[k]
            j = np.int64(indices[k])
            if j >= ex_lo and j <= ex_hi:
                for c in range(n_vec):
                    out[j, c] += a * X[i, c]
            else:
                jb = j - lo if j < ex_lo else n_left + (j - ex_hi - 1)
                for c in range(n_vec):
                    buf[jb, c] += a * X[i, c]


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm_t(indptr, indices, data, X, out, splits):
    """``out = A.T @ X`` without forming ``A.T``.

    Row chunks scatter in parallel.  Chunk ``t`` spans the columns
    ``[lo_t, hi_t]`` of its stored entries; the part of that span no other
    chunk's span reaches is its own, and it writes there straight into ``out``.
    Its other columns go to a private buffer, summed into ``out`` afterwards, so
    threads never write the same memory.  Chunk 0 writes everything straight
    into ``out`` (no other chunk writes there directly).  On banded and
    block-structured matrices the spans barely overlap and the buffers are
    small; on scattered ones they cover every column (one buffer of ``out``'s
    size per extra thread).  With one chunk the scatter goes straight into
    ``out``.  ``X`` has shape ``(n_rows, k)``, ``out`` ``(n_cols, k)``.
    """
    n_parts = splits.shape[0] - 1
    out[:] = 0
    if n_parts == 1:
        _spmm_t_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    n_vec = out.shape[1]
    lo = np.empty(n_parts, np.int64)
    hi = np.empty(n_parts, np.int64)
    for t in range(n_parts):  # serial: one read of the indices, no parallel region
        lo[t], hi[t] = _column_span(indptr, indices, splits[t], splits[t + 1])
    # own interval of chunk t: its span minus every other chunk's span
    ex_lo = np.empty(n_parts, np.int64)
    ex_hi = np.empty(n_parts, np.int64)
    offset = np.zeros(n_parts + 1, np.int64)
    for t in range(n_parts):
        a, b = _own_interval(lo, hi, t)
        if t == 0 or a > b:  # chunk 0: all direct; no own interval: all buffered
            a, b = (lo[t], hi[t]) if t == 0 else (hi[t] + 1, hi[t])
        ex_lo[t] = a
        ex_hi[t] = b
        n_buf = 0 if t == 0 else (a - lo[t]) + (hi[t] - b)
        offset[t + 1] = offset[t] + n_buf
    buf = np.zeros((offset[n_parts], n_vec), dtype=out.dtype)
    for t in prange(n_parts):
        if t == 0:
            _spmm_t_rows(indptr, indices, data, X, out, splits[0], splits[1])
        elif ex_lo[t] > ex_hi[t] and lo[t] == 0:  # all buffered, from column 0
            _spmm_t_rows(indptr, indices, data, X, buf[offset[t]:offset[t + 1]],
                         splits[t], splits[t + 1])
        else:
            _spmm_t_rows_split(indptr, indices, data, X, out, buf[offset[t]:offset[t + 1]],
                               splits[t], splits[t + 1], lo[t], ex_lo[t], ex_hi[t])
    # one parallel pass over the output rows any buffer covers
    j_min = lo[1:].min()
    j_max = hi[1:].max()
    for j in prange(j_min, j_max + 1):
        for t in range(1, n_parts):
            if j < lo[t] or j > hi[t] or (j >= ex_lo[t] and j <= ex_hi[t]):
                continue
            r = offset[t] + (j - lo[t] if j < ex_lo[t] else ex_lo[t] - lo[t] + j - ex_hi[t] - 1)
            for c in range(n_vec):
                out[j, c] += buf[r, c]
