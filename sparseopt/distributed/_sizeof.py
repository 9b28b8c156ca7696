"""Teach dask the size of ``scipy.sparse`` *arrays* (our chunk type).

dask registers :func:`dask.sizeof.sizeof` for ``scipy.sparse.spmatrix`` only;
a ``csr_array`` falls back to ``sys.getsizeof`` (56 bytes), so workers would
think they hold nothing, never spill our blocks and schedule blind to their
memory.  Imported by :mod:`sparseopt.distributed` (hence on every worker that
runs one of our tasks, and by the worker preload).
"""

import scipy.sparse as sp


def register():
    try:
        from dask.sizeof import sizeof
    except ImportError:  # pragma: no cover - optional dependency
        return

    @sizeof.register(sp.sparray)
    def _sizeof_sparray(s):
        total = 64
        for name in ("data", "indices", "indptr", "row", "col", "offsets"):
            arr = getattr(s, name, None)
            if arr is not None and hasattr(arr, "nbytes"):
                total += int(arr.nbytes)
        return total


register()
