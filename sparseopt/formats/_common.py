"""Helpers shared by the CSR and BSR containers: array modules, index dtypes, checks."""

import importlib

import numpy as np

_INT32_MAX = np.iinfo(np.int32).max


def array_module(a):
    """Return ``numpy`` or ``cupy`` for an array, without importing cupy for numpy input."""
    if type(a) is np.ndarray:
        return np
    if type(a).__module__.split(".")[0] in ("cupy", "cupyx"):
        return importlib.import_module("cupy")
    return np


def index_dtype(*, maxval=0, arrays=()):
    """scipy's policy: int32 when every value fits, else int64.

    Parameters
    ----------
    maxval : int
        Largest value the indices must hold (a dimension, an nnz count).
    arrays : sequence of arrays
        Existing index arrays; an int64 array whose values fit keeps int64 only
        if ``maxval`` needs it (we never narrow a user's arrays' values silently:
        narrowing is exact because the values are checked to fit).
    """
    if maxval > _INT32_MAX:
        return np.dtype(np.int64)
    for a in arrays:
        if a.size and int(a.max()) > _INT32_MAX:
            return np.dtype(np.int64)
    return np.dtype(np.int32)


def value_dtype(dtype, name="data"):
    """Floating dtype used to store values: float32/float64 kept, ints and bools to float64."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"{name} must hold real numbers (float32/float64/int/bool), got {dtype}")


def check_shape(shape):
    """Validate a 2-D shape tuple of non-negative ints."""
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a pair of ints, got {shape!r}") from None
    if len(shape) != 2 or min(shape) < 0:
        raise ValueError(f"shape must be a pair of non-negative ints, got {shape!r}")
    return shape


def check_compressed(xp, indptr, indices, n_rows, n_cols, n_entries, what):
    """Validate the index structure of a compressed (CSR or BSR) matrix.

    ``what`` names the entries ("entries", "blocks") in messages.
    """
    if indptr.ndim != 1 or indices.ndim != 1:
        raise ValueError("indptr and indices must be 1-D arrays")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise TypeError(
            f"indptr and indices must hold integers, got {indptr.dtype} and {indices.dtype}"
        )
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(
            f"indptr has length {indptr.shape[0]}, expected n_rows + 1 = {n_rows + 1}"
        )
    if int(indptr[0]) != 0:
        raise ValueError(f"indptr[0] must be 0, got {int(indptr[0])}")
    if n_rows and bool((indptr[1:] < indptr[:-1]).any()):
        bad = int(xp.nonzero(indptr[1:] < indptr[:-1])[0][0])
        raise ValueError(f"indptr must be non-decreasing; it decreases after row {bad}")
    nnz = int(indptr[-1])
    if indices.shape[0] != nnz:
        raise ValueError(
            f"indices has length {indices.shape[0]} but indptr[-1] = {nnz}"
        )
    if n_entries != nnz:
        raise ValueError(f"data holds {n_entries} {what} but indptr[-1] = {nnz}")
    if nnz:
        lo = int(indices.min())
        hi = int(indices.max())
        if lo < 0 or hi >= n_cols:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"column index {bad} out of range [0, {n_cols}) in indices"
            )


def to_index_arrays(xp, indptr, indices, n_rows, n_cols):
    """Cast ``indptr`` and ``indices`` to one common int32/int64 dtype.

    Arrays that already share int32 or int64 are returned as they are (zero
    copy); other integer dtypes are cast to the narrowest of the two that holds
    the dimensions and nnz.
    """
    indptr = xp.asarray(indptr)
    indices = xp.asarray(indices)
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise TypeError(
            f"indptr and indices must hold integers, got {indptr.dtype} and {indices.dtype}"
        )
    if indptr.dtype == indices.dtype and indptr.dtype in (np.int32, np.int64):
        return indptr, indices
    nnz = int(indptr[-1]) if indptr.shape[0] else 0
    wanted = index_dtype(maxval=max(n_rows, n_cols, nnz))
    if np.dtype(np.int64) in (indptr.dtype, indices.dtype):
        wanted = np.dtype(np.int64)
    return indptr.astype(wanted), indices.astype(wanted)
