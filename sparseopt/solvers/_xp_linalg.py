"""Dense linear algebra and glue for the backend-generic (device) SBL and BCD paths.

The device paths of :mod:`sparseopt.solvers.sbl_xp` and
:mod:`sparseopt.solvers.bcd._bcd_xp` are written against ``nx.xp`` (the
array-API namespace of a backend: ``array_api_compat.cupy`` on a GPU) plus the
backend's sparse kernels (``nx.spmm``, ``nx.spmm_t``).  What the array API
standard lacks is supplied here, choosing the implementation by namespace:

* :func:`solve_triangular`: ``cupyx.scipy.linalg.solve_triangular`` on CuPy,
  ``scipy.linalg.solve_triangular`` on NumPy, a general ``xp.linalg.solve``
  elsewhere (array-api-strict in the tests);
* :func:`chol_inv`: Cholesky factor, its inverse and ``log det``, with a
  diagonal jitter retried only when the factorisation failed (CuPy does not
  raise on a non-positive-definite matrix, it returns NaNs: the failure shows
  in the log-determinant, which the caller fetches anyway);
* :func:`fetch`: several device scalars to Python floats in **one** transfer
  (the single synchronisation of an outer iteration);
* :func:`device_backend`: dispatch, ``None`` for host input so the NumPy
  fast paths stay untouched, and a ``TypeError`` naming the arguments when
  host and device arrays are mixed;
* :func:`sparse_parts`, :func:`csr_matmul`, :func:`csr_rmatmul`: CSR input on
  the device as raw ``(indptr, indices, data)`` arrays and products with it;
* :func:`scatter`, :func:`segment_sum`: scatter and grouped sums written with
  standard operations only (one-hot products, padded gathers).

Nothing here imports cupy at import time.
"""

import numpy as np

from sparseopt._backend import array_library, get_backend

__all__ = [
    "chol_inv",
    "csr_matmul",
    "csr_rmatmul",
    "device_backend",
    "fetch",
    "host_float_dtype",
    "is_sparse_input",
    "padded_groups",
    "real_float_xp",
    "scatter",
    "segment_sum",
    "solve_triangular",
    "sparse_parts",
]


# ---------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------
def is_sparse_input(X):
    """A sparse matrix object (scipy, cupyx, our CSR, or a CSR-like with arrays)."""
    return (hasattr(X, "indptr") and hasattr(X, "indices") and hasattr(X, "data")
            and hasattr(X, "shape"))


def _leaf(value):
    """The array whose library decides the backend (a sparse matrix's data)."""
    if is_sparse_input(value):
        return value.data
    return value


def device_backend(**named):
    """Backend of the named arguments, or ``None`` when they are all on the host.

    ``None`` values are skipped; lists/tuples of arrays (Kronecker factors) are
    looked into.  Host means NumPy, scipy.sparse, our containers on NumPy arrays,
    lists and scalars.

    Raises
    ------
    TypeError
        If host and device arrays are mixed: the message names which argument
        is on the host and which on the device.
    """
    where = {}
    arrays = []
    for name, value in named.items():
        if value is None:
            continue
        items = ([(f"{name}[{i}]", v) for i, v in enumerate(value)]
                 if isinstance(value, list | tuple) else [(name, value)])
        for label, v in items:
            leaf = _leaf(v)
            where[label] = array_library(leaf) if hasattr(leaf, "shape") else "numpy"
            arrays.append(leaf)
    libs = set(where.values())
    if libs <= {"numpy"}:
        return None
    if len(libs) > 1:
        detail = ", ".join(f"{label} is a {lib} {'(host)' if lib == 'numpy' else '(device)'}"
                           " array" for label, lib in where.items())
        raise TypeError(f"host and device arrays cannot be mixed: {detail}; move them to "
                        "one device first (sparseopt.gpu.to_device / to_host)")
    return get_backend(*[a for a in arrays if array_library(a) != "numpy"])


def host_float_dtype(xp, *dtypes):
    """NumPy float dtype of a result: float32 if every input is float32, else float64."""
    dts = [d for d in dtypes if d is not None]
    if dts and all(d == xp.float32 for d in dts):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def out_dtype(xp, *dtypes):
    """The namespace's float dtype of a result (float32 only if all inputs are)."""
    return xp.float32 if host_float_dtype(xp, *dtypes) == np.float32 else xp.float64


def fetch(nx, *values):
    """Device scalars (0-d arrays or Python numbers) as Python floats, in one transfer."""
    xp = nx.xp
    dev = [i for i, v in enumerate(values) if not isinstance(v, int | float)]
    out = [float(v) if isinstance(v, int | float) else None for v in values]
    if dev:
        stacked = xp.stack([xp.astype(xp.reshape(values[i], ()), xp.float64) for i in dev])
        host = np.asarray(nx.to_numpy(stacked), dtype=np.float64).reshape(-1)
        for i, h in zip(dev, host, strict=True):
            out[i] = float(h)
    return tuple(out)


def fetch_array(nx, a):
    """A device array on the host as a NumPy array (one transfer)."""
    return np.asarray(nx.to_numpy(a))


def check_finite_xp(nx, a, name):
    """``ValueError`` naming ``name`` if ``a`` has NaN or infinity (one sync)."""
    xp = nx.xp
    if a.size == 0:
        return
    bad_nan, bad_any = fetch(nx, xp.any(xp.isnan(a)), xp.any(~xp.isfinite(a)))
    if bad_any:
        what = "NaN" if bad_nan else "infinity"
        raise ValueError(f"{name} contains {what}; all entries must be finite")


def real_float_xp(xp, a, name):
    """float32/float64 kept, other real floats, integers and booleans to float64.

    Any other dtype (complex, ...) is a ``TypeError`` naming ``name``.
    """
    dt = a.dtype
    if xp.isdtype(dt, "real floating"):
        return a if dt == xp.float32 or dt == xp.float64 else xp.astype(a, xp.float64)
    if xp.isdtype(dt, ("integral", "bool")):
        return xp.astype(a, xp.float64)
    raise TypeError(f"{name} must hold real numbers, got dtype {dt}")


def as_float_array(nx, a, name, ndim):
    """A device array as a real float array of ``ndim`` dimensions (validated, finite)."""
    if is_sparse_input(a):
        raise TypeError(f"{name} must be a dense array, got sparse {type(a).__name__}")
    a = real_float_xp(nx.xp, a, name)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(a.shape)}")
    check_finite_xp(nx, a, name)
    return a


# ---------------------------------------------------------------------------
# sparse input on the device
# ---------------------------------------------------------------------------
def sparse_parts(nx, X, name="X"):
    """``(indptr, indices, data, shape)`` of a sparse matrix on the device.

    Accepts :class:`sparseopt.CSR` on device arrays, ``cupyx.scipy.sparse``
    matrices (CSC/COO are converted to CSR on the device) and any object with
    ``format == "csr"`` and ``indptr``, ``indices``, ``data``, ``shape``.
    Duplicates are allowed (products sum them); float32/float64 ``data`` is kept,
    other real dtypes become float64.
    """
    xp = nx.xp
    fmt = getattr(X, "format", "csr")
    if fmt != "csr":
        if not hasattr(X, "tocsr"):
            raise TypeError(f"{name}: sparse format {fmt!r} is not supported on the device")
        X = X.tocsr()
    shape = tuple(int(s) for s in X.shape)
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {shape}")
    data = real_float_xp(xp, X.data, name)
    check_finite_xp(nx, data, name)
    return X.indptr, X.indices, data, shape


def row_ids(xp, indptr, n_rows):
    """Row of every stored entry (int64), by ``repeat``."""
    counts = xp.astype(indptr[1:] - indptr[:-1], xp.int64)
    return xp.repeat(xp.arange(n_rows, dtype=xp.int64), counts)


def csr_matmul(nx, csr, V):
    """``A @ V`` for ``csr = (indptr, indices, data, shape)`` and a 1-D or 2-D ``V``."""
    xp = nx.xp
    indptr, indices, data, (n, _) = csr
    vec = V.ndim == 1
    V2 = xp.reshape(V, (V.shape[0], 1)) if vec else V
    out = xp.empty((n, V2.shape[1]), dtype=data.dtype)
    nx.spmm(indptr, indices, data, xp.asarray(V2, dtype=data.dtype, copy=True), out)
    return out[:, 0] if vec else out


def csr_rmatmul(nx, csr, V):
    """``Aᵀ @ V`` (``A.T`` is never formed: the backend's transposed SpMM)."""
    xp = nx.xp
    indptr, indices, data, (_, p) = csr
    vec = V.ndim == 1
    V2 = xp.reshape(V, (V.shape[0], 1)) if vec else V
    out = xp.empty((p, V2.shape[1]), dtype=data.dtype)
    nx.spmm_t(indptr, indices, data, xp.asarray(V2, dtype=data.dtype, copy=True), out)
    return out[:, 0] if vec else out


# ---------------------------------------------------------------------------
# standard-only scatter and grouped sums
# ---------------------------------------------------------------------------
def onehot(xp, idx, n, dtype=None):
    """``E`` of shape ``(n, len(idx))`` with ``E[idx[k], k] = 1``."""
    dtype = xp.float64 if dtype is None else dtype
    return xp.astype(xp.arange(n, dtype=idx.dtype)[:, None] == idx[None, :], dtype)


def scatter(xp, idx, values, n, fill=0.0):
    """A length-``n`` vector with ``values`` at the distinct positions ``idx``, ``fill`` elsewhere.

    Written with a one-hot product (``O(n len(idx))``), the standard has no
    scatter; used on small index sets (active sets, results).  ``values`` must
    be finite.
    """
    base = xp.full(n, fill, dtype=xp.float64)
    if idx.shape[0] == 0:
        return base
    E = onehot(xp, idx, n)
    hit = xp.sum(E, axis=1) > 0
    return xp.where(hit, E @ xp.astype(values, xp.float64), base)


def padded_groups(labels, n_groups):
    """Host ``(n_groups, max_size)`` index matrix of each group's members, padded with ``p``."""
    labels = np.asarray(labels, dtype=np.int64)
    p = labels.shape[0]
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=n_groups)
    width = int(counts.max()) if counts.size else 0
    out = np.full((n_groups, max(width, 1)), p, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(p) - np.repeat(starts, counts)
    out[labels[order], slot] = order
    return out


def segment_sum(xp, values, padded):
    """Sums of ``values`` over the groups of a device ``padded`` index matrix."""
    ext = xp.concat([values, xp.zeros(1, dtype=values.dtype)])
    g, w = padded.shape
    return xp.sum(xp.reshape(xp.take(ext, xp.reshape(padded, (-1,))), (g, w)), axis=1)


# ---------------------------------------------------------------------------
# factorisations
# ---------------------------------------------------------------------------
def solve_triangular(xp, L, B, lower=True):
    """Solve ``L X = B`` for a triangular ``L`` (namespace-appropriate routine)."""
    import array_api_compat

    if array_api_compat.is_cupy_namespace(xp):
        from cupyx.scipy.linalg import solve_triangular as st

        return st(L, B, lower=lower, check_finite=False)
    if array_api_compat.is_numpy_namespace(xp):
        from scipy.linalg import solve_triangular as st

        return st(L, B, lower=lower, check_finite=False)
    return xp.linalg.solve(L, B)


def _cholesky(xp, H):
    try:
        return xp.linalg.cholesky(H)
    except Exception as exc:  # numpy-backed namespaces raise; CuPy returns NaNs
        if type(exc).__name__ != "LinAlgError":
            raise
        return xp.full(H.shape, xp.nan, dtype=H.dtype)


def chol_inv(nx, H, extra=()):
    """``(Linv, logdet, extras)`` with ``H = L Lᵀ``, ``Linv = L⁻¹`` (lower), ``log det H``.

    ``extra`` is a callable ``extra(Linv, logdet) -> tuple of device scalars``
    evaluated before the one synchronisation, which fetches ``logdet`` and the
    extras together.  A failed factorisation (non-finite ``logdet``) is retried
    with a growing diagonal jitter, as the CPU solvers do.

    Returns
    -------
    Linv : device array
    logdet : float
    extras : tuple of float
    """
    xp = nx.xp
    m = H.shape[0]
    eye = xp.eye(m, dtype=H.dtype)
    jitter = 0.0
    trace = None
    for _ in range(8):
        L = _cholesky(xp, H + jitter * eye if jitter else H)
        Linv = solve_triangular(xp, L, eye, lower=True)
        logdet = 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L)))
        more = tuple(extra(Linv, logdet)) if callable(extra) else ()
        vals = fetch(nx, logdet, *more) if trace is not None else fetch(
            nx, logdet, xp.linalg.trace(H), *more)
        if trace is None:
            trace, vals = vals[1], (vals[0], *vals[2:])
        if np.isfinite(vals[0]):
            return Linv, vals[0], tuple(vals[1:])
        jitter = max(jitter * 100.0, 1e-12 * trace / m)
    from numpy.linalg import LinAlgError

    raise LinAlgError("posterior precision matrix is not positive definite")
