"""The BSR (block sparse row) container shared by every backend."""

import numpy as np

from sparseopt.formats._common import (
    array_module,
    check_compressed,
    check_shape,
    to_index_arrays,
    value_dtype,
)
from sparseopt.formats._compressed import _Compressed


class BSR(_Compressed):
    """Block sparse row matrix on NumPy or CuPy arrays.

    The matrix is cut into ``R x C`` blocks; block row ``i`` stores the dense
    blocks ``data[indptr[i]:indptr[i+1]]`` (each ``R x C``) in the block columns
    ``indices[indptr[i]:indptr[i+1]]``.

    Parameters
    ----------
    arg : tuple or matrix-like
        ``(data, indices, indptr)`` with ``data`` of shape ``(n_blocks, R, C)``;
        or a scipy.sparse matrix/array, a :class:`CSR` or a dense array
        (converted with ``blocksize``).
    shape : tuple of int, optional
        ``(n_rows, n_cols)``, multiples of ``(R, C)``.  Inferred from
        ``indptr`` and the largest block index when omitted.
    blocksize : tuple of int, optional
        ``(R, C)`` when converting a non-BSR ``arg``.
    check : bool, default=True
        Validate the structure (``False``: trusted internal path).
    copy : bool, default=False
        Copy the arrays instead of sharing them.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import BSR
    >>> blocks = np.arange(8.0).reshape(2, 2, 2)
    >>> A = BSR((blocks, np.array([0, 1]), np.array([0, 1, 2])), shape=(4, 4))
    >>> A @ np.ones(4)
    array([ 1.,  5.,  9., 13.])
    """

    format = "bsr"

    def __init__(self, arg, shape=None, *, blocksize=None, check=True, copy=False):
        if not (isinstance(arg, tuple) and len(arg) == 3):
            from sparseopt.formats._convert import as_bsr

            other = as_bsr(arg, blocksize=blocksize)
            if shape is not None and check_shape(shape) != other.shape:
                raise ValueError(f"shape {shape} does not match the input's {other.shape}")
            arg, shape = (other.data, other.indices, other.indptr), other.shape
        data, indices, indptr = arg
        xp = array_module(data)
        data = xp.asarray(data)
        indptr = xp.asarray(indptr)
        indices = xp.asarray(indices)
        if data.ndim != 3:
            raise ValueError(
                f"BSR data must have shape (n_blocks, R, C), got shape {data.shape}"
            )
        R, C = int(data.shape[1]), int(data.shape[2])
        if blocksize is not None and tuple(blocksize) != (R, C):
            raise ValueError(f"blocksize {tuple(blocksize)} does not match data blocks {(R, C)}")
        if R < 1 or C < 1:
            raise ValueError(f"blocksize must be positive, got {(R, C)}")
        if shape is None:
            n_bcols = int(indices.max()) + 1 if indices.size else 0
            shape = ((indptr.shape[0] - 1) * R, n_bcols * C)
        self.shape = check_shape(shape)
        if self.shape[0] % R or self.shape[1] % C:
            raise ValueError(
                f"shape {self.shape} is not a multiple of the blocksize {(R, C)}"
            )
        n_brows, n_bcols = self.shape[0] // R, self.shape[1] // C
        indptr, indices = to_index_arrays(xp, indptr, indices, n_brows, n_bcols)
        dtype = value_dtype(data.dtype, "data")
        if data.dtype != dtype:
            data = data.astype(dtype)
        elif copy:
            data = data.copy()
        if copy:
            indptr, indices = indptr.copy(), indices.copy()
        if check:
            check_compressed(xp, indptr, indices, n_brows, n_bcols, data.shape[0], "blocks")
        self.data, self.indices, self.indptr = data, indices, indptr
        self._sorted = self._canonical = None
        self._cast = {}

    @property
    def blocksize(self):
        return (int(self.data.shape[1]), int(self.data.shape[2]))

    @property
    def nnz(self):
        """Stored values (blocks times block size), as scipy counts them."""
        return int(self.data.size)

    @property
    def n_blocks(self):
        return int(self.indices.shape[0])

    def __repr__(self):
        return (f"<BSR {self.shape[0]}x{self.shape[1]} blocksize={self.blocksize} "
                f"blocks={self.n_blocks} dtype={self.dtype} on {self.backend.name}>")


    @classmethod
    def from_scipy(cls, A, blocksize=None):
        """From a scipy.sparse matrix; BSR input with the same blocksize is shared."""
        from sparseopt.formats._convert import bsr_from_scipy

        return bsr_from_scipy(A, blocksize)

    def to_scipy(self):
        """As a ``scipy.sparse.bsr_array`` sharing the arrays (NumPy backend only)."""
        from sparseopt.formats._convert import bsr_to_scipy

        return bsr_to_scipy(self)

    def tocsr(self):
        """Convert to :class:`CSR` (explicit zeros inside blocks are kept)."""
        from sparseopt.formats._convert import bsr_to_csr

        return bsr_to_csr(self)

    def todense(self):
        """Dense 2-D array of the matrix."""
        xp = array_module(self.data)
        R, C = self.blocksize
        nbr, nbc = self.shape[0] // R, self.shape[1] // C
        out = xp.zeros((nbr, nbc, R, C), dtype=self.dtype)
        brow = xp.repeat(xp.arange(nbr), xp.diff(self.indptr).astype(np.int64))
        if xp is np:
            np.add.at(out, (brow, self.indices), self.data)
        else:
            import cupyx

            cupyx.scatter_add(out, (brow, self.indices), self.data)
        return out.transpose(0, 2, 1, 3).reshape(self.shape)

    toarray = todense
