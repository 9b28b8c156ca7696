"""The CuPy backend: our numba.cuda kernels launched on CuPy arrays.

:class:`CupyBackend` has the method set of
:class:`sparseopt._numpy_backend.NumpyBackend` (same signatures, raw
``indptr, indices, data`` arrays in, arrays of the same library out) plus the
container-level conversions ``csr_to_bsr``, ``bsr_to_csr`` and ``transpose``
that :mod:`sparseopt.formats` and :mod:`sparseopt.linalg` call for device
arrays.

The glue (index bookkeeping, prefix sums, sorting, binning) is written against
an injectable array module ``xp``: CuPy by default, and NumPy in the tests,
where ``NUMBA_ENABLE_CUDASIM=1`` makes numba.cuda run the very same kernels on
NumPy arrays in its CUDA simulator.  Only the launch (stream, zero-copy
wrapping) differs between the two.
"""

import numpy as np

from sparseopt.formats._common import index_dtype
from sparseopt.gpu import _bsr, _canonical, _spgemm, _spmm
from sparseopt.gpu._launch import Launcher, cdiv, group_log2, simulator_enabled

_I64 = np.dtype(np.int64)


class CupyBackend:
    """GPU backend on CuPy arrays with numba.cuda kernels.

    Parameters
    ----------
    xp : module, optional
        The array module: ``cupy`` (default, needs a CUDA device) or ``numpy``,
        which is accepted only under the CUDA simulator
        (``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported) and runs every
        kernel there: the way the GPU path is tested without a GPU.
    spmm_t : {"atomic", "transpose"}, default="atomic"
        How ``A.T @ X`` is computed.  ``"atomic"`` scatters rows of ``A``
        with ``atomicAdd`` (one pass, no extra memory, as cuSPARSE's
        transposed CSR SpMM; float summation order, hence the last bit, may
        vary between runs).  ``"transpose"`` forms ``A.T`` (a sort of the
        ``nnz`` entries) and runs the gather SpMM: deterministic, but a sort
        and an ``nnz``-sized copy per call.
    spgemm_threads : int, default=64
        Threads per block (one block per row) in SpGEMM: a power of two in [4, 128]
        (fewer than 32 leaves lanes of a warp idle: useful to keep simulator runs short).
    spgemm_shared_slots : int, default=1024
        Rows whose hash table (``2 min(flops, n_cols)`` rounded up to a power of
        two) fits in this many slots use shared memory; longer rows use
        global memory.  At most 1024, the shared table's size.
    spgemm_pool : int, default=2**25
        Slots of global-memory hash tables allocated at once for long rows
        (more rows run in several batches; one longer row gets its own).
    long_row : int, default=1024
        In SpMV/SpMM/SpMM^T, rows with more entries than this get a whole thread
        block (a second launch whose blocks scan the rows: no host
        synchronisation) instead of one group of at most 32 lanes.
    """

    name = "cupy"

    def __init__(self, xp=None, *, spmm_t="atomic", spgemm_threads=64,
                 spgemm_shared_slots=_spgemm.SHARED_SLOTS, spgemm_pool=2**25,
                 long_row=1024):
        if spmm_t not in ("atomic", "transpose"):
            raise ValueError(f"spmm_t must be 'atomic' or 'transpose', got {spmm_t!r}")
        if spgemm_threads not in (4, 8, 16, 32, 64, 128):
            raise ValueError(
                f"spgemm_threads must be a power of two in [4, 128], got {spgemm_threads!r}"
            )
        if not 2 <= spgemm_shared_slots <= _spgemm.SHARED_SLOTS:
            raise ValueError(
                f"spgemm_shared_slots must be in [2, {_spgemm.SHARED_SLOTS}], "
                f"got {spgemm_shared_slots!r}"
            )
        if int(long_row) < 1:
            raise ValueError(f"long_row must be a positive int, got {long_row!r}")
        if xp is None:
            from sparseopt.gpu._device import require_cupy

            xp = require_cupy()
        self._np = xp
        self.on_device = xp is not np
        if not self.on_device and not simulator_enabled():
            raise RuntimeError(
                "CupyBackend(xp=numpy) runs the CUDA kernels in numba's simulator only: "
                "set NUMBA_ENABLE_CUDASIM=1 before numba is first imported"
            )
        self.spmm_t_strategy = spmm_t
        self.spgemm_threads = int(spgemm_threads)
        self.spgemm_shared_slots = int(spgemm_shared_slots)
        self.spgemm_pool = int(spgemm_pool)
        self.long_row = int(long_row)
        self._launch = Launcher(self.on_device)
        if self.on_device:
            from array_api_compat import cupy as namespace
        else:
            from array_api_compat import numpy as namespace
        self.xp = namespace

    def __repr__(self):
        where = "device" if self.on_device else "CUDA simulator"
        return f"<CupyBackend on {where}>"

    # -- utilities -----------------------------------------------------------
    def sync(self):
        """Wait for the work queued on CuPy's current stream."""
        if self.on_device:
            self._np.cuda.get_current_stream().synchronize()

    def to_numpy(self, a):
        return self._np.asnumpy(a) if self.on_device else np.asarray(a)

    def asarray(self, a, dtype=None):
        return self._np.asarray(a, dtype=dtype)

    def empty(self, shape, dtype):
        return self._np.empty(shape, dtype=dtype)

    def _row_ids(self, indptr, nnz):
        """Row of every stored entry (int64), by a search in ``indptr``."""
        xp = self._np
        return xp.searchsorted(indptr[1:], xp.arange(nnz, dtype=indptr.dtype),
                               side="right").astype(_I64)

    def _prefix(self, counts, dtype=_I64):
        """``[0, cumsum(counts)]`` as ``dtype``."""
        xp = self._np
        out = xp.zeros(counts.shape[0] + 1, dtype=_I64)
        if counts.shape[0]:
            xp.cumsum(counts, out=out[1:])
        return out.astype(dtype, copy=False)

    # -- canonical form ------------------------------------------------------
    def row_order_flags(self, indptr, indices):
        """``(sorted, canonical)`` of the rows, as Python bools."""
        xp = self._np
        nnz = indices.shape[0]
        if nnz < 2:
            return True, True
        rows = self._row_ids(indptr, nnz)
        same = rows[1:] == rows[:-1]
        step = indices[1:].astype(_I64) - indices[:-1].astype(_I64)
        if bool(xp.any(same & (step < 0))):
            return False, False
        return True, not bool(xp.any(same & (step == 0)))

    def sort_indices(self, indptr, indices, data):
        """Sort each row's column indices (stable lexsort on ``(row, column)``)."""
        xp = self._np
        nnz = indices.shape[0]
        if nnz < 2:
            return indices.copy(), data.copy()
        rows = self._row_ids(indptr, nnz)
        perm = xp.lexsort(xp.stack([indices.astype(_I64), rows]))
        return indices[perm], data[perm]

    def sum_duplicates(self, indptr, sorted_indices, data):
        """Merge runs of equal column indices of sorted rows, summing their values."""
        xp = self._np
        nnz = sorted_indices.shape[0]
        if nnz == 0:
            return indptr.copy(), sorted_indices.copy(), data.copy()
        rows = self._row_ids(indptr, nnz)
        new = xp.ones(nnz, dtype=bool)
        new[1:] = (rows[1:] != rows[:-1]) | (sorted_indices[1:] != sorted_indices[:-1])
        starts = xp.nonzero(new)[0].astype(_I64)
        n_unique = int(starts.shape[0])
        bounds = xp.concatenate([starts, xp.asarray([nnz], dtype=_I64)])
        kept = self._prefix(new.astype(_I64))
        new_indptr = kept[indptr.astype(_I64)].astype(indptr.dtype)
        new_indices = sorted_indices[starts]
        new_data = xp.empty((n_unique, *data.shape[1:]), dtype=data.dtype)
        flat_in = data.reshape(nnz, -1)
        flat_out = new_data.reshape(n_unique, -1)
        total = n_unique * flat_out.shape[1]
        self._launch(_canonical.segment_sum, cdiv(total, _canonical.BLOCK),
                     _canonical.BLOCK, bounds, flat_in, flat_out)
        return new_indptr, new_indices, new_data

    # -- products ------------------------------------------------------------
    def spmv(self, indptr, indices, data, x, out):
        """``out = A @ x``: a group of threads per row sized by the mean row length."""
        n_rows = out.shape[0]
        if n_rows == 0:
            return out
        nnz = indices.shape[0]
        g = group_log2(nnz / n_rows)
        k = _spmm.kernels(data.dtype)
        self._launch(k.csr_spmv, cdiv(n_rows << g, _spmm.BLOCK), _spmm.BLOCK,
                     indptr, indices, data, x, out, g, self.long_row)
        if nnz > self.long_row:
            self._launch(k.csr_spmv_long, self._long_grid(n_rows), _spmm.BLOCK,
                         indptr, indices, data, x, out, self.long_row)
        return out

    @staticmethod
    def _long_grid(n_rows):
        # each block scans at least 64 rows for long ones; at most 1024 blocks
        return min(cdiv(n_rows, 64), 1024)

    def spmm(self, indptr, indices, data, X, out):
        """``out = A @ X``: a group of threads per row, lanes over the dense columns."""
        n_rows, k = out.shape
        if n_rows == 0 or k == 0:
            return out
        if k == 1:
            self.spmv(indptr, indices, data, X.reshape(-1), out.reshape(-1))
            return out
        g = group_log2(k)
        kern = _spmm.kernels(data.dtype)
        args = (indptr, indices, data, X, out, g, self.long_row)
        self._launch(kern.csr_spmm, cdiv(n_rows << g, _spmm.BLOCK), _spmm.BLOCK, *args)
        if indices.shape[0] > self.long_row:
            self._launch(kern.csr_spmm_long, self._long_grid(n_rows), _spmm.BLOCK, *args)
        return out

    def spmm_t(self, indptr, indices, data, X, out, rows_sorted=False):
        """``out = A.T @ X`` with atomics, or by an explicit transpose (``spmm_t=``).

        ``rows_sorted`` (rows known to list their columns in order) is part of the
        backend interface for the CPU kernel's sake; neither strategy here uses it.
        """
        n_rows, k = X.shape
        if self.spmm_t_strategy == "transpose":
            t_indptr, t_indices, t_data = self._transpose_arrays(
                indptr, indices, data, out.shape[0])
            return self.spmm(t_indptr, t_indices, t_data, X, out)
        out.fill(0)
        if n_rows == 0 or k == 0:
            return out
        g = group_log2(k)
        kern = _spmm.kernels(data.dtype)
        args = (indptr, indices, data, X, out, g, self.long_row)
        self._launch(kern.csr_spmm_t, cdiv(n_rows << g, _spmm.BLOCK), _spmm.BLOCK, *args)
        if indices.shape[0] > self.long_row:
            self._launch(kern.csr_spmm_t_long, self._long_grid(n_rows), _spmm.BLOCK, *args)
        return out

    def _bsr_launch(self, kernel, indptr, indices, data, X, out):
        n_brows = indptr.shape[0] - 1
        k = X.shape[1]
        if n_brows == 0 or k == 0:
            return
        tk, tr, n_chunks = _bsr.launch_shape(data.shape[1], k)
        self._launch(kernel, (n_brows * n_chunks, cdiv(k, tk)), (tk, tr),
                     indptr, indices, data, X, out, n_chunks)

    def bsr_spmm(self, indptr, indices, data, X, out):
        """``out = A @ X`` for a BSR ``A``: a thread block per (block row chunk, column tile)."""
        self._bsr_launch(_bsr.kernels(data.dtype).bsr_spmm, indptr, indices, data, X, out)
        return out

    def bsr_spmm_t(self, indptr, indices, data, X, out):
        """``out = A.T @ X`` for a BSR ``A`` (atomics into the zeroed ``out``)."""
        out.fill(0)
        self._bsr_launch(_bsr.kernels(data.dtype).bsr_spmm_t, indptr, indices, data, X, out)
        return out

    # -- SpGEMM --------------------------------------------------------------
    def spgemm(self, a, b, n_cols, out_dtype, sort):
        """Row-wise hash SpGEMM of two CSR matrices given as ``(indptr, indices, data)``.

        Returns ``(indptr, indices, data)``; the index dtype is chosen after
        counting nnz (int32 when nnz and ``n_cols`` fit).  Rows computed in
        shared memory come out sorted; long rows are sorted only if ``sort``.
        """
        xp = self._np
        a_indptr, a_indices, a_data = a
        b_indptr, b_indices, b_data = b
        n_rows = a_indptr.shape[0] - 1
        key_dtype = b_indices.dtype
        kern = _spgemm.kernels(np.dtype(out_dtype), key_dtype)
        flops = xp.zeros(n_rows, dtype=_I64)
        self._launch(kern.row_flops, cdiv(n_rows, 128), 128, a_indptr, a_indices, b_indptr,
                     flops)
        bound = xp.minimum(flops, n_cols)
        short_rows = xp.nonzero((bound > 0) & (2 * bound <= self.spgemm_shared_slots))[0]
        long_rows = xp.nonzero(2 * bound > self.spgemm_shared_slots)[0].astype(_I64)
        short_rows = short_rows.astype(_I64)
        batches = self._long_row_batches(long_rows, bound)
        n_b_rows = b_indptr.shape[0] - 1
        g = group_log2(b_indices.shape[0] / n_b_rows if n_b_rows else 1)
        g = min(g, self.spgemm_threads.bit_length() - 1)
        threads = self.spgemm_threads

        row_nnz = xp.zeros(n_rows, dtype=_I64)
        self._launch(kern.symbolic_shared, short_rows.shape[0], threads, short_rows,
                     a_indptr, a_indices, b_indptr, b_indices, flops, n_cols, row_nnz, g)
        for rows, offsets, size in batches:
            pool = xp.empty(size, dtype=key_dtype)
            self._launch(kern.symbolic_global, rows.shape[0], threads, rows, offsets, pool,
                         a_indptr, a_indices, b_indptr, b_indices, flops, n_cols, row_nnz, g)
        c_indptr = self._prefix(row_nnz)
        nnz = int(c_indptr[-1])
        idx = index_dtype(maxval=max(nnz, n_cols, n_rows))
        c_indices = xp.empty(nnz, dtype=idx)
        c_data = xp.empty(nnz, dtype=out_dtype)
        self._launch(kern.numeric_shared, short_rows.shape[0], threads, short_rows,
                     a_indptr, a_indices, a_data, b_indptr, b_indices, b_data, flops, n_cols,
                     c_indptr, c_indices, c_data, g)
        for rows, offsets, size in batches:
            pool_keys = xp.empty(size, dtype=key_dtype)
            pool_vals = xp.empty(size, dtype=out_dtype)
            self._launch(kern.numeric_global, rows.shape[0], threads, rows, offsets,
                         pool_keys, pool_vals, a_indptr, a_indices, a_data, b_indptr,
                         b_indices, b_data, flops, n_cols, c_indptr, c_indices, c_data, g)
        if sort and long_rows.shape[0]:
            self._sort_rows(c_indptr, c_indices, c_data, long_rows)
        return c_indptr.astype(idx), c_indices, c_data

    def _long_row_batches(self, long_rows, bound):
        """Split the long rows into batches whose global tables fit the pool.

        Returns a list of ``(rows, offsets, pool_size)`` (device arrays, int).
        """
        if long_rows.shape[0] == 0:
            return []
        sizes = _spgemm.table_sizes(self.to_numpy(bound[long_rows]))
        rows_host = self.to_numpy(long_rows)
        batches, start = [], 0
        while start < sizes.shape[0]:
            csum = np.cumsum(sizes[start:])
            stop = start + max(1, int(np.searchsorted(csum, self.spgemm_pool, side="right")))
            chunk = sizes[start:stop]
            offsets = np.concatenate([[0], np.cumsum(chunk)[:-1]]).astype(np.int64)
            batches.append((self.asarray(rows_host[start:stop]), self.asarray(offsets),
                            int(chunk.sum())))
            start = stop
        return batches

    def _sort_rows(self, indptr, indices, data, rows):
        """Sort, in place, the entries of the given rows (a segmented lexsort)."""
        xp = self._np
        starts = indptr[rows]
        lengths = indptr[rows + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return
        seg = self._row_ids(self._prefix(lengths), total)
        offsets = self._prefix(lengths)[:-1]
        pos = starts[seg] + (xp.arange(total, dtype=_I64) - offsets[seg])
        keys = indices[pos]
        perm = xp.lexsort(xp.stack([keys.astype(_I64), seg]))
        vals = data[pos]
        indices[pos] = keys[perm]
        data[pos] = vals[perm]

    # -- conversions on the device -------------------------------------------
    def _transpose_arrays(self, indptr, indices, data, n_cols):
        """CSR arrays of ``A.T`` (rows of the transpose sorted; int64-safe)."""
        xp = self._np
        nnz = indices.shape[0]
        rows = self._row_ids(indptr, nnz)
        cols = indices.astype(_I64)
        perm = xp.lexsort(xp.stack([rows, cols]))
        counts = (xp.bincount(cols, minlength=n_cols) if nnz
                  else xp.zeros(n_cols, dtype=_I64))
        t_indptr = self._prefix(counts, indptr.dtype)
        return t_indptr, rows[perm].astype(indptr.dtype), data[perm]

    def transpose(self, A):
        """``A.T`` as a new :class:`~sparseopt.CSR` on the same device (sorted rows)."""
        from sparseopt.formats import CSR

        t_indptr, t_indices, t_data = self._transpose_arrays(A.indptr, A.indices, A.data,
                                                             A.shape[1])
        out = CSR((t_data, t_indices, t_indptr), (A.shape[1], A.shape[0]), check=False)
        out._sorted = True
        out._canonical = True if A._canonical else None
        return out

    def csr_to_bsr(self, A, blocksize):
        """BSR with ``blocksize = (R, C)`` blocks of a CSR on the device (duplicates summed)."""
        from sparseopt.formats import BSR

        xp = self._np
        R, C = blocksize
        n_rows, n_cols = A.shape
        n_brows, n_bcols = n_rows // R, n_cols // C
        A = A.sum_duplicates()
        rows = self._row_ids(A.indptr, A.nnz)
        cols = A.indices.astype(_I64)
        keys = (rows // R) * n_bcols + cols // C
        if A.nnz:
            ukeys, inverse = xp.unique(keys, return_inverse=True)
        else:
            ukeys = inverse = xp.zeros(0, dtype=_I64)
        n_blocks = int(ukeys.shape[0])
        data = xp.zeros((n_blocks, R, C), dtype=A.dtype)
        flat = inverse.reshape(-1).astype(_I64) * (R * C) + (rows % R) * C + cols % C
        data.reshape(-1)[flat] = A.data
        b_rows = ukeys // n_bcols if n_bcols else ukeys
        counts = (xp.bincount(b_rows, minlength=n_brows) if n_blocks
                  else xp.zeros(n_brows, dtype=_I64))
        idx = index_dtype(maxval=max(n_blocks, n_brows, n_bcols))
        out = BSR((data, (ukeys - b_rows * n_bcols).astype(idx), self._prefix(counts, idx)),
                  A.shape, check=False)
        out._sorted = out._canonical = True
        return out

    def bsr_to_csr(self, A):
        """CSR of a BSR on the device (zeros stored inside blocks are kept)."""
        from sparseopt.formats import CSR

        xp = self._np
        R, C = A.blocksize
        n_brows = A.shape[0] // R
        n_blocks = A.n_blocks
        per_brow = xp.diff(A.indptr.astype(_I64))
        row_len = xp.broadcast_to((per_brow * C)[:, None], (n_brows, R)).reshape(-1)
        indptr = self._prefix(row_len)
        nnz = n_blocks * R * C
        idx = index_dtype(maxval=max(nnz, *A.shape))
        indices = xp.empty(nnz, dtype=idx)
        data = xp.empty(nnz, dtype=A.dtype)
        if nnz:
            brow = self._row_ids(A.indptr, n_blocks)
            within = xp.arange(n_blocks, dtype=_I64) - A.indptr.astype(_I64)[brow]
            first = indptr[(brow * R)[:, None] + xp.arange(R, dtype=_I64)[None, :]]
            pos = (first[:, :, None] + (within * C)[:, None, None]
                   + xp.arange(C, dtype=_I64)[None, None, :])
            col = A.indices.astype(_I64)[:, None, None] * C + xp.arange(C, dtype=_I64)
            indices[pos.reshape(-1)] = xp.broadcast_to(col, pos.shape).reshape(-1).astype(idx)
            data[pos.reshape(-1)] = A.data.reshape(-1)
        out = CSR((data, indices, indptr.astype(idx)), A.shape, check=False)
        out._sorted = A._sorted
        out._canonical = A._canonical
        return out
