"""Finding CuPy and a device, with errors that say what is missing."""


def require_cupy():
    """Import and return ``cupy``, checking that a CUDA device is usable.

    Raises
    ------
    ImportError
        cupy is not installed.
    RuntimeError
        cupy is installed but no CUDA device (or driver) is available; note that
        ``import cupy`` succeeds on such machines, so we check
        ``cupy.cuda.is_available()``.
    """
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            "the GPU backend needs CuPy and numba-cuda: pip install 'sparseopt[gpu]' "
            "(cupy-cuda12x, or 'cupy-cuda12x[ctk]' to get the CUDA libraries from PyPI)"
        ) from exc
    if not cupy.cuda.is_available():
        raise RuntimeError(
            "no CUDA device is available (cupy.cuda.is_available() is False): the "
            "sparseopt GPU backend needs an NVIDIA GPU and driver"
        )
    return cupy


def is_available():
    """True when cupy imports and sees a CUDA device (never raises)."""
    try:
        require_cupy()
    except (ImportError, RuntimeError):
        return False
    return True
