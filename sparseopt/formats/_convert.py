"""Conversions between our containers and scipy.sparse, pydata-sparse and dense arrays.

Zero-copy wherever the layouts agree: a scipy CSR's arrays become a CSR's
arrays and back, a pydata-sparse GCXS with compressed rows likewise.  Inputs
are never modified: where a conversion must change dtype or layout it works on
a copy.
"""

import sys

import numpy as np

from sparseopt.formats._bsr import BSR
from sparseopt.formats._common import array_module, index_dtype, value_dtype
from sparseopt.formats._csr import CSR
from sparseopt.formats._transpose import TransposedView


def _scipy_sparse():
    """``scipy.sparse``, imported on first need (a tenth of a second of a cold start)."""
    import scipy.sparse

    return scipy.sparse


def is_scipy_sparse(a):
    """Whether ``a`` is a scipy.sparse matrix or array, without importing scipy.

    An object of a module nobody has imported cannot exist.
    """
    module = sys.modules.get("scipy.sparse")
    return module is not None and module.issparse(a)


def _is_pydata(a):
    return type(a).__module__.split(".")[0] == "sparse"


def _is_cupyx_sparse(a):
    return type(a).__module__.startswith("cupyx.scipy.sparse")


def csr_from_scipy(A):
    """CSR from any scipy.sparse matrix or array; CSR input is shared, not copied."""
    if not is_scipy_sparse(A):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"expected a 2-D sparse matrix, got {A.ndim}-D")
    if A.format != "csr":
        A = A.tocsr()
    out = CSR((A.data, A.indices, A.indptr), A.shape, check=False)
    # scipy validated the structure; reuse what it already knows about order
    if A.has_canonical_format:
        out._sorted = out._canonical = True
    return out


def csr_from_dense(a):
    """CSR keeping the non-zero entries of a dense 2-D array (NumPy or CuPy)."""
    xp = array_module(a)
    a = xp.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {a.shape}")
    a = a.astype(value_dtype(a.dtype, "array"), copy=False)
    rows, cols = xp.nonzero(a)
    counts = xp.bincount(rows, minlength=a.shape[0]) if rows.size else xp.zeros(
        a.shape[0], dtype=np.int64)
    idx = index_dtype(maxval=max(a.shape[0], a.shape[1], int(rows.size)))
    indptr = xp.concatenate([xp.zeros(1, dtype=idx), xp.cumsum(counts).astype(idx)])
    out = CSR((a[rows, cols], cols.astype(idx), indptr), a.shape, check=False)
    out._sorted = out._canonical = True
    return out


def csr_from_pydata(a):
    """CSR from a pydata-sparse COO or GCXS array (row-compressed GCXS is shared)."""
    import sparse

    if a.ndim != 2:
        raise ValueError(f"expected a 2-D sparse array, got {a.ndim}-D")
    if isinstance(a, sparse.GCXS) and tuple(a.compressed_axes) == (0,):
        return CSR((a.data, a.indices, a.indptr), a.shape)
    return csr_from_scipy(a.to_scipy_sparse())


def csr_to_scipy(A):
    """``scipy.sparse.csr_array`` sharing ``A``'s arrays (int64 indices included)."""
    if array_module(A.data) is not np:
        raise TypeError("to_scipy() needs host arrays; call sparseopt.gpu.to_host first")
    out = _scipy_sparse().csr_array(A.shape, dtype=A.dtype)
    # assign the arrays directly: the constructor would narrow int64 by copying
    out.indptr, out.indices, out.data = A.indptr, A.indices, A.data
    if A._canonical:
        out.has_canonical_format = True
    elif A._sorted is False:
        out.has_sorted_indices = False
    return out


def csr_to_pydata(A):
    """pydata-sparse ``GCXS`` with compressed rows, sharing ``A``'s arrays."""
    import sparse

    return sparse.GCXS((A.data, A.indices, A.indptr), shape=A.shape, compressed_axes=(0,))


def as_csr(a):
    """Coerce ``a`` to :class:`CSR`.

    Accepts a CSR (returned as is), a BSR, a scipy.sparse matrix or array,
    a pydata-sparse array, a cupyx sparse matrix, or a dense 2-D array.
    """
    if isinstance(a, CSR):
        return a
    if isinstance(a, BSR):
        return bsr_to_csr(a)
    if isinstance(a, TransposedView):
        raise TypeError("a transposed view cannot be converted to CSR without a copy; "
                        "use .to_scipy() on it")
    if is_scipy_sparse(a):
        return csr_from_scipy(a)
    if _is_pydata(a):
        return csr_from_pydata(a)
    if _is_cupyx_sparse(a):
        from sparseopt.gpu import from_cupyx

        return from_cupyx(a)
    if isinstance(a, np.ndarray) or array_module(a) is not np or isinstance(a, list):
        return csr_from_dense(a)
    raise TypeError(f"cannot convert {type(a).__name__} to CSR")


def _check_blocksize(blocksize):
    try:
        R, C = (int(b) for b in blocksize)
    except (TypeError, ValueError):
        raise TypeError(f"blocksize must be a pair of ints, got {blocksize!r}") from None
    if R < 1 or C < 1:
        raise ValueError(f"blocksize must be positive, got {(R, C)}")
    return R, C


def _check_divides(shape, blocksize):
    if shape[0] % blocksize[0] or shape[1] % blocksize[1]:
        raise ValueError(
            f"shape {shape} is not a multiple of the blocksize {blocksize}"
        )


def bsr_from_scipy(A, blocksize=None):
    """BSR from any scipy.sparse matrix; BSR input with the same blocksize is shared."""
    if not is_scipy_sparse(A):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(A).__name__}")
    if blocksize is not None:
        blocksize = _check_blocksize(blocksize)
        _check_divides(A.shape, blocksize)
    if A.format != "bsr" or (blocksize is not None and A.blocksize != blocksize):
        A = A.tobsr(blocksize=blocksize)
    out = BSR((A.data, A.indices, A.indptr), A.shape, check=False)
    if A.has_canonical_format:
        out._sorted = out._canonical = True
    return out


def bsr_to_scipy(A):
    """``scipy.sparse.bsr_array`` sharing ``A``'s arrays."""
    if array_module(A.data) is not np:
        raise TypeError("to_scipy() needs host arrays; call sparseopt.gpu.to_host first")
    return _scipy_sparse().bsr_array((A.data, A.indices, A.indptr), shape=A.shape, copy=False)


def csr_to_bsr(A, blocksize):
    """BSR with blocks of ``blocksize`` from a CSR (duplicates are summed)."""
    blocksize = _check_blocksize(blocksize)
    _check_divides(A.shape, blocksize)
    if array_module(A.data) is not np:
        return A.backend.csr_to_bsr(A, blocksize)
    return bsr_from_scipy(csr_to_scipy(A).tobsr(blocksize=blocksize))


def bsr_to_csr(A):
    """CSR of a BSR (explicit zeros stored inside blocks are kept)."""
    if array_module(A.data) is not np:
        return A.backend.bsr_to_csr(A)
    return csr_from_scipy(bsr_to_scipy(A).tocsr())


def as_bsr(a, blocksize=None):
    """Coerce ``a`` to :class:`BSR`, with ``blocksize`` for non-BSR input."""
    if isinstance(a, BSR):
        if blocksize is not None and tuple(blocksize) != a.blocksize:
            return csr_to_bsr(bsr_to_csr(a), blocksize)
        return a
    if is_scipy_sparse(a):
        return bsr_from_scipy(a, blocksize)
    if blocksize is None:
        raise ValueError("blocksize=(R, C) is needed to convert to BSR")
    return csr_to_bsr(as_csr(a), blocksize)
