"""Kernel launching on CuPy (or, in the CUDA simulator, NumPy) arrays.

numba.cuda kernels accept any object exporting ``__cuda_array_interface__``.
We wrap CuPy arrays with ``cuda.as_cuda_array(a, sync=False)`` (the kernel is
launched on CuPy's current stream, so there is nothing to wait for: ``sync=True``
would add a host synchronisation to every launch) and launch on that stream
through ``cuda.external_stream``.  With ``on_device=False`` (the simulator,
``NUMBA_ENABLE_CUDASIM=1``) the NumPy arrays are passed as they are.
"""

import numpy as np


def cuda_module():
    """``numba.cuda``, imported on first use with a clear error if numba-cuda is missing."""
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships a numba.cuda
        raise ImportError(
            "the GPU backend needs numba-cuda: pip install 'sparseopt[gpu]'"
        ) from exc
    return cuda


def simulator_enabled():
    """Whether numba.cuda runs in the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` at its import)."""
    cuda_module()
    try:
        from numba.cuda.core import config
    except ImportError:  # pragma: no cover - numba's deprecated built-in numba.cuda
        from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def pow2_at_least(n):
    """Smallest power of two ``>= max(n, 1)``."""
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


def group_log2(mean_length, *, cap=32):
    """log2 of the threads given to one row: a power of two near the mean row length, <= cap."""
    size = min(pow2_at_least(int(np.ceil(mean_length)) if mean_length > 0 else 1), cap)
    return size.bit_length() - 1


def cdiv(a, b):
    return -(-int(a) // int(b))


class Launcher:
    """Launch kernels on the arrays of one array module.

    Parameters
    ----------
    on_device : bool
        True for CuPy arrays on a device; False for NumPy arrays in the simulator.
    """

    def __init__(self, on_device):
        self.on_device = on_device
        self._streams = {}

    def device_array(self, a, name="array"):
        """A kernel argument: CuPy arrays wrapped zero-copy; host arrays refused on a device."""
        if not self.on_device:
            return a
        if not hasattr(a, "__cuda_array_interface__"):
            raise TypeError(
                f"{name} is a host ({type(a).__module__.split('.')[0]}) array but the "
                "other operands are on the GPU; move it with sparseopt.gpu.to_device"
            )
        return cuda_module().as_cuda_array(a, sync=False)

    def stream(self):
        import cupy

        ptr = cupy.cuda.get_current_stream().ptr
        s = self._streams.get(ptr)
        if s is None:
            s = self._streams[ptr] = cuda_module().external_stream(ptr)
        return s

    def __call__(self, kernel, grid, block, *args):
        """Launch ``kernel[grid, block]`` on ``args``; a zero-sized grid launches nothing."""
        grid = tuple(int(g) for g in np.atleast_1d(grid))
        block = tuple(int(b) for b in np.atleast_1d(block))
        if min(grid) == 0:
            return
        args = tuple(self.device_array(a) if isinstance(a, np.ndarray) or
                     hasattr(a, "__cuda_array_interface__") else a for a in args)
        if self.on_device:
            kernel[grid, block, self.stream()](*args)
        else:
            kernel[grid, block](*args)
