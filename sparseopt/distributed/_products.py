r"""Distributed sparse products on dask arrays of sparse blocks.

With :math:`A` split in blocks :math:`A_{ij}` (rows :math:`i`, columns :math:`j`):

* :func:`spmm`: :math:`Y_{i} = \sum_j A_{ij} X_{j}` -- with one column block
  (the usual row-partitioned layout) every row block is one independent task
  running :func:`sparseopt.spmm` on its chunk, and ``X`` is shipped once per
  worker;
* :func:`spmm_t`: :math:`Y_j = \sum_i A_{ij}^\top X_i` -- one task per block
  running :func:`sparseopt.spmm_t` (our kernel, no transpose formed), then a
  tree reduction over :math:`i` (dask's ``sum`` with ``split_every``);
* :func:`spgemm`: :math:`C_{ik} = \sum_j A_{ij} B_{jk}` -- ``"broadcast"``
  multiplies each row block of :math:`A` by the whole of :math:`B` (one copy
  per worker) and needs no communication between tasks; ``"summa"`` is the
  block-by-block product of SUMMA (van de Geijn & Watts 1997): task
  :math:`(i, k)` receives the block row :math:`A_{i*}` and the block column
  :math:`B_{*k}` and accumulates :math:`\sum_j A_{ij} B_{jk}` with
  :func:`sparseopt.spgemm`, so no task ever holds all of :math:`B`.

All three return lazy dask arrays; the scheduler is whatever dask uses at
compute time (a :class:`dask.distributed.Client` if one is active).

References
----------
R. A. van de Geijn and J. Watts, "SUMMA: scalable universal matrix
multiplication algorithm", Concurrency: Practice and Experience 9(4), 1997.
"""

import numpy as np
import scipy.sparse as sp

from sparseopt.distributed._arrays import (
    _dask,
    _meta,
    as_scipy_block,
    check_sparse_dask,
    is_dask_array,
)
from sparseopt.distributed._client import broadcast_limit

__all__ = ["spgemm", "spmm", "spmm_t"]


def _result_dtype(a, b):
    from sparseopt._backend import result_dtype

    return np.dtype(result_dtype(np.dtype(a), np.dtype(b)))


def _require_sparse_chunk(block, name):
    if not (sp.issparse(block) or type(block).__module__.split(".")[0] in ("sparse",
                                                                          "sparseopt")):
        raise TypeError(f"{name} has a dense chunk of type {type(block).__name__}; "
                        "sparse chunks are required")
    return block


# -- chunk functions (run on the workers) -------------------------------------


def _spmm_sum(A_blks, X_blks, out_dtype):
    """``sum_j A_ij @ X_j`` over one block row (a single product in the row layout)."""
    from sparseopt.linalg import spmm

    out = None
    for A_blk, X_blk in zip(A_blks, X_blks, strict=True):
        _require_sparse_chunk(A_blk, "A")
        P = spmm(A_blk, X_blk)
        out = P if out is None else out + P
    return out.astype(out_dtype, copy=False)


def _spmm_t_block(A_blk, X_blk, out_dtype):
    from sparseopt.linalg import spmm_t

    _require_sparse_chunk(A_blk, "A")
    return spmm_t(A_blk, X_blk).astype(out_dtype, copy=False)[None]


def _spgemm_block(A_blks, B_blks, out_dtype):
    from sparseopt.linalg import spgemm

    C = None
    for A_blk, B_blk in zip(A_blks, B_blks, strict=True):
        _require_sparse_chunk(A_blk, "A")
        _require_sparse_chunk(B_blk, "B")
        P = spgemm(sp.csr_array(A_blk), sp.csr_array(B_blk))
        C = P if C is None else C + P
    C = sp.csr_array(C)
    return C.astype(out_dtype) if C.dtype != out_dtype else C


def _spgemm_bcast(A_blk, B, out_dtype):
    return _spgemm_block([A_blk], [B], out_dtype)


# -- dense operand handling ------------------------------------------------------


def _dense_operand(X, n_needed, row_chunks, name, op):
    """``X`` as a 2-D dask array with row chunks ``row_chunks``; also whether it was 1-D."""
    _, da = _dask()
    if is_dask_array(X):
        if sp.issparse(X._meta):
            raise TypeError(f"{name} must be dense; use spgemm for sparse @ sparse")
        Xd = X
    else:
        if sp.issparse(X) or hasattr(X, "todense"):
            raise TypeError(f"{name} must be dense; use spgemm for sparse @ sparse")
        Xn = np.asarray(X)
        if Xn.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {Xn.dtype}")
        Xd = da.from_array(Xn, chunks=Xn.shape or (1,))
    if Xd.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {Xd.dtype}")
    if Xd.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {Xd.shape}")
    if Xd.shape[0] != n_needed:
        raise ValueError(
            f"dimension mismatch in {op}: the matrix needs {n_needed} rows in {name}, "
            f"got shape {Xd.shape}"
        )
    vector = Xd.ndim == 1
    if vector:
        Xd = Xd[:, None]
    Xd = Xd.rechunk({0: row_chunks})
    return Xd, vector


def spmm(A, X):
    """Distributed ``Y = A @ X`` for a dask array ``A`` of sparse blocks.

    Parameters
    ----------
    A : dask.array.Array of shape (m, n)
        Sparse chunks (:func:`from_scipy`, :func:`from_blocks`,
        :func:`from_files`).
    X : array_like or dask.array.Array of shape (n,) or (n, k)
        Dense.  A NumPy ``X`` is sent once to each worker; a dask ``X`` is
        rechunked along its rows to match ``A``'s column blocks.

    Returns
    -------
    Y : dask.array.Array of shape (m,) or (m, k)
        Row-chunked like ``A``; dtype ``np.result_type`` of the operands
        (float32 only when both are float32).  Each row block is
        :func:`sparseopt.spmm` of one chunk (or the sum over a block row of
        chunks when ``A`` has several column blocks).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sparseopt.distributed import from_scipy, spmm
    >>> A = sp.random_array((8, 5), density=0.5, format="csr", random_state=0)
    >>> Y = spmm(from_scipy(A, 3), np.ones(5))
    >>> np.testing.assert_allclose(Y.compute(), A @ np.ones(5))
    """
    _, da = _dask()
    check_sparse_dask(A, "A")
    Xd, vector = _dense_operand(X, A.shape[1], A.chunks[1], "X", "A @ X")
    dtype = _result_dtype(A.dtype, Xd.dtype)
    Y = da.blockwise(_spmm_sum, "ik", A, "ij", Xd, "jk", dtype=dtype,
                     meta=np.empty((0, 0), dtype), concatenate=False, out_dtype=dtype)
    return Y[:, 0] if vector else Y


def spmm_t(A, X):
    """Distributed ``Y = A.T @ X`` without forming the transpose.

    Every chunk computes :math:`A_{ij}^\\top X_i` with :func:`sparseopt.spmm_t`
    and the partial results are added by a tree reduction over the row
    blocks, so no task receives more than a few of them.

    Parameters
    ----------
    A : dask.array.Array of shape (m, n) with sparse chunks
    X : array_like or dask.array.Array of shape (m,) or (m, k)

    Returns
    -------
    Y : dask.array.Array of shape (n,) or (n, k)
        Chunked along its rows like ``A``'s columns.
    """
    check_sparse_dask(A, "A")
    Xd, vector = _dense_operand(X, A.shape[0], A.chunks[0], "X", "A.T @ X")
    dtype = _result_dtype(A.dtype, Xd.dtype)
    _, da = _dask()
    P = da.blockwise(_spmm_t_block, "ijk", A, "ij", Xd, "ik", dtype=dtype,
                     adjust_chunks={"i": 1}, meta=np.empty((0, 0, 0), dtype),
                     concatenate=True, out_dtype=dtype)
    Y = P.sum(axis=0, dtype=dtype, split_every=4)
    return Y[:, 0] if vector else Y


def _sparse_nbytes(B):
    return int(B.data.nbytes + B.indices.nbytes + B.indptr.nbytes)


def spgemm(A, B, *, method="auto", client=None):
    """Distributed sparse ``C = A @ B``.

    Parameters
    ----------
    A : dask.array.Array of shape (m, k) with sparse chunks
    B : dask.array.Array with sparse chunks, or an in-memory sparse matrix, of shape (k, n)
    method : {"auto", "broadcast", "summa"}
        ``"broadcast"``: every row block of ``A`` times the whole ``B`` (one
        copy of ``B`` per worker; no reduction).  ``"summa"``: block-by-block
        product, task ``(i, k)`` sums ``A[i, j] @ B[j, k]`` over ``j``; ``A``'s
        column blocks and ``B``'s row blocks are aligned by rechunking.
        ``"auto"`` broadcasts when ``B`` takes at most a quarter of the
        smallest worker memory limit (256 MiB without a cluster) and uses
        SUMMA otherwise.
    client : dask.distributed.Client, optional
        Used by ``"auto"`` to read the workers' memory limits (default: the
        active client, if any).

    Returns
    -------
    C : dask.array.Array of shape (m, n)
        Chunks are ``scipy.sparse.csr_array``: row blocks of ``A`` by column
        blocks of ``B`` (one column block when broadcasting).
    """
    dask, da = _dask()
    check_sparse_dask(A, "A")
    if method not in ("auto", "broadcast", "summa"):
        raise ValueError(f"method must be 'auto', 'broadcast' or 'summa', got {method!r}")
    if is_dask_array(B):
        check_sparse_dask(B, "B")
        B_local = None
    else:
        B_local = as_scipy_block(B, "B")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"dimension mismatch in A @ B: A is {A.shape}, B is {B.shape}")
    dtype = _result_dtype(A.dtype, B.dtype)
    if method == "auto":
        limit = broadcast_limit(client)
        if B_local is not None:
            size = _sparse_nbytes(B_local)
        else:
            B = B.persist()
            sizes = B.map_blocks(lambda b: np.array([[_sparse_nbytes(sp.csr_array(b))]]),
                                 chunks=((1,) * B.numblocks[0], (1,) * B.numblocks[1]),
                                 dtype=np.int64, meta=np.empty((0, 0), np.int64))
            size = int(sizes.sum().compute())
        method = "broadcast" if size <= limit else "summa"
    if method == "broadcast":
        A1 = A.rechunk({1: -1}) if A.numblocks[1] > 1 else A
        if B_local is not None:
            B_obj = dask.delayed(B_local, pure=True)
        else:
            B1 = B.rechunk(B.shape) if B.numblocks != (1, 1) else B
            B_obj = B1.to_delayed().ravel()[0]
        return A1.map_blocks(_spgemm_bcast, B_obj, out_dtype=dtype, dtype=dtype,
                             chunks=(A1.chunks[0], (B.shape[1],)), meta=_meta(dtype))
    # SUMMA: align the inner blocks
    if B_local is not None:
        from sparseopt.distributed._arrays import from_scipy

        B = from_scipy(B_local, A.chunks[1], B_local.shape[1])
    if A.chunks[1] != B.chunks[0]:
        inner = A.chunks[1] if A.numblocks[1] > 1 else B.chunks[0]
        A = A.rechunk({1: inner})
        B = B.rechunk({0: inner})
    return da.blockwise(_spgemm_block, "ik", A, "ij", B, "jk", dtype=dtype,
                        meta=_meta(dtype), concatenate=False, out_dtype=dtype)
