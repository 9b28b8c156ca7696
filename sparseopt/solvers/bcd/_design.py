"""Design matrices for the BCD problems: column-block products and row updates.

A :class:`SparseDesign` keeps the matrix in CSC (column access: ``A[:, b] d``)
and CSR (row access: ``A[rows].T v``), both canonical with int64 indices and
float64 values, so each Numba kernel has one signature.  A :class:`DenseDesign`
does the same with NumPy.  Inputs are never modified.
"""

import numpy as np
import scipy.sparse as sp

from sparseopt._validation import check_array, check_finite
from sparseopt.kernels._bcd import (
    csc_block_product,
    csc_gather_dense,
    csr_rows_accumulate,
)

__all__ = ["DenseDesign", "SparseDesign", "as_design", "canonical_csr", "is_sparse"]


def is_sparse(A):
    """True for scipy.sparse matrices/arrays and objects with ``to_scipy()``."""
    return sp.issparse(A) or hasattr(A, "to_scipy")


def canonical_csr(A, name):
    """A canonical float64 CSR copy with int64 indices (``A`` is left untouched)."""
    if hasattr(A, "to_scipy"):
        A = A.to_scipy()
    if not sp.issparse(A):
        raise TypeError(f"{name} must be a sparse matrix, got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {A.shape}")
    if A.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {A.dtype}")
    A = sp.csr_array(A, dtype=np.float64, copy=True)
    A.sum_duplicates()
    A.sort_indices()
    check_finite(A.data, name)
    A.indptr = A.indptr.astype(np.int64)
    A.indices = A.indices.astype(np.int64)
    return A


def as_design(A, name="A"):
    """Wrap a dense or sparse 2-D matrix; returns ``(design, dtype of A)``."""
    if is_sparse(A):
        raw = A.to_scipy() if hasattr(A, "to_scipy") else A
        dtype = raw.dtype
        return SparseDesign(canonical_csr(raw, name)), dtype
    arr = check_array(A, name, ndim=2)
    return DenseDesign(np.array(arr, dtype=np.float64, order="C")), arr.dtype


class SparseDesign:
    """CSC + CSR views of a sparse matrix for block products."""

    sparse = True

    def __init__(self, csr):
        self.shape = csr.shape
        self.csr = csr
        csc = sp.csc_array(csr)
        csc.sort_indices()
        csc.indptr = csc.indptr.astype(np.int64)
        csc.indices = csc.indices.astype(np.int64)
        self.csc = csc
        n = self.shape[0]
        self._mark = np.zeros(n, np.int64)
        self._rows = np.empty(n, np.int64)
        self._stamp = 0
        self._acc = None

    def matvec(self, X):
        return np.asarray(self.csr @ X)

    def rmatvec(self, V):
        return np.asarray(self.csr.T @ V)

    def col_sq_norms(self):
        return np.asarray(self.csc.multiply(self.csc).sum(axis=0)).ravel()

    def abs_gram_rowsum(self):
        absA = abs(self.csr)
        return np.asarray(absA.T @ (absA @ np.ones(self.shape[1]))).ravel()

    def block_product(self, feats, D):
        """``(rows, A[rows][:, feats] @ D)`` over the rows the columns touch."""
        k = D.shape[1]
        if self._acc is None or self._acc.shape[1] != k:
            self._acc = np.zeros((self.shape[0], k))
        self._stamp += 1
        nr = csc_block_product(self.csc.indptr, self.csc.indices, self.csc.data,
                               feats, np.ascontiguousarray(D), self._acc,
                               self._mark, self._stamp, self._rows)
        rows = self._rows[:nr].copy()
        vals = self._acc[rows]
        self._acc[rows] = 0.0
        return rows, vals

    def rows_accumulate(self, rows, V, G):
        """``G += A[rows].T @ V`` in place."""
        csr_rows_accumulate(self.csr.indptr, self.csr.indices, self.csr.data,
                            rows, np.ascontiguousarray(V), G)

    def block_gram(self, feats, w=None):
        """Dense ``A[:, feats].T @ diag(w) @ A[:, feats]`` (``w`` of length n or None)."""
        S = self.csc[:, feats]
        G = S.T @ (S if w is None else sp.diags_array(w) @ S)
        return G.toarray()

    def dense_columns(self, feats):
        """``(rows, A[rows][:, feats])`` as a dense array over the touched rows."""
        rows, _ = self.block_product(feats, np.zeros((len(feats), 1)))
        rowpos = np.full(self.shape[0], -1, np.int64)
        rowpos[rows] = np.arange(len(rows))
        out = np.zeros((len(rows), len(feats)))
        csc_gather_dense(self.csc.indptr, self.csc.indices, self.csc.data, feats,
                         rowpos, out)
        return rows, out


class DenseDesign:
    """The same interface on a dense C-ordered array."""

    sparse = False

    def __init__(self, A):
        self.A = A
        self.shape = A.shape
        self._all = np.arange(A.shape[0])

    def matvec(self, X):
        return self.A @ X

    def rmatvec(self, V):
        return self.A.T @ V

    def col_sq_norms(self):
        return np.einsum("ij,ij->j", self.A, self.A)

    def abs_gram_rowsum(self):
        absA = np.abs(self.A)
        return absA.T @ (absA @ np.ones(self.shape[1]))

    def block_product(self, feats, D):
        return self._all, self.A[:, feats] @ D

    def rows_accumulate(self, rows, V, G):
        if len(rows) == self.shape[0]:
            G += self.A.T @ V
        else:
            G += self.A[rows].T @ V

    def block_gram(self, feats, w=None):
        Ab = self.A[:, feats]
        return Ab.T @ (Ab if w is None else w[:, None] * Ab)

    def dense_columns(self, feats):
        return self._all, self.A[:, feats]
