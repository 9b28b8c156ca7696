"""The CSR (compressed sparse row) container shared by every backend."""

import numpy as np

from sparseopt.formats._common import (
    array_module,
    check_compressed,
    check_shape,
    to_index_arrays,
    value_dtype,
)
from sparseopt.formats._compressed import _Compressed


class CSR(_Compressed):
    """Compressed sparse row matrix on NumPy or CuPy arrays.

    Row ``i`` holds the values ``data[indptr[i]:indptr[i+1]]`` in the columns
    ``indices[indptr[i]:indptr[i+1]]``.  Indices need not be sorted and may
    repeat (repeated entries add up, as in scipy); :attr:`has_canonical_format`
    tells, and :meth:`sum_duplicates` returns the canonical form.

    Parameters
    ----------
    arg : tuple or matrix-like
        ``(data, indices, indptr)`` as in scipy; or a scipy.sparse matrix or
        array, a pydata-sparse array, a :class:`CSR`, :class:`BSR`, or a dense
        2-D array (converted with :func:`sparseopt.formats.as_csr`).
    shape : tuple of int, optional
        ``(n_rows, n_cols)``; required with a tuple ``arg`` unless it can be
        inferred (rows from ``indptr``, columns from the largest index + 1).
    check : bool, default=True
        Validate the structure.  ``check=False`` is the trusted path used
        internally on arrays known to be valid.
    copy : bool, default=False
        Copy the arrays instead of sharing them.  Arrays are never modified by
        sparseopt either way.

    Attributes
    ----------
    data, indices, indptr : arrays
        Values (float32 or float64), column indices and row pointers (int32 or
        int64, the same dtype for both: int32 whenever the sizes fit, as scipy).
    shape : tuple of int
    nnz : int
        Stored entries, duplicates included.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sparseopt import CSR
    >>> A = CSR((np.array([1., 2., 3.]), np.array([0, 2, 1]), np.array([0, 2, 3])),
    ...         shape=(2, 3))
    >>> A @ np.ones(3)
    array([3., 3.])
    >>> (A.to_scipy() != sp.csr_array(A.todense())).nnz
    0
    """

    format = "csr"

    def __init__(self, arg, shape=None, *, check=True, copy=False):
        if not (isinstance(arg, tuple) and len(arg) == 3):
            from sparseopt.formats._convert import as_csr

            other = as_csr(arg)
            if shape is not None and check_shape(shape) != other.shape:
                raise ValueError(f"shape {shape} does not match the input's {other.shape}")
            arg, shape = (other.data, other.indices, other.indptr), other.shape
            self._sorted, self._canonical = other._sorted, other._canonical
        else:
            self._sorted = self._canonical = None
        data, indices, indptr = arg
        xp = array_module(data)
        data = xp.asarray(data)
        indptr = xp.asarray(indptr)
        indices = xp.asarray(indices)
        if data.ndim != 1:
            raise ValueError(f"CSR data must be 1-D, got shape {data.shape}")
        if shape is None:
            n_cols = int(indices.max()) + 1 if indices.size else 0
            shape = (indptr.shape[0] - 1, n_cols)
        self.shape = check_shape(shape)
        indptr, indices = to_index_arrays(xp, indptr, indices, *self.shape)
        dtype = value_dtype(data.dtype, "data")
        if data.dtype != dtype:
            data = data.astype(dtype)
        elif copy:
            data = data.copy()
        if copy:
            indptr, indices = indptr.copy(), indices.copy()
        if check:
            check_compressed(xp, indptr, indices, self.shape[0], self.shape[1],
                             data.shape[0], "entries")
        self.data, self.indices, self.indptr = data, indices, indptr
        self._cast = {}

    # -- basic properties ----------------------------------------------------
    @property
    def nnz(self):
        return int(self.indices.shape[0])

    def __repr__(self):
        return (f"<CSR {self.shape[0]}x{self.shape[1]} nnz={self.nnz} dtype={self.dtype} "
                f"index={self.index_dtype} on {self.backend.name}>")

    # -- conversions ---------------------------------------------------------
    @classmethod
    def from_scipy(cls, A):
        """From any scipy.sparse matrix or array (zero-copy for CSR input)."""
        from sparseopt.formats._convert import csr_from_scipy

        return csr_from_scipy(A)

    @classmethod
    def from_dense(cls, a):
        """From a dense 2-D array, keeping its non-zero entries."""
        from sparseopt.formats._convert import csr_from_dense

        return csr_from_dense(a)

    @classmethod
    def from_sparse(cls, a):
        """From a pydata-sparse ``COO`` or ``GCXS`` array."""
        from sparseopt.formats._convert import csr_from_pydata

        return csr_from_pydata(a)

    @classmethod
    def from_cupyx(cls, a):
        """From a ``cupyx.scipy.sparse`` matrix, sharing its device arrays."""
        from sparseopt.gpu import from_cupyx

        return from_cupyx(a)

    def to_scipy(self):
        """As a ``scipy.sparse.csr_array`` sharing the arrays (NumPy backend only)."""
        from sparseopt.formats._convert import csr_to_scipy

        return csr_to_scipy(self)

    def to_sparse(self):
        """As a pydata-sparse ``GCXS`` array (compressed rows) sharing the arrays."""
        from sparseopt.formats._convert import csr_to_pydata

        return csr_to_pydata(self)

    def todense(self):
        """Dense 2-D array of the matrix (duplicates summed)."""
        xp = array_module(self.data)
        out = xp.zeros(self.shape, dtype=self.dtype)
        rows = xp.repeat(xp.arange(self.shape[0]), xp.diff(self.indptr).astype(np.int64))
        if xp is np:
            np.add.at(out, (rows, self.indices), self.data)
        else:  # cupyx.scatter_add
            import cupyx

            cupyx.scatter_add(out, (rows, self.indices), self.data)
        return out

    toarray = todense

    def tobsr(self, blocksize):
        """Convert to :class:`BSR` with blocks of ``blocksize = (R, C)``."""
        from sparseopt.formats._convert import csr_to_bsr

        return csr_to_bsr(self, blocksize)

    def tocsr(self):
        return self

    # -- products ------------------------------------------------------------
    def __rmatmul__(self, other):
        # X @ A = (A.T @ X.T).T
        from sparseopt.linalg import spmm_t

        other = np.asarray(other) if array_module(other) is np else other
        if other.ndim == 1:
            return spmm_t(self, other)
        return spmm_t(self, other.T).T
