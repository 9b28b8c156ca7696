"""Work partitioning shared by the parallel kernels."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def balanced_splits(work_prefix, n_parts):
    """Split rows into ``n_parts`` contiguous chunks of about equal work.

    Parameters
    ----------
    work_prefix : int64 array of length n_rows + 1
        Prefix sums of per-row work (``indptr`` itself for nnz-balanced chunks,
        or the prefix sum of a product's flops).
    n_parts : int
        Number of chunks wanted (clipped to at least 1).

    Returns
    -------
    splits : int64 array of length n_parts + 1
        Row boundaries: chunk ``t`` covers rows ``splits[t]:splits[t + 1]``.
    """
    n_rows = work_prefix.shape[0] - 1
    n_parts = max(1, n_parts)
    splits = np.empty(n_parts + 1, dtype=np.int64)
    total = work_prefix[n_rows] - work_prefix[0]
    splits[0] = 0
    for t in range(1, n_parts):
        target = work_prefix[0] + (total * t) // n_parts
        # first row whose prefix reaches the target, also balancing row counts
        lo = np.searchsorted(work_prefix, target, side="left")
        lo = max(lo, splits[t - 1])
        by_rows = (n_rows * t) // n_parts
        if total == 0:
            lo = by_rows
        splits[t] = min(lo, n_rows)
    splits[n_parts] = n_rows
    return splits
