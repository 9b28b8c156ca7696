"""Row-wise (Gustavson) sparse-times-sparse product ``C = A @ B`` for CSR.

Two passes, as in scipy's SMMP and SMASH's row-wise product:

1. ``spgemm_row_flops`` counts the multiply-adds of each output row; their
   prefix sum splits rows into chunks of equal work for the threads.
2. ``spgemm_symbolic`` counts the distinct columns of each output row, which
   gives ``C.indptr`` exactly (no over-allocation).
3. ``spgemm_numeric`` fills ``C.indices`` and ``C.data``.

Peak memory: the flop counts and the row counts are freed before ``C`` is
allocated, the numeric pass chooses each row's accumulator by its nnz, and the
per-thread dense markers come from :func:`dense_markers` (zeroed by ``calloc``,
shared by both passes), so only the pages a thread touches become resident.
Measured as the rise of the peak resident set during the call over the set
before it, with every large allocation mmap'd (2 threads, two runs): 2D
Poisson 500 x 500 ``A @ A`` +41.8-42.8 MB (scipy +42.6-42.8 MB; +49.5 MB
before, each thread holding full-width markers and flop counts kept alive),
``scipy.sparse.random`` 50000 x 50000 at 10 nnz/row +60.8 MB (scipy +60.5 MB:
two accumulators against one), R-MAT scale 15 +292 MB (scipy +389 MB, its
output in int64 indices).

What sets the speed (measured on uniform, R-MAT and 2D Poisson ``A @ A``):

* **Software prefetch of ``B``'s rows.**  Each multiply-add reads a row of ``B``
  chosen by ``A``'s column index, a jump no hardware prefetcher predicts; on
  uniform matrices almost every such row is a cache miss.  Both passes walk
  ``A``'s entries of the chunk as one stream and, ``_PF_DIST`` entries ahead,
  prefetch the first and last line of that ``B`` row (indices and values: ten
  doubles span two lines) and, twice as far ahead, its ``B.indptr`` entry
  (``llvm.prefetch`` through a Numba intrinsic).  Several misses stay in flight
  per core instead of one: the uniform 10-nnz/row numeric pass went from about
  60 ms to 25 ms on one core.
* **Branch-free dense accumulation.**  Per multiply-add the marker, the
  accumulator and the row's column list are written unconditionally and the
  count moves on by ``marker[col] != tag``.  On power-law rows "seen before?"
  is a coin toss, and the mispredicted branch cost more than the extra stores
  (R-MAT symbolic pass about 4x faster).  Rows of at most ``_SHORT_ROW_FLOPS``
  multiply-adds keep the branch: their columns rarely repeat, or repeat in a
  pattern the predictor learns (2D Poisson: whole product 10% faster).  The
  marker holds int32 row tags, so nothing is cleared between rows.
* **Accumulator by row.**  The dense accumulator whenever ``B`` has at most
  ``_DENSE_MAX_COLS`` columns (it stays in L2, or the columns are local, as on
  banded matrices); a hash table (linear probing, a power of two at least twice
  the row's flops) only for wider ``B`` and rows whose table is small.  Where
  both fit, the dense one measured faster (no probing, no table reset).
* **One accumulator per thread**, not per chunk: the chunks a thread gets from
  ``prange``'s static schedule are walked by one call.
* **Sorted output without sorting** (``sort=True``).  A finished dense row sets
  its columns in a two-level bitmap (a bit per column, a summary bit per
  nonzero word) and reads them back in order, clearing as it goes: cost
  ``O(nnz + span / 4096)``.  Rows spread over a span wider than ``n log n``
  sort their column list; rows of at most ``_INSERTION_MAX`` columns are
  insertion-sorted inline (a call per row cost about 60 ns: 2D Poisson sorted
  ``A @ A`` 14.0 -> 5.8 ms).  Sorting was the main cost of sorted SpGEMM
  (uniform: 4x).
* **Unsigned positions** in the dense-accumulator loops, as in the SpMM
  kernels: Numba drops its negative-index test (2D Poisson numeric pass
  11.3 -> 9.6 ms on one thread).

Columns otherwise come out in first-touch order (unsorted, no duplicates).
"""

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

# a row uses the hash table when the dense accumulator would not stay in cache
# (more than _DENSE_MAX_COLS columns) and its table is at most n_cols / _DENSE_RATIO
_DENSE_MAX_COLS = 1 << 20
_DENSE_RATIO = 16
_EMPTY = -1
_TAG_PERIOD = 2**31 - 1
# prefetch distance in entries of A (each names one row of B).  The prefetch
# block is written out in each of the four row loops on purpose: as a shared
# njit helper (inlined or not) it measured 1.1-2x slower on uniform matrices.
_PF_DIST = 6
_U1 = np.uint64(1)
_UPF = np.uint64(_PF_DIST)
# rows with at most this many flops update the dense accumulator with a branch
# on "seen before?": their columns either rarely repeat or repeat in a pattern
# the predictor learns (stencils); branch-free updates cost more there (2D
# Poisson numeric pass 7.2 -> 6.0 ms on one core), while on long power-law rows
# the branch is a coin toss (R-MAT 15: 62 -> 114 ms if taken everywhere).  The
# numeric pass compares the row's nnz instead (it keeps no flop counts); a row
# with few columns but many flops repeats them, which the branch predicts well
_SHORT_ROW_FLOPS = 32
# a sorted dense row reads its columns back from the bitmap unless its span in
# 4096-column summary words exceeds _SCAN_VS_SORT * nnz * log2(nnz)
_SCAN_VS_SORT = 2
# sorted output: rows of at most this many columns are insertion-sorted in
# place (inline: a call to _emit_sorted cost about 60 ns a row)
_INSERTION_MAX = 16


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Prefetch ``arr[idx]`` into all cache levels (a hint: never faults)."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        arrty, idxty = signature.args
        ary = context.make_array(arrty)(context, builder, args[0])
        idx64 = context.cast(builder, args[1], idxty, types.int64)
        i8p = ir.IntType(8).as_pointer()
        ptr = builder.bitcast(builder.gep(ary.data, [idx64]), i8p)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, highest temporal locality, data cache
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _table_size(flops):
    size = 8
    while size < 2 * flops:
        size *= 2
    return size


@njit(cache=True, nogil=True)
def _use_hash(flops, n_cols):
    return n_cols > _DENSE_MAX_COLS and _table_size(flops) * _DENSE_RATIO <= n_cols


@njit(cache=True, nogil=True)
def spgemm_row_flops(a_indptr, a_indices, b_indptr):
    """Multiply-adds of each output row (int64), ``sum_k nnz(B[A[i, k]])``.

    Serial: it streams ``A``'s indices once and is cheap next to the passes.
    """
    n_rows = a_indptr.shape[0] - 1
    flops = np.zeros(n_rows, dtype=np.int64)
    for i in range(n_rows):
        f = 0
        for k in range(a_indptr[i], a_indptr[i + 1]):
            j = a_indices[k]
            f += b_indptr[j + 1] - b_indptr[j]
        flops[i] = f
    return flops


@njit(cache=True, nogil=True)
def _group_rows(splits, g, n_groups):
    """Rows of the ``g``-th of ``n_groups`` runs of consecutive chunks.

    Numba's ``prange`` hands each thread one contiguous block of iterations, so
    grouping the chunks per thread changes no schedule; it lets each thread
    allocate its accumulator once instead of once per chunk.
    """
    n_parts = splits.shape[0] - 1
    return splits[(g * n_parts) // n_groups], splits[((g + 1) * n_parts) // n_groups]


def dense_markers(n_cols, n_parts, max_flops):
    """Zeroed int32 markers, one row of ``n_cols`` per thread, for both passes.

    Allocated by NumPy (``calloc``), so a page becomes resident only when a
    thread first marks a column in it: on a banded matrix each thread touches
    only its rows' band of columns, and the markers add about one ``n_cols``
    to the peak memory in all, not one per thread.  The symbolic pass tags
    with row numbers ``1, 2, ...`` and the numeric pass with ``-1, -2, ...``,
    so neither needs to clear the other's marks.  No columns when every row
    takes the hash table (``max_flops``: the largest row's flops).
    """
    n_groups = max(1, min(numba.get_num_threads(), n_parts))
    dense = not _use_hash(max_flops, n_cols)
    return np.zeros((n_groups, n_cols if dense else 0), dtype=np.int32)


def spgemm_symbolic(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops, splits, markers):
    """Distinct columns of each output row (int64); thread ``g`` runs the ``g``-th
    run of chunks of ``splits`` with ``markers[g]`` (:func:`dense_markers`)."""
    return _symbolic(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops, splits, markers)


@njit(cache=True, nogil=True, parallel=True)
def _symbolic(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops, splits, markers):
    n_rows = a_indptr.shape[0] - 1
    row_nnz = np.zeros(n_rows, dtype=np.int64)
    n_groups = markers.shape[0]
    if n_groups == 1:
        _symbolic_chunk(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops,
                        0, n_rows, row_nnz, markers[0])
        return row_nnz
    for g in prange(n_groups):
        r0, r1 = _group_rows(splits, g, n_groups)
        _symbolic_chunk(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops,
                        r0, r1, row_nnz, markers[g])
    return row_nnz


@njit(cache=True, nogil=True)
def _symbolic_chunk(a_indptr, a_indices, b_indptr, b_indices, n_cols, flops, r0, r1,
                    row_nnz, marker):
    max_flops = 0
    for i in range(r0, r1):
        if _use_hash(flops[i], n_cols):
            max_flops = max(max_flops, flops[i])
    table = np.empty(_table_size(max_flops), dtype=np.int64)
    a_end = a_indptr[r1]
    u_end = np.uint64(a_end)
    for i in range(r0, r1):
        count = 0
        short = flops[i] <= _SHORT_ROW_FLOPS
        tag = np.int32((i - r0) % _TAG_PERIOD + 1)  # positive: see dense_markers
        if tag == 1 and i > r0:
            marker[:] = 0
        if _use_hash(flops[i], n_cols):
            size = _table_size(flops[i])
            mask = size - 1
            table[:size] = _EMPTY
            for k in range(a_indptr[i], a_indptr[i + 1]):
                kp = k + _PF_DIST  # prefetch the B row of a later A entry
                if kp < a_end:
                    jp = a_indices[kp]
                    _prefetch(b_indices, b_indptr[jp])
                    _prefetch(b_indices, b_indptr[jp + 1] - 1)
                    if kp + _PF_DIST < a_end:
                        _prefetch(b_indptr, a_indices[kp + _PF_DIST])
                j = a_indices[k]
                for kk in range(b_indptr[j], b_indptr[j + 1]):
                    col = b_indices[kk]
                    h = (col * 107) & mask
                    while True:
                        if table[h] == col:
                            break
                        if table[h] == _EMPTY:
                            table[h] = col
                            count += 1
                            break
                        h = (h + 1) & mask
        else:
            # unsigned positions: no negative-index tests (Poisson 4.8 -> 4.2 ms, one thread)
            for k in range(np.uint64(a_indptr[i]), np.uint64(a_indptr[i + 1])):
                kp = k + _UPF  # prefetch the B row of a later A entry
                if kp < u_end:
                    jp = np.uint64(a_indices[kp])
                    _prefetch(b_indices, b_indptr[jp])
                    _prefetch(b_indices, b_indptr[jp + _U1] - 1)
                    if kp + _UPF < u_end:
                        _prefetch(b_indptr, a_indices[kp + _UPF])
                j = np.uint64(a_indices[k])
                if short:  # see _SHORT_ROW_FLOPS
                    for kk in range(np.uint64(b_indptr[j]), np.uint64(b_indptr[j + _U1])):
                        col = np.uint64(b_indices[kk])
                        if marker[col] != tag:
                            marker[col] = tag
                            count += 1
                    continue
                for kk in range(np.uint64(b_indptr[j]), np.uint64(b_indptr[j + _U1])):
                    col = np.uint64(b_indices[kk])
                    count += marker[col] != tag  # branch-free, see _numeric_chunk
                    marker[col] = tag
        row_nnz[i] = count


@njit(cache=True, nogil=True)
def _sort_row(idx, vals):
    n = idx.shape[0]
    if n <= 32:
        for a in range(1, n):
            key = idx[a]
            v = vals[a]
            b = a - 1
            while b >= 0 and idx[b] > key:
                idx[b + 1] = idx[b]
                vals[b + 1] = vals[b]
                b -= 1
            idx[b + 1] = key
            vals[b + 1] = v
    else:
        order = np.argsort(idx)
        idx[:] = idx[order]
        vals[:] = vals[order]


@njit(cache=True, nogil=True)
def _log2_ceil(n):
    r = 0
    while (1 << r) < n:
        r += 1
    return r


def spgemm_numeric(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data,
                   n_cols, splits, markers, c_indptr, c_indices, c_data, sort):
    """Fill ``c_indices`` / ``c_data`` given ``c_indptr`` from the symbolic pass.

    ``markers`` are the symbolic pass's.  A row picks its accumulator by its
    nnz (from ``c_indptr``), not its flops, so the flop counts can be freed
    before ``C`` is allocated.
    """
    _numeric(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols, splits,
             markers, c_indptr, c_indices, c_data, sort)


@njit(cache=True, nogil=True, parallel=True)
def _numeric(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols, splits,
             markers, c_indptr, c_indices, c_data, sort):
    n_groups = markers.shape[0]
    if n_groups == 1:
        _numeric_chunk(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols,
                       0, a_indptr.shape[0] - 1, markers[0], c_indptr, c_indices, c_data, sort)
        return
    for g in prange(n_groups):
        r0, r1 = _group_rows(splits, g, n_groups)
        _numeric_chunk(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols,
                       r0, r1, markers[g], c_indptr, c_indices, c_data, sort)


@njit(cache=True, nogil=True)
def _numeric_chunk(a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, n_cols,
                   r0, r1, marker, c_indptr, c_indices, c_data, sort):
    max_nnz = 0
    need_dense = False
    for i in range(r0, r1):
        nnz = np.int64(c_indptr[i + 1]) - np.int64(c_indptr[i])
        if _use_hash(nnz, n_cols):
            max_nnz = max(max_nnz, nnz)
        else:
            need_dense = True
    n_dense = n_cols if need_dense else 0
    # int32 row tags keep marker + acc small enough to stay in cache; pages
    # of acc and cols that no row reaches are never touched (not resident)
    acc = np.empty(n_dense, dtype=c_data.dtype)
    cols = np.empty(n_dense + 1, dtype=c_indices.dtype)
    # sorted output: a two-level column bitmap, all zero between rows
    n_words = (n_dense + 63) // 64 if sort else 0
    bits = np.zeros(n_words, dtype=np.uint64)
    summary = np.zeros((n_words + 63) // 64, dtype=np.uint64)
    table = np.empty(_table_size(max_nnz), dtype=np.int64)
    slot = np.empty(_table_size(max_nnz), dtype=np.int64)
    a_end = a_indptr[r1]
    u_end = np.uint64(a_end)
    for i in range(r0, r1):
        start = np.int64(c_indptr[i])
        row_nnz = np.int64(c_indptr[i + 1]) - start
        n = 0
        if _use_hash(row_nnz, n_cols):
            size = _table_size(row_nnz)
            mask = size - 1
            table[:size] = _EMPTY
            for k in range(a_indptr[i], a_indptr[i + 1]):
                kp = k + _PF_DIST  # prefetch the B row of a later A entry
                if kp < a_end:
                    jp = a_indices[kp]
                    s = b_indptr[jp]
                    e = b_indptr[jp + 1] - 1  # a row of 10 doubles spans two lines
                    _prefetch(b_indices, s)
                    _prefetch(b_data, s)
                    _prefetch(b_indices, e)
                    _prefetch(b_data, e)
                    if kp + _PF_DIST < a_end:
                        _prefetch(b_indptr, a_indices[kp + _PF_DIST])
                j = a_indices[k]
                a = a_data[k]
                for kk in range(b_indptr[j], b_indptr[j + 1]):
                    col = b_indices[kk]
                    h = (col * 107) & mask
                    while True:
                        if table[h] == col:
                            c_data[start + slot[h]] += a * b_data[kk]
                            break
                        if table[h] == _EMPTY:
                            table[h] = col
                            slot[h] = n
                            c_indices[start + n] = col
                            c_data[start + n] = a * b_data[kk]
                            n += 1
                            break
                        h = (h + 1) & mask
            if sort:
                _sort_row(c_indices[start:start + n], c_data[start:start + n])
            continue
        # Gustavson: accumulate in acc[col]; marker[col] == tag marks the
        # columns touched by this row, listed in cols as they first appear.
        # Branch-free: on power-law rows "seen before?" is a coin toss, and a
        # mispredicted branch per multiply-add cost more than the extra stores
        # (cols[n] is overwritten until a new column moves n on)
        tag = np.int32(-((i - r0) % _TAG_PERIOD) - 1)  # negative: see dense_markers
        if tag == -1 and i > r0:
            marker[:] = 0
        short = row_nnz <= _SHORT_ROW_FLOPS  # nnz <= flops: see _SHORT_ROW_FLOPS
        # unsigned positions and counts: no negative-index tests (Poisson 11.3 -> 9.6 ms)
        un = np.uint64(0)
        for k in range(np.uint64(a_indptr[i]), np.uint64(a_indptr[i + 1])):
            kp = k + _UPF  # prefetch the B row of a later A entry
            if kp < u_end:
                jp = np.uint64(a_indices[kp])
                s = b_indptr[jp]
                e = b_indptr[jp + _U1] - 1  # a row of 10 doubles spans two lines
                _prefetch(b_indices, s)
                _prefetch(b_data, s)
                _prefetch(b_indices, e)
                _prefetch(b_data, e)
                if kp + _UPF < u_end:
                    _prefetch(b_indptr, a_indices[kp + _UPF])
            j = np.uint64(a_indices[k])
            a = a_data[k]
            if short:  # see _SHORT_ROW_FLOPS
                for kk in range(np.uint64(b_indptr[j]), np.uint64(b_indptr[j + _U1])):
                    col = np.uint64(b_indices[kk])
                    v = a * b_data[kk]
                    if marker[col] != tag:
                        marker[col] = tag
                        acc[col] = v
                        cols[un] = col
                        un += _U1
                    else:
                        acc[col] += v
                continue
            for kk in range(np.uint64(b_indptr[j]), np.uint64(b_indptr[j + _U1])):
                col = np.uint64(b_indices[kk])
                v = a * b_data[kk]
                fresh = marker[col] != tag
                marker[col] = tag
                prev = acc[col]
                acc[col] = v if fresh else prev + v
                cols[un] = col
                un += np.uint64(fresh)
        n = np.int64(un)
        if sort and n > _INSERTION_MAX:
            _emit_sorted(cols, n, acc, bits, summary, c_indices, c_data, start)
            continue
        if sort:  # a short row: insertion sort inline (see _INSERTION_MAX)
            for a in range(1, n):
                key = cols[a]
                b = a
                while b > 0 and cols[b - 1] > key:
                    cols[b] = cols[b - 1]
                    b -= 1
                cols[b] = key
        ustart = np.uint64(start)
        for t in range(un):
            col = np.uint64(cols[t])
            c_indices[ustart + t] = col
            c_data[ustart + t] = acc[col]


@njit(cache=True, nogil=True)
def _emit_sorted(cols, n, acc, bits, summary, c_indices, c_data, start):
    """Write a dense-accumulator row in column order.

    A row whose span is small next to ``n log n`` sets its columns in a
    two-level bitmap (a bit per column, a summary bit per nonzero word) and
    reads them back in order, clearing as it goes; cost ``O(n + span / 4096)``
    with no data-dependent branch per column.  A wide, short row sorts
    its column list instead.
    """
    one = np.uint64(1)
    lo = cols[0]
    hi = cols[0]
    for t in range(1, n):
        lo = min(lo, cols[t])
        hi = max(hi, cols[t])
    s0 = np.int64(lo) >> 12
    s1 = np.int64(hi) >> 12
    if s1 - s0 + 1 > _SCAN_VS_SORT * n * _log2_ceil(n):
        c = cols[:n]
        c.sort()
        for t in range(n):
            col = c[t]
            c_indices[start + t] = col
            c_data[start + t] = acc[col]
        return
    for t in range(n):
        col = np.int64(cols[t])
        w = col >> 6
        bits[w] |= one << np.uint64(col & 63)
        summary[w >> 6] |= one << np.uint64(w & 63)
    t = start
    for sw in range(s0, s1 + 1):
        sword = summary[sw]
        summary[sw] = 0
        while sword != 0:
            w = (sw << 6) + np.int64(trailing_zeros(sword))
            word = bits[w]
            bits[w] = 0
            base = w << 6
            while word != 0:
                col = base + np.int64(trailing_zeros(word))
                c_indices[t] = col
                c_data[t] = acc[col]
                t += 1
                word &= word - one
            sword &= sword - one
