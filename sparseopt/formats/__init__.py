"""Sparse containers shared by every backend: :class:`CSR` and :class:`BSR`.

Both hold ``indptr``, ``indices`` and ``data`` of one array library (NumPy or
CuPy) and a ``shape``; BSR's ``data`` has shape ``(n_blocks, R, C)``.
Construction validates the structure (``check=False`` skips it for trusted
internal use); the canonical form (sorted indices, no duplicates) is computed
on demand and cached; index arrays are int32 when the sizes fit and int64 when
they need it, as in scipy.
"""

from sparseopt.formats._bsr import BSR
from sparseopt.formats._convert import as_bsr, as_csr
from sparseopt.formats._csr import CSR
from sparseopt.formats._transpose import TransposedView

__all__ = ["BSR", "CSR", "TransposedView", "as_bsr", "as_csr"]
