"""CUDA kernels for CSR products: SpMV, SpMM and the transposed SpMM.

Thread mapping (Bell & Garland's CSR-vector, generalised to dense columns as in
GE-SpMM): a *group* of ``G = 2**g`` consecutive threads of a warp owns one row,
``G`` a power of two of at most 32 chosen by the caller from the mean row
length (SpMV) or the number of dense columns (SpMM).

* SpMV: the ``G`` lanes stride over the row's entries, and the partial sums
  are reduced in shared memory (no warp shuffles, so the CUDA simulator runs
  the same code a device does).
* SpMM ``Y = A @ X``: lane ``l`` owns the dense columns ``l, l + G, ...``;
  consecutive lanes read consecutive entries of a row of ``X`` (coalesced),
  and every lane of a group reads the same ``indices[j], data[j]`` (a
  broadcast served by L1).  No reduction, no synchronisation.
* ``Y = A.T @ X`` scatters with ``atomicAdd`` (see :func:`csr_spmm_t`).

Kernels are built per value dtype by :func:`kernels` (the shared-memory
buffer and the accumulator's zero are typed constants), and compiled lazily
per index dtype by numba.cuda.
"""

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda, types  # cuda as a module global: the simulator swaps it

#: threads per block of the row-group kernels
BLOCK = 128


@functools.cache
def python_kernels(dtype):
    """The kernels as Python functions for value dtype ``dtype`` (for jit or compile_ptx)."""
    DT = numba.from_dtype(np.dtype(dtype))
    ZERO = np.dtype(dtype).type(0)

    def csr_spmv(indptr, indices, data, x, out, g):
        """``out = A @ x`` with ``2**g`` threads per row and a shared-memory reduction."""
        partial = cuda.shared.array(BLOCK, DT)
        tid = cuda.threadIdx.x
        size = 1 << g
        lane = tid & (size - 1)
        row = (cuda.blockIdx.x * BLOCK + tid) >> g
        n_rows = out.shape[0]
        acc = ZERO
        if row < n_rows:
            for j in range(indptr[row] + lane, indptr[row + 1], size):
                acc += data[j] * x[indices[j]]
        partial[tid] = acc
        cuda.syncthreads()
        offset = size >> 1
        while offset > 0:  # same trip count for every thread: g is uniform
            if lane < offset:
                partial[tid] += partial[tid + offset]
            cuda.syncthreads()
            offset >>= 1
        if lane == 0 and row < n_rows:
            out[row] = partial[tid]

    def csr_spmm(indptr, indices, data, X, out, g):
        """``out = A @ X``: one group of ``2**g`` lanes per row, lanes over dense columns."""
        t = cuda.blockIdx.x * BLOCK + cuda.threadIdx.x
        size = 1 << g
        row = t >> g
        lane = t & (size - 1)
        if row < out.shape[0]:
            start = indptr[row]
            end = indptr[row + 1]
            for c in range(lane, out.shape[1], size):
                acc = ZERO
                for j in range(start, end):
                    acc += data[j] * X[indices[j], c]
                out[row, c] = acc

    def csr_spmm_t(indptr, indices, data, X, out, g):
        """``out += A.T @ X`` by scattering row ``i`` of ``A`` times ``X[i]`` with atomics.

        ``out`` must be zeroed.  Lanes of a group own distinct dense columns, so
        the atomics of one group hit consecutive addresses of one output row.
        """
        t = cuda.blockIdx.x * BLOCK + cuda.threadIdx.x
        size = 1 << g
        row = t >> g
        lane = t & (size - 1)
        if row < X.shape[0]:
            start = indptr[row]
            end = indptr[row + 1]
            for c in range(lane, X.shape[1], size):
                xv = X[row, c]
                if xv != ZERO:
                    for j in range(start, end):
                        cuda.atomic.add(out, (indices[j], c), data[j] * xv)

    return SimpleNamespace(csr_spmv=csr_spmv, csr_spmm=csr_spmm, csr_spmm_t=csr_spmm_t)


@functools.cache
def kernels(dtype):
    """The jitted kernels for value dtype ``dtype`` (compiled per index dtype on first launch)."""
    py = python_kernels(np.dtype(dtype))
    return SimpleNamespace(**{name: cuda.jit(f) for name, f in vars(py).items()})


def ptx_cases(dtype, index_dtype):
    """``(name, python function, signature)`` of every kernel here, for ``compile_ptx``."""
    v = numba.from_dtype(np.dtype(dtype))
    i = numba.from_dtype(np.dtype(index_dtype))
    vec = types.Array(v, 1, "C")
    mat = types.Array(v, 2, "C")
    ind = types.Array(i, 1, "C")
    py = python_kernels(np.dtype(dtype))
    return [
        ("csr_spmv", py.csr_spmv, (ind, ind, vec, vec, vec, types.int64)),
        ("csr_spmm", py.csr_spmm, (ind, ind, vec, mat, mat, types.int64)),
        ("csr_spmm_t", py.csr_spmm_t, (ind, ind, vec, mat, mat, types.int64)),
    ]
