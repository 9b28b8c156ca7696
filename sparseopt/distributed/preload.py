"""Dask worker preload: load sparseopt's kernels before the worker takes tasks.

A fresh worker process (a new cluster, or the replacement the nanny starts
after a worker died) otherwise spends its first task importing Numba and
loading the compiled kernels from the on-disk cache, seconds during which the
scheduler already counts on it.  Preloads run before the worker registers
with the scheduler, so::

    dask.config.set({"distributed.worker.preload": ["sparseopt.distributed.preload"]})

(or ``dask worker --preload sparseopt.distributed.preload``) makes workers
join only once the kernels are ready.
"""

import numpy as np
import scipy.sparse as sp


def warm_kernels():
    """Call every chunk kernel once per value dtype (loads them from the Numba cache)."""
    from sparseopt.linalg import spgemm, spmm, spmm_t, spmv

    for dtype in (np.float32, np.float64):
        A = sp.csr_array((np.ones(3, dtype), np.array([0, 2, 1], np.int32),
                          np.array([0, 2, 3], np.int32)), shape=(2, 3))
        spmv(A, np.ones(3, dtype))
        spmm(A, np.ones((3, 2), dtype))
        spmm_t(A, np.ones((2, 2), dtype))
        spgemm(A, A.T.tocsr())


def dask_setup(worker=None):
    """Entry point called by dask when the worker starts."""
    warm_kernels()
