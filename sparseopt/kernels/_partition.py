"""Work partitioning shared by the parallel kernels."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def balanced_splits(work_prefix, n_parts, row_cost=0):
    """Split rows into ``n_parts`` contiguous chunks of about equal work.

    The work of rows ``0..i-1`` is taken as
    ``w(i) = work_prefix[i] - work_prefix[0] + row_cost * i``, and split ``t``
    is the first row with ``w(i) >= t * w(n_rows) / n_parts`` (a binary search:
    ``w`` is non-decreasing).

    Parameters
    ----------
    work_prefix : int array of length n_rows + 1
        Prefix sums of per-row work (``indptr`` itself for nnz-balanced chunks,
        or the prefix sum of a product's flops).
    n_parts : int
        Number of chunks wanted (clipped to at least 1).
    row_cost : int
        Work charged per row on top of ``work_prefix``: the loop setup and the
        mispredicted loop exit a row costs whatever its length.  On power-law
        matrices, whose short rows gather in some chunks, nnz alone leaves the
        chunk with the most rows last to finish.

    Returns
    -------
    splits : int64 array of length n_parts + 1
        Row boundaries: chunk ``t`` covers rows ``splits[t]:splits[t + 1]``.
    """
    n_rows = work_prefix.shape[0] - 1
    n_parts = max(1, n_parts)
    splits = np.empty(n_parts + 1, dtype=np.int64)
    base = np.int64(work_prefix[0])
    total = np.int64(work_prefix[n_rows]) - base + row_cost * n_rows
    splits[0] = 0
    for t in range(1, n_parts):
        if total == 0:
            splits[t] = (n_rows * t) // n_parts
            continue
        target = (total * t) // n_parts
        lo = splits[t - 1]
        hi = n_rows
        while lo < hi:
            mid = (lo + hi) // 2
            if np.int64(work_prefix[mid]) - base + row_cost * mid < target:
                lo = mid + 1
            else:
                hi = mid
        splits[t] = lo
    splits[n_parts] = n_rows
    return splits
