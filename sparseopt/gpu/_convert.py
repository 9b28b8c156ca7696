"""Moving matrices between host and device, and to/from ``cupyx.scipy.sparse``."""

import numpy as np

from sparseopt.formats._common import array_module


def _containers():
    from sparseopt.formats import BSR, CSR, TransposedView

    return CSR, BSR, TransposedView


def _move(A, move):
    """Apply ``move`` to the arrays of a container (flags kept) or to one array."""
    CSR, BSR, TransposedView = _containers()
    if isinstance(A, TransposedView):
        return _move(A.base, move).T
    if isinstance(A, CSR | BSR):
        out = type(A)((move(A.data), move(A.indices), move(A.indptr)), A.shape, check=False)
        out._sorted, out._canonical = A._sorted, A._canonical
        return out
    return move(A)


def to_device(A):
    """Copy a matrix or array to the current CUDA device.

    Parameters
    ----------
    A : CSR, BSR, their ``.T``, scipy.sparse matrix, pydata-sparse array or dense array
        Sparse input (other than our containers) becomes a :class:`~sparseopt.CSR`
        (a :class:`~sparseopt.BSR` for scipy BSR).  Device input is returned as is.

    Returns
    -------
    CSR, BSR or cupy.ndarray
        The same matrix on the device; index dtypes, value dtype and the
        cached sorted/canonical flags are kept.

    Raises
    ------
    ImportError, RuntimeError
        cupy is missing, or there is no CUDA device.
    """
    from sparseopt.gpu._device import require_cupy

    cupy = require_cupy()
    CSR, BSR, TransposedView = _containers()
    if not isinstance(A, CSR | BSR | TransposedView):
        import scipy.sparse as sp

        from sparseopt.formats._convert import _is_pydata, as_csr

        if sp.issparse(A) and A.format == "bsr":
            A = BSR.from_scipy(A)
        elif sp.issparse(A) or _is_pydata(A):
            A = as_csr(A)
        elif type(A).__module__.startswith("cupyx.scipy.sparse"):
            return from_cupyx(A)
    return _move(A, cupy.asarray)


def to_host(A):
    """Copy a matrix or array from the device to NumPy (host input is returned as is).

    Parameters
    ----------
    A : CSR, BSR, their ``.T``, cupyx sparse matrix or cupy/NumPy array

    Returns
    -------
    CSR, BSR or numpy.ndarray
    """
    if type(A).__module__.startswith("cupyx.scipy.sparse"):
        A = from_cupyx(A)

    def move(a):
        if array_module(a) is np:
            return np.asarray(a)
        return a.get()

    return _move(A, move)


def from_cupyx(a):
    """:class:`~sparseopt.CSR` sharing the arrays of a ``cupyx.scipy.sparse`` matrix.

    CSR input is zero-copy; CSC/COO are converted by cupyx first.  The
    canonical flag cupyx already knows is kept.
    """
    CSR, _, _ = _containers()
    if not type(a).__module__.startswith("cupyx.scipy.sparse"):
        raise TypeError(f"expected a cupyx.scipy.sparse matrix, got {type(a).__name__}")
    if a.format != "csr":
        a = a.tocsr()
    out = CSR((a.data, a.indices, a.indptr), a.shape, check=False)
    if a.has_canonical_format:
        out._sorted = out._canonical = True
    return out


def to_cupyx(A):
    """``cupyx.scipy.sparse.csr_matrix`` sharing a device CSR's arrays (BSR is converted).

    cupyx (cuSPARSE) takes int32 indices only: int64 index arrays whose values
    fit are narrowed (a copy); larger matrices raise ``ValueError``.
    """
    CSR, BSR, TransposedView = _containers()
    if isinstance(A, TransposedView):
        raise TypeError("to_cupyx needs a CSR or BSR; transpose first with "
                        "CupyBackend.transpose")
    if isinstance(A, BSR):
        A = A.tocsr()
    if not isinstance(A, CSR):
        raise TypeError(f"expected a sparseopt CSR or BSR, got {type(A).__name__}")
    if array_module(A.data) is np:
        raise TypeError("to_cupyx needs device arrays; call sparseopt.gpu.to_device first")
    import cupyx.scipy.sparse as csp

    indptr, indices = A.indptr, A.indices
    if indices.dtype != np.int32:
        if max(A.nnz, *A.shape) > np.iinfo(np.int32).max:
            raise ValueError("cupyx.scipy.sparse supports int32 indices only; this "
                             "matrix needs int64")
        indptr, indices = indptr.astype(np.int32), indices.astype(np.int32)
    out = csp.csr_matrix((A.data, indices, indptr), shape=A.shape, copy=False)
    if A._canonical:
        out.has_canonical_format = True
    return out
