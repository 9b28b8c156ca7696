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

    def csr_spmv(indptr, indices, data, x, out, g, long_row):
        """``out = A @ x`` with ``2**g`` threads per row and a shared-memory reduction.

        Rows with more than ``long_row`` entries are left to :func:`csr_spmv_long`.
        """
        partial = cuda.shared.array(BLOCK, DT)
        tid = cuda.threadIdx.x
        size = 1 << g
        lane = tid & (size - 1)
        row = (cuda.blockIdx.x * BLOCK + tid) >> g
        n_rows = out.shape[0]
        acc = ZERO
        mine = row < n_rows and indptr[row + 1] - indptr[row] <= long_row
        if mine:
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
        if lane == 0 and mine:
            out[row] = partial[tid]

    def csr_spmv_long(indptr, indices, data, x, out, long_row):
        """Rows with more than ``long_row`` entries: a whole thread block per row.

        Every block scans its share of the rows (``row = blockIdx, + gridDim,
        ...``); the test is uniform over the block, so the reduction's barriers are
        met by all threads.  No host synchronisation is needed to find the rows.
        """
        partial = cuda.shared.array(BLOCK, DT)
        tid = cuda.threadIdx.x
        for row in range(cuda.blockIdx.x, out.shape[0], cuda.gridDim.x):
            start = indptr[row]
            end = indptr[row + 1]
            if end - start > long_row:
                acc = ZERO
                for j in range(start + tid, end, BLOCK):
                    acc += data[j] * x[indices[j]]
                partial[tid] = acc
                cuda.syncthreads()
                offset = BLOCK >> 1
                while offset > 0:
                    if tid < offset:
                        partial[tid] += partial[tid + offset]
                    cuda.syncthreads()
                    offset >>= 1
                if tid == 0:
                    out[row] = partial[0]
                cuda.syncthreads()  # partial[0] read before the next row reuses it

    def csr_spmm(indptr, indices, data, X, out, g, long_row):
        """``out = A @ X``: one group of ``2**g`` lanes per row, lanes over dense columns.

        Rows with more than ``long_row`` entries are left to :func:`csr_spmm_long`.
        """
        t = cuda.blockIdx.x * BLOCK + cuda.threadIdx.x
        size = 1 << g
        row = t >> g
        lane = t & (size - 1)
        if row < out.shape[0] and indptr[row + 1] - indptr[row] <= long_row:
            start = indptr[row]
            end = indptr[row + 1]
            for c in range(lane, out.shape[1], size):
                acc = ZERO
                for j in range(start, end):
                    acc += data[j] * X[indices[j], c]
                out[row, c] = acc

    def csr_spmm_long(indptr, indices, data, X, out, g, long_row):
        """Long rows of ``A @ X``: a block per row, ``2**g`` lanes over columns times
        ``BLOCK / 2**g`` slices of the row's entries, partial sums reduced in shared memory.
        """
        partial = cuda.shared.array(BLOCK, DT)
        tid = cuda.threadIdx.x
        size = 1 << g
        lane = tid & (size - 1)
        part = tid >> g
        n_parts = BLOCK >> g
        k = out.shape[1]
        for row in range(cuda.blockIdx.x, out.shape[0], cuda.gridDim.x):
            start = indptr[row]
            end = indptr[row + 1]
            if end - start > long_row:
                for c0 in range(0, k, size):
                    c = c0 + lane
                    acc = ZERO
                    if c < k:
                        for j in range(start + part, end, n_parts):
                            acc += data[j] * X[indices[j], c]
                    partial[tid] = acc
                    cuda.syncthreads()
                    if part == 0 and c < k:
                        for q in range(1, n_parts):
                            acc += partial[(q << g) + lane]
                        out[row, c] = acc
                    cuda.syncthreads()

    def csr_spmm_t(indptr, indices, data, X, out, g, long_row):
        """``out += A.T @ X`` by scattering row ``i`` of ``A`` times ``X[i]`` with atomics.

        ``out`` must be zeroed.  Lanes of a group own distinct dense columns, so
        the atomics of one group hit consecutive addresses of one output row.
        Rows with more than ``long_row`` entries are left to :func:`csr_spmm_t_long`.
        """
        t = cuda.blockIdx.x * BLOCK + cuda.threadIdx.x
        size = 1 << g
        row = t >> g
        lane = t & (size - 1)
        if row < X.shape[0] and indptr[row + 1] - indptr[row] <= long_row:
            start = indptr[row]
            end = indptr[row + 1]
            for c in range(lane, X.shape[1], size):
                xv = X[row, c]
                if xv != ZERO:
                    for j in range(start, end):
                        cuda.atomic.add(out, (indices[j], c), data[j] * xv)

    def csr_spmm_t_long(indptr, indices, data, X, out, g, long_row):
        """Long rows of ``A.T @ X``: a block per row, its entries split over the block."""
        tid = cuda.threadIdx.x
        size = 1 << g
        lane = tid & (size - 1)
        part = tid >> g
        n_parts = BLOCK >> g
        for row in range(cuda.blockIdx.x, X.shape[0], cuda.gridDim.x):
            start = indptr[row]
            end = indptr[row + 1]
            if end - start > long_row:
                for c in range(lane, X.shape[1], size):
                    xv = X[row, c]
                    if xv != ZERO:
                        for j in range(start + part, end, n_parts):
                            cuda.atomic.add(out, (indices[j], c), data[j] * xv)

    return SimpleNamespace(csr_spmv=csr_spmv, csr_spmv_long=csr_spmv_long,
                           csr_spmm=csr_spmm, csr_spmm_long=csr_spmm_long,
                           csr_spmm_t=csr_spmm_t, csr_spmm_t_long=csr_spmm_t_long)


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
    n = types.int64
    return [
        ("csr_spmv", py.csr_spmv, (ind, ind, vec, vec, vec, n, n)),
        ("csr_spmv_long", py.csr_spmv_long, (ind, ind, vec, vec, vec, n)),
        ("csr_spmm", py.csr_spmm, (ind, ind, vec, mat, mat, n, n)),
        ("csr_spmm_long", py.csr_spmm_long, (ind, ind, vec, mat, mat, n, n)),
        ("csr_spmm_t", py.csr_spmm_t, (ind, ind, vec, mat, mat, n, n)),
        ("csr_spmm_t_long", py.csr_spmm_t_long, (ind, ind, vec, mat, mat, n, n)),
    ]
