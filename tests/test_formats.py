import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import sparse as pydata

from sparseopt import BSR, CSR
from sparseopt.formats import as_csr
from sparseopt.formats._common import index_dtype
from tests.matrix_suite import rtol_for, scipy_of, structures, variant

STRUCTS = structures()
NAMES = sorted(STRUCTS)


@pytest.fixture(params=[np.int32, np.int64], ids=["i32", "i64"])
def idx(request):
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def val(request):
    return request.param


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("canonical", [True, False], ids=["canon", "noncanon"])
def test_construct_and_todense(name, idx, val, canonical):
    indptr, indices, data, shape = variant(STRUCTS[name], index_dtype=idx, value_dtype=val,
                                           canonical=canonical)
    A = CSR((data, indices, indptr), shape=shape)
    assert A.shape == shape and A.dtype == val and A.index_dtype == idx
    ref = scipy_of(indptr, indices, data, shape).toarray()
    np.testing.assert_allclose(A.todense(), ref, rtol=rtol_for(val), atol=rtol_for(val))
    # the arrays are shared, not copied
    assert A.data is data and A.indices is indices


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("canonical", [True, False], ids=["canon", "noncanon"])
def test_canonical_form_matches_scipy(name, idx, canonical):
    indptr, indices, data, shape = variant(STRUCTS[name], index_dtype=idx,
                                           value_dtype=np.float64, canonical=canonical)
    saved = (indptr.copy(), indices.copy(), data.copy())
    A = CSR((data, indices, indptr), shape=shape)
    ref = scipy_of(indptr, indices, data, shape)
    ref.sum_duplicates()
    strictly_increasing = all(np.all(np.diff(indices[indptr[i]:indptr[i + 1]]) > 0)
                              for i in range(shape[0]))
    assert A.has_canonical_format == strictly_increasing
    assert canonical <= strictly_increasing
    C = A.sum_duplicates()
    assert C.has_canonical_format
    np.testing.assert_array_equal(C.indptr, ref.indptr)
    np.testing.assert_array_equal(C.indices, ref.indices)
    np.testing.assert_allclose(C.data, ref.data, rtol=1e-12, atol=1e-12)
    S = A.sort_indices()
    assert S.has_sorted_indices and S.nnz == A.nnz
    for i in range(shape[0]):
        assert np.all(np.diff(S.indices[S.indptr[i]:S.indptr[i + 1]]) >= 0)
    np.testing.assert_allclose(S.todense(), ref.toarray(), atol=1e-12)
    # inputs untouched
    for before, after in zip(saved, (indptr, indices, data), strict=True):
        np.testing.assert_array_equal(before, after)


def test_scipy_round_trip_is_zero_copy(idx):
    A = sp.random_array((20, 30), density=0.2, format="csr", random_state=0)
    A.indptr, A.indices = A.indptr.astype(idx), A.indices.astype(idx)
    C = CSR.from_scipy(A)
    assert np.shares_memory(C.data, A.data) and np.shares_memory(C.indices, A.indices)
    assert C.index_dtype == idx
    back = C.to_scipy()
    assert isinstance(back, sp.csr_array)
    assert np.shares_memory(back.indices, A.indices) and back.indices.dtype == idx
    np.testing.assert_array_equal(back.toarray(), A.toarray())


@pytest.mark.parametrize("fmt", ["coo", "csc", "lil", "dok", "dia", "bsr"])
def test_from_any_scipy_format(fmt):
    A = sp.random_array((12, 9), density=0.3, random_state=1, format=fmt)
    np.testing.assert_array_equal(CSR(A).todense(), A.toarray())
    np.testing.assert_array_equal(CSR.from_scipy(sp.csr_matrix(A)).todense(), A.toarray())


def test_pydata_round_trip():
    A = sp.random_array((15, 11), density=0.3, format="csr", random_state=2)
    g = pydata.GCXS.from_scipy_sparse(A)
    C = CSR.from_sparse(g)
    np.testing.assert_array_equal(C.todense(), A.toarray())
    assert np.shares_memory(C.data, g.data)
    back = C.to_sparse()
    assert isinstance(back, pydata.GCXS)
    np.testing.assert_array_equal(back.todense(), A.toarray())
    coo = pydata.COO.from_scipy_sparse(A)
    np.testing.assert_array_equal(as_csr(coo).todense(), A.toarray())


def test_from_dense_and_int_data():
    d = np.array([[0, 1, 0], [2, 0, 3]])
    C = CSR.from_dense(d)
    assert C.dtype == np.float64 and C.has_canonical_format and C.nnz == 3
    assert C.index_dtype == np.int32
    np.testing.assert_array_equal(C.todense(), d)
    np.testing.assert_array_equal(CSR(d).todense(), d)


def test_shape_inferred():
    C = CSR((np.array([1.0, 2.0]), np.array([0, 4]), np.array([0, 1, 2])))
    assert C.shape == (2, 5)


@pytest.mark.parametrize(
    "indptr, indices, n_data, shape, match",
    [
        ([1, 2], [0], 1, (1, 3), r"indptr\[0\] must be 0"),
        ([0, 2, 1], [0, 1], 2, (2, 3), "non-decreasing"),
        ([0, 1], [3], 1, (1, 3), "out of range"),
        ([0, 1], [-1], 1, (1, 3), "out of range"),
        ([0, 2], [0], 1, (1, 3), "indices has length 1"),
        ([0, 1], [0], 2, (1, 3), "data holds 2"),
        ([0, 1, 1], [0], 1, (1, 3), "indptr has length 3"),
    ],
)
def test_validation_errors(indptr, indices, n_data, shape, match):
    with pytest.raises(ValueError, match=match):
        CSR((np.ones(n_data), np.asarray(indices), np.asarray(indptr)), shape=shape)


def test_validation_types():
    with pytest.raises(TypeError, match="integers"):
        CSR((np.ones(1), np.array([0.0]), np.array([0, 1])), shape=(1, 2))
    with pytest.raises(TypeError, match="real numbers"):
        CSR((np.ones(1, dtype=complex), np.array([0]), np.array([0, 1])), shape=(1, 2))
    with pytest.raises(ValueError, match="shape"):
        CSR((np.ones(1), np.array([0]), np.array([0, 1])), shape=(1, -2))
    with pytest.raises(ValueError, match="1-D"):
        CSR((np.ones((1, 1)), np.array([0]), np.array([0, 1])), shape=(1, 2))


def test_trusted_path_skips_validation():
    # check=False is for internal use on valid arrays: it must not scan them
    C = CSR((np.ones(1), np.array([5]), np.array([0, 1])), shape=(1, 2), check=False)
    assert C.nnz == 1


def test_index_dtype_policy():
    assert index_dtype(maxval=2**31 - 1) == np.int32
    assert index_dtype(maxval=2**31) == np.int64
    # mixed int32/int64 input arrays are unified to int64, uint8 narrowed to int32
    C = CSR((np.ones(2), np.array([0, 1], dtype=np.int64), np.array([0, 1, 2], dtype=np.int32)),
            shape=(2, 2))
    assert C.indices.dtype == C.indptr.dtype == np.int64
    C = CSR((np.ones(2), np.array([0, 1], dtype=np.uint8), np.array([0, 1, 2], dtype=np.uint8)),
            shape=(2, 2))
    assert C.indices.dtype == np.int32


@pytest.mark.parametrize("blocksize", [(1, 1), (2, 3), (3, 1), (4, 4)])
@pytest.mark.parametrize("canonical", [True, False], ids=["canon", "noncanon"])
def test_bsr_from_csr_and_back(blocksize, idx, canonical):
    rng = np.random.default_rng(3)
    R, C = blocksize
    A = sp.random_array((12 * R, 8 * C), density=0.1, random_state=rng, format="csr")
    ip, ind, dat, shape = variant((A.indptr, A.indices, A.data, A.shape), index_dtype=idx,
                                  value_dtype=np.float64, canonical=canonical)
    csr = CSR((dat, ind, ip), shape=shape)
    B = csr.tobsr(blocksize)
    assert B.blocksize == blocksize and B.shape == shape
    np.testing.assert_allclose(B.todense(), A.toarray(), atol=1e-12)
    np.testing.assert_allclose(B.tocsr().todense(), A.toarray(), atol=1e-12)
    np.testing.assert_allclose(B.to_scipy().toarray(), A.toarray(), atol=1e-12)


def test_bsr_validation_and_duplicates():
    blocks = np.arange(12.0).reshape(3, 2, 2)
    with pytest.raises(ValueError, match="multiple of the blocksize"):
        BSR((blocks, np.array([0, 1, 0]), np.array([0, 2, 3])), shape=(4, 5))
    with pytest.raises(ValueError, match=r"\(n_blocks, R, C\)"):
        BSR((np.ones((3, 2)), np.array([0, 1, 0]), np.array([0, 2, 3])), shape=(4, 4))
    with pytest.raises(ValueError, match="out of range"):
        BSR((blocks, np.array([0, 2, 0]), np.array([0, 2, 3])), shape=(4, 4))
    # a repeated block in row 0, unsorted: canonical form sums it
    B = BSR((blocks, np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(4, 4))
    assert not B.has_canonical_format
    Bc = B.sum_duplicates()
    assert Bc.has_canonical_format and Bc.n_blocks == 2
    np.testing.assert_allclose(Bc.todense(), B.todense())
    np.testing.assert_allclose(Bc.data[0], blocks[0] + blocks[1])


def test_transpose_view():
    A = sp.random_array((7, 5), density=0.4, format="csr", random_state=4)
    C = CSR.from_scipy(A)
    assert C.T.shape == (5, 7) and C.T.T is C
    np.testing.assert_array_equal(C.T.todense(), A.toarray().T)
    assert C.T.to_scipy().format == "csc"


def test_repr_and_astype():
    C = CSR.from_scipy(sp.random_array((3, 4), density=0.5, format="csr", random_state=0))
    assert "CSR 3x4" in repr(C)
    C32 = C.astype(np.float32)
    assert C32.dtype == np.float32 and C.dtype == np.float64
    with pytest.raises(TypeError):
        C.astype(complex)


def test_import_does_not_import_cupy():
    code = ("import sys, sparseopt, numpy as np; "
            "A = sparseopt.CSR.from_dense(np.eye(3)); A @ np.ones(3); "
            "assert 'cupy' not in sys.modules and 'sparseopt.gpu' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
