"""The Numba CPU backend: NumPy arrays, kernels from :mod:`sparseopt.kernels`.

Every method takes raw compressed arrays of one matrix and NumPy operands of
matching dtype, and returns NumPy arrays; the public wrappers in
:mod:`sparseopt.linalg` and the format classes do validation and dtype choice.
"""

import numba
import numpy as np

from sparseopt._config import numba_threads
from sparseopt.formats._common import index_dtype
from sparseopt.kernels import _bsr, _canonical, _partition, _spgemm, _spmm

# below this much work (multiply-adds) a parallel region costs more than it saves
_PARALLEL_MIN_WORK = 20_000


def _n_parts(work):
    """Chunks for a row-partitioned kernel: one per thread once the work pays for it."""
    if work < _PARALLEL_MIN_WORK:
        return 1
    return numba.get_num_threads()


_ONE_CHUNK = np.zeros(2, dtype=np.int64)


def _run_by_rows(kernel, work, indptr, indices, data, X, out, row_cost=1, extra=()):
    """Run a row-partitioned kernel over balanced row chunks, one per thread.

    A chunk's work is its nnz plus ``row_cost`` per row
    (:func:`~sparseopt.kernels._partition.balanced_splits`): balancing by nnz
    rather than by row count keeps power-law rows from landing on one thread,
    and the per-row charge keeps the chunk of many short rows from finishing
    last.  Below ``_PARALLEL_MIN_WORK`` multiply-adds the kernel gets a
    single chunk and runs serially without touching Numba's thread pool, so a
    small product pays neither the pool's launch nor the thread-count switch.
    ``extra`` are further arguments of the kernel, after the chunks.
    """
    if work < _PARALLEL_MIN_WORK:
        kernel(indptr, indices, data, X, out, _ONE_CHUNK, *extra)
        return
    with numba_threads():
        splits = _partition.balanced_splits(indptr, numba.get_num_threads(), row_cost)
        kernel(indptr, indices, data, X, out, splits, *extra)


def _unsigned(index_array):
    """int32 indices viewed as uint32 (zero copy; validated non-negative).

    Numba then skips the negative-index wraparound test on every gather.
    int64 arrays stay signed: uint64 mixed with int64 arithmetic would promote
    to float64 in Numba.
    """
    if index_array.dtype == np.int32:
        return index_array.view(np.uint32)
    return index_array


def _narrow_for_spgemm(indptr, indices, n_cols):
    """Index arrays as ``uint32`` views, copying int64 ones whose values fit.

    SpGEMM's passes index ``B``, the accumulators and the output with these
    values; on int64 every access carries Numba's negative-index test and
    twice the index traffic (R-MAT scale 15 ``A @ A``: 136 ms on int64 input,
    90 ms on int32).  The copy is ``O(nnz)``, small next to the product's
    flops.  Arrays too large for 32 bits stay int64.
    """
    nnz = int(indptr[-1]) if indptr.shape[0] else 0
    if indices.dtype == np.int64 and max(nnz, n_cols) <= np.iinfo(np.int32).max:
        indptr, indices = indptr.astype(np.int32), indices.astype(np.int32)
    return _unsigned(indptr), _unsigned(indices)


def _panel_operands(data, X, out):
    """``X`` C-ordered in ``data``'s dtype, and where the kernel writes ``out``.

    The SpMM kernels' vector panels (:mod:`sparseopt.kernels._simd`) read and
    write whole rows, so both dense operands must be C-ordered arrays of the
    matrix's dtype.  Callers pass such arrays; anything else is copied here.
    """
    X = np.ascontiguousarray(X, dtype=data.dtype)
    if out.flags.c_contiguous and out.dtype == data.dtype:
        return X, out
    return X, np.empty(out.shape, dtype=data.dtype)


class _ArrayApiNumpy:
    """Class attribute resolving to ``array_api_compat.numpy`` on first access.

    Importing it pulls in ``numpy.f2py``, ``numpy.testing`` and ``numpy.ma``
    (about 0.1 s); a product never needs it, a solver's dense glue does.
    """

    def __get__(self, obj, owner):
        from array_api_compat import numpy as namespace

        return namespace


class NumpyBackend:
    """CPU backend on NumPy arrays with Numba kernels."""

    name = "numpy"
    xp = _ArrayApiNumpy()

    # -- utilities -----------------------------------------------------------
    @staticmethod
    def sync():
        """Nothing to wait for on the CPU."""

    @staticmethod
    def to_numpy(a):
        return np.asarray(a)

    @staticmethod
    def asarray(a, dtype=None):
        return np.asarray(a, dtype=dtype)

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype=dtype)

    # -- canonical form ------------------------------------------------------
    @staticmethod
    def row_order_flags(indptr, indices):
        s, u = _canonical.row_order_flags(indptr, indices)
        return bool(s), bool(s and u)

    @staticmethod
    def sort_indices(indptr, indices, data):
        with numba_threads():
            new_indices, perm = _canonical.sort_rows(indptr, indices)
        return new_indices, data[perm]

    @staticmethod
    def sum_duplicates(indptr, sorted_indices, data):
        counts = _canonical.count_unique_per_row(indptr, sorted_indices)
        new_indptr = np.zeros(indptr.shape[0], dtype=indptr.dtype)
        np.cumsum(counts, out=new_indptr[1:])
        nnz = int(new_indptr[-1])
        new_indices = np.empty(nnz, dtype=indptr.dtype)
        new_data = np.empty((nnz, *data.shape[1:]), dtype=data.dtype)
        _canonical.merge_duplicates(indptr, sorted_indices, data, new_indptr,
                                    new_indices, new_data)
        return new_indptr, new_indices, new_data

    # -- products ------------------------------------------------------------
    @staticmethod
    def spmv(indptr, indices, data, x, out):
        indptr, indices = _unsigned(indptr), _unsigned(indices)
        # a row's setup and mispredicted exit cost about four stored entries
        # (R-MAT scale 15, 2 threads: 0.245 -> 0.186 ms against nnz-only chunks)
        _run_by_rows(_spmm.csr_spmv, indices.shape[0], indptr, indices, data, x, out,
                     row_cost=4)
        return out

    @staticmethod
    def spmm(indptr, indices, data, X, out):
        if X.shape[1] == 1:  # the SpMV kernel: 1.7-2.4x faster on short rows (R-MAT, Poisson)
            NumpyBackend.spmv(indptr, indices, data, X[:, 0], out[:, 0])
            return out
        indptr, indices = _unsigned(indptr), _unsigned(indices)
        X, target = _panel_operands(data, X, out)
        _run_by_rows(_spmm.csr_spmm, indices.shape[0] * X.shape[1], indptr, indices, data, X,
                     target)
        if target is not out:
            out[...] = target
        return out

    @staticmethod
    def spmm_t(indptr, indices, data, X, out, rows_sorted=False):
        """``out = A.T @ X``; ``rows_sorted``: every row is known to list its columns in
        order, which spares the kernel checking it (see ``csr_spmm_t``)."""
        indptr, indices = _unsigned(indptr), _unsigned(indices)
        # a single column costs per row about what spmv does (R-MAT 15, k = 1:
        # 0.29 -> 0.21 ms in one A/B against one entry per row, 0.198 -> 0.191 ms in another)
        X, target = _panel_operands(data, X, out)
        _run_by_rows(_spmm.csr_spmm_t, indices.shape[0] * X.shape[1], indptr, indices, data, X,
                     target, row_cost=4 if X.shape[1] == 1 else 1, extra=(bool(rows_sorted),))
        if target is not out:
            out[...] = target
        return out

    @staticmethod
    def bsr_spmm(indptr, indices, data, X, out):
        indptr, indices = _unsigned(indptr), _unsigned(indices)
        _run_by_rows(_bsr.bsr_spmm, data.size * X.shape[1], indptr, indices, data, X, out)
        return out

    @staticmethod
    def bsr_spmm_t(indptr, indices, data, X, out):
        indptr, indices = _unsigned(indptr), _unsigned(indices)
        _run_by_rows(_bsr.bsr_spmm_t, data.size * X.shape[1], indptr, indices, data, X, out)
        return out

    @staticmethod
    def spgemm(a, b, n_cols, out_dtype, sort):
        """Row-wise product of two CSR matrices given as ``(indptr, indices, data)``.

        Returns ``(indptr, indices, data)`` of the product, with the index dtype
        chosen after counting its nnz (int32 when nnz and ``n_cols`` fit).
        """
        a_indptr, a_indices, a_data = a
        b_indptr, b_indices, b_data = b
        with numba_threads():
            same = a_indices is b_indices and a_indptr is b_indptr  # A @ A: narrow once
            a_indptr, a_indices = _narrow_for_spgemm(a_indptr, a_indices, b_indptr.shape[0] - 1)
            if same and a_indptr.shape[0] - 1 == n_cols:
                b_indptr, b_indices = a_indptr, a_indices
            else:
                b_indptr, b_indices = _narrow_for_spgemm(b_indptr, b_indices, n_cols)
            flops = _spgemm.spgemm_row_flops(a_indptr, a_indices, b_indptr)
            prefix = np.zeros(flops.shape[0] + 1, dtype=np.int64)
            np.cumsum(flops, out=prefix[1:])
            parts = _n_parts(int(prefix[-1]))
            # more chunks than threads evens out rows whose flops were misjudged
            splits = _partition.balanced_splits(prefix, parts * 4 if parts > 1 else 1)
            del prefix
            markers = _spgemm.dense_markers(n_cols, splits.shape[0] - 1,
                                           int(flops.max(initial=0)))
            row_nnz = _spgemm.spgemm_symbolic(a_indptr, a_indices, b_indptr, b_indices,
                                              n_cols, flops, splits, markers)
            del flops  # per-row work arrays go before C is allocated (peak memory)
            nnz = int(row_nnz.sum())
            idx = index_dtype(maxval=max(nnz, n_cols, row_nnz.shape[0]))
            c_indptr = np.zeros(row_nnz.shape[0] + 1, dtype=idx)
            np.cumsum(row_nnz, out=c_indptr[1:])
            del row_nnz
            c_indices = np.empty(nnz, dtype=idx)
            c_data = np.empty(nnz, dtype=out_dtype)
            _spgemm.spgemm_numeric(a_indptr, a_indices, a_data, b_indptr, b_indices,
                                   b_data, n_cols, splits, markers, c_indptr, c_indices,
                                   c_data, sort)
        return c_indptr, c_indices, c_data
