"""Sparse products: :func:`spmv`, :func:`spmm`, :func:`spmm_t`, :func:`spgemm`.

Each accepts our :class:`~sparseopt.CSR` / :class:`~sparseopt.BSR` (and their
``.T`` views), scipy.sparse matrices and arrays, and pydata-sparse arrays;
dispatches to the backend that owns the arrays; and returns the matching type.
The result dtype is ``np.result_type`` of the operands, computed in float64
unless both are float32.  Inputs are never modified.
"""

import numpy as np

from sparseopt._backend import get_backend, result_dtype
from sparseopt.formats._bsr import BSR
from sparseopt.formats._common import array_module
from sparseopt.formats._convert import (
    _is_pydata,
    _scipy_sparse,
    as_csr,
    csr_from_scipy,
    is_scipy_sparse,
)
from sparseopt.formats._csr import CSR
from sparseopt.formats._transpose import TransposedView

__all__ = ["matmul", "spgemm", "spmm", "spmm_t", "spmv"]


def _as_operator(A, name="A"):
    """Our container (or a transposed view of one) for any supported sparse input."""
    if isinstance(A, CSR | BSR | TransposedView):
        return A
    if is_scipy_sparse(A):
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {A.ndim}-D")
        if A.format == "bsr":
            return BSR.from_scipy(A)
        if A.format == "csc":  # CSC of A holds the CSR of A.T: share it
            return TransposedView(CSR((A.data, A.indices, A.indptr),
                                      (A.shape[1], A.shape[0]), check=False))
        return csr_from_scipy(A)
    if _is_pydata(A) or type(A).__module__.startswith("cupyx.scipy.sparse"):
        return as_csr(A)
    raise TypeError(
        f"{name} must be a sparse matrix (sparseopt CSR/BSR, scipy.sparse, "
        f"pydata-sparse), got {type(A).__name__}"
    )


def _dense_operand(X, A_dtype, n_rows_needed, name, op):
    xp = array_module(X)
    X = xp.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {X.shape}")
    if X.shape[0] != n_rows_needed:
        raise ValueError(
            f"dimension mismatch in {op}: the matrix needs {n_rows_needed} rows in "
            f"{name}, got shape {X.shape}"
        )
    dtype = result_dtype(A_dtype, X.dtype)
    # astype copies only when needed; kernels read X and never write it
    X = xp.ascontiguousarray(X.astype(dtype, copy=False))
    return X, dtype


def _product(A, X, *, transpose, name="X"):
    A = _as_operator(A)
    if isinstance(A, TransposedView):
        A, transpose = A.base, not transpose
    n_in = A.shape[0] if transpose else A.shape[1]
    n_out = A.shape[1] if transpose else A.shape[0]
    op = "A.T @ X" if transpose else "A @ X"
    X, dtype = _dense_operand(X, A.dtype, n_in, name, op)
    nx = get_backend(A.data, X)
    vector = X.ndim == 1
    X2 = X[:, None] if vector else X
    out = nx.empty((n_out, X2.shape[1]), dtype)
    data = A.data_as(dtype)
    if isinstance(A, BSR):
        kernel = nx.bsr_spmm_t if transpose else nx.bsr_spmm
        kernel(A.indptr, A.indices, data, X2, out)
    elif transpose:
        # what the matrix already knows of its row order (never computed here)
        nx.spmm_t(A.indptr, A.indices, data, X2, out, rows_sorted=A._sorted is True)
    elif vector:
        out = out[:, 0]
        nx.spmv(A.indptr, A.indices, data, X, out)
        return out
    else:
        nx.spmm(A.indptr, A.indices, data, X2, out)
    return out[:, 0] if vector else out


def spmv(A, x):
    """Sparse matrix times vector, ``y = A @ x``.

    Parameters
    ----------
    A : CSR, BSR, their ``.T``, scipy.sparse or pydata-sparse matrix
        Shape ``(m, n)``.
    x : array of shape (n,)

    Returns
    -------
    y : array of shape (m,)
        On the same device as ``x``; dtype ``np.result_type(A, x)`` (float).
    """
    x_arr = array_module(x).asarray(x)
    if x_arr.ndim != 1:
        raise ValueError(f"x must be 1-D for spmv, got shape {x_arr.shape}; use spmm")
    return _product(A, x_arr, transpose=False, name="x")


def spmm(A, X):
    """Sparse matrix times dense matrix, ``Y = A @ X``.

    .. math:: Y_{ic} = \\sum_k A_{ik} X_{kc}

    Rows of ``A`` run in parallel (Numba ``prange``); each output row is
    accumulated as a contiguous vector of ``X``'s columns.  ``A`` may be a
    ``.T`` view, in which case this is :func:`spmm_t` on the base matrix.

    Parameters
    ----------
    A : CSR, BSR, their ``.T``, scipy.sparse or pydata-sparse matrix
        Shape ``(m, n)``.
    X : array of shape (n,) or (n, k)

    Returns
    -------
    Y : array of shape (m,) or (m, k)
    """
    return _product(A, X, transpose=False)


def spmm_t(A, X):
    """Transposed product ``Y = A.T @ X`` without forming ``A.T``.

    .. math:: Y_{jc} = \\sum_i A_{ij} X_{ic}

    Race-free in parallel without atomics: chunks of rows of ``A`` scatter
    straight into the output rows no other chunk reaches and into private
    buffers for the rest, summed afterwards; on scattered matrices with rows
    in column order and ``k >= 32`` threads split the output rows instead
    (see :func:`sparseopt.kernels._spmm.csr_spmm_t`).

    Parameters
    ----------
    A : CSR, BSR or sparse matrix of shape (m, n)
    X : array of shape (m,) or (m, k)

    Returns
    -------
    Y : array of shape (n,) or (n, k)
    """
    return _product(A, X, transpose=True)


def _as_csr_operand(A, name):
    A = _as_operator(A, name)
    if isinstance(A, BSR):
        return A.tocsr()
    if isinstance(A, TransposedView):
        base = A.base.tocsr() if isinstance(A.base, BSR) else A.base
        if array_module(base.data) is not np:
            return base.backend.transpose(base)
        return csr_from_scipy(base.to_scipy().T.tocsr())
    return A


def _wrap_like(template, C):
    if isinstance(template, CSR | BSR | TransposedView):
        return C
    if is_scipy_sparse(template):
        out = C.to_scipy()
        sparse = _scipy_sparse()
        return sparse.csr_matrix(out) if isinstance(template, sparse.spmatrix) else out
    if _is_pydata(template):
        return C.to_sparse()
    return C


def spgemm(A, B, *, sort=False):
    """Sparse matrix times sparse matrix, ``C = A @ B`` (row-wise Gustavson).

    A symbolic pass counts each output row's nnz, a numeric pass fills it;
    rows are split across threads by multiply-add count, and each row
    accumulates in a dense array or a small hash table chosen by its flops.

    Parameters
    ----------
    A : sparse matrix of shape (m, k)
    B : sparse matrix of shape (k, n)
    sort : bool, default=False
        Sort each output row's column indices.  By default the output is left
        in first-touch order (no duplicates) and marked unsorted, as scipy
        does; :meth:`CSR.sort_indices` sorts it later if something needs it.

    Returns
    -------
    C : same kind as ``A``
        :class:`CSR` for our containers, ``scipy.sparse.csr_array`` (or
        ``csr_matrix``) for scipy input, ``sparse.GCXS`` for pydata-sparse.
    """
    Ac = _as_csr_operand(A, "A")
    Bc = _as_csr_operand(B, "B")
    if Ac.shape[1] != Bc.shape[0]:
        raise ValueError(
            f"dimension mismatch in A @ B: A is {Ac.shape}, B is {Bc.shape}"
        )
    nx = get_backend(Ac.data, Bc.data)
    dtype = result_dtype(Ac.dtype, Bc.dtype)
    a = (Ac.indptr, Ac.indices, Ac.data_as(dtype))
    b = (Bc.indptr, Bc.indices, Bc.data_as(dtype))
    if a[0].dtype != b[0].dtype:  # one index dtype for the kernel
        wide = np.dtype(np.int64)
        a = (a[0].astype(wide), a[1].astype(wide), a[2])
        b = (b[0].astype(wide), b[1].astype(wide), b[2])
    indptr, indices, data = nx.spgemm(a, b, Bc.shape[1], dtype, bool(sort))
    C = CSR((data, indices, indptr), (Ac.shape[0], Bc.shape[1]), check=False)
    C._sorted = True if sort else None
    C._canonical = True if sort else None
    return _wrap_like(A, C)


def matmul(A, other):
    """``A @ other``: :func:`spmm` for a dense ``other``, :func:`spgemm` for a sparse one."""
    if isinstance(other, CSR | BSR | TransposedView) or is_scipy_sparse(other) or _is_pydata(other):
        return spgemm(A, other)
    return spmm(A, other)
