"""What CSR and BSR share: compressed rows of entries (CSR) or of dense blocks (BSR).

Canonical form, dtype casts, copies, the transposed view and ``@`` are the same
for both containers; only the shape of an entry (a value or an ``R x C`` block)
differs, and the backend kernels index ``data`` on its first axis either way.
"""

import numpy as np

from sparseopt._backend import get_backend
from sparseopt.formats._common import value_dtype


class _Compressed:
    """Base of :class:`CSR` and :class:`BSR` (not public)."""

    ndim = 2
    # make ndarray @ A defer to A.__rmatmul__
    __array_priority__ = 10.1

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def index_dtype(self):
        return self.indices.dtype

    @property
    def backend(self):
        """The backend owning the arrays (see :func:`sparseopt.get_backend`)."""
        return get_backend(self.data)

    def _flags(self):
        if self._sorted is None:
            self._sorted, self._canonical = self.backend.row_order_flags(
                self.indptr, self.indices)
        return self._sorted, self._canonical

    @property
    def has_sorted_indices(self):
        """Whether the (block) column indices of every row are non-decreasing (cached)."""
        return self._flags()[0]

    @property
    def has_canonical_format(self):
        """Sorted indices and no repeated index in a row (computed once, then cached)."""
        return self._flags()[1]

    def _trusted(self, data, indices, indptr, *, sorted_=None, canonical=None):
        out = type(self)((data, indices, indptr), self.shape, check=False)
        out._sorted, out._canonical = sorted_, canonical
        return out

    def sort_indices(self):
        """Return a new matrix whose rows have sorted indices (duplicates kept)."""
        if self.has_sorted_indices:
            return self._trusted(self.data, self.indices, self.indptr,
                                 sorted_=True, canonical=self._canonical)
        indices, data = self.backend.sort_indices(self.indptr, self.indices, self.data)
        return self._trusted(data, indices, self.indptr, sorted_=True)

    def sum_duplicates(self):
        """Return the canonical form: sorted indices, repeated entries (blocks) summed."""
        if self.has_canonical_format:
            return self._trusted(self.data, self.indices, self.indptr,
                                 sorted_=True, canonical=True)
        s = self.sort_indices()
        indptr, indices, data = self.backend.sum_duplicates(s.indptr, s.indices, s.data)
        return self._trusted(data, indices, indptr, sorted_=True, canonical=True)

    canonicalize = sum_duplicates

    def data_as(self, dtype):
        """``data`` cast to ``dtype`` (cached, so repeated products do not re-cast)."""
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self.data
        if dtype not in self._cast:
            self._cast[dtype] = self.data.astype(dtype)
        return self._cast[dtype]

    def astype(self, dtype):
        """Return a matrix with values of ``dtype`` (float32 or float64)."""
        return self._trusted(self.data_as(value_dtype(dtype)), self.indices, self.indptr,
                             sorted_=self._sorted, canonical=self._canonical)

    def copy(self):
        """Deep copy."""
        return self._trusted(self.data.copy(), self.indices.copy(), self.indptr.copy(),
                             sorted_=self._sorted, canonical=self._canonical)

    @property
    def T(self):
        """The transpose as a lazy view: ``A.T @ X`` runs the transposed kernel on ``A``."""
        from sparseopt.formats._transpose import TransposedView

        return TransposedView(self)

    def __matmul__(self, other):
        from sparseopt.linalg import matmul

        return matmul(self, other)
