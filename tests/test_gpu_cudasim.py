"""The GPU path in numba's CUDA simulator: formats, dispatch and every CUDA kernel.

These tests need ``NUMBA_ENABLE_CUDASIM=1`` set before numba.cuda is first
imported, so in a normal run they are skipped here and
``tests/test_gpu_sim_runner.py`` runs this module in a subprocess with the
variable set.  Run them directly with::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/test_gpu_cudasim.py

The backend is ``CupyBackend(xp=numpy)``: the glue code of the CuPy backend on
NumPy arrays, launching the same numba.cuda kernels, which the simulator runs
on the CPU.  Matrices are the generic suite's (tiny: the simulator runs one
Python thread per CUDA thread).  The simulator does not check that the kernels
compile for a device: ``test_gpu_ptx.py`` does.
"""

import os
import sys
import threading

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from tests.matrix_suite import rtol_for, scipy_of, structures, variant

pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                       reason="needs NUMBA_ENABLE_CUDASIM=1 (run by test_gpu_sim_runner.py)"),
]

SUITE = structures()
NAMES = [n for n in SUITE if not n.startswith("empty_0")]  # 0-row cases: one below
VARIANTS = {
    "canonical-i32-f64": dict(index_dtype=np.int32, value_dtype=np.float64, canonical=True),
    "messy-i64-f32": dict(index_dtype=np.int64, value_dtype=np.float32, canonical=False),
}


@pytest.fixture(scope="module", autouse=True)
def _simulator_harness():
    """Make the simulator's shared-memory allocation thread-safe, and switch faster.

    numba-cuda's ``FakeCUDAShared.array`` (0.30) looks the caller's line up in a
    dict and creates the array if missing, without a lock: two CUDA threads of a
    block pre-empted between the look-up and the store get *different* "shared"
    arrays, and the kernel computes garbage (a rare, load-dependent flake of the
    simulator, not of the kernels).  We take the same (file, line) key under a
    lock.  The simulator runs a Python thread per CUDA thread and meets at every
    ``syncthreads``: a short switch interval makes those barriers ~3x faster.
    """
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()
    original = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic / aligned: not used here
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, numba.types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        key = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(key)
            if res is None:
                res = self._allocations[key] = np.empty(shape, dtype)
        return res

    old = sys.getswitchinterval()
    kernelapi.FakeCUDAShared.array = array
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)
    kernelapi.FakeCUDAShared.array = original


def _make_backend(**kw):
    from sparseopt.gpu import CupyBackend

    kw.setdefault("spgemm_threads", 8)
    return CupyBackend(xp=np, **kw)


@pytest.fixture
def sim(monkeypatch):
    """Route NumPy arrays to the simulated GPU backend, so formats and linalg use it."""
    from sparseopt import _backend

    # small thresholds, so the suite's matrices take every path: rows longer
    # than 6 entries get a thread block, SpGEMM rows with more than 8 keys get
    # global-memory tables, in batches of at most 64 slots
    be = _make_backend(spgemm_shared_slots=16, spgemm_pool=64, long_row=6)
    monkeypatch.setattr(_backend._REGISTRY["numpy"], "instance", be)
    return be


def _csr(case):
    from sparseopt import CSR

    indptr, indices, data, shape = case
    return CSR((data, indices, indptr), shape)


def _case(name, vname):
    return variant(SUITE[name], **VARIANTS[vname])


# -- products through sparseopt.linalg and the containers ----------------------
@pytest.mark.parametrize("vname", list(VARIANTS))
@pytest.mark.parametrize("name", NAMES)
def test_spmv_spmm_and_transposes_match_scipy(sim, name, vname, rng):
    from sparseopt import linalg

    case = _case(name, vname)
    ref = scipy_of(*case)
    A = _csr(case)
    dtype = case[2].dtype
    rtol, atol = rtol_for(dtype), 10 * rtol_for(dtype)
    snapshot = [a.copy() for a in case[:3]]
    n_rows, n_cols = ref.shape
    x = rng.standard_normal(n_cols).astype(dtype)
    X = rng.standard_normal((n_cols, 3)).astype(dtype)
    Y = rng.standard_normal((n_rows, 3)).astype(dtype)
    y = rng.standard_normal(n_rows).astype(dtype)
    out = linalg.spmv(A, x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref @ x.astype(np.float64), rtol=rtol, atol=atol)
    np.testing.assert_allclose(A @ X, ref @ X.astype(np.float64), rtol=rtol, atol=atol)
    np.testing.assert_allclose(A.T @ Y, ref.T @ Y.astype(np.float64), rtol=rtol, atol=atol)
    np.testing.assert_allclose(linalg.spmm_t(A, y), ref.T @ y.astype(np.float64),
                               rtol=rtol, atol=atol)
    for before, after in zip(snapshot, case[:3], strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("long_row", [2, 1024])
@pytest.mark.parametrize("k", [1, 2, 33])
def test_group_sizes_and_wide_operands(monkeypatch, k, long_row, rng):
    # k=33 takes the widest lane groups (32) and a second pass over the columns;
    # long_row=2 sends most rows to the block-per-row kernels
    from sparseopt import _backend

    monkeypatch.setattr(_backend._REGISTRY["numpy"], "instance",
                        _make_backend(long_row=long_row))
    ref = sp.random_array((12, 9), density=0.4, random_state=3, format="csr")
    A = _csr((ref.indptr, ref.indices, ref.data, ref.shape))
    X = rng.standard_normal((9, k))
    Y = rng.standard_normal((12, k))
    np.testing.assert_allclose(A @ X, ref @ X, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(A.T @ Y, ref.T @ Y, rtol=1e-12, atol=1e-13)


def test_spmv_with_32_lanes_per_row(monkeypatch, rng):
    # mean row length > 32: groups of 32 lanes, the reduction runs all 5 levels
    from sparseopt import _backend

    monkeypatch.setattr(_backend._REGISTRY["numpy"], "instance", _make_backend())
    ref = sp.csr_array(rng.standard_normal((2, 70)))
    A = _csr((ref.indptr, ref.indices, ref.data, ref.shape))
    x = rng.standard_normal(70)
    np.testing.assert_allclose(A @ x, ref @ x, rtol=1e-12)


def test_spmm_t_transpose_strategy_matches_atomic(monkeypatch, rng):
    from sparseopt import _backend, linalg

    case = _case("power_law", "messy-i64-f32")
    ref = scipy_of(*case)
    Y = rng.standard_normal((ref.shape[0], 2)).astype(np.float32)
    for strategy in ("atomic", "transpose"):
        monkeypatch.setattr(_backend._REGISTRY["numpy"], "instance",
                            _make_backend(spmm_t=strategy))
        np.testing.assert_allclose(linalg.spmm_t(_csr(case), Y),
                                   ref.T @ Y.astype(np.float64), rtol=2e-5, atol=2e-4)


def test_zero_row_and_zero_column_operands(sim):
    from sparseopt import linalg

    for shape in [(0, 5), (5, 0), (0, 0)]:
        A = _csr((np.zeros(shape[0] + 1, np.int32), np.zeros(0, np.int32), np.zeros(0),
                  shape))
        np.testing.assert_array_equal(linalg.spmm(A, np.ones((shape[1], 2))),
                                      np.zeros((shape[0], 2)))
        np.testing.assert_array_equal(linalg.spmm_t(A, np.ones((shape[0], 2))),
                                      np.zeros((shape[1], 2)))
        np.testing.assert_array_equal(A @ np.ones((shape[1], 0)), np.zeros((shape[0], 0)))


# -- BSR ----------------------------------------------------------------------
@pytest.mark.parametrize(("blocksize", "k", "dtype"), [
    ((1, 1), 3, np.float64),
    ((2, 3), 1, np.float32),
    ((3, 2), 5, np.float64),
    ((33, 34), 2, np.float64),  # more than 32 rows and block columns: chunked tiles
    ((2, 2), 35, np.float32),   # more than 32 dense columns: two column tiles
])
def test_bsr_products_match_scipy(sim, blocksize, k, dtype, rng):
    from sparseopt import BSR

    R, C = blocksize
    n_br, n_bc = (2, 2) if R > 8 else (5, 4)
    mask = sp.random_array((n_br, n_bc), density=0.5, random_state=1, format="csr")
    dense = np.kron(mask.toarray() != 0, np.ones((R, C))) * rng.standard_normal(
        (n_br * R, n_bc * C))
    ref = sp.bsr_array(dense.astype(dtype), blocksize=blocksize)
    A = BSR.from_scipy(ref)
    data_before = A.data.copy()
    X = rng.standard_normal((n_bc * C, k)).astype(dtype)
    Y = rng.standard_normal((n_br * R, k)).astype(dtype)
    rtol = rtol_for(dtype)
    out = A @ X
    assert out.dtype == dtype
    np.testing.assert_allclose(out, dense @ X.astype(np.float64), rtol=rtol, atol=10 * rtol)
    np.testing.assert_allclose(A.T @ Y, dense.T @ Y.astype(np.float64), rtol=rtol,
                               atol=10 * rtol)
    np.testing.assert_array_equal(A.data, data_before)


def test_bsr_without_blocks(sim):
    from sparseopt import BSR

    A = BSR((np.zeros((0, 2, 2)), np.zeros(0, np.int32), np.zeros(4, np.int32)), (6, 4))
    np.testing.assert_array_equal(A @ np.ones((4, 3)), np.zeros((6, 3)))
    np.testing.assert_array_equal(A.T @ np.ones((6, 3)), np.zeros((4, 3)))


# -- SpGEMM -------------------------------------------------------------------
def _check_product(C, ref, dtype):
    np.testing.assert_allclose(C.todense(), ref.toarray(), rtol=rtol_for(dtype),
                               atol=10 * rtol_for(dtype))


@pytest.mark.parametrize("vname", list(VARIANTS))
@pytest.mark.parametrize("name", ["empty_rows_cols", "dense_row", "power_law",
                                  "poisson2d", "1x1", "all_zero_4x3", "empty_5x0"])
def test_spgemm_shared_and_global_tables(sim, name, vname):
    # sim routes rows with more than 8 distinct keys to global-memory tables
    # (spgemm_shared_slots=16) in batches of at most 64 slots: both paths run
    from sparseopt import linalg

    case = _case(name, vname)
    ref = scipy_of(*case)
    A = _csr(case)
    B = _csr(variant(_from(ref.T), **VARIANTS[vname]))
    expected = ref @ ref.T
    for sort in (False, True):
        C = linalg.spgemm(A, B, sort=sort)
        assert C.shape == expected.shape
        assert C.dtype == case[2].dtype
        _check_product(C, expected, case[2].dtype)
        assert C.sum_duplicates().nnz == C.nnz  # no duplicates in the output
        if sort:
            assert C.has_canonical_format


def _from(S):
    S = sp.csr_array(S)
    S.sum_duplicates()
    return S.indptr, S.indices, S.data.astype(np.float64), S.shape


def test_spgemm_row_order_short_rows_sorted_long_rows_sorted_on_request():
    # shared-memory rows are always written sorted (rank sort); global-memory
    # rows come out in hash-slot order unless sort=True
    slots = 32
    be = _make_backend(spgemm_shared_slots=slots, spgemm_pool=256)
    rng = np.random.default_rng(5)
    lengths = np.array([1, 1, 1, 1, 1, 6, 6, 6, 6, 6])  # short rows, then long rows
    A = sp.csr_array((rng.standard_normal(lengths.sum()),
                      np.concatenate([rng.choice(40, n, replace=False) for n in lengths]),
                      np.concatenate([[0], np.cumsum(lengths)])), shape=(10, 40))
    B = sp.random_array((40, 60), density=0.1, random_state=6, format="csr")
    b_len = np.diff(B.indptr)
    bound = np.array([min(b_len[A.indices[A.indptr[i]:A.indptr[i + 1]]].sum(), 60)
                      for i in range(10)])
    short = 2 * bound <= slots
    assert short.any() and not short.all()  # both paths run
    ref = (A @ B).toarray()
    for sort in (False, True):
        indptr, indices, data = be.spgemm((A.indptr, A.indices, A.data),
                                          (B.indptr, B.indices, B.data), 60,
                                          np.float64, sort)
        C = sp.csr_array((data, indices, indptr), shape=(10, 60))
        np.testing.assert_allclose(C.toarray(), ref, rtol=1e-12, atol=1e-13)
        rows_sorted = np.array([np.all(np.diff(indices[indptr[i]:indptr[i + 1]]) > 0)
                                for i in range(10)])
        assert rows_sorted[short].all()
        if sort:
            assert rows_sorted.all()


def test_spgemm_one_row_larger_than_the_pool():
    # a single long row whose table exceeds spgemm_pool gets a batch of its own
    be = _make_backend(spgemm_shared_slots=4, spgemm_pool=8)
    A = sp.csr_array(np.ones((2, 3)))
    B = sp.csr_array(np.arange(1.0, 31.0).reshape(3, 10))
    indptr, indices, data = be.spgemm((A.indptr, A.indices, A.data),
                                      (B.indptr, B.indices, B.data), 10, np.float64, True)
    C = sp.csr_array((data, indices, indptr), shape=(2, 10))
    np.testing.assert_allclose(C.toarray(), (A @ B).toarray(), rtol=1e-14)
    np.testing.assert_array_equal(indices, np.tile(np.arange(10), 2))


def test_spgemm_int64_output_index_when_mixed(sim):
    from sparseopt import CSR, linalg

    ref = sp.random_array((8, 8), density=0.4, random_state=2, format="csr")
    A = CSR((ref.data, ref.indices.astype(np.int64), ref.indptr.astype(np.int64)), ref.shape)
    B = CSR((ref.data, ref.indices.astype(np.int32), ref.indptr.astype(np.int32)), ref.shape)
    C = linalg.spgemm(A, B)
    _check_product(C, ref @ ref, np.float64)
    assert C.index_dtype == np.int32  # chosen after counting: it fits


# -- canonical form and conversions ------------------------------------------
@pytest.mark.parametrize("name", ["power_law", "dense_row", "1x1", "all_zero_4x3"])
def test_canonical_form_helpers(sim, name):
    case = _case(name, "messy-i64-f32")
    ref = scipy_of(*case)
    A = _csr(case)
    assert A.has_sorted_indices == ref.has_sorted_indices
    assert A.has_canonical_format == ref.has_canonical_format
    S = A.sort_indices()
    assert S.has_sorted_indices
    C = A.sum_duplicates()
    assert C.has_canonical_format
    expected = ref.copy()
    expected.sum_duplicates()
    np.testing.assert_array_equal(C.indptr, expected.indptr)
    np.testing.assert_array_equal(C.indices, expected.indices)
    np.testing.assert_allclose(C.data, expected.data, rtol=1e-5, atol=1e-5)
    assert C.indptr.dtype == np.int64


def test_sum_duplicates_of_bsr_blocks(sim):
    from sparseopt import BSR

    blocks = np.arange(12.0).reshape(3, 2, 2)
    A = BSR((blocks, np.array([1, 0, 1], np.int32), np.array([0, 3, 3], np.int32)), (4, 4))
    C = A.sum_duplicates()
    np.testing.assert_array_equal(C.indices, [0, 1])
    np.testing.assert_array_equal(C.data, [blocks[1], blocks[0] + blocks[2]])
    np.testing.assert_array_equal(C.todense(), A.todense())


@pytest.mark.parametrize("vname", list(VARIANTS))
@pytest.mark.parametrize("blocksize", [(1, 1), (2, 5), (3, 2)])
def test_device_conversions_csr_bsr_transpose(vname, blocksize):
    from sparseopt import CSR

    be = _make_backend()
    case = variant(_from(sp.random_array((6, 10), density=0.3, random_state=4)),
                   **VARIANTS[vname])
    ref = scipy_of(*case)
    A = CSR((case[2], case[1], case[0]), case[3])
    bsr = be.csr_to_bsr(A, blocksize)
    expected = sp.bsr_array(ref, blocksize=blocksize)
    expected.sum_duplicates()
    np.testing.assert_array_equal(bsr.indptr, expected.indptr)
    np.testing.assert_array_equal(bsr.indices, expected.indices)
    np.testing.assert_allclose(bsr.data, expected.data, rtol=1e-6)
    back = be.bsr_to_csr(bsr)
    assert back.nnz == bsr.n_blocks * blocksize[0] * blocksize[1]
    assert back.has_sorted_indices
    np.testing.assert_allclose(back.todense(), ref.toarray(), rtol=1e-6)
    T = be.transpose(A)
    assert T.shape == (10, 6)
    assert T.has_sorted_indices
    np.testing.assert_allclose(T.todense(), ref.T.toarray(), rtol=1e-6)


def test_zero_sized_conversions():
    from sparseopt import CSR

    be = _make_backend()
    A = CSR((np.zeros(0), np.zeros(0, np.int32), np.zeros(5, np.int32)), (4, 6))
    assert be.csr_to_bsr(A, (2, 3)).n_blocks == 0
    assert be.transpose(A).shape == (6, 4)
    assert be.bsr_to_csr(be.csr_to_bsr(A, (2, 3))).nnz == 0
    empty = np.zeros(0, np.int32)
    assert be.sum_duplicates(np.zeros(3, np.int32), empty, np.zeros(0))[0].tolist() == [0, 0, 0]
