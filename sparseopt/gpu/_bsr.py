"""CUDA kernels for BSR times dense: ``A @ X`` and ``A.T @ X``.

One thread block owns a chunk of up to 32 rows of one block row and a tile of
``TK`` (<= 32) dense columns; its threads form a ``TK x TR`` grid (``TR <= 8``),
each thread accumulating 4 rows of one dense column in registers.  For every
stored ``R x C`` block the thread block loads, 32 block columns at a time,

* the block's rows of the chunk into a shared tile ``A_sh`` (a dense tile:
  "load as sparse, compute as dense", Flash-LLM), and
* the matching 32 rows of ``X`` (``TK`` columns) into a shared tile ``X_sh``,
  read with consecutive threads on consecutive columns (coalesced),

then multiplies the two tiles from shared memory.  A block is therefore read
from global memory once per column tile, and every entry of ``X_sh`` is reused
by all rows of the chunk.  The transposed kernel keeps the chunk's rows of
``X`` in shared memory for the whole block row (they multiply every block of
it) and scatters the products with ``atomicAdd``.

Tensor cores are not used (numba.cuda exposes no ``mma``); the tile loop is
the part a tensor-core variant would replace.
"""

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda, types  # cuda as a module global: the simulator swaps it

#: edge of the shared tiles (rows of a chunk, block columns per step, dense columns)
TILE = 32
#: rows each thread accumulates (so a chunk has 4 * TR rows)
ROWS_PER_THREAD = 4


def launch_shape(R, k):
    """``(TK, TR, n_chunks)``: dense columns per block, thread rows, row chunks per block row."""
    from sparseopt.gpu._launch import cdiv, pow2_at_least

    tk = min(TILE, pow2_at_least(k))
    tr = min(TILE // ROWS_PER_THREAD, pow2_at_least(cdiv(R, ROWS_PER_THREAD)))
    return tk, tr, cdiv(R, ROWS_PER_THREAD * tr)


@functools.cache
def python_kernels(dtype):
    """The BSR kernels as Python functions for value dtype ``dtype``."""
    DT = numba.from_dtype(np.dtype(dtype))
    ZERO = np.dtype(dtype).type(0)

    def bsr_spmm(indptr, indices, data, X, out, n_chunks):
        """``out = A @ X``; grid ``(n_block_rows * n_chunks, ceil(k / TK))``, block ``(TK, TR)``."""
        A_sh = cuda.shared.array((TILE, TILE), DT)
        X_sh = cuda.shared.array((TILE, TILE), DT)
        acc = cuda.local.array(ROWS_PER_THREAD, DT)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tk = cuda.blockDim.x
        tr = cuda.blockDim.y
        R = data.shape[1]
        C = data.shape[2]
        k = X.shape[1]
        bi = cuda.blockIdx.x // n_chunks
        r0 = (cuda.blockIdx.x - bi * n_chunks) * ROWS_PER_THREAD * tr
        rt = min(ROWS_PER_THREAD * tr, R - r0)
        c0 = cuda.blockIdx.y * tk
        t = ty * tk + tx
        n_threads = tk * tr
        for q in range(ROWS_PER_THREAD):
            acc[q] = ZERO
        for jb in range(indptr[bi], indptr[bi + 1]):
            col0 = indices[jb] * C
            for cc0 in range(0, C, TILE):
                ct = min(TILE, C - cc0)
                for e in range(t, rt * ct, n_threads):
                    rr = e // ct
                    cc = e - rr * ct
                    A_sh[rr, cc] = data[jb, r0 + rr, cc0 + cc]
                for e in range(t, ct * tk, n_threads):
                    rr = e // tk
                    cc = e - rr * tk
                    if c0 + cc < k:
                        X_sh[rr, cc] = X[col0 + cc0 + rr, c0 + cc]
                    else:
                        X_sh[rr, cc] = ZERO
                cuda.syncthreads()
                for q in range(ROWS_PER_THREAD):
                    r = ty + q * tr
                    if r < rt:
                        s = acc[q]
                        for cc in range(ct):
                            s += A_sh[r, cc] * X_sh[cc, tx]
                        acc[q] = s
                cuda.syncthreads()
        if c0 + tx < k:
            for q in range(ROWS_PER_THREAD):
                r = ty + q * tr
                if r < rt:
                    out[bi * R + r0 + r, c0 + tx] = acc[q]

    def bsr_spmm_t(indptr, indices, data, X, out, n_chunks):
        """``out += A.T @ X`` (``out`` zeroed); same grid and block as :func:`bsr_spmm`."""
        A_sh = cuda.shared.array((TILE, TILE), DT)
        X_sh = cuda.shared.array((TILE, TILE), DT)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tk = cuda.blockDim.x
        tr = cuda.blockDim.y
        R = data.shape[1]
        C = data.shape[2]
        k = X.shape[1]
        bi = cuda.blockIdx.x // n_chunks
        r0 = (cuda.blockIdx.x - bi * n_chunks) * ROWS_PER_THREAD * tr
        rt = min(ROWS_PER_THREAD * tr, R - r0)
        c0 = cuda.blockIdx.y * tk
        t = ty * tk + tx
        n_threads = tk * tr
        # the chunk's rows of X multiply every block of the block row: load them once
        for e in range(t, rt * tk, n_threads):
            rr = e // tk
            cc = e - rr * tk
            if c0 + cc < k:
                X_sh[rr, cc] = X[bi * R + r0 + rr, c0 + cc]
            else:
                X_sh[rr, cc] = ZERO
        for jb in range(indptr[bi], indptr[bi + 1]):
            col0 = indices[jb] * C
            for cc0 in range(0, C, TILE):
                ct = min(TILE, C - cc0)
                cuda.syncthreads()  # X_sh loaded / previous A_sh consumed
                for e in range(t, rt * ct, n_threads):
                    rr = e // ct
                    cc = e - rr * ct
                    A_sh[rr, cc] = data[jb, r0 + rr, cc0 + cc]
                cuda.syncthreads()
                if c0 + tx < k:
                    for cc in range(ty, ct, tr):
                        s = ZERO
                        for r in range(rt):
                            s += A_sh[r, cc] * X_sh[r, tx]
                        cuda.atomic.add(out, (col0 + cc0 + cc, c0 + tx), s)

    return SimpleNamespace(bsr_spmm=bsr_spmm, bsr_spmm_t=bsr_spmm_t)


@functools.cache
def kernels(dtype):
    """The jitted BSR kernels for value dtype ``dtype``."""
    py = python_kernels(np.dtype(dtype))
    return SimpleNamespace(**{name: cuda.jit(f) for name, f in vars(py).items()})


def ptx_cases(dtype, index_dtype):
    """``(name, python function, signature)`` of every kernel here, for ``compile_ptx``."""
    v = numba.from_dtype(np.dtype(dtype))
    i = numba.from_dtype(np.dtype(index_dtype))
    ind = types.Array(i, 1, "C")
    blocks = types.Array(v, 3, "C")
    mat = types.Array(v, 2, "C")
    py = python_kernels(np.dtype(dtype))
    return [
        ("bsr_spmm", py.bsr_spmm, (ind, ind, blocks, mat, mat, types.int64)),
        ("bsr_spmm_t", py.bsr_spmm_t, (ind, ind, blocks, mat, mat, types.int64)),
    ]
