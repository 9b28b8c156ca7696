"""Canonical form of compressed rows: sorted column indices, no duplicates.

The same kernels serve CSR (one value per index) and BSR (one block per
index): ``data`` is indexed on its first axis only.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def row_order_flags(indptr, indices):
    """Return ``(sorted, no_duplicates)`` for the rows of a compressed matrix.

    ``sorted`` means non-decreasing indices within every row; ``no_duplicates``
    is only meaningful when ``sorted`` holds (it is computed on sorted rows).
    """
    is_sorted = True
    no_dups = True
    n_rows = indptr.shape[0] - 1
    for i in range(n_rows):
        for k in range(indptr[i] + 1, indptr[i + 1]):
            if indices[k] < indices[k - 1]:
                return False, False
            if indices[k] == indices[k - 1]:
                no_dups = False
    return is_sorted, no_dups


@njit(cache=True, nogil=True)
def _insertion_sort_row(idx, perm):
    n = idx.shape[0]
    for a in range(1, n):
        key = idx[a]
        p = perm[a]
        b = a - 1
        while b >= 0 and idx[b] > key:
            idx[b + 1] = idx[b]
            perm[b + 1] = perm[b]
            b -= 1
        idx[b + 1] = key
        perm[b + 1] = p


@njit(cache=True, nogil=True, parallel=True)
def sort_rows(indptr, indices):
    """Return ``(sorted_indices, perm)``: per-row stable sort of the indices.

    ``perm`` maps positions of the output to positions of the input, so the
    data follows as ``data[perm]``.  Short rows use insertion sort, long rows
    a merge sort.
    """
    n_rows = indptr.shape[0] - 1
    out = indices.copy()
    perm = np.arange(indices.shape[0])
    for i in prange(n_rows):
        lo = indptr[i]
        hi = indptr[i + 1]
        if hi - lo <= 32:
            _insertion_sort_row(out[lo:hi], perm[lo:hi])
        else:
            order = np.argsort(indices[lo:hi], kind="mergesort")
            for a in range(hi - lo):
                out[lo + a] = indices[lo + order[a]]
                perm[lo + a] = lo + order[a]
    return out, perm


@njit(cache=True, nogil=True)
def count_unique_per_row(indptr, sorted_indices):
    """Number of distinct indices in each row of a row-sorted matrix (int64)."""
    n_rows = indptr.shape[0] - 1
    counts = np.zeros(n_rows, dtype=np.int64)
    for i in range(n_rows):
        c = 0
        for k in range(indptr[i], indptr[i + 1]):
            if k == indptr[i] or sorted_indices[k] != sorted_indices[k - 1]:
                c += 1
        counts[i] = c
    return counts


@njit(cache=True, nogil=True)
def merge_duplicates(indptr, sorted_indices, data, new_indptr, new_indices, new_data):
    """Sum the data of equal indices of row-sorted rows into the new arrays.

    ``data`` may be 1-D (CSR) or 3-D (BSR blocks); entries are summed along the
    first axis.
    """
    n_rows = indptr.shape[0] - 1
    for i in range(n_rows):
        out = new_indptr[i] - 1
        for k in range(indptr[i], indptr[i + 1]):
            if k == indptr[i] or sorted_indices[k] != sorted_indices[k - 1]:
                out += 1
                new_indices[out] = sorted_indices[k]
                new_data[out] = data[k]
            else:
                new_data[out] += data[k]
