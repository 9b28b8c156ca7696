"""Scale out on Dask: distributed sparse arrays, products and solvers.

Distributed sparse matrices are :class:`dask.array.Array` objects whose chunks
are ``scipy.sparse.csr_array`` blocks; the products run our Numba kernels
(:func:`sparseopt.spmm`, :func:`sparseopt.spmm_t`, :func:`sparseopt.spgemm`)
on each chunk and let dask's scheduler (local threads, or a
:class:`dask.distributed.Client`) place, move, spill and recompute the
blocks.  Needs the optional ``dist`` extra (``dask[array,distributed]``).

Arrays
    :func:`from_scipy`, :func:`from_blocks`, :func:`from_files`.
Products
    :func:`spmm`, :func:`spmm_t`, :func:`spgemm`.
Solvers on row-partitioned data
    :func:`lasso`, :func:`enet`, :func:`l1_logistic` (distributed FISTA),
    :func:`robust_pca` (IALM with a TSQR-based SVD), :func:`sinkhorn`
    (row-chunked cost); estimators :class:`Lasso`, :class:`ElasticNet`,
    :class:`SparseLogisticRegression` accepting dask arrays.
"""

import importlib

from sparseopt.distributed import _sizeof  # noqa: F401  (registers dask sizeof for sparray)

_LAZY = {
    "from_scipy": "sparseopt.distributed._arrays",
    "from_blocks": "sparseopt.distributed._arrays",
    "from_files": "sparseopt.distributed._arrays",
    "spmm": "sparseopt.distributed._products",
    "spmm_t": "sparseopt.distributed._products",
    "spgemm": "sparseopt.distributed._products",
    "lasso": "sparseopt.distributed._glm",
    "enet": "sparseopt.distributed._glm",
    "l1_logistic": "sparseopt.distributed._glm",
    "DistributedGLMResult": "sparseopt.distributed._glm",
    "Lasso": "sparseopt.distributed._estimators",
    "ElasticNet": "sparseopt.distributed._estimators",
    "SparseLogisticRegression": "sparseopt.distributed._estimators",
    "robust_pca": "sparseopt.distributed._rpca",
    "sinkhorn": "sparseopt.distributed._sinkhorn",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparseopt.distributed' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
