"""A stand-in device backend for testing solvers' device paths without a GPU.

``strict_device()`` registers ``array_api_strict`` as a device array library whose
sparse kernels are the CPU ones, counts host fetches (``to_numpy``), and makes any
implicit host conversion of a device array inside a solver fail the test.
"""

import contextlib

import numpy as np
import pytest
import scipy.sparse as sp

from sparseopt import _backend
from sparseopt._numpy_backend import NumpyBackend

xps = pytest.importorskip("array_api_strict")


class StrictBackend:
    """``xp = array_api_strict``; the sparse kernels are the CPU ones behind the device API."""

    name = "array_api_strict"

    def __init__(self):
        self.xp = xps
        self._cpu = NumpyBackend()
        self.n_fetch = 0

    def sync(self):
        """Nothing queued."""

    def to_numpy(self, a):
        self.n_fetch += 1
        return np.array(a._array, copy=True)

    def _run(self, kernel, indptr, indices, data, X, out, **options):
        host = [np.ascontiguousarray(v._array) for v in (indptr, indices, data, X)]
        res = np.empty(tuple(out.shape), dtype=host[2].dtype)
        getattr(self._cpu, kernel)(*host, res, **options)
        out[...] = xps.asarray(res)
        return out

    def spmm(self, *args):
        return self._run("spmm", *args)

    def spmm_t(self, *args, rows_sorted=False):
        return self._run("spmm_t", *args, rows_sorted=rows_sorted)


def _refuse(*_args, **_kwargs):
    raise AssertionError("implicit host conversion of a device array inside a solver")


@contextlib.contextmanager
def strict_device():
    """Register the stand-in backend; forbid implicit host conversions meanwhile."""
    be = StrictBackend()
    _backend._REGISTRY["array_api_strict"] = _backend._Spec(
        matches=("array_api_strict",), loader="tests:none", instance=be)
    cls = type(xps.asarray(0.0))
    saved = {k: getattr(cls, k) for k in ("__float__", "__int__", "__bool__", "__array__")}
    try:
        for k in saved:
            setattr(cls, k, _refuse)
        yield be
    finally:
        for k, v in saved.items():
            setattr(cls, k, v)
        del _backend._REGISTRY["array_api_strict"]


class DeviceCSR:
    """A CSR whose arrays live in ``conv``'s namespace (the device-CSR protocol)."""

    format = "csr"

    def __init__(self, A, conv):
        A = sp.csr_array(A)
        self.indptr, self.indices, self.data = (conv(A.indptr), conv(A.indices),
                                                conv(A.data))
        self.shape = A.shape


def dev(a):
    if a is None or isinstance(a, (int, float, str)):
        return a
    if sp.issparse(a):
        return DeviceCSR(a, xps.asarray)
    return xps.asarray(np.asarray(a))


def host(a):
    return np.array(a._array, copy=True)
