"""The CuPy GPU backend: device formats, numba.cuda kernels, conversions.

Imported lazily: ``import sparseopt`` never imports this package, and importing
it imports neither cupy nor numba.cuda; they are loaded on first use, with a
clear error if cupy or a device is missing.

Public names
------------
to_device, to_host
    Copy a matrix (``CSR``, ``BSR``, scipy/pydata sparse) or a dense array to
    the GPU and back.
from_cupyx, to_cupyx
    Zero-copy exchange with ``cupyx.scipy.sparse.csr_matrix`` (cuSPARSE).
CupyBackend
    The backend object (``sparseopt.get_backend(cupy_array)`` returns one).
is_available
    Whether cupy imports and sees a CUDA device.
"""

import importlib

__all__ = ["CupyBackend", "from_cupyx", "is_available", "to_cupyx", "to_device", "to_host"]

_LAZY = {
    "CupyBackend": "sparseopt.gpu._backend",
    "from_cupyx": "sparseopt.gpu._convert",
    "to_cupyx": "sparseopt.gpu._convert",
    "to_device": "sparseopt.gpu._convert",
    "to_host": "sparseopt.gpu._convert",
    "is_available": "sparseopt.gpu._device",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparseopt.gpu' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
