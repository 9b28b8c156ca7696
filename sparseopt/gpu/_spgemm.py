"""CUDA kernels for the row-wise SpGEMM ``C = A @ B`` with hash accumulators.

The scheme follows the hash SpGEMM of Nagasaka et al. (nsparse) and the
row-wise product with scratchpad hash tables of SMASH (Shivdikar et al. 2021):

1. ``row_flops``: one thread per row of ``A`` counts the multiply-adds of the
   row, ``flops_i = sum_{j in A_i} nnz(B_j)``, an upper bound of ``nnz(C_i)``
   (together with ``n_cols``).
2. Rows are binned on the host by that bound ``b_i = min(flops_i, n_cols)``:
   rows with ``2 b_i <= 1024`` get a hash table in **shared memory** (a thread
   block per row, the table sized to the next power of two of ``2 b_i``, so a
   short row only clears a few slots), longer rows get a table of the same
   load factor in **global memory**, carved from a pool.
3. Symbolic pass: the threads of the block insert the row's column keys with
   ``atomicCAS`` (linear probing, multiplicative hash) and count the new ones:
   the exact ``nnz(C_i)``.  A prefix sum gives ``C.indptr``.
4. Numeric pass: the same insertion also ``atomicAdd``s the products into a
   value table; the row is then written out.  Shared-memory rows are compacted
   and **sorted** by a rank count (each key's position is the number of smaller
   keys: ``O(nnz_i^2 / threads)``, cheap for rows of at most 512 entries);
   global-memory rows are compacted in slot order with a block-wide prefix sum
   (deterministic, not sorted: the caller sorts them if asked).

Inside a row, sub-groups of ``2**g`` threads take one entry ``A_ij`` at a time
and stride over row ``j`` of ``B``.  Float atomics make the summation order of
one output entry run-dependent (the result can change in the last bit), as in
cuSPARSE's own SpGEMM.
"""

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda, types  # cuda as a module global: the simulator swaps it

#: slots of the shared-memory hash table (keys + values <= 16 KiB)
SHARED_SLOTS = 1024
#: most threads a SpGEMM block may have (sizes the compaction scratch)
MAX_THREADS = 128


@functools.cache
def python_kernels(dtype, key_dtype):
    """The SpGEMM kernels for value dtype ``dtype`` and column-key dtype ``key_dtype``."""
    DT = numba.from_dtype(np.dtype(dtype))
    KT = numba.from_dtype(np.dtype(key_dtype))
    ZERO = np.dtype(dtype).type(0)
    EMPTY = np.dtype(key_dtype).type(-1)
    HALF = SHARED_SLOTS // 2
    HASH = 107  # multiplicative hash; tables are powers of two, probing is linear

    # The probing loops are written out in every kernel on purpose: numba-cuda
    # compiles a device function for the *current device*, so kernels calling
    # one could not be checked with compile_ptx on a machine without a GPU.

    def row_flops(a_indptr, a_indices, b_indptr, flops):
        """``flops[i] = sum over A_ij of nnz(B_j)``; one thread per row."""
        i = cuda.grid(1)
        if i < flops.shape[0]:
            s = 0
            for ja in range(a_indptr[i], a_indptr[i + 1]):
                j = a_indices[ja]
                s += b_indptr[j + 1] - b_indptr[j]
            flops[i] = s

    def symbolic_shared(rows, a_indptr, a_indices, b_indptr, b_indices, flops, n_cols,
                        row_nnz, g):
        """Exact nnz of the rows ``rows`` (one block each) with shared-memory tables."""
        table = cuda.shared.array(SHARED_SLOTS, KT)
        row = rows[cuda.blockIdx.x]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        ts = 1
        while ts < 2 * min(flops[row], n_cols):
            ts <<= 1
        mask = ts - 1
        for s in range(t, ts, nt):
            table[s] = EMPTY
        cuda.syncthreads()
        # count this thread's share of the row's distinct keys (inlined probe)
        n_sub = nt >> g
        lane = t & ((1 << g) - 1)
        new = 0
        for ja in range(a_indptr[row] + (t >> g), a_indptr[row + 1], n_sub):
            j = a_indices[ja]
            for jb in range(b_indptr[j] + lane, b_indptr[j + 1], 1 << g):
                key = b_indices[jb]
                h = (key * HASH) & mask
                while True:
                    cur = table[h]
                    if cur == key:
                        break
                    if cur == EMPTY:
                        old = cuda.atomic.cas(table, h, EMPTY, key)
                        if old == EMPTY:
                            new += 1
                            break
                        if old == key:
                            break
                    h = (h + 1) & mask
        if new:
            cuda.atomic.add(row_nnz, row, new)

    def symbolic_global(rows, offsets, pool, a_indptr, a_indices, b_indptr, b_indices,
                        flops, n_cols, row_nnz, g):
        """As :func:`symbolic_shared` with tables ``pool[offsets[b]:]`` in global memory."""
        b = cuda.blockIdx.x
        row = rows[b]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        ts = 1
        while ts < 2 * min(flops[row], n_cols):
            ts <<= 1
        mask = ts - 1
        table = pool[offsets[b]:offsets[b] + ts]
        for s in range(t, ts, nt):
            table[s] = EMPTY
        cuda.syncthreads()
        # count this thread's share of the row's distinct keys (inlined probe)
        n_sub = nt >> g
        lane = t & ((1 << g) - 1)
        new = 0
        for ja in range(a_indptr[row] + (t >> g), a_indptr[row + 1], n_sub):
            j = a_indices[ja]
            for jb in range(b_indptr[j] + lane, b_indptr[j + 1], 1 << g):
                key = b_indices[jb]
                h = (key * HASH) & mask
                while True:
                    cur = table[h]
                    if cur == key:
                        break
                    if cur == EMPTY:
                        old = cuda.atomic.cas(table, h, EMPTY, key)
                        if old == EMPTY:
                            new += 1
                            break
                        if old == key:
                            break
                    h = (h + 1) & mask
        if new:
            cuda.atomic.add(row_nnz, row, new)

    def numeric_shared(rows, a_indptr, a_indices, a_data, b_indptr, b_indices, b_data,
                       flops, n_cols, c_indptr, c_indices, c_data, g):
        """Fill rows ``rows`` of ``C`` (sorted) from shared-memory hash tables."""
        keys = cuda.shared.array(SHARED_SLOTS, KT)
        vals = cuda.shared.array(SHARED_SLOTS, DT)
        ckeys = cuda.shared.array(HALF, KT)
        cvals = cuda.shared.array(HALF, DT)
        count = cuda.shared.array(1, types.int32)
        row = rows[cuda.blockIdx.x]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        ts = 1
        while ts < 2 * min(flops[row], n_cols):
            ts <<= 1
        mask = ts - 1
        for s in range(t, ts, nt):
            keys[s] = EMPTY
            vals[s] = ZERO
        if t == 0:
            count[0] = 0
        cuda.syncthreads()
        # accumulate the row's products into the table (inlined probe)
        n_sub = nt >> g
        lane = t & ((1 << g) - 1)
        for ja in range(a_indptr[row] + (t >> g), a_indptr[row + 1], n_sub):
            j = a_indices[ja]
            av = a_data[ja]
            for jb in range(b_indptr[j] + lane, b_indptr[j + 1], 1 << g):
                key = b_indices[jb]
                h = (key * HASH) & mask
                while True:
                    cur = keys[h]
                    if cur == EMPTY:
                        old = cuda.atomic.cas(keys, h, EMPTY, key)
                        if old == EMPTY or old == key:
                            cuda.atomic.add(vals, h, av * b_data[jb])
                            break
                    elif cur == key:
                        cuda.atomic.add(vals, h, av * b_data[jb])
                        break
                    h = (h + 1) & mask
        cuda.syncthreads()
        for s in range(t, ts, nt):
            if keys[s] != EMPTY:
                p = cuda.atomic.add(count, 0, 1)
                ckeys[p] = keys[s]
                cvals[p] = vals[s]
        cuda.syncthreads()
        n = count[0]
        base = c_indptr[row]
        for e in range(t, n, nt):
            key = ckeys[e]
            rank = 0
            for f in range(n):
                if ckeys[f] < key:
                    rank += 1
            c_indices[base + rank] = key
            c_data[base + rank] = cvals[e]

    def numeric_global(rows, offsets, pool_keys, pool_vals, a_indptr, a_indices, a_data,
                       b_indptr, b_indices, b_data, flops, n_cols, c_indptr, c_indices,
                       c_data, g):
        """Fill long rows of ``C`` from global-memory tables, compacted in slot order."""
        counts = cuda.shared.array(MAX_THREADS, types.int64)
        b = cuda.blockIdx.x
        row = rows[b]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        ts = 1
        while ts < 2 * min(flops[row], n_cols):
            ts <<= 1
        mask = ts - 1
        keys = pool_keys[offsets[b]:offsets[b] + ts]
        vals = pool_vals[offsets[b]:offsets[b] + ts]
        for s in range(t, ts, nt):
            keys[s] = EMPTY
            vals[s] = ZERO
        cuda.syncthreads()
        # accumulate the row's products into the table (inlined probe)
        n_sub = nt >> g
        lane = t & ((1 << g) - 1)
        for ja in range(a_indptr[row] + (t >> g), a_indptr[row + 1], n_sub):
            j = a_indices[ja]
            av = a_data[ja]
            for jb in range(b_indptr[j] + lane, b_indptr[j + 1], 1 << g):
                key = b_indices[jb]
                h = (key * HASH) & mask
                while True:
                    cur = keys[h]
                    if cur == EMPTY:
                        old = cuda.atomic.cas(keys, h, EMPTY, key)
                        if old == EMPTY or old == key:
                            cuda.atomic.add(vals, h, av * b_data[jb])
                            break
                    elif cur == key:
                        cuda.atomic.add(vals, h, av * b_data[jb])
                        break
                    h = (h + 1) & mask
        cuda.syncthreads()
        # ordered compaction: thread t owns the slots [lo, hi)
        chunk = (ts + nt - 1) // nt
        lo = min(t * chunk, ts)
        hi = min(lo + chunk, ts)
        n = 0
        for s in range(lo, hi):
            if keys[s] != EMPTY:
                n += 1
        counts[t] = n
        cuda.syncthreads()
        if t == 0:
            run = 0
            for u in range(nt):
                c = counts[u]
                counts[u] = run
                run += c
        cuda.syncthreads()
        p = c_indptr[row] + counts[t]
        for s in range(lo, hi):
            if keys[s] != EMPTY:
                c_indices[p] = keys[s]
                c_data[p] = vals[s]
                p += 1

    return SimpleNamespace(row_flops=row_flops, symbolic_shared=symbolic_shared,
                           symbolic_global=symbolic_global, numeric_shared=numeric_shared,
                           numeric_global=numeric_global)


@functools.cache
def kernels(dtype, key_dtype):
    """The jitted SpGEMM kernels for ``(dtype, key_dtype)``."""
    py = python_kernels(np.dtype(dtype), np.dtype(key_dtype))
    return SimpleNamespace(**{name: cuda.jit(f) for name, f in vars(py).items()})


def table_sizes(bounds):
    """Host twin of the kernels' ``table_size`` for an int64 array of ``min(flops, n_cols)``."""
    bounds = np.asarray(bounds, dtype=np.int64)
    # bit_length(2b - 1) via frexp (exact: the values are far below 2**53)
    return np.left_shift(1, np.frexp((2 * bounds - 1).astype(np.float64))[1]).astype(np.int64)


def ptx_cases(dtype, index_dtype):
    """``(name, python function, signature)`` of every kernel here, for ``compile_ptx``."""
    v = numba.from_dtype(np.dtype(dtype))
    i = numba.from_dtype(np.dtype(index_dtype))
    i64 = types.Array(types.int64, 1, "C")
    ind = types.Array(i, 1, "C")
    vec = types.Array(v, 1, "C")
    n = types.int64
    py = python_kernels(np.dtype(dtype), np.dtype(index_dtype))
    return [
        ("row_flops", py.row_flops, (ind, ind, ind, i64)),
        ("symbolic_shared", py.symbolic_shared, (i64, ind, ind, ind, ind, i64, n, i64, n)),
        ("symbolic_global", py.symbolic_global,
         (i64, i64, ind, ind, ind, ind, ind, i64, n, i64, n)),
        ("numeric_shared", py.numeric_shared,
         (i64, ind, ind, vec, ind, ind, vec, i64, n, i64, ind, vec, n)),
        ("numeric_global", py.numeric_global,
         (i64, i64, ind, vec, ind, ind, vec, ind, ind, vec, i64, n, i64, ind, vec, n)),
    ]
