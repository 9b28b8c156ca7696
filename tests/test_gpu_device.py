"""The GPU backend on a real device, against cuSPARSE (cupyx) and the CPU backend.

Marked ``gpu``: ``tests/conftest.py`` skips these without a CUDA device.  On a
GPU machine::

    pip install -e ".[test,gpu]"
    python -m pytest -m gpu tests/test_gpu_device.py
"""

import numpy as np
import pytest
import scipy.sparse as sp

from tests.matrix_suite import rtol_for, scipy_of, structures, variant

pytestmark = pytest.mark.gpu

SUITE = structures()
VARIANTS = [
    dict(index_dtype=np.int32, value_dtype=np.float64, canonical=True),
    dict(index_dtype=np.int64, value_dtype=np.float32, canonical=False),
    dict(index_dtype=np.int32, value_dtype=np.float32, canonical=True),
    dict(index_dtype=np.int64, value_dtype=np.float64, canonical=False),
]
VIDS = ["i32-f64-canon", "i64-f32-messy", "i32-f32-canon", "i64-f64-messy"]


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


def _host_csr(case):
    from sparseopt import CSR

    indptr, indices, data, shape = case
    return CSR((data, indices, indptr), shape)


def _cusparse(ref, cp):
    """cupyx CSR (cuSPARSE) of a scipy matrix, canonical and int32 as cupyx needs."""
    import cupyx.scipy.sparse as csp

    ref = sp.csr_array(ref)
    ref.sum_duplicates()
    return csp.csr_matrix((cp.asarray(ref.data), cp.asarray(ref.indices.astype(np.int32)),
                           cp.asarray(ref.indptr.astype(np.int32))), shape=ref.shape)


def test_dispatch_and_round_trip(cp):
    from sparseopt import get_backend
    from sparseopt.gpu import CupyBackend, to_device, to_host

    case = variant(SUITE["power_law"], **VARIANTS[1])
    A = _host_csr(case)
    D = to_device(A)
    assert isinstance(get_backend(D.data), CupyBackend)
    assert isinstance(D.data, cp.ndarray)
    assert D.indices.dtype == np.int64 and D.dtype == np.float32
    H = to_host(D)
    for a, b in [(H.data, A.data), (H.indices, A.indices), (H.indptr, A.indptr)]:
        np.testing.assert_array_equal(a, b)
    assert isinstance(to_device(np.ones(3)), cp.ndarray)
    assert isinstance(to_host(cp.ones(3)), np.ndarray)


@pytest.mark.parametrize("vi", range(len(VARIANTS)), ids=VIDS)
@pytest.mark.parametrize("name", list(SUITE))
def test_products_match_cusparse_and_cpu(cp, name, vi):
    from sparseopt import linalg
    from sparseopt.gpu import to_device

    case = variant(SUITE[name], **VARIANTS[vi])
    ref = scipy_of(*case)
    dtype = case[2].dtype
    rtol, atol = rtol_for(dtype), 10 * rtol_for(dtype)
    A = _host_csr(case)
    D = to_device(A)
    before = [cp.asnumpy(a).copy() for a in (D.data, D.indices, D.indptr)]
    rng = np.random.default_rng(0)
    m, n = ref.shape
    x = rng.standard_normal(n).astype(dtype)
    X = rng.standard_normal((n, 7)).astype(dtype)
    Y = rng.standard_normal((m, 40)).astype(dtype)
    got = {
        "spmv": linalg.spmv(D, cp.asarray(x)),
        "spmm": linalg.spmm(D, cp.asarray(X)),
        "spmm_t": linalg.spmm_t(D, cp.asarray(Y)),
    }
    cpu = {"spmv": linalg.spmv(A, x), "spmm": linalg.spmm(A, X), "spmm_t": linalg.spmm_t(A, Y)}
    for key, value in got.items():
        assert isinstance(value, cp.ndarray) and value.dtype == dtype, key
        np.testing.assert_allclose(cp.asnumpy(value), cpu[key], rtol=rtol, atol=atol,
                                   err_msg=key)
    if m and n:
        C = _cusparse(ref.astype(dtype), cp)
        np.testing.assert_allclose(cp.asnumpy(got["spmv"]), cp.asnumpy(C @ cp.asarray(x)),
                                   rtol=rtol, atol=atol)
        np.testing.assert_allclose(cp.asnumpy(got["spmm"]), cp.asnumpy(C @ cp.asarray(X)),
                                   rtol=rtol, atol=atol)
        np.testing.assert_allclose(cp.asnumpy(got["spmm_t"]),
                                   cp.asnumpy(C.T @ cp.asarray(Y)), rtol=rtol, atol=atol)
    for b, a in zip(before, (D.data, D.indices, D.indptr), strict=True):
        np.testing.assert_array_equal(b, cp.asnumpy(a))


@pytest.mark.parametrize("vi", range(len(VARIANTS)), ids=VIDS)
@pytest.mark.parametrize("name", list(SUITE))
def test_spgemm_matches_cusparse(cp, name, vi):
    from sparseopt import linalg
    from sparseopt.gpu import to_device

    case = variant(SUITE[name], **VARIANTS[vi])
    ref = scipy_of(*case)
    dtype = case[2].dtype
    B_ref = sp.csr_array(ref.T)
    D = to_device(_host_csr(case))
    DB = to_device(_host_csr((B_ref.indptr.astype(case[0].dtype),
                              B_ref.indices.astype(case[0].dtype), B_ref.data.astype(dtype),
                              B_ref.shape)))
    for sort in (False, True):
        C = linalg.spgemm(D, DB, sort=sort)
        assert isinstance(C.data, cp.ndarray) and C.dtype == dtype
        expected = (ref @ B_ref).toarray()
        np.testing.assert_allclose(cp.asnumpy(C.todense()), expected,
                                   rtol=rtol_for(dtype), atol=10 * rtol_for(dtype))
        if sort:
            assert C.has_canonical_format
        if min(ref.shape) and sort:
            cu = _cusparse(ref.astype(dtype), cp) @ _cusparse(B_ref.astype(dtype), cp)
            np.testing.assert_allclose(cp.asnumpy(C.todense()), cp.asnumpy(cu.toarray()),
                                       rtol=rtol_for(dtype), atol=10 * rtol_for(dtype))


def test_spgemm_long_rows_global_tables(cp):
    # rows with more than 512 distinct output columns use global-memory tables
    from sparseopt import CSR, linalg
    from sparseopt.gpu import to_device

    rng = np.random.default_rng(1)
    A = sp.random_array((300, 2000), density=0.02, random_state=rng, format="csr")
    A = sp.vstack([A, sp.csr_array(rng.standard_normal((2, 2000)))]).tocsr()
    B = sp.random_array((2000, 3000), density=0.01, random_state=rng, format="csr")
    C = linalg.spgemm(to_device(CSR.from_scipy(A)), to_device(CSR.from_scipy(B)), sort=True)
    expected = (A @ B).toarray()
    np.testing.assert_allclose(cp.asnumpy(C.todense()), expected, rtol=1e-10, atol=1e-12)
    assert C.has_canonical_format


@pytest.mark.parametrize(("blocksize", "k"), [((4, 4), 1), ((2, 3), 16), ((16, 16), 64),
                                              ((40, 36), 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bsr_products_match_cpu(cp, blocksize, k, dtype):
    from sparseopt import BSR, linalg
    from sparseopt.gpu import to_device

    R, C = blocksize
    rng = np.random.default_rng(2)
    mask = sp.random_array((12, 10), density=0.3, random_state=3).toarray() != 0
    dense = (np.kron(mask, np.ones((R, C))) * rng.standard_normal((12 * R, 10 * C))).astype(
        dtype)
    A = BSR.from_scipy(sp.bsr_array(dense, blocksize=blocksize))
    D = to_device(A)
    X = rng.standard_normal((10 * C, k)).astype(dtype)
    Y = rng.standard_normal((12 * R, k)).astype(dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(cp.asnumpy(linalg.spmm(D, cp.asarray(X))),
                               linalg.spmm(A, X), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(cp.asnumpy(linalg.spmm_t(D, cp.asarray(Y))),
                               linalg.spmm_t(A, Y), rtol=rtol, atol=rtol)


def test_cupyx_exchange_is_zero_copy(cp):
    from sparseopt import CSR
    from sparseopt.gpu import from_cupyx, to_cupyx, to_device

    ref = sp.random_array((50, 40), density=0.1, random_state=4, format="csr")
    C = _cusparse(ref, cp)
    A = from_cupyx(C)
    assert A.data.data.ptr == C.data.data.ptr
    assert A.indices.data.ptr == C.indices.data.ptr
    assert A.has_canonical_format
    back = to_cupyx(to_device(CSR.from_scipy(ref)))
    np.testing.assert_allclose(cp.asnumpy(back.toarray()), ref.toarray())
    D = to_device(CSR.from_scipy(ref))
    assert to_cupyx(D).data.data.ptr == D.data.data.ptr


def test_mixing_host_and_device_is_a_type_error(cp):
    from sparseopt import linalg
    from sparseopt.gpu import to_device

    D = to_device(_host_csr(SUITE["uniform"]))
    with pytest.raises(TypeError, match=r"numpy.*cupy|cupy.*numpy"):
        linalg.spmm(D, np.ones((D.shape[1], 2)))


def test_device_conversions_match_scipy(cp):
    from sparseopt.gpu import to_device

    case = variant(SUITE["power_law"], **VARIANTS[3])
    ref = scipy_of(*case)
    D = to_device(_host_csr(case))
    canon = D.sum_duplicates()
    expected = ref.copy()
    expected.sum_duplicates()
    np.testing.assert_array_equal(cp.asnumpy(canon.indices), expected.indices)
    np.testing.assert_allclose(cp.asnumpy(canon.data), expected.data, rtol=1e-12)
    # the shape of power_law is 60 x 50: blocks of 3 x 5 fit
    bsr = D.tobsr((3, 5))
    np.testing.assert_allclose(cp.asnumpy(bsr.todense()), ref.toarray(), rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(bsr.tocsr().todense()), ref.toarray(), rtol=1e-12)
    T = D.backend.transpose(D)
    np.testing.assert_allclose(cp.asnumpy(T.todense()), ref.T.toarray(), rtol=1e-12)


def test_products_run_on_the_current_stream(cp):
    from sparseopt import linalg
    from sparseopt.gpu import to_device

    ref = sp.random_array((500, 300), density=0.05, random_state=5, format="csr")
    D = to_device(_host_csr((ref.indptr, ref.indices, ref.data, ref.shape)))
    X = np.random.default_rng(6).standard_normal((300, 8))
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        Xd = cp.asarray(X)
        out = linalg.spmm(D, Xd)
        stream.synchronize()
    np.testing.assert_allclose(cp.asnumpy(out), ref @ X, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 5, 64])
def test_long_rows_take_the_block_kernels(cp, k):
    # rows of 5000 entries (> long_row=1024) beside short ones
    from sparseopt import CSR, linalg
    from sparseopt.gpu import to_device

    rng = np.random.default_rng(7)
    ref = sp.vstack([sp.random_array((300, 6000), density=0.001, random_state=rng),
                     sp.csr_array(np.where(rng.random((3, 6000)) < 0.8,
                                           rng.standard_normal((3, 6000)), 0.0))]).tocsr()
    D = to_device(CSR.from_scipy(ref))
    X = rng.standard_normal((6000, k))
    Y = rng.standard_normal((303, k))
    got = linalg.spmm(D, cp.asarray(X if k > 1 else X[:, 0]))
    np.testing.assert_allclose(cp.asnumpy(got), ref @ (X if k > 1 else X[:, 0]), rtol=1e-10)
    got_t = linalg.spmm_t(D, cp.asarray(Y))
    np.testing.assert_allclose(cp.asnumpy(got_t), ref.T @ Y, rtol=1e-10, atol=1e-12)
