"""All Numba CPU kernels of sparseopt.

Every kernel is ``@njit(cache=True, nogil=True)`` and takes plain arrays and
scalars (no jitclass), so compiled code is cached on disk across processes.
Kernels are grouped by job in private modules (``_spmm``, ``_spgemm``,
``_bsr``, ``_canonical``, and each solver's fused loops); import them by their
full module path.
"""
