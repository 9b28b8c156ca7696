"""Row-partitioned data for the distributed solvers: one map-and-sum per pass.

A solver step needs a sum over the row blocks of a per-block quantity
(:math:`X_i^\\top r_i`, :math:`\\|r_i\\|^2`, ...).  :class:`RowBlocks` holds the
design ``X`` and the target ``y`` as dask arrays with the same row chunks,
persisted on the workers once, and evaluates ``sum_i fn(X_i, y_i, **args)``
with ``dask.array.blockwise`` (one task per block) and dask's tree reduction.
Lost blocks are recomputed from their lineage (the source matrix or files)
by the scheduler; the solver itself keeps no state on the workers, so a
worker dying mid-solve costs a recomputation, never a wrong result.

Without a distributed client and for in-memory (NumPy/scipy) input the same
block functions run in-process in a loop (:class:`LocalBlocks`): the solver
code is identical, only the executor differs.
"""

import itertools

import numpy as np
import scipy.sparse as sp

from sparseopt.distributed._arrays import _dask, chunks_are_sparse, is_dask_array
from sparseopt.distributed._client import compute, persist

__all__ = ["LocalBlocks", "RowBlocks", "make_blocks"]


def _default_n_blocks(client):
    if client is None:
        return 1
    n_workers = len(client.scheduler_info().get("workers", {})) or 1
    return 2 * n_workers


class RowBlocks:
    """``X`` (n, p) and ``y`` (n,) as persisted dask arrays with matching row chunks."""

    def __init__(self, X, y, client):
        _, da = _dask()
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})
        if is_dask_array(y):
            y = y.rechunk((X.chunks[0],))
        else:
            y = da.from_array(np.asarray(y), chunks=(X.chunks[0],))
        self.client = client
        self.X, self.y = persist(X, client), persist(y, client)
        self.shape = X.shape
        self.dtype = np.dtype(X.dtype)
        self.sparse = chunks_are_sparse(X)

    def map_sum(self, fn, size, **kwargs):
        """``sum_i fn(X_i, y_i, **kwargs)`` for a block function returning ``size`` floats."""
        _, da = _dask()
        parts = da.blockwise(_as_row, "ik", self.X, "ij", self.y, "i", fn=fn,
                             new_axes={"k": size}, adjust_chunks={"i": 1},
                             concatenate=True, dtype=np.float64,
                             meta=np.empty((0, 0), np.float64), **kwargs)
        (total,) = compute(parts.sum(axis=0, split_every=8), client=self.client)
        return np.asarray(total, dtype=np.float64)


def _as_row(X_blk, y_blk, fn, **kwargs):
    return np.asarray(fn(X_blk, y_blk, **kwargs), dtype=np.float64)[None, :]


class LocalBlocks:
    """The same interface on in-memory blocks, looping in-process (no scheduler)."""

    def __init__(self, X, y, n_blocks=1):
        n = X.shape[0]
        bounds = np.linspace(0, n, max(1, min(n_blocks, n)) + 1).astype(int)
        self.blocks = [(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
        self.client = None
        self.shape = X.shape
        self.dtype = np.dtype(X.dtype)
        self.sparse = sp.issparse(X)

    def map_sum(self, fn, size, **kwargs):
        total = np.zeros(size)
        for X_blk, y_blk in self.blocks:
            total += np.asarray(fn(X_blk, y_blk, **kwargs), dtype=np.float64)
        return total


def make_blocks(X, y, client, row_chunks):
    """:class:`RowBlocks` for dask input or when a client is given, else :class:`LocalBlocks`.

    In-memory input with a client is split into ``row_chunks`` rows per block
    (default: two blocks per worker) and sent to the workers.
    """
    if is_dask_array(X) or is_dask_array(y) or client is not None:
        _, da = _dask()
        if not is_dask_array(X):
            n = X.shape[0]
            if row_chunks is None:
                row_chunks = max(1, -(-n // _default_n_blocks(client)))
            if sp.issparse(X):
                from sparseopt.distributed._arrays import from_scipy

                X = from_scipy(X, row_chunks, dtype=X.dtype)
            else:
                X = da.from_array(np.asarray(X), chunks=(row_chunks, -1))
        elif row_chunks is not None:
            X = X.rechunk({0: row_chunks})
        return RowBlocks(X, y, client)
    return LocalBlocks(X, y, 1 if row_chunks is None else -(-X.shape[0] // row_chunks))
