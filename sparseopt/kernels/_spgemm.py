"""Row-wise (Gustavson) sparse-times-sparse product ``C = A @ B`` for CSR.

Two passes, as in scipy's SMMP and SMASH's row-wise product:

1. ``spgemm_row_flops`` counts the multiply-adds of each output row; their
   prefix sum splits rows into chunks of equal work for the threads.
2. ``spgemm_symbolic`` counts the distinct columns of each output row, which
   gives ``C.indptr`` exactly (no over-allocation).
3. ``spgemm_numeric`` fills ``C.indices`` and ``C.data``.

Per row the accumulator is chosen by the row's flop count: a small open-
addressing hash table (linear probing, table size a power of two at least twice
the flops) when that table is much smaller than a dense accumulator of length
``n_cols`` and the dense accumulator would fall out of cache (wide ``B``),
otherwise the dense accumulator with a marker array.  Columns come
out in first-touch order (unsorted, no duplicates); ``sort=True`` sorts each row.
"""

import numpy as np
from numba import njit, prange

# a row uses the hash table when the dense accumulator would not stay in cache
# (more than _DENSE_MAX_COLS columns) and its table is at most n_cols / _DENSE_RATIO;
# below that size the dense accumulator measured faster (no probing)
_DENSE_MAX_COLS = 1 << 17
_DENSE_RATIO = 16
_EMPTY = -1
_TAG_PERIOD = 2**31 - 1


@njit(cache=True, nogil=True)
def _table_size(flops):
    size = 8
    while size < 2 * flops:
        size *= 2
    return size


@njit(cache=True, nogil=True)
def _use_hash(flops, n_cols):
    return n_cols > _DENSE_MAX_COLS and _table_size(flops) * _DENSE_RATIO <= n_cols


@njit(cache=True, nogil=True)
def spgemm_row_flops(a_indptr, a_indices, b_indptr):
    """Multiply-adds of each output row (int64), ``sum_k nnz(B[A[i, k]])``.

    Serial: it streams ``A``'s indices once and is cheap next to the passes.
    """
    n_rows = a_indptr.shape[0] - 1
    flops = np.zeros(n_rows, dtype=np.int64)
    for i in range(n_rows):
        f = 0
        for k in range(a_indptr[i], a_indptr[i + 1]):
            j = a_indices[k]
            f += b_indptr[j + 1] - b_indptr[j]
        flops[i] = f
    return flops


@njit(cache=True, nogil=True, parallel=True)
def spgemm_symbolic(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops, splits):
    """Distinct columns of each output row (int64), chunked by ``splits``."""
    n_rows = a_indptr.shape[0] - 1
    row_nnz = np.zeros(n_rows, dtype=np.int64)
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _symbolic_chunk(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops,
                        0, n_rows, row_nnz)
        return row_nnz
    for t in prange(n_parts):
        _symbolic_chunk(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops,
                        splits[t], splits[t + 1], row_nnz)
    return row_nnz


@njit(cache=True, nogil=True)
def _symbolic_chunk(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops, r0, r1,
                    row_nnz):
    max_flops = 0
    need_dense = False
    for i in range(r0, r1):
        if _use_hash(flops[i], n_cols):
            max_flops = max(max_flops, flops[i])
        else:
            need_dense = True
    marker = np.full(n_cols if need_dense else 0, _EMPTY, dtype=np.int32)
    table = np.empty(_table_size(max_flops), dtype=np.int64)
    for i in range(r0, r1):
        count = 0
        tag = np.int32((i - r0) % _TAG_PERIOD)
        if tag == 0 and i > r0:
            marker[:] = _EMPTY
        if _use_hash(flops[i], n_cols):
            size = _table_size(flops[i])
            mask = size - 1
            table[:size] = _EMPTY
            for k in range(a_indptr[i], a_indptr[i + 1]):
                j = a_indices[k]
                for kk in range(b_indptr[j], b_indptr[j + 1]):
                    col = b_indices[kk]
                    h = (col * 107) & mask
                    while True:
                        if table[h] == col:
                            break
                        if table[h] == _EMPTY:
                            table[h] = col
                            count += 1
                            break
                        h = (h + 1) & mask
        else:
            for k in range(a_indptr[i], a_indptr[i + 1]):
                j = a_indices[k]
                for kk in range(b_indptr[j], b_indptr[j + 1]):
                    col = b_indices[kk]
                    if marker[col] != tag:
                        marker[col] = tag
                        count += 1
        row_nnz[i] = count


@njit(cache=True, nogil=True)
def _sort_row(idx, vals):
    n = idx.shape[0]
    if n <= 32:
        for a in range(1, n):
            key = idx[a]
            v = vals[a]
            b = a - 1
            while b >= 0 and idx[b] > key:
                idx[b + 1] = idx[b]
                vals[b + 1] = vals[b]
                b -= 1
            idx[b + 1] = key
            vals[b + 1] = v
    else:
        order = np.argsort(idx)
        idx[:] = idx[order]
        vals[:] = vals[order]


@njit(cache=True, nogil=True, parallel=True)
def spgemm_numeric(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data,
                   n_cols, flops, splits, c_indptr, c_indices, c_data, sort):
    """Fill ``c_indices`` / ``c_data`` given ``c_indptr`` from the symbolic pass."""
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _numeric_chunk(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols,
                       flops, 0, a_indptr.shape[0] - 1, c_indptr, c_indices, c_data, sort)
        return
    for t in prange(n_parts):
        _numeric_chunk(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols,
                       flops, splits[t], splits[t + 1], c_indptr, c_indices, c_data, sort)


@njit(cache=True, nogil=True)
def _numeric_chunk(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols,
                   flops, r0, r1, c_indptr, c_indices, c_data, sort):
    max_flops = 0
    need_dense = False
    for i in range(r0, r1):
        if _use_hash(flops[i], n_cols):
            max_flops = max(max_flops, flops[i])
        else:
            need_dense = True
    n_dense = n_cols if need_dense else 0
    # int32 row tags keep marker + acc small enough to stay in cache
    marker = np.full(n_dense, _EMPTY, dtype=np.int32)
    acc = np.empty(n_dense, dtype=c_data.dtype)
    table = np.empty(_table_size(max_flops), dtype=np.int64)
    slot = np.empty(_table_size(max_flops), dtype=np.int64)
    for i in range(r0, r1):
        start = np.int64(c_indptr[i])
        n = 0
        tag = np.int32((i - r0) % _TAG_PERIOD)
        if tag == 0 and i > r0:
            marker[:] = _EMPTY
        if _use_hash(flops[i], n_cols):
            size = _table_size(flops[i])
            mask = size - 1
            table[:size] = _EMPTY
            for k in range(a_indptr[i], a_indptr[i + 1]):
                j = a_indices[k]
                a = a_data[k]
                for kk in range(b_indptr[j], b_indptr[j + 1]):
                    col = b_indices[kk]
                    h = (col * 107) & mask
                    while True:
                        if table[h] == col:
                            c_data[start + slot[h]] += a * b_data[kk]
                            break
                        if table[h] == _EMPTY:
                            table[h] = col
                            slot[h] = n
                            c_indices[start + n] = col
                            c_data[start + n] = a * b_data[kk]
                            n += 1
                            break
                        h = (h + 1) & mask
            if sort:
                _sort_row(c_indices[start:start + n], c_data[start:start + n])
        else:
            # Gustavson: accumulate in acc[col]; marker[col] == i marks the
            # columns touched by this row, listed in c_indices as they appear
            for k in range(a_indptr[i], a_indptr[i + 1]):
                j = a_indices[k]
                a = a_data[k]
                for kk in range(b_indptr[j], b_indptr[j + 1]):
                    col = b_indices[kk]
                    v = a * b_data[kk]
                    if marker[col] != tag:
                        marker[col] = tag
                        acc[col] = v
                        c_indices[start + n] = col
                        n += 1
                    else:
                        acc[col] += v
            if sort:  # only the indices move; values are gathered in order
                c_indices[start:start + n].sort()
            for t in range(start, start + n):
                c_data[t] = acc[c_indices[t]]

