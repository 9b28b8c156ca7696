"""A stand-in device backend on array-api-strict, for testing the generic solver paths.

``array_api_strict`` is a NumPy-backed namespace that implements the array API
standard and nothing else (no ``__array_function__``, no fancy indexing beyond
the standard, no implicit NumPy conversion in NumPy functions, strict type
promotion), so a solver path that secretly relies on NumPy fails under it,
without a GPU.  :class:`StrictBackend` plays the part of
:class:`sparseopt.gpu.CupyBackend`: ``xp`` is the strict namespace, and the
sparse kernels (which on a GPU are numba.cuda kernels) run the CPU backend's
Numba kernels on NumPy copies and write into the strict ``out`` array, with the
same ``(indptr, indices, data, X, out)`` signatures.

:func:`registered` installs it in the backend registry for the duration of a
test, so ``sparseopt.get_backend(strict_array)`` returns it and the public
functions dispatch exactly as they do for CuPy arrays.
"""

import contextlib

import numpy as np

from sparseopt import _backend
from sparseopt._numpy_backend import NumpyBackend


class StrictBackend:
    """Backend with ``xp = array_api_strict`` and CPU kernels behind the device API."""

    name = "array_api_strict"

    def __init__(self):
        import array_api_strict

        self.xp = array_api_strict
        self._cpu = NumpyBackend()
        self.calls = {}

    def sync(self):
        """Nothing queued."""

    def to_numpy(self, a):
        return np.asarray(a)

    def asarray(self, a, dtype=None):
        return self.xp.asarray(np.asarray(a), dtype=dtype)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def _run(self, kernel, indptr, indices, data, X, out, **options):
        self.calls[kernel] = self.calls.get(kernel, 0) + 1
        host = [np.ascontiguousarray(np.asarray(v)) for v in (indptr, indices, data, X)]
        res = np.empty(tuple(out.shape), dtype=host[2].dtype)
        getattr(self._cpu, kernel)(*host, res, **options)
        out[...] = self.xp.asarray(res)
        return out

    def spmv(self, indptr, indices, data, x, out):
        return self._run("spmv", indptr, indices, data, x, out)

    def spmm(self, indptr, indices, data, X, out):
        return self._run("spmm", indptr, indices, data, X, out)

    def spmm_t(self, indptr, indices, data, X, out, rows_sorted=False):
        return self._run("spmm_t", indptr, indices, data, X, out, rows_sorted=rows_sorted)

    def bsr_spmm(self, indptr, indices, data, X, out):
        return self._run("bsr_spmm", indptr, indices, data, X, out)

    def bsr_spmm_t(self, indptr, indices, data, X, out):
        return self._run("bsr_spmm_t", indptr, indices, data, X, out)


@contextlib.contextmanager
def registered():
    """Register a fresh :class:`StrictBackend` for ``array_api_strict`` arrays; yield it."""
    backend = StrictBackend()
    spec = _backend._Spec(matches=("array_api_strict",), loader="tests.xp_strict_backend:"
                          "StrictBackend", instance=backend)
    saved = _backend._REGISTRY.get("array_api_strict")
    _backend._REGISTRY["array_api_strict"] = spec
    try:
        yield backend
    finally:
        if saved is None:
            del _backend._REGISTRY["array_api_strict"]
        else:
            _backend._REGISTRY["array_api_strict"] = saved
