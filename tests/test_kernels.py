"""Every kernel against scipy over the generic matrix suite."""

import numpy as np
import pytest
import scipy.sparse as sp
import sparse as pydata
from hypothesis import given
from hypothesis import strategies as st

import sparseopt
from sparseopt import BSR, CSR, spgemm, spmm, spmm_t, spmv
from tests.matrix_suite import rtol_for, scipy_of, structures, variant

STRUCTS = structures()
NAMES = sorted(STRUCTS)
VARIANTS = [
    pytest.param(np.int32, np.float64, True, id="i32-f64-canon"),
    pytest.param(np.int64, np.float64, False, id="i64-f64-noncanon"),
    pytest.param(np.int32, np.float32, False, id="i32-f32-noncanon"),
    pytest.param(np.int64, np.float32, True, id="i64-f32-canon"),
]


def _case(name, idx, val, canonical):
    indptr, indices, data, shape = variant(STRUCTS[name], index_dtype=idx, value_dtype=val,
                                           canonical=canonical)
    saved = [a.copy() for a in (indptr, indices, data)]
    return CSR((data, indices, indptr), shape=shape), scipy_of(indptr, indices, data, shape), saved


def _unchanged(A, saved):
    for before, after in zip(saved, (A.indptr, A.indices, A.data), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("idx, val, canonical", VARIANTS)
def test_spmv_spmm_spmm_t(name, idx, val, canonical):
    A, ref, saved = _case(name, idx, val, canonical)
    rng = np.random.default_rng(1)
    m, n = A.shape
    tol = rtol_for(val)
    x = rng.standard_normal(n).astype(val)
    X = rng.standard_normal((n, 5)).astype(val)
    Y = rng.standard_normal((m, 3)).astype(val)
    x_saved, X_saved = x.copy(), X.copy()
    y = spmv(A, x)
    assert y.dtype == val and y.shape == (m,)
    np.testing.assert_allclose(y, ref @ x.astype(np.float64), rtol=tol, atol=tol * 10)
    Z = spmm(A, X)
    assert Z.dtype == val and Z.shape == (m, 5)
    np.testing.assert_allclose(Z, ref @ X.astype(np.float64), rtol=tol, atol=tol * 10)
    for k in (8, 41):  # vector panels: one of 8 columns; 32 + 8 + a scalar column
        Xk = rng.standard_normal((n, k)).astype(val)
        np.testing.assert_allclose(spmm(A, Xk), ref @ Xk.astype(np.float64), rtol=tol,
                                   atol=tol * 10)
        Yk = rng.standard_normal((m, k)).astype(val)
        np.testing.assert_allclose(spmm_t(A, Yk), ref.T @ Yk.astype(np.float64), rtol=tol,
                                   atol=tol * 10)
    W = spmm_t(A, Y)
    assert W.shape == (n, 3)
    np.testing.assert_allclose(W, ref.T @ Y.astype(np.float64), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(A.T @ Y[:, 0], ref.T @ Y[:, 0].astype(np.float64),
                               rtol=tol, atol=tol * 10)
    # X @ A through __rmatmul__
    np.testing.assert_allclose(Y.T @ A, Y.T.astype(np.float64) @ ref, rtol=tol, atol=tol * 10)
    _unchanged(A, saved)
    np.testing.assert_array_equal(x, x_saved)
    np.testing.assert_array_equal(X, X_saved)


def test_result_dtype_follows_numpy():
    A = CSR.from_scipy(sp.random_array((6, 4), density=0.5, format="csr", random_state=0))
    A32 = A.astype(np.float32)
    assert spmm(A32, np.ones((4, 2), np.float32)).dtype == np.float32
    assert spmm(A32, np.ones((4, 2))).dtype == np.float64
    assert spmm(A, np.ones((4, 2), np.float32)).dtype == np.float64
    assert spmm(A32, np.ones((4, 2), np.int64)).dtype == np.float64
    np.testing.assert_allclose(spmm(A, np.ones((4, 2), np.int64)), A.to_scipy() @ np.ones((4, 2)))


def test_product_errors():
    A = CSR.from_dense(np.eye(3))
    with pytest.raises(ValueError, match="dimension mismatch"):
        spmm(A, np.ones((4, 2)))
    with pytest.raises(ValueError, match="dimension mismatch"):
        spmm_t(A, np.ones((4, 2)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        spmm(A, np.ones((3, 2, 2)))
    with pytest.raises(TypeError, match="real numbers"):
        spmm(A, np.ones(3, dtype=complex))
    with pytest.raises(ValueError, match="1-D for spmv"):
        spmv(A, np.ones((3, 2)))
    with pytest.raises(TypeError, match="sparse matrix"):
        spmm(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="dimension mismatch"):
        spgemm(A, CSR.from_dense(np.eye(4)))


@pytest.mark.parametrize("n_vec", [1, 6, 8, 40, 72])
def test_parallel_chunks_match_scipy(n_vec):
    # large enough for the multi-chunk (private buffer) path of spmm_t and for
    # a flop-balanced split of spgemm
    A = sp.random_array((4000, 300), density=0.02, format="csr", random_state=5)
    X = np.random.default_rng(2).standard_normal((4000, n_vec))
    with sparseopt.config_context(n_threads=2):
        np.testing.assert_allclose(spmm_t(A, X), A.T @ X, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(spmm(A.T.tocsr(), X), A.T @ X, rtol=1e-12, atol=1e-12)
        B = BSR.from_scipy(sp.random_array((4000, 300), density=0.05, format="csr",
                                           random_state=6), blocksize=(4, 3))
        np.testing.assert_allclose(spmm_t(B, X), B.to_scipy().T @ X, rtol=1e-12, atol=1e-12)
        C = spgemm(A.T.tocsr(), A)
        np.testing.assert_allclose(C.toarray(), (A.T @ A).toarray(), rtol=1e-12, atol=1e-12)


def test_vector_row_kernels_reject_other_layouts():
    # the kernels' vector loads assume C-ordered rows of the matrix's dtype:
    # anything else is refused when Numba types the call, naming the operand
    from numba.core.errors import TypingError

    from sparseopt.kernels import _spmm

    A = sp.random_array((6, 5), density=0.5, format="csr", random_state=0)
    ip, ix = A.indptr.view(np.uint32), A.indices.view(np.uint32)
    one = np.array([0, 6])
    with pytest.raises(TypingError, match="X must be a 2-D C-ordered float64"):
        _spmm.csr_spmm(ip, ix, A.data, np.asfortranarray(np.ones((5, 3))), np.empty((6, 3)), one)
    with pytest.raises(TypingError, match="out must be a 2-D C-ordered float64"):
        _spmm.csr_spmm(ip, ix, A.data, np.ones((5, 3)), np.empty((6, 3), np.float32), one)


@pytest.mark.parametrize("k", [41, 1])
@pytest.mark.parametrize("transpose", [False, True])
def test_backend_spmm_takes_any_dense_layout(transpose, k):
    # the vector-panel kernels need C-ordered operands of the matrix's dtype:
    # the backend copies a Fortran-ordered or float32 X and writes a strided
    # or float32 out through a buffer (one column: A @ X runs the SpMV kernel)
    from sparseopt._numpy_backend import NumpyBackend

    A = sp.random_array((60, 50), density=0.2, format="csr", random_state=4)
    n_in, n_out = (A.shape[0], A.shape[1]) if transpose else (A.shape[1], A.shape[0])
    ref_op = A.T if transpose else A
    kernel = NumpyBackend.spmm_t if transpose else NumpyBackend.spmm
    rng = np.random.default_rng(0)
    X = np.asfortranarray(rng.standard_normal((n_in, 2 * k))[:, ::2])
    X_saved = X.copy()
    for X_in, out in [(X, np.empty((n_out, k))),
                      (X.astype(np.float32), np.empty((n_out, k))),
                      (X, np.empty((n_out, 2 * k))[:, ::2]),
                      (X, np.empty((n_out, k), dtype=np.float32))]:
        got = kernel(A.indptr, A.indices, A.data, X_in, out)
        assert got is out
        np.testing.assert_allclose(out, ref_op @ X_in.astype(np.float64),
                                   rtol=1e-6 if np.float32 in (X_in.dtype, out.dtype) else 1e-12,
                                   atol=1e-5)
    np.testing.assert_array_equal(X, X_saved)


@pytest.mark.parametrize("blocksize", [(1, 1), (2, 3), (4, 4)])
@pytest.mark.parametrize("idx, val, canonical", VARIANTS)
def test_bsr_products(blocksize, idx, val, canonical):
    rng = np.random.default_rng(7)
    R, C = blocksize
    A = sp.random_array((10 * R, 7 * C), density=0.15, random_state=rng, format="csr")
    ip, ind, dat, shape = variant((A.indptr, A.indices, A.data, A.shape), index_dtype=idx,
                                  value_dtype=val, canonical=canonical)
    B = CSR((dat, ind, ip), shape=shape).tobsr(blocksize)
    if not canonical:  # also exercise repeated, unsorted blocks
        B = BSR((np.concatenate([B.data, B.data[:1]]), np.concatenate([B.indices, B.indices[:1]]),
                 np.concatenate([B.indptr[:1], B.indptr[1:] + 1])), shape=B.shape)
    dense = B.todense().astype(np.float64)
    tol = rtol_for(val)
    X = rng.standard_normal((shape[1], 4)).astype(val)
    Y = rng.standard_normal((shape[0], 2)).astype(val)
    np.testing.assert_allclose(B @ X, dense @ X, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(B @ X[:, 0], dense @ X[:, 0], rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(B.T @ Y, dense.T @ Y, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(spmm(B.to_scipy(), X), dense @ X, rtol=tol, atol=tol * 10)


def test_bsr_empty_shapes():
    B = BSR((np.zeros((0, 2, 2)), np.zeros(0, np.int32), np.zeros(3, np.int32)), shape=(4, 6))
    np.testing.assert_array_equal(B @ np.ones((6, 3)), np.zeros((4, 3)))
    np.testing.assert_array_equal(B.T @ np.ones((4, 3)), np.zeros((6, 3)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("idx, val, canonical", VARIANTS)
@pytest.mark.parametrize("sort", [False, True], ids=["unsorted", "sorted"])
def test_spgemm(name, idx, val, canonical, sort):
    A, ref, saved = _case(name, idx, val, canonical)
    # A @ A.T always has compatible shapes; also A.T @ A via a transposed view
    AT = CSR.from_scipy(ref.T.tocsr().astype(val))
    C = spgemm(A, AT, sort=sort)
    expected = (ref @ ref.T).toarray()
    assert C.shape == expected.shape and C.dtype == val
    tol = rtol_for(val)
    np.testing.assert_allclose(C.todense(), expected, rtol=tol, atol=tol * 100)
    # no duplicates, ever; sorted when asked
    Cs = C.sort_indices()
    for i in range(C.shape[0]):
        row = Cs.indices[Cs.indptr[i]:Cs.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)
    if sort:
        assert C.has_canonical_format
    D = spgemm(A.T, A)
    np.testing.assert_allclose(D.todense(), (ref.T @ ref).toarray(), rtol=tol, atol=tol * 100)
    _unchanged(A, saved)


def test_spgemm_accumulators():
    # a wide B with few flops per row takes the hash path, dense rows the dense path
    rng = np.random.default_rng(8)
    A = sp.random_array((50, 40), density=0.05, random_state=rng, format="lil")
    A[0, :] = 1.0
    A = A.tocsr()
    B = sp.random_array((40, 300_000), density=0.0002, random_state=rng, format="csr")
    B2 = sp.random_array((40, 60), density=0.5, random_state=rng, format="csr")
    for right in (B, B2):
        C = spgemm(A, right)
        np.testing.assert_allclose(C.toarray(), (A @ right).toarray(), rtol=1e-12, atol=1e-12)


def test_spgemm_output_types_and_index_dtype():
    A = sp.random_array((20, 20), density=0.2, format="csr", random_state=9)
    out = spgemm(A, A)
    assert isinstance(out, sp.csr_array)
    assert isinstance(spgemm(sp.csr_matrix(A), A), sp.csr_matrix)
    g = pydata.GCXS.from_scipy_sparse(A)
    assert isinstance(spgemm(g, g), pydata.GCXS)
    C = spgemm(CSR.from_scipy(A), CSR.from_scipy(A))
    assert isinstance(C, CSR) and C.index_dtype == np.int32
    # int64 inputs whose sizes fit give int32 output, as scipy
    A64 = CSR((A.data, A.indices.astype(np.int64), A.indptr.astype(np.int64)), A.shape)
    assert spgemm(A64, A64).index_dtype == np.int32
    np.testing.assert_allclose((CSR.from_scipy(A) @ A).todense(), (A @ A).toarray())


@st.composite
def sparse_matrices(draw):
    m = draw(st.integers(0, 12))
    n = draw(st.integers(0, 12))
    nnz = draw(st.integers(0, m * n + 3)) if m and n else 0
    rows = draw(st.lists(st.integers(0, max(m - 1, 0)), min_size=nnz, max_size=nnz))
    cols = draw(st.lists(st.integers(0, max(n - 1, 0)), min_size=nnz, max_size=nnz))
    vals = draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=nnz, max_size=nnz))
    # unsorted, possibly duplicated entries kept as they come
    order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
    rows_s = np.asarray(rows, dtype=np.int64)[order]
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.add.at(indptr, rows_s + 1, 1)
    return (np.asarray(vals)[order], np.asarray(cols, dtype=np.int32)[order],
            np.cumsum(indptr).astype(np.int32), (m, n))


@given(sparse_matrices(), st.integers(1, 4))
def test_hypothesis_products(mat, k):
    data, indices, indptr, shape = mat
    A = CSR((data, indices, indptr), shape=shape)
    ref = scipy_of(indptr, indices, data, shape)
    X = np.arange(shape[1] * k, dtype=np.float64).reshape(shape[1], k) / 7.0
    Y = np.arange(shape[0] * k, dtype=np.float64).reshape(shape[0], k) / 5.0
    np.testing.assert_allclose(spmm(A, X), ref @ X, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(spmm_t(A, Y), ref.T @ Y, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(spgemm(A, A.T).todense(), (ref @ ref.T).toarray(),
                               rtol=1e-12, atol=1e-9)
    C = A.sum_duplicates()
    ref.sum_duplicates()
    np.testing.assert_array_equal(C.indices, ref.indices)


def test_config_threads_applied_inside_call():
    import numba

    before = numba.get_num_threads()
    A = CSR.from_dense(np.eye(4))
    with sparseopt.config_context(n_threads=1):
        spmm(A, np.ones((4, 2)))
    assert numba.get_num_threads() == before


def _assert_rows_sorted(C):
    for i in range(C.shape[0]):
        row = C.indices[C.indptr[i]:C.indptr[i + 1]]
        assert np.all(np.diff(row) > 0), f"row {i} not strictly increasing"


@pytest.mark.parametrize("idx", [np.int32, np.int64])
@pytest.mark.parametrize("sort", [False, True], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("dense_row", [True, False], ids=["hash+dense", "hash only"])
def test_spgemm_wide_b_hash_and_dense_rows(idx, sort, dense_row):
    # more than 2**20 columns: light rows take the hash table, the all-ones row
    # of A (80 000 flops) the dense accumulator, in the same chunk; without it
    # every row hashes in both passes and the markers have no columns
    rng = np.random.default_rng(11)
    n_cols = (1 << 21) + 3
    B = sp.random_array((40, n_cols), density=1e-3, random_state=rng, format="csr")
    A = sp.random_array((30, 40), density=0.1, random_state=rng, format="lil")
    if dense_row:
        A[3, :] = 1.0
    A = A.tocsr()
    Ac = CSR((A.data, A.indices.astype(idx), A.indptr.astype(idx)), A.shape)
    Bc = CSR((B.data, B.indices.astype(idx), B.indptr.astype(idx)), B.shape)
    C = spgemm(Ac, Bc, sort=sort)
    ref = (A @ B).tocsr()
    ref.sort_indices()  # too wide for toarray(): compare the sorted CSR arrays
    if sort:
        _assert_rows_sorted(C)
    Cs = C.to_scipy()
    Cs.sort_indices()
    np.testing.assert_array_equal(Cs.indptr, ref.indptr)
    np.testing.assert_array_equal(Cs.indices, ref.indices)
    np.testing.assert_allclose(Cs.data, ref.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("val", [np.float64, np.float32])
def test_spgemm_sorted_bitmap_and_sort_rows(n_threads, val):
    # dense-ish rows (emitted through the column bitmap), short rows spread over
    # 200 000 columns (sorted as a list), empty rows, duplicates in A; enough
    # flops for the two-thread split; repeated calls reuse nothing stale
    rng = np.random.default_rng(12)
    n = 200_000
    short = sp.random_array((600, n), density=2e-5, random_state=rng, format="csr")
    dense = sp.random_array((40, n), density=0.02, random_state=rng, format="csr")
    B = sp.vstack([short, dense, sp.csr_array((10, n))]).tocsr().astype(val)
    A = sp.random_array((300, B.shape[0]), density=0.01, random_state=rng, format="csr")
    # rows of A with one entry on a short row of B: a few columns far apart
    single = sp.csr_array((np.ones(100), (np.arange(100), rng.integers(0, 600, 100))),
                          shape=(100, B.shape[0]))
    A = sp.vstack([A, single]).tocsr()
    A = sp.csr_array((np.concatenate([A.data, A.data[:5]]),
                      np.concatenate([A.indices, A.indices[:5]]),
                      np.concatenate([A.indptr[:1], A.indptr[1:] + 5])), shape=A.shape)
    A = A.astype(val)
    ref = (A.astype(np.float64) @ B.astype(np.float64)).toarray()
    tol = rtol_for(val)
    with sparseopt.config_context(n_threads=n_threads):
        for _ in range(2):
            for sort in (True, False):
                C = spgemm(CSR.from_scipy(A), CSR.from_scipy(B), sort=sort)
                assert C.dtype == val
                np.testing.assert_allclose(C.todense(), ref, rtol=tol, atol=tol * 100)
                if sort:
                    _assert_rows_sorted(C)
                else:
                    _assert_rows_sorted(C.sort_indices())


@pytest.mark.parametrize("val", [np.float64, np.float32])
def test_spgemm_sorted_short_and_wide_rows(val):
    # sorted dense-accumulator rows take three routes: <= 16 columns an inline
    # insertion sort, more columns over a span far wider than n log n a sort of
    # the column list (here ~24 columns over a million), the rest the bitmap
    rng = np.random.default_rng(21)
    n = 1_000_000
    cols = rng.integers(0, n, size=(50, 4))
    B = sp.csr_array((rng.standard_normal(200), cols.ravel(), np.arange(0, 201, 4)),
                     shape=(50, n)).astype(val)
    A = sp.random_array((30, 50), density=0.12, random_state=rng, format="csr").astype(val)
    A = sp.vstack([A, sp.csr_array((np.ones(2), ([0, 0], [3, 7])), shape=(1, 50))]).tocsr()
    A = A.astype(val)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    ref.sort_indices()
    C = spgemm(CSR.from_scipy(A), CSR.from_scipy(B), sort=True)
    lengths = np.diff(C.indptr)
    assert lengths.max() > 16 and 0 < lengths.min() <= 16  # both routes taken
    _assert_rows_sorted(C)
    np.testing.assert_array_equal(C.indptr, ref.indptr)
    np.testing.assert_array_equal(C.indices, ref.indices)
    np.testing.assert_allclose(C.data, ref.data, rtol=rtol_for(val), atol=rtol_for(val))


def test_spgemm_power_law_two_threads():
    # R-MAT (Chakrabarti et al. 2004) rows: heavy rows repeat columns often,
    # the case the branch-free accumulate is for
    rng = np.random.default_rng(3)
    scale, m = 10, 8 << 10
    rows = np.zeros(m, dtype=np.int64)
    cols = np.zeros(m, dtype=np.int64)
    for level in range(scale):
        r = rng.random(m)
        rows |= (r > 0.76).astype(np.int64) << level
        cols |= ((r > 0.57) & (r <= 0.76) | (r > 0.95)).astype(np.int64) << level
    A = sp.coo_array((rng.standard_normal(m), (rows, cols)), shape=(1 << scale,) * 2).tocsr()
    with sparseopt.config_context(n_threads=2):
        for sort in (False, True):
            C = spgemm(A, A, sort=sort)
            D = (A @ A).tocsr()
            np.testing.assert_allclose(C.toarray(), D.toarray(), rtol=1e-12, atol=1e-12)
            assert C.nnz == D.nnz


def _transposed_layouts():
    rng = np.random.default_rng(11)
    n = 40
    tri = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    poisson = (sp.kron(sp.eye_array(n), tri) + sp.kron(tri, sp.eye_array(n))).tocsr()
    blocks = sp.block_diag([sp.random_array((300, 300), density=0.03, random_state=i)
                            for i in range(4)], format="lil")
    blocks[500, 10] = 3.0    # a stray entry reaching into chunk 0's columns
    blocks[1000, 450] = 1.0  # and one inside another chunk's span
    last_row_only = sp.csr_array(([1.0], ([2999], [5])), shape=(3000, 300))
    scattered = sp.random_array((3000, 400), density=0.02, format="csr", random_state=rng)
    # scattered with empty rows and repeated columns, rows in order: the column split
    holes = scattered.tolil()
    holes[::3] = 0
    holes = holes.tocsr()
    holes.eliminate_zeros()
    dup_indices = np.repeat(holes.indices, 2)
    dup = sp.csr_array((np.repeat(holes.data, 2) / 2, dup_indices, holes.indptr * 2),
                       shape=holes.shape)
    # scattered with the columns of each row reversed: the buffered scheme
    rev = scattered.copy()
    for i in range(rev.shape[0]):
        seg = slice(rev.indptr[i], rev.indptr[i + 1])
        rev.indices[seg] = rev.indices[seg][::-1]
        rev.data[seg] = rev.data[seg][::-1]
    rev.has_sorted_indices = False
    return {"banded": poisson, "blocks": blocks.tocsr(), "empty chunks": last_row_only,
            "scattered": scattered, "scattered, empty rows, duplicates": dup,
            "scattered, unsorted rows": rev}


@pytest.mark.parametrize("layout", ["banded", "blocks", "empty chunks", "scattered",
                                    "scattered, empty rows, duplicates",
                                    "scattered, unsorted rows"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_spmm_t_own_column_intervals(layout, index_dtype):
    # the parallel A.T @ X writes each chunk's own columns straight into out and
    # buffers the rest, or (scattered, sorted rows, k >= 32) splits the columns;
    # check every split of rows into 2..7 chunks against scipy, with the rows'
    # order checked by the kernel and, where they are in order, known to it
    from sparseopt.kernels import _spmm
    from sparseopt.kernels._partition import balanced_splits

    A = _transposed_layouts()[layout]
    indptr = A.indptr.astype(index_dtype)
    indices = A.indices.astype(index_dtype)
    if index_dtype == np.int32:  # as the backend passes them
        indptr, indices = indptr.view(np.uint32), indices.view(np.uint32)
    rng = np.random.default_rng(3)
    for parts in (2, 3, 4, 7):
        splits = balanced_splits(indptr, parts)
        ordered = [_spmm._rows_ordered(indptr, indices, splits[t], splits[t + 1])
                   for t in range(parts)]
        assert all(ordered) == (layout != "scattered, unsorted rows")
        for k in (1, 5, 8, 33, 72):
            X = rng.standard_normal((A.shape[0], k))
            for rows_sorted in {False, all(ordered)}:
                out = np.full((A.shape[1], k), np.nan)
                _spmm.csr_spmm_t(indptr, indices, A.data, X, out, splits, rows_sorted)
                np.testing.assert_allclose(out, A.T @ X, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("row_cost", [0, 1, 4])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_balanced_splits_row_cost(row_cost, parts):
    # split t is the first row whose work (nnz + row_cost per row) reaches
    # t/parts of the total: compare with a direct search over every row
    from sparseopt.kernels._partition import balanced_splits

    rng = np.random.default_rng(parts)
    lengths = np.where(rng.random(300) < 0.1, rng.integers(50, 200, 300), rng.integers(0, 3, 300))
    lengths[:40] = 0                                   # a run of empty rows
    for dtype in (np.int64, np.uint32):
        indptr = np.concatenate([[7], 7 + np.cumsum(lengths)]).astype(dtype)  # offset start
        splits = balanced_splits(indptr, parts, row_cost)
        work = indptr.astype(np.int64) - 7 + row_cost * np.arange(301)
        expected = [0] + [int(np.argmax(work >= (work[-1] * t) // parts))
                          for t in range(1, parts)] + [300]
        np.testing.assert_array_equal(splits, expected)
    empty = balanced_splits(np.zeros(11, dtype=np.int64), 3, 0)   # no work: split by rows
    np.testing.assert_array_equal(empty, [0, 3, 6, 10])


@pytest.mark.parametrize("sort", [False, True], ids=["unsorted", "sorted"])
def test_spgemm_block_diagonal_two_threads_share_markers(sort):
    # each thread's rows reach only their own block of columns, and the second
    # block's rows are empty in A: the markers shared by both passes (positive
    # tags in the symbolic pass, negative in the numeric) must not leak marks
    from sparseopt._numpy_backend import _PARALLEL_MIN_WORK

    rng = np.random.default_rng(5)
    blk = sp.random_array((3000, 3000), density=3e-3, random_state=rng, format="csr")
    A = sp.block_diag([blk, sp.csr_array((500, 500)), blk], format="csr")
    A.sort_indices()
    assert (A @ A).nnz >= _PARALLEL_MIN_WORK  # flops >= nnz: two chunks
    with sparseopt.config_context(n_threads=2):
        C = spgemm(CSR.from_scipy(A), CSR.from_scipy(A), sort=sort)
    ref = (A @ A).tocsr()
    ref.sort_indices()
    Cs = C.to_scipy()
    if sort:
        _assert_rows_sorted(C)
    Cs.sort_indices()
    np.testing.assert_array_equal(Cs.indptr, ref.indptr)
    np.testing.assert_array_equal(Cs.indices, ref.indices)
    np.testing.assert_allclose(Cs.data, ref.data, rtol=1e-12)


def test_spgemm_dense_markers_only_when_a_row_is_dense():
    from sparseopt.kernels._spgemm import _DENSE_MAX_COLS, dense_markers

    assert dense_markers(100, 1, 10).shape == (1, 100)
    wide = 4 * _DENSE_MAX_COLS
    # few flops per row on a wide B: every row hashes, no marker columns
    assert dense_markers(wide, 1, 10).shape[1] == 0
    # a row with flops near n_cols needs the dense accumulator
    assert dense_markers(wide, 1, wide).shape[1] == wide
    assert not dense_markers(100, 1, 10).any()
