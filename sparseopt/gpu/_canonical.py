"""CUDA kernel of the canonical-form helpers: summing runs of duplicate entries.

Sorting uses the array library's own ``lexsort`` (thrust on CuPy); what is
left is a segmented sum over the runs of equal ``(row, column)`` keys, done
here without atomics, so the sum is deterministic.
"""

from numba import cuda, types  # cuda as a module global: the simulator swaps it

BLOCK = 128


@cuda.jit
def segment_sum(starts, data, out):
    """``out[s, e] = sum(data[starts[s]:starts[s + 1], e])``; one thread per output value."""
    t = cuda.grid(1)
    width = out.shape[1]
    if t < out.shape[0] * width:
        s = t // width
        e = t - s * width
        lo = starts[s]
        acc = data[lo, e]
        for j in range(lo + 1, starts[s + 1]):
            acc += data[j, e]
        out[s, e] = acc


def ptx_cases(dtype, index_dtype):
    """``(name, python function, signature)`` for ``compile_ptx``."""
    import numba
    import numpy as np

    v = numba.from_dtype(np.dtype(dtype))
    mat = types.Array(v, 2, "C")
    return [("segment_sum", segment_sum.py_func,
             (types.Array(types.int64, 1, "C"), mat, mat))]
