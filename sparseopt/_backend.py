"""Backend registry keyed by array type.

``get_backend(*arrays)`` returns the backend that owns the arrays: the Numba
CPU backend for NumPy (and scipy.sparse / pydata-sparse / our containers on
NumPy arrays), the CuPy backend for CuPy arrays.  Backends are registered with
a predicate on the *module name* of an array's type, so matching never imports
cupy, and a loader string, so the backend is imported and instantiated only on
first use.

A backend exposes ``xp`` (the array-api-compat namespace, for dense glue math),
the sparse kernels ``spmv``, ``spmm``, ``spmm_t``, ``bsr_spmm``, ``bsr_spmm_t``,
``spgemm`` and the canonical-form helpers, operating on raw ``(indptr, indices,
data)`` arrays of its own array library, plus ``sync()``, ``to_numpy`` and
``asarray``.
"""

import functools
import importlib
from dataclasses import dataclass

import numpy as np

from sparseopt._config import get_config

__all__ = ["array_library", "get_backend", "register_backend"]


@dataclass
class _Spec:
    matches: object
    loader: str
    instance: object = None

    def get(self):
        if self.instance is None:
            module, cls = self.loader.split(":")
            self.instance = getattr(importlib.import_module(module), cls)()
        return self.instance


_REGISTRY = {}


def register_backend(name, *, modules, loader):
    """Register a backend for arrays whose type lives in one of ``modules``.

    Parameters
    ----------
    name : str
        Backend name (``"numpy"``, ``"cupy"``).
    modules : tuple of str
        Top-level module names of the array types it owns.
    loader : str
        ``"package.module:Class"``, imported and instantiated on first use.
    """
    _REGISTRY[name] = _Spec(matches=tuple(modules), loader=loader)


register_backend(
    "numpy", modules=("numpy", "scipy", "sparse", "sparseopt", "builtins"),
    loader="sparseopt._numpy_backend:NumpyBackend",
)
register_backend(
    "cupy", modules=("cupy", "cupyx"), loader="sparseopt.gpu._backend:CupyBackend",
)


def _leaf_arrays(a):
    # our containers carry their arrays; look at the data array's type
    data = getattr(a, "data", None)
    if type(a).__module__.startswith("sparseopt.") and data is not None:
        return data
    return a


def array_library(a):
    """Name of the registered backend that owns ``a`` (by its type's module)."""
    top = type(_leaf_arrays(a)).__module__.split(".")[0]
    for name, spec in _REGISTRY.items():
        if top in spec.matches:
            return name
    return "numpy"


def get_backend(*arrays):
    """Return the backend of ``arrays`` (``None`` entries are ignored).

    Raises
    ------
    TypeError
        If the arrays belong to different array libraries (e.g. NumPy and
        CuPy), naming which argument positions disagree, or if the configured
        ``backend`` (see :func:`sparseopt.set_config`) does not match them.
    """
    if all(type(a) is np.ndarray for a in arrays):  # the common case, checked cheaply
        if get_config()["backend"] in ("auto", "numpy"):
            return _REGISTRY["numpy"].get()
    names = [(i, array_library(a)) for i, a in enumerate(arrays) if a is not None]
    found = sorted({n for _, n in names})
    if len(found) > 1:
        detail = ", ".join(f"argument {i}: {n}" for i, n in names)
        raise TypeError(
            f"arrays from different backends cannot be mixed ({detail}); move them "
            "to one device first (sparseopt.gpu.to_device / to_host)"
        )
    name = found[0] if found else "numpy"
    forced = get_config()["backend"]
    if forced != "auto" and forced != name:
        raise TypeError(
            f"the configured backend is {forced!r} but the arrays are {name} arrays"
        )
    return _REGISTRY[name].get()


@functools.lru_cache(maxsize=64)
def result_dtype(*dtypes):
    """Floating result dtype of a product: ``np.result_type``, float64 unless float32."""
    dtype = np.result_type(*dtypes)
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)
