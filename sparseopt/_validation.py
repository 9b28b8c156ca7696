"""Argument validation shared by every public function.

Errors name the argument and say what was wrong.  Nothing here modifies its
input: conversions return new arrays only when a dtype or layout change is
needed, and callers that write into an array must copy it first.
"""

import numbers

import numpy as np

__all__ = [
    "check_array",
    "check_finite",
    "check_positive_int",
    "check_scalar",
    "float_dtype",
]


def float_dtype(*dtypes):
    """Result floating dtype: float32 only when every input is float32, else float64."""
    dtypes = [np.dtype(d) for d in dtypes if d is not None]
    if dtypes and all(d == np.float32 for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_finite(a, name):
    """Raise ``ValueError`` naming ``name`` if ``a`` holds NaN or infinity."""
    a = np.asarray(a)
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        what = "NaN" if np.isnan(a).any() else "infinity"
        raise ValueError(f"{name} contains {what}; all entries must be finite")


def check_array(a, name, *, ndim=None, dtype="float", order=None, finite=True,
                min_shape=None, copy=False):
    """Convert ``a`` to a NumPy array and check it.

    Parameters
    ----------
    a : array_like
        The argument.
    name : str
        Its name, used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype : "float", numpy dtype or None
        ``"float"`` keeps float32/float64 and converts integers and bools to
        float64; complex and object inputs are rejected.  ``None`` keeps the dtype.
    order : {"C", "F"}, optional
        Memory layout required by the caller's kernel.
    finite : bool
        Reject NaN and infinity.
    min_shape : tuple of int, optional
        Minimum size of each dimension.
    copy : bool
        Always return a new array (for callers that write into it).
    """
    if hasattr(a, "toarray") or hasattr(a, "todense"):
        raise TypeError(f"{name} must be a dense array, got sparse {type(a).__name__}")
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    if dtype == "float":
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind == "f":
            if arr.dtype not in (np.float32, np.float64):
                arr = arr.astype(np.float64)
        else:
            raise TypeError(
                f"{name} must hold real numbers, got dtype {arr.dtype}"
            )
    elif dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got shape {arr.shape}"
            )
    if min_shape is not None:
        for axis, (have, need) in enumerate(zip(arr.shape, min_shape, strict=False)):
            if have < need:
                raise ValueError(
                    f"{name} needs at least {need} entries along axis {axis}, "
                    f"got shape {arr.shape}"
                )
    if finite:
        check_finite(arr, name)
    if order == "C":
        arr = np.ascontiguousarray(arr)
    elif order == "F":
        arr = np.asfortranarray(arr)
    if copy and np.shares_memory(arr, np.asarray(a)):
        arr = arr.copy(order="K" if order is None else order)
    return arr


def check_scalar(value, name, *, low=None, high=None, include_low=True,
                 include_high=True):
    """Check a real scalar and return it as a Python float.

    Raises ``TypeError`` for non-real values and ``ValueError`` (naming
    ``name`` and the allowed interval) for NaN, infinity or out-of-range values.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if not (isinstance(value, np.ndarray) and value.ndim == 0):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (value == low and not include_low)):
        op = ">=" if include_low else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value}")
    if high is not None and (value > high or (value == high and not include_high)):
        op = "<=" if include_high else "<"
        raise ValueError(f"{name} must be {op} {high}, got {value}")
    return value


def check_positive_int(value, name, *, allow_zero=False):
    """Check an integer count (``max_iter``, ``n_components``, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return int(value)
