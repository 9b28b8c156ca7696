"""Helpers shared by the backend-generic (device) code paths of the solvers.

The generic paths are written against ``nx.xp``, the array-API namespace of a
backend (``array_api_compat.cupy`` on a GPU), plus the backend's sparse
kernels.  Nothing here imports cupy: the namespace comes from the arrays.

* :func:`device_backend` -- dispatch: ``None`` for host (NumPy) input, so the
  CPU fast paths are untouched, else the backend owning the arrays; mixing
  host and device arrays is a ``TypeError`` naming which argument is where.
* :func:`check_array_xp` -- the device twin of
  :func:`sparseopt._validation.check_array` (same messages).
* :func:`fetch` -- several device scalars to Python floats in one transfer
  (one synchronisation).
"""

import numpy as np

from sparseopt._backend import array_library, get_backend

__all__ = ["check_array_xp", "device_backend", "fetch", "float_dtype_xp", "host_dtype"]


def _leaves(name, value):
    """``(label, array)`` pairs of an argument; lists of numbers and Nones are skipped."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        if name == "init" and len(value) == 2:
            return [item for i, v in enumerate(value) for item in _leaves(f"{name}[{i}]", v)]
        if len(value) == 0:  # "[]" means "uniform" / "default" to the solvers
            return []
    return [(name, value)]  # a non-empty Python sequence counts as host data


def device_backend(**named):
    """Backend of the named array arguments, or ``None`` when they all live on the host.

    Parameters
    ----------
    **named
        The arguments by name (``a=a, M=M, ...``); ``None`` and empty
        sequences are skipped, other Python sequences count as host data,
        ``init=(f, g)`` is looked into.

    Returns
    -------
    backend or None
        ``None`` for NumPy (and scipy, lists, scalars): the caller keeps its CPU
        path.  Otherwise :func:`sparseopt.get_backend` of the arrays.

    Raises
    ------
    TypeError
        If host and device arrays are mixed: the message says which argument
        is a NumPy (host) array and which is on the device.
    """
    if all(value is None or type(value) is np.ndarray for value in named.values()):
        return None  # the common host case, without looking up the registry
    where = {}
    arrays = []
    for name, value in named.items():
        for label, arr in _leaves(name, value):
            where[label] = array_library(arr)
            arrays.append(arr)
    libs = set(where.values())
    if libs <= {"numpy"}:
        return None
    if len(libs) > 1:
        detail = ", ".join(
            f"{label}: {lib} ({'host' if lib == 'numpy' else 'device'})"
            for label, lib in where.items()
        )
        raise TypeError(
            f"host and device arrays cannot be mixed ({detail}); move them to one "
            "device first (sparseopt.gpu.to_device / sparseopt.gpu.to_host)"
        )
    return get_backend(*arrays)


def host_dtype(xp, dtype):
    """The NumPy dtype matching a float dtype of namespace ``xp``."""
    return np.dtype(np.float32) if dtype == xp.float32 else np.dtype(np.float64)


def float_dtype_xp(xp, *dtypes):
    """float32 when every given dtype is float32, float64 otherwise (``None`` skipped)."""
    dtypes = [d for d in dtypes if d is not None]
    if dtypes and all(d == xp.float32 for d in dtypes):
        return xp.float32
    return xp.float64


def fetch(nx, *values):
    """Device scalars (0-d arrays) as Python floats, in one transfer."""
    xp = nx.xp
    stacked = xp.stack([xp.astype(xp.reshape(v, ()), xp.float64) for v in values])
    return tuple(float(h) for h in np.asarray(nx.to_numpy(stacked)).reshape(-1))


def check_array_xp(nx, a, name, *, ndim=None, finite=True, min_shape=None):
    """Check a device array as :func:`~sparseopt._validation.check_array` checks a host one.

    Floats stay float32/float64, integers and booleans become float64, other
    dtypes are a ``TypeError`` naming ``name``; the number of dimensions, the
    minimum shape and finiteness (one reduction and one synchronisation) are
    checked with the same messages as on the CPU.
    """
    xp = nx.xp
    if hasattr(a, "toarray") or hasattr(a, "todense"):
        raise TypeError(f"{name} must be a dense array, got sparse {type(a).__name__}")
    dt = a.dtype
    if xp.isdtype(dt, "real floating"):
        if dt != xp.float32 and dt != xp.float64:
            a = xp.astype(a, xp.float64)
    elif xp.isdtype(dt, ("integral", "bool")):
        a = xp.astype(a, xp.float64)
    else:
        raise TypeError(f"{name} must hold real numbers, got dtype {dt}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got shape {tuple(a.shape)}"
            )
    if min_shape is not None:
        for axis, (have, need) in enumerate(zip(a.shape, min_shape, strict=False)):
            if have < need:
                raise ValueError(
                    f"{name} needs at least {need} entries along axis {axis}, "
                    f"got shape {tuple(a.shape)}"
                )
    if finite and a.size:
        bad_nan, bad_any = fetch(nx, xp.any(xp.isnan(a)), xp.any(~xp.isfinite(a)))
        if bad_any:
            what = "NaN" if bad_nan else "infinity"
            raise ValueError(f"{name} contains {what}; all entries must be finite")
    return a
