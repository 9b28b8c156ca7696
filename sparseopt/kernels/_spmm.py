"""CSR sparse-times-dense kernels: ``A @ x``, ``A @ X`` and ``A.T @ X``.

``A`` is given by ``(indptr, indices, data)`` with ``n_rows = len(indptr) - 1``.
None of these kernels needs sorted or duplicate-free indices: duplicates add up,
as in scipy.

Every kernel takes ``splits``, row boundaries of chunks of about equal nnz
(:func:`sparseopt.kernels._partition.balanced_splits`): chunks run in parallel,
and a single chunk runs serially without entering Numba's thread pool (whose
launch costs more than small products).  Callers pass index arrays viewed as
unsigned (``uint32``) when they are int32: Numba then drops the negative-index
wraparound test from every gather, which is worth about 2x on SpMV.
"""

import numpy as np
from numba import njit, prange

from sparseopt.kernels._partition import balanced_splits
from sparseopt.kernels._simd import gather_row, scatter_row

_U1, _U2 = np.uint64(1), np.uint64(2)

# A.T @ X on scattered matrices splits columns among threads (instead of rows)
# from this many columns of X (see csr_spmm_t)
_COLUMN_SPLIT_MIN_VEC = 32
# entries counted to balance that column split
_COLUMN_SAMPLE = 1 << 16


@njit(cache=True, nogil=True)
def _spmv_rows(indptr, indices, data, x, out, r0, r1):
    # positions as unsigned 64-bit, so int64 indptr and indices skip Numba's
    # negative-index test as the uint32 views do (1.2-1.4x on int64 input);
    # two accumulators split the chain of dependent adds (short rows gain most)
    for i in range(r0, r1):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        acc0 = 0.0
        acc1 = 0.0
        while k + _U2 <= end:
            acc0 += data[k] * x[np.uint64(indices[k])]
            acc1 += data[k + _U1] * x[np.uint64(indices[k + _U1])]
            k += _U2
        if k < end:
            acc0 += data[k] * x[np.uint64(indices[k])]
        out[i] = acc0 + acc1


@njit(cache=True, nogil=True, parallel=True)
def csr_spmv(indptr, indices, data, x, out, splits):
    """``out[i] = sum_k data[k] * x[indices[k]]`` over row ``i``."""
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _spmv_rows(indptr, indices, data, x, out, 0, indptr.shape[0] - 1)
        return
    for t in prange(n_parts):
        _spmv_rows(indptr, indices, data, x, out, splits[t], splits[t + 1])


@njit(cache=True, nogil=True)
def _spmm_rows(indptr, indices, data, X, out, r0, r1):
    for i in range(r0, r1):
        gather_row(indices, data, X, out, i, indptr[i], indptr[i + 1])


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm(indptr, indices, data, X, out, splits):
    """``out = A @ X`` for C-ordered ``X`` of shape ``(n_cols, k)``."""
    n_parts = splits.shape[0] - 1
    if n_parts == 1:
        _spmm_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    for t in prange(n_parts):
        _spmm_rows(indptr, indices, data, X, out, splits[t], splits[t + 1])


@njit(cache=True, nogil=True, parallel=True)
def add_buffers(out, buffers):
    """``out += buffers.sum(axis=0)``, in parallel over the rows of ``out``.

    The reduction step of the transposed kernels, whose row chunks scatter into
    private buffers.
    """
    for j in prange(out.shape[0]):
        for t in range(buffers.shape[0]):
            for c in range(out.shape[1]):
                out[j, c] += buffers[t, j, c]


@njit(cache=True, nogil=True)
def _spmm_t_rows(indptr, indices, data, X, out, r0, r1):
    if X.shape[1] == 1:  # X[i, 0] held in a register (out and X could alias otherwise)
        for i in range(r0, r1):
            x = X[i, 0]
            for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                out[np.uint64(indices[k]), 0] += data[k] * x
        return
    for i in range(r0, r1):
        scatter_row(indices, data, X, out, i, indptr[i], indptr[i + 1], 0)


@njit(cache=True, nogil=True)
def _column_span(indptr, indices, r0, r1):
    """Smallest and largest column index stored in rows ``r0:r1`` (``(0, -1)`` if none)."""
    lo = np.int64(1) << 62
    hi = np.int64(-1)
    for k in range(np.uint64(indptr[r0]), np.uint64(indptr[r1])):  # unsigned: vectorizes
        j = np.int64(indices[k])
        lo = min(lo, j)
        hi = max(hi, j)
    if hi < 0:
        lo = np.int64(0)
    return lo, hi


@njit(cache=True, nogil=True)
def _rows_ordered(indptr, indices, r0, r1):
    """Whether rows ``r0:r1`` list their columns in non-decreasing order.

    Counts the descents of the whole stretch of ``indices`` (a loop LLVM
    vectorizes) and those that fall on the starts of non-empty rows, where a
    descent is allowed.
    """
    start = np.int64(indptr[r0])
    end = np.int64(indptr[r1])
    descents = 0
    for k in range(np.uint64(start + 1), np.uint64(end)):
        descents += indices[k] < indices[k - _U1]
    for i in range(r0 + 1, r1):
        k = np.int64(indptr[i])
        # once per position: only the non-empty row starting there counts
        if start < k < indptr[i + 1]:
            descents -= indices[k] < indices[k - 1]
    return descents == 0


@njit(cache=True, nogil=True)
def _first_at_least(indices, lo, hi, col):
    """First position in ``indices[lo:hi]`` (sorted) holding a column >= ``col``.

    Counts the columns below ``col`` instead of bisecting: a loop without
    branches that LLVM vectorizes, where a binary search mispredicts about
    every other step.  2 threads, sorted rows, A/B in one process against
    bisection on uniform 0.1%/1% and R-MAT 15 at k = 32-256: 0.76-0.99x the
    time in 12 of 16 cases, 1.02-1.04x in three, 1.31x in one (uniform 1%
    float32 k = 64, where bisection kept for rows over 64 entries, i.e. all
    of them, measured 1.32x too: not the count).  Its cost grows with the
    row, but the row's scatter grows k times faster.
    """
    below = 0
    for k in range(np.uint64(lo), np.uint64(hi)):
        below += np.int64(indices[k]) < col
    return lo + below


@njit(cache=True, nogil=True)
def _spmm_t_columns(indptr, indices, data, X, out, c0, c1):
    """Rows ``c0:c1`` of ``A.T @ X``: every row of ``A``, its entries in those columns.

    Rows must list their columns in order: the entries are found by counting.
    """
    n_vec = X.shape[1]
    n_cols = out.shape[0]
    for j in range(c0, c1):
        for c in range(n_vec):
            out[j, c] = 0
    for i in range(indptr.shape[0] - 1):
        start = np.int64(indptr[i])
        end = np.int64(indptr[i + 1])
        k0 = start if c0 == 0 else _first_at_least(indices, start, end, c0)
        k1 = end if c1 == n_cols else _first_at_least(indices, k0, end, c1)
        scatter_row(indices, data, X, out, i, k0, k1, 0)


@njit(cache=True, nogil=True)
def _column_splits(indices, n_cols, n_parts):
    """Column boundaries of ``n_parts`` ranges of about equal work.

    A range's work is its share of the nnz plus half its share of the columns,
    ``nnz(c0:c1) + 0.5 * (c1 - c0) * nnz / n_cols``: on power-law matrices the
    hub columns' output rows stay in cache, so a range of many light columns
    costs more per entry (R-MAT 15, k = 64: 3.8 -> 3.2 ms against nnz alone;
    uniform matrices split as before).  Counts a strided sample of at most
    ``_COLUMN_SAMPLE`` entries: the split only balances work, and a full count
    would cost a pass over the indices.
    """
    step = max(1, indices.shape[0] // _COLUMN_SAMPLE)
    prefix = np.zeros(n_cols + 1, np.int64)
    for k in range(0, indices.shape[0], step):
        prefix[np.int64(indices[k]) + 1] += 1
    for j in range(n_cols):
        prefix[j + 1] += prefix[j]
    # the work above scaled by 2 * n_cols, to stay in integers
    total = prefix[n_cols]
    for j in range(n_cols + 1):
        prefix[j] *= 2 * n_cols
    return balanced_splits(prefix, n_parts, total)


@njit(cache=True, nogil=True)
def _own_interval(lo, hi, t):
    """Largest interval found by trimming ``[lo[t], hi[t]]`` until no other span meets it.

    A span inside the interval splits it: the longer side is kept.  Returns
    ``(a, b)`` with ``a > b`` when nothing is left.
    """
    a = lo[t]
    b = hi[t]
    changed = True
    while changed and a <= b:
        changed = False
        for s in range(lo.shape[0]):
            if s == t or hi[s] < lo[s] or hi[s] < a or lo[s] > b:
                continue  # the same chunk, an empty span, or no overlap
            if lo[s] <= a:
                a = hi[s] + 1
            elif hi[s] >= b:
                b = lo[s] - 1
            elif lo[s] - a >= b - hi[s]:
                b = lo[s] - 1
            else:
                a = hi[s] + 1
            changed = True
    return a, b


@njit(cache=True, nogil=True)
def _inside(indices, k0, k1, a, b):
    """Whether every column in ``indices[k0:k1]`` lies in ``[a, b]``."""
    lo = np.int64(1) << 62
    hi = np.int64(-1)
    for k in range(k0, k1):
        j = np.int64(indices[k])
        lo = min(lo, j)
        hi = max(hi, j)
    return lo >= a and hi <= b


@njit(cache=True, nogil=True)
def _ends_inside(indices, k0, k1, a, b):
    """Whether the non-empty row ``indices[k0:k1]``, listed in order, lies in ``[a, b]``."""
    return np.int64(indices[k0]) >= a and np.int64(indices[k1 - 1]) <= b


@njit(cache=True, nogil=True)
def _spmm_t_rows_split(indptr, indices, data, X, out, buf, r0, r1, lo, ex_lo, ex_hi, ordered):
    """Scatter of rows ``r0:r1``: columns in ``[ex_lo, ex_hi]`` straight into ``out``,
    the others into ``buf`` (row ``j - lo`` left of ``ex_lo``, packed after them right of
    ``ex_hi``).  With ``k > 1`` columns a row inside ``[ex_lo, ex_hi]`` (on a banded
    matrix, all but the rows near the chunk's ends) is one ``scatter_row``; any other
    goes by runs of entries bound for the same place (a sorted row has at most three),
    each run one ``scatter_row``.  Testing the row first (its column range, read from
    L1 again) costs 0.85-0.87x the time of finding runs in every row on 2D Poisson
    500^2 at k = 8 (2 threads, both dtypes); at ``k = 1`` the test costs more than
    the per-entry branch it saves (1.28-1.43x), so single columns branch per entry.
    With ``ordered`` (the rows known to be in column order) a row is tested by its
    first and last column, cheap enough for ``k = 1`` too."""
    n_left = ex_lo - lo
    if X.shape[1] == 1:  # one branch per entry costs less than finding runs
        for i in range(r0, r1):
            x = X[i, 0]
            k0 = np.int64(indptr[i])
            k1 = np.int64(indptr[i + 1])
            if ordered and (k0 == k1 or _ends_inside(indices, k0, k1, ex_lo, ex_hi)):
                for k in range(np.uint64(k0), np.uint64(k1)):
                    out[np.uint64(indices[k]), 0] += data[k] * x
                continue
            for k in range(np.uint64(k0), np.uint64(k1)):
                j = np.int64(indices[k])
                # unsigned positions: no negative-index test
                if j >= ex_lo and j <= ex_hi:
                    out[np.uint64(j), 0] += data[k] * x
                else:
                    jb = j - lo if j < ex_lo else n_left + (j - ex_hi - 1)
                    buf[np.uint64(jb), 0] += data[k] * x
        return
    right_shift = ex_hi + 1 - n_left  # buf row j - right_shift right of ex_hi
    for i in range(r0, r1):
        k = np.int64(indptr[i])
        end = np.int64(indptr[i + 1])
        if k == end or (_ends_inside(indices, k, end, ex_lo, ex_hi) if ordered
                        else _inside(indices, np.uint64(k), np.uint64(end), ex_lo, ex_hi)):
            scatter_row(indices, data, X, out, i, k, end, 0)
            continue
        while k < end:
            j = np.int64(indices[k])
            place = 0 if j < ex_lo else (1 if j <= ex_hi else 2)
            run_end = k + 1
            while run_end < end:
                j = np.int64(indices[run_end])
                if (0 if j < ex_lo else (1 if j <= ex_hi else 2)) != place:
                    break
                run_end += 1
            if place == 1:
                scatter_row(indices, data, X, out, i, k, run_end, 0)
            else:
                shift = lo if place == 0 else right_shift
                scatter_row(indices, data, X, buf, i, k, run_end, shift)
            k = run_end


@njit(cache=True, nogil=True, parallel=True)
def csr_spmm_t(indptr, indices, data, X, out, splits, rows_sorted):
    """``out = A.T @ X`` without forming ``A.T``.

    With one chunk the scatter goes straight into ``out``.  Otherwise each row
    chunk ``t`` spans the columns ``[lo_t, hi_t]`` of its stored entries, and
    two layouts are told apart:

    * **Banded or block-structured** (the chunks' spans barely overlap): rows
      run in parallel by chunk.  The part of chunk ``t``'s span no other span
      reaches is its own, written straight into ``out``; its other columns go
      to a private buffer summed into ``out`` afterwards, so threads never
      write the same memory.  Chunk 0 writes everything straight into ``out``.
    * **Scattered** (the buffers would hold more than a quarter of ``out``'s
      rows) with rows in column order and ``k >= _COLUMN_SPLIT_MIN_VEC``:
      columns run in parallel instead.  Thread ``t`` takes a range of output
      rows of about equal work (:func:`_column_splits`) and, for every row of
      ``A``, counts its way to its entries in that range; nothing is buffered,
      each ``X`` row is read once per thread.  2 threads, k = 64, against
      the loop forward kernel of the time: uniform 1.3-1.5x, R-MAT 1.6-2.2x
      the forward product, against 1.8x and 2.2x buffered; at k <= 16 the
      searches (binary then) cost more than the buffers (crossover measured at
      16-32).  With the count, an A/B (2 threads, uniform 0.1%/1% and R-MAT 15,
      float64/float32) still had the column split at 1.09-1.88x the buffered
      time at k = 16 and 1.18-2.9x at k = 8: the threshold stays.
    * Otherwise (unsorted rows, few columns in ``X``) the buffered scheme.

    ``rows_sorted`` says the caller knows every row lists its columns in order
    (a matrix caches it): the column split then skips its check of the rows
    (:func:`_rows_ordered`, a pass over the indices), and on banded layouts a
    row lies in its chunk's own interval when its first and last column do,
    so such rows scatter without a test per entry.  The check costs 8x a
    column-span pass (2D Poisson, half the rows: 211 against 27 us), too much
    to run for the banded case alone.  Knowing the order, 2D Poisson 500^2 on
    2 threads took 0.72-0.99x the time (k = 1 and 8, both dtypes; two A/B runs
    of 31 and 41 rounds).
    ``False`` means not known, never that the rows are unsorted.

    ``X`` has shape ``(n_rows, k)``, ``out`` ``(n_cols, k)``.
    """
    n_parts = splits.shape[0] - 1
    n_vec = out.shape[1]
    if n_parts == 1:
        _zero_rows(out, 0, out.shape[0])
        _spmm_t_rows(indptr, indices, data, X, out, 0, indptr.shape[0] - 1)
        return
    lo = np.empty(n_parts, np.int64)
    hi = np.empty(n_parts, np.int64)
    for t in prange(n_parts):
        lo[t], hi[t] = _column_span(indptr, indices, splits[t], splits[t + 1])
    # own interval of chunk t: its span minus every other chunk's span
    ex_lo = np.empty(n_parts, np.int64)
    ex_hi = np.empty(n_parts, np.int64)
    offset = np.zeros(n_parts + 1, np.int64)
    for t in range(n_parts):
        a, b = _own_interval(lo, hi, t)
        if t == 0 or a > b:  # chunk 0: all direct; no own interval: all buffered
            a, b = (lo[t], hi[t]) if t == 0 else (hi[t] + 1, hi[t])
        ex_lo[t] = a
        ex_hi[t] = b
        n_buf = 0 if t == 0 else (a - lo[t]) + (hi[t] - b)
        offset[t + 1] = offset[t] + n_buf
    scattered_wide = 4 * offset[n_parts] > out.shape[0] and n_vec >= _COLUMN_SPLIT_MIN_VEC
    # rows known to be in column order, or checked where the column split needs it
    ordered = np.full(n_parts, rows_sorted)
    if scattered_wide and not rows_sorted:
        for t in prange(n_parts):
            ordered[t] = _rows_ordered(indptr, indices, splits[t], splits[t + 1])
    if scattered_wide and ordered.all():
        col_splits = _column_splits(indices, out.shape[0], n_parts)
        for t in prange(n_parts):
            _spmm_t_columns(indptr, indices, data, X, out, col_splits[t], col_splits[t + 1])
        return
    buf = np.empty((offset[n_parts], n_vec), dtype=out.dtype)
    # zeroing inside the workers: chunk t >= 1 clears its own interval of out
    # and its buffer, chunk 0 the rest of out (which only it writes directly)
    for t in prange(n_parts):
        own = buf[offset[t]:offset[t + 1]]
        _zero_rows(own, 0, own.shape[0])
        if t == 0:
            _zero_outside(out, ex_lo[1:], ex_hi[1:])
            _spmm_t_rows(indptr, indices, data, X, out, splits[0], splits[1])
        elif ex_lo[t] > ex_hi[t] and lo[t] == 0:  # all buffered, from column 0
            _spmm_t_rows(indptr, indices, data, X, own, splits[t], splits[t + 1])
        else:
            _zero_rows(out, ex_lo[t], max(ex_lo[t], ex_hi[t] + 1))
            _spmm_t_rows_split(indptr, indices, data, X, out, own, splits[t], splits[t + 1],
                               lo[t], ex_lo[t], ex_hi[t], ordered[t])
    # add the buffers into out in one parallel region over blocks of out's
    # rows (two chunks' buffers can cover the same row): within a block, each
    # buffer adds the slabs of its two runs, left and right of its chunk's own
    # interval (buffer row offset[t] + q is out row lo[t] + q, then ex_hi[t] + 1 + ...)
    j_min = lo[1:].min()
    j_span = hi[1:].max() + 1 - j_min
    for blk in prange(n_parts):
        j0 = j_min + j_span * blk // n_parts
        j1 = j_min + j_span * (blk + 1) // n_parts
        for t in range(1, n_parts):
            n_left = ex_lo[t] - lo[t]
            _add_slab(out, buf, max(j0, lo[t]), min(j1, ex_lo[t]), offset[t] - lo[t])
            _add_slab(out, buf, max(j0, ex_hi[t] + 1), min(j1, hi[t] + 1),
                      offset[t] + n_left - ex_hi[t] - 1)


@njit(cache=True, nogil=True)
def _add_slab(out, buf, j0, j1, shift):
    """``out[j0:j1] += buf[j0 + shift:j1 + shift]`` (nothing when ``j0 >= j1``), as one
    flat loop over the C-ordered rows (a loop per row of k = 8 would not vectorize)."""
    if j1 <= j0:
        return
    dst = out[j0:j1].reshape(-1)
    src = buf[j0 + shift:j1 + shift].reshape(-1)
    for q in range(dst.shape[0]):
        dst[q] += src[q]


@njit(cache=True, nogil=True)
def _zero_outside(out, starts, ends):
    """Zero the rows of ``out`` outside the disjoint intervals ``[starts[s], ends[s]]``
    (empty ones have ``starts[s] > ends[s]``)."""
    order = np.argsort(starts)
    r = 0
    for s in order:
        if starts[s] > ends[s]:
            continue
        _zero_rows(out, r, starts[s])
        r = max(r, ends[s] + 1)
    _zero_rows(out, r, out.shape[0])


@njit(cache=True, nogil=True)
def _zero_rows(a, r0, r1):
    """``a[r0:r1] = 0`` for C-ordered ``a``, in this thread (an array expression
    in a parallel function becomes a parallel region of its own)."""
    if r1 > r0:
        a[r0:r1].reshape(-1)[:] = 0
